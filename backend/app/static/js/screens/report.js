// The report screen: place (GPS with its accuracy, a pin to move), time (now, or a quick pick earlier),
// optional details, a route for an unsafe route (walked or drawn). "Send report" keeps it on the phone
// first (queue.js), then the caller sends it.
import { t, word } from "../i18n.js";
import { createMap, marker, showRoute } from "../map.js";
import { enqueue, newClientId } from "../queue.js";
import { removeQueued } from "../store.js";

const $ = (id) => document.getElementById(id);
const MIN_STEP_M = 3; // a walked route ignores GPS jitter smaller than this
const state = { category: null, location: null, accuracy: null, route: [], watch: null, drawing: false,
  map: null, pin: null, meta: null, lines: [], replacing: null, onSaved: null };

export function init({ meta, lines, onSaved }) {
  state.meta = meta;
  state.lines = lines;
  state.onSaved = onSaved;
  $("lines").replaceChildren(...lines.map((line) => new Option(line, line)));
  $("locate").addEventListener("click", locate);
  $("route-walk").addEventListener("click", startWalking);
  $("route-stop").addEventListener("click", stopWalking);
  $("route-draw").addEventListener("click", toggleDrawing);
  $("route-clear").addEventListener("click", () => { state.route = []; routeChanged(); });
  $("description").addEventListener("input", countDescription);
  $("when-picks").addEventListener("change", () => {
    $("when-custom-label").hidden = whenPick() !== "custom";
  });
  $("report-form").addEventListener("submit", (event) => { event.preventDefault(); submit(); });
}

export function setMeta(meta) { state.meta = meta; }

/** Open the form for a category; prefill with a queued report's fields to fix it. */
export function open(category, prefill = null) {
  state.category = category;
  state.replacing = prefill ? prefill.client_id : null;
  $("report-form").reset();
  $("report-error").textContent = "";
  $("when-custom-label").hidden = true;
  $("report-title").textContent = t("report.title", { category: word(category) });
  $("route-fields").hidden = category !== "unsafe_route";
  fillChoices(category);
  state.route = [];
  stopWalking();
  setDrawing(false);
  if (prefill) fill(prefill.report); else locate();
  routeChanged();
  countDescription();
  ensureMap();
}

export function close() { stopWalking(); setDrawing(false); }

export function relabel() {
  if (!state.category) return;
  $("report-title").textContent = t("report.title", { category: word(state.category) });
  const chosen = { subcategory: $("subcategory").value, mode: $("mode").value,
    factors: [...document.querySelectorAll("#factors input:checked")].map((i) => i.value) };
  fillChoices(state.category);
  $("subcategory").value = chosen.subcategory;
  $("mode").value = chosen.mode;
  for (const input of document.querySelectorAll("#factors input")) input.checked = chosen.factors.includes(input.value);
  countDescription();
  routeChanged();
}

function fillChoices(category) {
  const vocabulary = state.meta.vocabulary;
  const subcategories = vocabulary.categories.find((c) => c.name === category)?.subcategories || [];
  $("subcategory").replaceChildren(new Option(t("report.not_said"), ""), ...subcategories.map((s) => new Option(word(s), s)));
  $("mode").replaceChildren(new Option(t("report.not_said"), ""), ...vocabulary.modes.map((m) => new Option(word(m), m)));
  const legend = $("factors").querySelector("legend");
  $("factors").replaceChildren(legend, ...vocabulary.factors.map((factor) => {
    const label = document.createElement("label");
    const input = Object.assign(document.createElement("input"), { type: "checkbox", name: "factors", value: factor });
    label.append(input, " ", word(factor));
    return label;
  }));
  $("description").maxLength = state.meta.report_limits.max_description_chars;
}

function countDescription() {
  $("description-count").textContent = t("report.counter",
    { n: $("description").value.length, max: state.meta.report_limits.max_description_chars });
}

// -- place ----------------------------------------------------------------------------------------

function locate() {
  $("location-status").textContent = t("location.finding");
  navigator.geolocation.getCurrentPosition((position) => {
    const { longitude, latitude, accuracy } = position.coords;
    setLocation([longitude, latitude], accuracy);
    $("location-status").textContent = t("location.found", { n: Math.round(accuracy) });
  }, () => {
    if (!state.location) $("location-status").textContent = t("location.failed");
  }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 30000 });
}

function setLocation(coordinates, accuracy) {
  state.location = coordinates;
  state.accuracy = accuracy;
  if (state.map) {
    state.pin.setLngLat(coordinates).addTo(state.map.map);
    state.map.map.jumpTo({ center: coordinates });
  }
}

async function ensureMap() {
  if (state.map) { state.map.map.resize(); return; }
  const made = await createMap($("report-map"), { center: state.location || undefined });
  if (!made) return;
  state.map = made;
  state.pin = marker(made.maplibregl, "pin", { draggable: true });
  if (state.location) setLocation(state.location, state.accuracy); // the GPS answered while the map loaded
  state.pin.on("dragend", () => {
    const { lng, lat } = state.pin.getLngLat();
    state.location = [lng, lat];
    state.accuracy = null; // the GPS's accuracy no longer describes a place the person chose
    $("location-status").textContent = t("location.moved");
  });
  made.map.on("click", (event) => {
    if (state.drawing) { state.route.push([event.lngLat.lng, event.lngLat.lat]); routeChanged(); return; }
    if (!state.location) setLocation([event.lngLat.lng, event.lngLat.lat], null);
  });
  made.map.on("load", () => showRoute(made.map, state.route));
}

// -- route ----------------------------------------------------------------------------------------

