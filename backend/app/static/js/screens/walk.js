// A safer way: from where the phone is to a station (searched by name) or an open safe hub nearby,
// the shortest and the safer walking route (GET /routes/safer), in plain words and on the map.
// Routes need the network: offline, the screen says so and nothing is left half-drawn.
import { ApiError, call } from "../api.js";
import { el } from "../dom.js";
import { formatDistance, t, word } from "../i18n.js";
import { createMap, showWalks } from "../map.js";
import { here } from "../position.js";

const $ = (id) => document.getElementById(id);
const HUBS = 5;
let stations = null; // a promise of the stations' names and places, once asked for
let map = null;
let asking = 0; // the latest request: an older answer arriving late is dropped

export function init() {
  $("walk-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const typed = $("walk-station").value.trim().toLowerCase();
    const station = ((await loadStations()) || []).find((s) => s.name.toLowerCase() === typed); // typed before the list came
    if (!station) {
      $("walk-error").textContent = typed ? t("walk.unknown_station", { name: $("walk-station").value.trim() }) : t("walk.station_needed");
      $("walk-station").focus();
      return;
    }
    walkTo(station.name, [station.lon, station.lat]);
  });
  window.addEventListener("online", showConnection);
  window.addEventListener("offline", showConnection);
}

function showConnection() { $("walk-offline").hidden = navigator.onLine; }

export async function show() {
  showConnection();
  $("walk-error").textContent = "";
  await Promise.all([loadStations(), showHubs()]);
}

function loadStations() {
  stations ||= fetch("/app/data/stations.json").then((answer) => answer.json()).then(({ stations: list }) => {
    $("walk-stations").replaceChildren(...list.map((s) => el("option", { value: s.name })));
    return list;
  }).catch(() => { stations = null; return null; }); // offline before it was ever kept: asked again next time
  return stations;
}

async function showHubs() {
  $("walk-hubs").replaceChildren();
  $("walk-hubs-status").textContent = t("help.finding");
  try {
    const { coordinates } = await here();
    const hubs = await call("GET", "/safe-hubs/nearest",
      { query: { lon: coordinates[0], lat: coordinates[1], open_now: "true", limit: HUBS } });
    $("walk-hubs-status").textContent = hubs.length ? "" : t("help.none");
    $("walk-hubs").replaceChildren(...hubs.map((hub) => {
      const go = el("button", { type: "button", class: "secondary", "aria-label": t("walk.to_hub_label", { name: hub.name }) },
        t("walk.to_hub"));
      go.addEventListener("click", () => walkTo(hub.name, hub.location.coordinates));
      return el("li", {}, el("h3", {}, hub.name),
        el("p", {}, `${word(hub.kind)} · ${t("help.away", { distance: formatDistance(hub.distance_m) })}`), go);
    }));
  } catch (error) {
    $("walk-hubs-status").textContent = failure(error);
  }
}

function failure(error) {
  if (error instanceof TypeError) return t("walk.offline"); // fetch: no network
  if (error instanceof ApiError) return t("error.generic", { message: error.message });
  return t("walk.no_position"); // the position was refused or could not be had
}

async function walkTo(name, destination) {
  const mine = ++asking;
  $("walk-error").textContent = "";
  $("walk-result").hidden = true;
  $("walk-status").textContent = t("walk.finding", { name });
  let answer;
  try {
    const { coordinates } = await here();
    answer = await call("GET", "/routes/safer", { query: {
      from: `${coordinates[0]},${coordinates[1]}`, to: `${destination[0]},${destination[1]}` } });
  } catch (error) {
    if (mine !== asking) return;
    $("walk-status").textContent = "";
    $("walk-error").textContent = error instanceof ApiError && error.status === 422 ? refused(error.body) : failure(error);
    return;
  }
  if (mine !== asking) return;
  $("walk-status").textContent = "";
  await showAnswer(name, answer);
}

function refused(body) {
  const errors = body?.errors || {};
  if (errors.from) return t("walk.from_refused");
  if (errors.to) return t("walk.to_refused");
  return t("error.generic", { message: body?.message || "" });
}

async function showAnswer(name, answer) {
  const [shortest, safer] = answer.features;
  $("walk-result-title").textContent = t("walk.result_title", { name });
  $("walk-same").hidden = !answer.same_route;
  $("walk-same").textContent = answer.same_route ? t("walk.same") : "";
  $("walk-routes").replaceChildren(...(answer.same_route ? [card("same", shortest)] : [card("safer", safer), card("shortest", shortest)]));
  $("walk-result").hidden = false;
  $("walk-result-title").focus();
  map ||= await createMap($("walk-map"), { center: shortest.geometry.coordinates[0], zoom: 14 });
  if (!map) return;
  map.map.resize();
  showWalks(map.map, answer);
}

function card(kind, feature) {
  const p = feature.properties;
  const reports = Object.entries(p.reports_nearby);
  const total = reports.reduce((sum, [, n]) => sum + n, 0);
  return el("li", { class: `walk ${kind}` },
    el("h3", {}, el("span", { class: `swatch ${kind === "shortest" ? "shortest" : "safer"}`, "aria-hidden": "true" }), t(`walk.kind_${kind}`)),
    el("p", {}, t("walk.length", { distance: formatDistance(p.length_m), count: Math.max(1, Math.round(p.walk_min)) })),
    el("p", {}, total ? t("walk.reports", { count: total, kinds: reports.map(([c, n]) => `${word(c)} ${n}`).join(", ") })
      : t("walk.reports_none")),
    el("p", {}, p.unlit_m === null ? t("walk.daylight") : p.unlit_m > 0 ? t("walk.unlit", { distance: formatDistance(p.unlit_m) })
      : t("walk.unlit_none")),
    el("p", {}, t("walk.hubs_near", { count: p.open_hubs_within_200m })));
}
