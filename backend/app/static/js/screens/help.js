// Help nearby: the nearest open safe hubs (GET /safe-hubs/nearest?open_now=true), with distance, when
// they close, a Call link and directions (a geo: link, and the hub on the map).
import { call } from "../api.js";
import { el } from "../dom.js";
import { formatDistance, formatTime, t, word } from "../i18n.js";
import { createMap, marker } from "../map.js";
import { here } from "../position.js";

const $ = (id) => document.getElementById(id);
const LIMIT = 5;
let meta = null;
let map = null;
let markers = [];

export function init(appMeta) { meta = appMeta; }
export function setMeta(appMeta) { meta = appMeta; }

export async function show() {
  $("help-status").textContent = t("help.finding");
  $("hub-list").replaceChildren();
  let hubs;
  try {
    const { coordinates } = await here();
    hubs = await call("GET", "/safe-hubs/nearest",
      { query: { lon: coordinates[0], lat: coordinates[1], open_now: "true", limit: LIMIT } });
    $("help-status").textContent = hubs.length ? "" : t("help.none");
    $("hub-list").replaceChildren(...hubs.map(card));
    await drawMap(coordinates, hubs);
  } catch (error) {
    $("help-status").textContent = error instanceof TypeError ? t("help.offline") : t("error.generic", { message: error.message });
  }
}

function card(hub) {
  const [lon, lat] = hub.location.coordinates;
  const closes = hub.closes_at ? t("help.open_closes", { time: formatTime(hub.closes_at, meta.time_zone) }) : t("help.open_always");
  const show = el("button", { type: "button", class: "secondary", "aria-label": t("help.show_label", { name: hub.name }) }, t("help.show"));
  show.addEventListener("click", () => {
    map?.map.flyTo({ center: [lon, lat], zoom: 16 });
    $("help-map").scrollIntoView({ block: "nearest" });
  });
  return el("li", { class: "hub" },
    el("h3", {}, hub.name),
    el("p", {}, `${word(hub.kind)} · ${t("help.away", { distance: formatDistance(hub.distance_m) })}`),
    el("p", { class: "open" }, closes),
    hub.address ? el("p", {}, hub.address) : null,
    el("p", { class: "row" },
      hub.phone ? el("a", { href: `tel:${hub.phone.replace(/[^+\d]/g, "")}`, "aria-label": t("help.call_label", { name: hub.name }) }, t("help.call")) : null,
      el("a", { href: `geo:${lat},${lon}?q=${lat},${lon}(${encodeURIComponent(hub.name)})`,
        "aria-label": t("help.directions_label", { name: hub.name }) }, t("help.directions")),
      show));
}

async function drawMap(centre, hubs) {
  map ||= await createMap($("help-map"), { center: centre, zoom: 14 });
  if (!map) return;
  map.map.resize();
  for (const old of markers) old.remove();
  markers = hubs.map((hub) => marker(map.maplibregl, "hub-dot").setLngLat(hub.location.coordinates)
    .setPopup(new map.maplibregl.Popup({ closeButton: false }).setText(hub.name)).addTo(map.map));
  markers.push(marker(map.maplibregl, "pin").setLngLat(centre).addTo(map.map));
  map.map.jumpTo({ center: centre, zoom: 14 });
}