function startWalking() {
  setDrawing(false);
  state.route = [];
  $("route-walk").hidden = true;
  $("route-stop").hidden = false;
  $("route-status").textContent = t("route.walking");
  state.watch = navigator.geolocation.watchPosition((position) => {
    const point = [position.coords.longitude, position.coords.latitude];
    const last = state.route[state.route.length - 1];
    if (!last || metres(last, point) >= MIN_STEP_M) { state.route.push(point); routeChanged(); }
    if (!state.location) setLocation(point, position.coords.accuracy);
  }, () => {}, { enableHighAccuracy: true, maximumAge: 0 });
  $("route-stop").focus();
}

function stopWalking() {
  if (state.watch !== null) navigator.geolocation.clearWatch(state.watch);
  const wasWalking = state.watch !== null;
  state.watch = null;
  $("route-walk").hidden = false;
  $("route-stop").hidden = true;
  if (wasWalking) { routeChanged(); $("route-walk").focus(); }
}

function toggleDrawing() { setDrawing(!state.drawing); }

function setDrawing(on) {
  state.drawing = on && Boolean(state.map);
  $("route-draw").setAttribute("aria-pressed", String(state.drawing));
  if (state.drawing) { stopWalking(); $("route-status").textContent = t("route.drawing"); }
}

function routeChanged() {
  if (state.category !== "unsafe_route") return;
  if (state.watch === null && !state.drawing) $("route-status").textContent = t("route.points", { count: state.route.length });
  else if (state.watch !== null) $("route-status").textContent = `${t("route.walking")} ${t("route.points", { count: state.route.length })}`;
  if (state.map) showRoute(state.map.map, state.route);
}

function metres([lon1, lat1], [lon2, lat2]) {
  const rad = Math.PI / 180;
  const x = (lon2 - lon1) * rad * Math.cos(((lat1 + lat2) / 2) * rad);
  return Math.hypot(x, (lat2 - lat1) * rad) * 6371000;
}

/** At most the server's limit of vertices, keeping the first and the last. */
function thinned(route) {
  const limit = state.meta.report_limits.max_route_vertices;
  if (route.length <= limit) return route;
  const step = (route.length - 1) / (limit - 1);
  return Array.from({ length: limit }, (_, i) => route[Math.round(i * step)]);
}

// -- time -----------------------------------------------------------------------------------------

function whenPick() { return document.querySelector("#when-picks input:checked").value; }

function occurredAt() {
  const pick = whenPick();
  if (pick === "custom") {
    const value = $("when-custom").value;
    return value ? new Date(value) : null;
  }
  return new Date(Date.now() - Number(pick) * 60000);
}

// -- sending --------------------------------------------------------------------------------------

function report() {
  const limits = state.meta.report_limits;
  const body = {
    category: state.category,
    occurred_at: occurredAt().toISOString(),
    location: { type: "Point", coordinates: state.location.map(round6) },
  };
  if (state.accuracy !== null && state.accuracy <= limits.max_accuracy_m) body.accuracy_m = Math.round(state.accuracy * 10) / 10;
  if (state.route.length >= 2) body.route = { type: "LineString", coordinates: thinned(state.route).map((p) => p.map(round6)) };
  if ($("subcategory").value) body.subcategory = $("subcategory").value;
  const line = $("line").value.trim();
  const station = $("station").value.trim();
  const mode = $("mode").value || (line || station ? inferredMode(line) : "");
  if (mode) body.transport = { mode, ...(line ? { line } : {}), ...(station ? { station } : {}) };
  const factors = [...document.querySelectorAll("#factors input:checked")].map((input) => input.value);
  if (factors.length) body.factors = factors;
  const description = $("description").value.trim();
  if (description) body.description = description;
  return body;
}

function inferredMode(line) {
  if (line === "DLR") return "dlr";
  return state.lines.includes(line) ? "tube" : "other";
}

function round6(x) { return Math.round(x * 1e6) / 1e6; }

function problem() {
  if (!state.location) return t("location.needed");
  const when = occurredAt();
  if (!when || Number.isNaN(when.getTime())) return t("report.future");
  if (when.getTime() > Date.now() + state.meta.report_limits.future_skew_s * 1000) return t("report.future");
  if (state.category === "unsafe_route" && (state.route.length < 2 || state.route.every((p) => metres(p, state.route[0]) < 0.5))) {
    return t("route.needed");
  }
  return null;
}

async function submit() {
  const error = problem();
  $("report-error").textContent = error || "";
  if (error) return;
  stopWalking();
  const body = report();
  // A fixed report gets a new client_id: the old one may be tied to a different body (409).
  await enqueue(body, newClientId());
  if (state.replacing) await removeQueued(state.replacing);
  state.replacing = null;
  state.onSaved();
}

function fill(body) {
  const [lon, lat] = body.location.coordinates;
  setLocation([lon, lat], body.accuracy_m ?? null);
  $("location-status").textContent = body.accuracy_m ? t("location.found", { n: Math.round(body.accuracy_m) }) : t("location.moved");
  const when = new Date(body.occurred_at);
  document.querySelector('#when-picks input[value="custom"]').checked = true;
  $("when-custom-label").hidden = false;
  const local = new Date(when.getTime() - when.getTimezoneOffset() * 60000);
  $("when-custom").value = local.toISOString().slice(0, 16);
  $("subcategory").value = body.subcategory || "";
  $("mode").value = body.transport?.mode || "";
  $("line").value = body.transport?.line || "";
  $("station").value = body.transport?.station || "";
  for (const input of document.querySelectorAll("#factors input")) input.checked = (body.factors || []).includes(input.value);
  $("description").value = body.description || "";
  state.route = body.route ? body.route.coordinates : [];
  $("details").open = true;
}
