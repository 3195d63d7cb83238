/* The SafeTravel dashboard: one page over the API (docs/api.md). No build step: plain JavaScript,
   MapLibre GL JS vendored under vendor/. */
"use strict";

const CONFIG = JSON.parse(document.getElementById("dashboard-config").textContent);
const API = location.origin + "/api/v1";
const STAFF = ["safety_team", "admin"];
const COLOURS = ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"];
const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

const state = { token: null, user: null, meta: null, map: null, hubs: [], councils: [], alertCentre: null, picking: null,
  stops: [1, 5, 20, 50, 150], stations: [] };

// Labels for the API's words (GET /api/v1/meta lists the words): the catalogue's "word.<word>" where the
// word itself, with spaces for underscores, does not read well. A word the server adds later shows as
// itself until the catalogue gives it one.
function label(word) {
  const key = `word.${word}`;
  const given = t(key);
  if (given !== key) return given;
  const text = String(word).replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/* ---- the API ---------------------------------------------------------------------------------- */

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
  detail() {
    const errors = this.body && this.body.errors;
    if (!errors) return this.message;
    return this.message + " " + Object.entries(errors).map(([k, v]) => `${k}: ${flatten(v)}`).join("; ");
  }
}

function flatten(value) {
  if (Array.isArray(value)) return value.map(flatten).join(", ");
  if (value && typeof value === "object") return Object.entries(value).map(([k, v]) => `${k} ${flatten(v)}`).join(", ");
  return String(value);
}

async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (raw) return response;
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (response.status === 401) signOut();
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/* ---- the deployment: its time zone and vocabulary (GET /api/v1/meta, no sign-in) ---------------- */

async function loadMeta() {
  const response = await fetch(API + "/meta");
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  state.meta = data;
}

function options(words, { labelled = true, selected = null } = {}) {
  return words.map((w) => `<option value="${escapeHtml(w)}"${w === selected ? " selected" : ""}>${escapeHtml(labelled ? label(w) : w)}</option>`).join("");
}

// The forms' choices come from the server's vocabulary rather than being repeated in the page.
function fillVocabulary() {
  const { vocabulary, time_zone: timeZone } = state.meta;
  $("#filter-categories").innerHTML = vocabulary.categories.map((c) =>
    `<label><input type="checkbox" name="category" value="${escapeHtml(c.name)}"> ${escapeHtml(label(c.name))}</label>`).join("");
  $("#filters").mode.innerHTML = options(vocabulary.modes);
  $("#filters").hours.title = t("filters.hours_title", { time_zone: timeZone });
  $("#hub-form").kind.innerHTML = options(vocabulary.hub_kinds);
  $("#alert-form").severity.innerHTML = options(vocabulary.alert_severities, { labelled: false, selected: "warning" });
}

// A local day (YYYY-MM-DD) in the city's time zone, as the API's from/to filters mean it.
function localDay(date) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: state.meta.time_zone }).format(date);
}

/* ---- signing in ------------------------------------------------------------------------------- */

function claimsOf(token) {
  const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(payload + "=".repeat((4 - (payload.length % 4)) % 4)));
}

// The token lives in this page's memory only: never in localStorage or sessionStorage, where any
// script injected into the page could read it (docs/security.md). Reloading the page signs in again.
function useToken(token) {
  const claims = claimsOf(token);
  state.token = token;
  state.user = { uid: claims.user_id || claims.sub, role: claims.role || "commuter", council: claims.council || null };
}

function signOut() {
  state.token = null;
  if (CONFIG.firebase && window.firebase) firebase.auth().signOut();
  location.reload();
}

// Development sign-in: an unsigned token for a role, an hour long like Firebase's, fetched again
// five minutes before it expires (Firebase's SDK refreshes its own tokens the same way).
async function devSignIn(role, council) {
  const response = await fetch("/dashboard/dev-sign-in", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ role, council: role === "council" ? council : null }),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.message);
  const refreshInMs = claimsOf(data.token).exp * 1000 - Date.now() - 5 * 60 * 1000;
  setTimeout(() => devSignIn(role, council).then(useToken).catch(showError), Math.max(refreshInMs, 60000));
  return data.token;
}

async function councilsFromMapData() {
  const response = await fetch("/dashboard/data/boroughs.geojson");
  const data = await response.json();
  return data.features.map((f) => ({ code: f.properties.code, name: f.properties.name }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

function signIn() {
  return new Promise((resolve) => {
    const dialog = $("#sign-in");
    const form = $("#sign-in-form");
    $("#sign-in-dev").hidden = !CONFIG.devSignIn;
    $("#sign-in-firebase").hidden = !CONFIG.firebase;
    if (CONFIG.devSignIn) {
      $("#dev-banner").hidden = false;
      councilsFromMapData().then((councils) => {
        $("#dev-council").innerHTML = councils.map((c) => `<option value="${c.code}">${escapeHtml(c.name)}</option>`).join("");
        $("#dev-council").value = "E09000028";
      });
      $("#dev-role").addEventListener("change", () => { $("#dev-council-label").hidden = $("#dev-role").value !== "council"; });
    }
    if (!CONFIG.devSignIn && !CONFIG.firebase) {
      $("#sign-in-error").textContent = t("sign_in.not_configured");
      $("#sign-in-button").disabled = true;
    }
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      $("#sign-in-error").textContent = "";
      try {
        let token;
        if (CONFIG.devSignIn) {
          token = await devSignIn($("#dev-role").value, $("#dev-council").value);
        } else {
          const credential = await firebase.auth().signInWithEmailAndPassword(form.email.value, form.password.value);
          token = await credential.user.getIdToken();
        }
        dialog.close();
        resolve(token);
      } catch (error) {
        $("#sign-in-error").textContent = error.message;
      }
    });
    dialog.showModal();
  });
}

async function authenticate() {
  if (CONFIG.firebase) {
    firebase.initializeApp(CONFIG.firebase);
    // The SDK keeps the signed-in user in memory only (not in IndexedDB or web storage).
    await firebase.auth().setPersistence(firebase.auth.Auth.Persistence.NONE);
    // Firebase refreshes ID tokens hourly; keep the newest for the API and the map's tiles.
    firebase.auth().onIdTokenChanged(async (user) => { if (user) useToken(await user.getIdToken()); });
  }
  useToken(await signIn());
}

/* ---- filters and the URL ---------------------------------------------------------------------- */

function filtersFromForm() {
  const form = $("#filters");
  const filters = new URLSearchParams();
  $$("input[name=category]:checked", form).forEach((i) => filters.append("category", i.value));
  Array.from(form.mode.selectedOptions).forEach((o) => filters.append("mode", o.value));
  if (form.from.value) filters.set("from", form.from.value);
  if (form.to.value) filters.set("to", form.to.value);
  if (form.hours.value.trim()) filters.set("hours", form.hours.value.trim());
  const days = $$("input[name=days]:checked", form).map((i) => i.value);
  if (days.length) filters.set("days", days.join(","));
  return filters;
}

function formFromUrl() {
  const params = new URLSearchParams(location.search);
  const form = $("#filters");
  const categories = params.getAll("category");
  $$("input[name=category]", form).forEach((i) => { i.checked = categories.includes(i.value); });
  const modes = params.getAll("mode");
  Array.from(form.mode.options).forEach((o) => { o.selected = modes.includes(o.value); });
  form.from.value = params.get("from") || "";
  form.to.value = params.get("to") || "";
  form.hours.value = params.get("hours") || "";
  const days = (params.get("days") || "").split(",");
  $$("input[name=days]", form).forEach((i) => { i.checked = days.includes(i.value); });
}

function filtersValid() {
  const form = $("#filters");
  let message = "";
  if (!form.hours.checkValidity()) message = t("filters.hours_invalid");
  else if (form.from.value && form.to.value && form.from.value > form.to.value) message = t("filters.from_after_to");
  $("#filters-error").textContent = message;
  return !message;
}

function applyFilters() {
  if (!filtersValid()) return;
  const filters = filtersFromForm();
  const url = new URL(location.href);
  const triageFilters = [...url.searchParams].filter(([name]) => name.startsWith("triage_")); // triage.js's
  url.search = filters.toString();
  triageFilters.forEach(([name, value]) => url.searchParams.append(name, value));
  history.replaceState(null, "", url);
  setHeatmapTiles(filters);
  loadHotspots(filters);
}

/* ---- the map ---------------------------------------------------------------------------------- */

function tileUrl(filters) {
  const query = filters.toString();
  return `${API}/heatmap/tiles/{z}/{x}/{y}.mvt` + (query ? `?${query}` : "");
}

function setHeatmapTiles(filters) {
  const source = state.map && state.map.getSource("heatmap");
  if (source) source.setTiles([tileUrl(filters)]);
}

function colourExpression() {
  const expression = ["interpolate", ["linear"], ["get", "count"]];
  state.stops.forEach((count, i) => expression.push(count, COLOURS[i]));
  return expression;
}

function drawLegend() {
  // Colours set through the DOM, not style attributes: the page's Content-Security-Policy forbids those.
  $("#legend .legend-scale").replaceChildren(...state.stops.map((count, i) => {
    const step = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = COLOURS[i];
    step.append(swatch, `${count}${i === state.stops.length - 1 ? "+" : ""}`);
    return step;
  }));
}

// The colours follow what is on screen: the darkest is the 95th percentile of the cells in view, so
// that a busy city centre over three years and one quiet night both show their contrasts.
function rescale() {
  const counts = state.map.queryRenderedFeatures({ layers: ["heatmap"] }).map((f) => f.properties.count).sort((a, b) => a - b);
  if (!counts.length) return;
  const top = Math.max(5, counts[Math.floor((counts.length - 1) * 0.95)]);
  const stops = [0, 0.1, 0.25, 0.5, 1].map((share) => Math.max(1, Math.round(top * share)));
  for (let i = 1; i < stops.length; i++) stops[i] = Math.max(stops[i], stops[i - 1] + 1);
  if (stops.join() === state.stops.join()) return;
  state.stops = stops;
  state.map.setPaintProperty("heatmap", "fill-color", colourExpression());
  drawLegend();
}

// MapLibre's CSP build: its tile workers start from this file, so the page's policy needs no blob: workers.
maplibregl.setWorkerUrl("/dashboard/static/vendor/maplibre-gl/maplibre-gl-csp-worker.js");

function createMap() {
  // Without BASEMAP_STYLE_URL the page draws its own base layer from the shipped data (addBaseLayer).
  const plain = {
    version: 8,
    sources: {},
    layers: [{ id: "background", type: "background", paint: { "background-color": "#eef0ec" } }],
  };
  const map = new maplibregl.Map({
    container: "map",
    style: CONFIG.basemapStyleUrl || plain,
    center: [-0.1, 51.5],
    zoom: 10,
    hash: "map",
    attributionControl: { compact: true },
    transformRequest: (url) => (url.startsWith(API) ? { url, headers: { Authorization: `Bearer ${state.token}` } } : { url }),
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
  state.map = map;
  // MapLibre shows a compact attribution opened until the map is first dragged; folded to its (i)
  // button from the start it covers neither the legend nor the scale, and opens again on a click.
  map.once("idle", () => {
    const attribution = $(".maplibregl-ctrl-attrib.maplibregl-compact-show");
    if (attribution) {
      attribution.classList.remove("maplibregl-compact-show");
      attribution.removeAttribute("open");
    }
    document.body.dataset.attributionFolded = "true";
  });
  return new Promise((resolve) => map.on("load", () => { addLayers(map); resolve(map); }));
}

function addLayers(map) {
  map.addSource("boroughs", { type: "geojson", data: "/dashboard/data/boroughs.geojson", attribution: t("map.attribution") });
  map.addSource("underground", { type: "geojson", data: "/dashboard/data/underground.geojson" });
  map.addSource("heatmap", { type: "vector", tiles: [tileUrl(filtersFromForm())], minzoom: 0, maxzoom: 18 });
  map.addSource("hubs", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  map.addSource("alert-area", { type: "geojson", data: { type: "FeatureCollection", features: [] } });

  map.addLayer({ id: "boroughs-fill", type: "fill", source: "boroughs", paint: { "fill-color": "#ffffff", "fill-opacity": 0.35 } });
  if (!CONFIG.basemapStyleUrl) addBaseLayer(map);
  map.addLayer({ id: "underground", type: "line", source: "underground",
    paint: { "line-color": "#6b7a8f", "line-width": 1.2, "line-opacity": 0.7 } });
  map.addLayer({ id: "heatmap", type: "fill", source: "heatmap", "source-layer": "heatmap",
    paint: { "fill-color": colourExpression(), "fill-opacity": 0.7, "fill-outline-color": "rgba(120,0,20,0.25)" } });
  map.addLayer({ id: "boroughs-line", type: "line", source: "boroughs", paint: { "line-color": "#555", "line-width": 0.8 } });
  map.addLayer({ id: "own-area", type: "line", source: "boroughs",
    filter: ["==", ["get", "code"], (state.user && state.user.council) || ""],
    paint: { "line-color": "#1f4e99", "line-width": 3 } });
  map.addLayer({ id: "alert-area", type: "fill", source: "alert-area", paint: { "fill-color": "#1f4e99", "fill-opacity": 0.15 } });
  map.addLayer({ id: "alert-area-line", type: "line", source: "alert-area", paint: { "line-color": "#1f4e99", "line-width": 2 } });
  map.addLayer({ id: "hubs", type: "circle", source: "hubs",
    paint: { "circle-radius": ["interpolate", ["linear"], ["zoom"], 9, 2, 15, 6], "circle-color": "#1a9850",
      "circle-stroke-color": "#fff", "circle-stroke-width": 1 } });

  // One popup for what is under the pointer: a hub drawn over a heatmap cell shows the hub.
  const popup = new maplibregl.Popup({ closeButton: false, closeOnClick: false });
  map.on("mousemove", (event) => {
    const [hub] = map.queryRenderedFeatures(event.point, { layers: ["hubs"] });
    const [cell] = hub ? [] : map.queryRenderedFeatures(event.point, { layers: ["heatmap"] });
    map.getCanvas().style.cursor = hub ? "pointer" : "";
    if (hub) {
      popup.setLngLat(hub.geometry.coordinates).setHTML(hubPopup(hub.properties.id)).addTo(map);
    } else if (cell) {
      const p = cell.properties;
      const byCategory = state.meta.vocabulary.categories.map((c) => `${escapeHtml(label(c.name).toLowerCase())} ${p[c.name] || 0}`);
      popup.setLngLat(event.lngLat).setHTML(t("map.cell", { count: p.count, categories: byCategory.join(", ") })).addTo(map);
    } else {
      popup.remove();
    }
  });
  map.on("mouseout", () => popup.remove());
  map.on("idle", rescale);
  map.on("click", "hubs", (event) => hubClicked(event.features[0].properties.id));
  map.on("click", (event) => mapClicked(event.lngLat));
}

function hubPopup(id) {
  const hub = state.hubs.find((h) => h.id === id);
  if (!hub) return "";
  return `<div class="hub-popup"><strong>${escapeHtml(hub.name)}</strong>${escapeHtml(label(hub.kind))}<br>${escapeHtml(describeHours(hub.opening_hours))}</div>`;
}

/* ---- the built-in base layer: the shipped streets and station names ------------------------------ */

// Without a basemap (BASEMAP_STYLE_URL) the map still shows where things are: the streets of the
// shipped network where it covers (GET /streets for the box in view, once zoomed in) and TfL's
// stations with their names. Names are HTML markers, so no glyph server is needed: all of it works
// offline, from this server alone.
const BASE_STREETS_MIN_ZOOM = 14;
const STATION_NAMES_MIN_ZOOM = 13;
const MAX_STATION_NAMES = 120;

function addBaseLayer(map) {
  map.addSource("base-streets", { type: "geojson", data: { type: "FeatureCollection", features: [] },
    attribution: t("map.streets_attribution") });
  map.addSource("stations", { type: "geojson", data: "/dashboard/data/stations.geojson" });
  map.addLayer({ id: "base-streets-casing", type: "line", source: "base-streets",
    layout: { "line-cap": "round", "line-join": "round" },
    paint: { "line-color": "#b4b9c1", "line-width": ["interpolate", ["linear"], ["zoom"], 14, 2.5, 18, 10] } });
  map.addLayer({ id: "base-streets", type: "line", source: "base-streets",
    layout: { "line-cap": "round", "line-join": "round" },
    paint: { "line-color": "#ffffff", "line-width": ["interpolate", ["linear"], ["zoom"], 14, 1.5, 18, 8] } });
  map.addLayer({ id: "stations", type: "circle", source: "stations",
    paint: { "circle-radius": ["interpolate", ["linear"], ["zoom"], 9, 1.5, 15, 4], "circle-color": "#ffffff",
      "circle-stroke-color": "#243041", "circle-stroke-width": 1 } });
  const markers = new Map();
  let request = 0;
  const refresh = async () => {
    const bounds = map.getBounds();
    const zoom = map.getZoom();
    // Station names for the stations in view, as HTML markers.
    const wanted = zoom < STATION_NAMES_MIN_ZOOM ? [] : state.stations
      .filter((s) => bounds.contains(s.geometry.coordinates)).slice(0, MAX_STATION_NAMES);
    const keep = new Set(wanted.map((s) => s.properties.id));
    for (const [id, marker] of markers) if (!keep.has(id)) { marker.remove(); markers.delete(id); }
    for (const station of wanted) {
      if (markers.has(station.properties.id)) continue;
      const element = document.createElement("div");
      element.className = "station-label";
      element.textContent = station.properties.name;
      markers.set(station.properties.id, new maplibregl.Marker({ element, anchor: "bottom", offset: [0, -5] })
        .setLngLat(station.geometry.coordinates).addTo(map));
    }
    // The streets in view, where the shipped network covers.
    const ask = ++request;
    let streets = { type: "FeatureCollection", features: [] };
    const [west, south, east, north] = [bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()];
    if (zoom >= BASE_STREETS_MIN_ZOOM && east - west <= 0.1 && north - south <= 0.1) {
      const bbox = [west, south, east, north].map((v) => v.toFixed(5)).join(",");
      streets = await api(`/streets?bbox=${bbox}`).catch(() => streets);
    }
    if (ask === request) map.getSource("base-streets").setData(streets);
    document.body.dataset.baseLayer = "drawn";
  };
  fetch("/dashboard/data/stations.geojson").then((r) => r.json()).then((data) => {
    state.stations = data.features;
    map.on("moveend", refresh);
    refresh();
  }).catch(showError);
}

async function fitToOwnArea() {
  if (!state.user.council) return;
  const data = await (await fetch("/dashboard/data/boroughs.geojson")).json();
  const area = data.features.find((f) => f.properties.code === state.user.council);
  if (!area) return;
  const bounds = new maplibregl.LngLatBounds();
  const walk = (c) => (typeof c[0] === "number" ? bounds.extend(c) : c.forEach(walk));
  walk(area.geometry.coordinates);
  state.map.fitBounds(bounds, { padding: 30, duration: 0 });
}

/* ---- hotspots --------------------------------------------------------------------------------- */

// The hotspots tab: the places with most reports (GET /hotspots) on the grid the user picks, named,
// with whether a rise is more than chance; choosing one outlines its cell on the map.
async function loadHotspots(filters) {
  const list = $("#hotspots");
  const query = new URLSearchParams(filters);
  query.set("zoom", $("#hotspots-grid").value);
  try {
    const data = await api(`/hotspots?${query.toString()}`);
    $("#hotspots-period").textContent = t("hotspots.period", { from: data.period.from, to: data.period.to,
      previous_from: data.previous_period.from, previous_to: data.previous_period.to, min: data.min_count });
    list.replaceChildren(...data.hotspots.map(hotspotCard));
    if (!data.hotspots.length) {
      const empty = document.createElement("li");
      empty.className = "hint";
      empty.textContent = t("hotspots.empty", { min: data.min_count });
      list.replaceChildren(empty);
    }
  } catch (error) {
    const item = document.createElement("li");
    item.className = "error";
    item.textContent = error instanceof ApiError ? error.detail() : error.message;
    list.replaceChildren(item);
  }
}

function hotspotName(h) {
  const { station, street } = h.place;
  if (street && station) return t("hotspots.name_street_station", { street, station });
  if (station) return t("hotspots.name_station", { station });
  return t("hotspots.name_cell", { cell: h.cell });
}

function hotspotCard(h) {
  const trend = h.rising ? "up" : h.change < 0 ? "down" : "flat";
  const change = h.change_pct === null ? t("hotspots.change_new") : `${h.change_pct > 0 ? "+" : ""}${Math.round(h.change_pct)}%`;
  const p = h.p_value < 0.001 ? "< 0.001" : h.p_value.toFixed(3);
  const button = document.createElement("button");
  button.type = "button";
  button.className = "hotspot";
  button.dataset.trend = trend;
  button.dataset.cell = h.cell;
  const name = document.createElement("strong");
  name.className = "hotspot-name";
  name.textContent = hotspotName(h);
  const where = document.createElement("small");
  where.textContent = [h.place.borough, h.place.station && t("hotspots.station_distance",
    { station: h.place.station, metres: h.place.station_distance_m })].filter(Boolean).join(" · ");
  const count = document.createElement("span");
  count.className = "hotspot-count";
  count.textContent = `${t("hotspots.count", { count: h.count })} · ${t("hotspots.previously", { previous: h.previous_count, change })}`;
  const confidence = document.createElement("span");
  confidence.className = `trend ${trend}`;
  confidence.textContent = h.change > 0 ? t(`hotspots.confidence_${h.confidence}`, { p }) : t("hotspots.not_rising");
  button.append(name, where, count, confidence);
  button.addEventListener("click", () => {
    $$("#hotspots .hotspot").forEach((other) => other.setAttribute("aria-pressed", String(other === button)));
    outlineCell(h);
  });
  button.setAttribute("aria-pressed", "false");
  const item = document.createElement("li");
  item.append(button);
  return item;
}

function outlineCell(h) {
  const map = state.map;
  if (!map.getSource("hotspot-cell")) {
    map.addSource("hotspot-cell", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
    map.addLayer({ id: "hotspot-cell", type: "line", source: "hotspot-cell",
      paint: { "line-color": "#1d1b20", "line-width": 3, "line-dasharray": [2, 1] } });
  }
  map.getSource("hotspot-cell").setData({ type: "Feature", geometry: h.geometry, properties: { cell: h.cell } });
  const [west, south, east, north] = h.bounds;
  map.fitBounds([[west, south], [east, north]], { padding: 60, maxZoom: 16 });
}

$("#hotspots-grid").addEventListener("change", () => loadHotspots(filtersFromForm()));

/* ---- safe hubs -------------------------------------------------------------------------------- */

async function loadHubs() {
  const data = await api("/safe-hubs?limit=2000");
  state.hubs = Array.isArray(data) ? data : data.items;
  state.map.getSource("hubs").setData({ type: "FeatureCollection", features: state.hubs.map((h) => ({
    type: "Feature", geometry: h.location, properties: { id: h.id, name: h.name } })) });
  $("#hubs-count").textContent = t("hubs.count", { count: state.hubs.length });
  const chosen = $("#alert-hub").value;
  $("#alert-hub").innerHTML = [...state.hubs].sort((a, b) => a.name.localeCompare(b.name))
    .map((h) => `<option value="${h.id}">${escapeHtml(h.name)}</option>`).join("");
  if (chosen) $("#alert-hub").value = chosen;
}

// A hub clicked on the map: the alert's centre when an alert is being aimed at a hub, else edited.
function hubClicked(id) {
  const form = $("#alert-form");
  if (!$("#tab-alerts").hidden && form.where.value === "hub") {
    form.hub.value = id;
    aimAtChosenPlace();
    return;
  }
  editHub(id);
}

/* ---- opening hours: a weekly editor over the API's form ("24/7" or {day: [[opens, closes]]}) ---- */

const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const OPENS = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;       // 00:00 to 23:59
const CLOSES = /^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$/; // or 24:00, to close at midnight
const MAX_RANGES_PER_DAY = 6;

function describeHours(hours) {
  if (hours === "24/7") return t("hubs.popup_open_always");
  return WEEKDAYS.map((day) => `${t(`days.${day}`)} ${(hours[day] || []).map(([a, b]) => `${a}–${b}`).join(", ") || t("hubs.hours_closed")}`).join("; ");
}

function hoursRange(day, [opens, closes] = ["", ""]) {
  const row = document.createElement("div");
  row.className = "hours-range";
  const input = (value, pattern, key, name) => {
    const field = document.createElement("input");
    Object.assign(field, { value, name, inputMode: "numeric", placeholder: "HH:MM", size: 5, maxLength: 5 });
    field.dataset.pattern = pattern.source;
    field.setAttribute("aria-label", t(key, { day: t(`days.${day}`) }));
    return field;
  };
  const remove = document.createElement("button");
  remove.type = "button";
  remove.textContent = t("hubs.hours_remove");
  remove.addEventListener("click", () => { const list = row.parentElement; row.remove(); updateDay(list.closest(".hours-day")); });
  row.append(input(opens, OPENS, "hubs.hours_from_label", "opens"), "–", input(closes, CLOSES, "hubs.hours_to_label", "closes"), remove);
  remove.setAttribute("aria-label", t("hubs.hours_remove_label", { day: t(`days.${day}`), from: opens || "…", to: closes || "…" }));
  return row;
}

function updateDay(dayRow) {
  const count = $$(".hours-range", dayRow).length;
  $(".closed", dayRow).hidden = count > 0;
  $(".add-range", dayRow).disabled = count >= MAX_RANGES_PER_DAY;
}

function setHours(hours) {
  const always = hours === "24/7";
  $("#hours-always").checked = always;
  $("#hours-days").hidden = always;
  $("#hours-error").textContent = "";
  $("#hours-days").replaceChildren(...WEEKDAYS.map((day) => {
    const dayRow = document.createElement("div");
    dayRow.className = "hours-day";
    dayRow.dataset.day = day;
    const name = document.createElement("span");
    name.className = "day-name";
    name.textContent = t(`days.${day}`);
    const ranges = document.createElement("div");
    ranges.className = "ranges";
    const closed = document.createElement("span");
    closed.className = "closed";
    closed.textContent = t("hubs.hours_closed");
    const add = document.createElement("button");
    add.type = "button";
    add.className = "add-range";
    add.textContent = t("hubs.hours_add");
    add.setAttribute("aria-label", `${t(`days.${day}`)}: ${t("hubs.hours_add")}`);
    add.addEventListener("click", () => { $(".ranges-list", dayRow).append(hoursRange(day)); updateDay(dayRow); });
    const list = document.createElement("div");
    list.className = "ranges-list";
    list.append(...((always ? [] : hours[day]) || []).map((pair) => hoursRange(day, pair)));
    ranges.append(list, closed, add);
    dayRow.append(name, ranges);
    updateDay(dayRow);
    return dayRow;
  }));
}

// The hours in the editor as the API takes them, or an error naming the day (the API's own rules:
// HH:MM times, 24:00 only to close, a range that closes before it opens runs past midnight).
function hoursFromEditor() {
  if ($("#hours-always").checked) return { hours: "24/7" };
  const hours = {};
  for (const dayRow of $$("#hours-days .hours-day")) {
    const day = dayRow.dataset.day;
    const ranges = $$(".hours-range", dayRow).map((row) => [row.querySelector("[name=opens]"), row.querySelector("[name=closes]")]);
    for (const [opens, closes] of ranges) {
      for (const field of [opens, closes]) field.removeAttribute("aria-invalid");
      const bad = [opens, closes].find((field) => !new RegExp(field.dataset.pattern).test(field.value.trim()));
      if (bad) {
        bad.setAttribute("aria-invalid", "true");
        return { error: t("hubs.hours_incomplete", { day: t(`days.${day}`) }), field: bad };
      }
      if (opens.value.trim() === closes.value.trim()) return { error: t("hubs.hours_empty", { day: t(`days.${day}`) }), field: closes };
    }
    if (ranges.length) hours[day] = ranges.map(([opens, closes]) => [opens.value.trim(), closes.value.trim()]);
  }
  return { hours };
}

function editHub(id) {
  const hub = state.hubs.find((h) => h.id === id);
  if (!hub || !isStaff()) return;
  selectTab("hubs");
  const form = $("#hub-form");
  form.id.value = hub.id;
  form.name.value = hub.name;
  form.kind.value = hub.kind;
  [form.lon.value, form.lat.value] = hub.location.coordinates;
  form.address.value = hub.address || "";
  form.phone.value = hub.phone || "";
  setHours(hub.opening_hours);
  $("#hub-save").textContent = t("hubs.save");
  $("#hub-close").hidden = false;
  $("#hub-message").textContent = t("hubs.editing", { name: hub.name });
}

function newHub() {
  const form = $("#hub-form");
  form.reset();
  form.id.value = "";
  setHours("24/7");
  $("#hub-save").textContent = t("hubs.add");
  $("#hub-close").hidden = true;
  $("#hub-message").textContent = "";
}

async function saveHub(event) {
  event.preventDefault();
  const form = event.target;
  const { hours, error, field } = hoursFromEditor();
  $("#hours-error").textContent = error || "";
  if (error) { field.focus(); return; }
  const body = {
    name: form.name.value, kind: form.kind.value, opening_hours: hours,
    location: { type: "Point", coordinates: [Number(form.lon.value), Number(form.lat.value)] },
    address: form.address.value || null, phone: form.phone.value || null,
  };
  try {
    const hub = form.id.value
      ? await api(`/safe-hubs/${form.id.value}`, { method: "PATCH", body })
      : await api("/safe-hubs", { method: "POST", body });
    await loadHubs();
    editHub(hub.id);
    $("#hub-message").textContent = t("hubs.saved", { name: hub.name });
  } catch (error) {
    $("#hub-message").textContent = error.detail ? error.detail() : error.message;
  }
}

async function closeHub() {
  const form = $("#hub-form");
  if (!form.id.value || !confirm(t("hubs.close_confirm", { name: form.name.value }))) return;
  await api(`/safe-hubs/${form.id.value}`, { method: "DELETE" });
  const name = form.name.value;
  newHub();
  await loadHubs();
  $("#hub-message").textContent = t("hubs.closed", { name });
}

/* ---- alerts ----------------------------------------------------------------------------------- */

// The alert's centre and what it is (a hub, a station, or a point clicked on the map).
function alertPlace() {
  const form = $("#alert-form");
  if (form.where.value === "hub") {
    const hub = state.hubs.find((h) => h.id === form.hub.value);
    return hub ? { centre: hub.location.coordinates, name: hub.name, hub } : null;
  }
  if (form.where.value === "station") {
    const station = state.stations.find((s) => s.properties.id === form.station.value);
    return station ? { centre: station.geometry.coordinates, name: station.properties.name } : null;
  }
  return state.alertCentre ? { centre: state.alertCentre } : null;
}

// The station pickers: TfL's lines, and the stations on the line chosen (data/london_stations.geojson).
function fillStationPickers() {
  const lines = [...new Set(state.stations.flatMap((s) => s.properties.lines))].sort((a, b) => a.localeCompare(b));
  $("#alert-line").innerHTML = `<option value="">${escapeHtml(t("alerts.line_any"))}</option>` +
    lines.map((l) => `<option value="${escapeHtml(l)}">${escapeHtml(l)}</option>`).join("");
  fillStations();
}

function fillStations() {
  const line = $("#alert-line").value;
  const chosen = $("#alert-station").value;
  const stations = state.stations.filter((s) => !line || s.properties.lines.includes(line))
    .sort((a, b) => a.properties.name.localeCompare(b.properties.name));
  $("#alert-station").innerHTML = stations.map((s) =>
    `<option value="${escapeHtml(s.properties.id)}">${escapeHtml(s.properties.name)}</option>`).join("");
  if (stations.some((s) => s.properties.id === chosen)) $("#alert-station").value = chosen;
}

// A hub or station chosen: the map centres on it, and the circle is drawn before anything is sent.
function aimAtChosenPlace() {
  const place = alertPlace();
  drawAlertArea();
  if (place && $("#alert-form").where.value !== "circle") {
    state.map.flyTo({ center: place.centre, zoom: Math.max(state.map.getZoom(), 14) });
  }
}

// The circle comes from the server (GET /alerts/circle), which measures distances as it will when
// it finds the devices to reach; only the latest of overlapping requests is drawn.
let alertAreaRequest = 0;
async function drawAlertArea() {
  const form = $("#alert-form");
  const place = alertPlace();
  const centre = place && place.centre;
  const radius = form.radius_m.value;
  $("#alert-hub-label").hidden = $("#alert-hub-hint").hidden = form.where.value !== "hub";
  $("#alert-station-fields").hidden = form.where.value !== "station";
  const where = centre && { lon: centre[0].toFixed(5), lat: centre[1].toFixed(5), name: place.name };
  $("#alert-centre").textContent = !centre ? t("alerts.no_centre")
    : t(place.name ? "alerts.centre_named" : "alerts.centre", where);
  const request = ++alertAreaRequest;
  let features = [];
  if (centre && radius && form.radius_m.checkValidity()) {
    try {
      const area = await api(`/alerts/circle?${new URLSearchParams({ lon: centre[0], lat: centre[1], radius_m: radius })}`);
      features = [{ type: "Feature", geometry: area.outline, properties: {} }];
    } catch (error) {
      if (request === alertAreaRequest) $("#alert-error").textContent = error instanceof ApiError ? error.detail() : error.message;
    }
  }
  if (request === alertAreaRequest) state.map.getSource("alert-area").setData({ type: "FeatureCollection", features });
}

async function sendAlert(event) {
  event.preventDefault();
  const form = event.target;
  $("#alert-error").textContent = "";
  const radius = Number(form.radius_m.value);
  const place = alertPlace();
  let area;
  if (form.where.value === "hub" && place) area = { safe_hub_id: place.hub.id, radius_m: radius };
  else if (place) area = { center: { type: "Point", coordinates: place.centre }, radius_m: radius };
  else {
    $("#alert-error").textContent = t({ hub: "alerts.pick_hub", station: "alerts.pick_station" }[form.where.value] || "alerts.place_centre");
    return;
  }
  const expires = new Date(Date.now() + Number(form.expires_h.value) * 3600 * 1000).toISOString();
  try {
    const alert = await api("/alerts", { method: "POST", body: {
      title: form.title.value, body: form.body.value, severity: form.severity.value, area, expires_at: expires } });
    watchAlert(alert.id);
  } catch (error) {
    $("#alert-error").textContent = error.detail ? error.detail() : error.message;
  }
}

async function watchAlert(id) {
  const card = $("#alert-status");
  card.hidden = false;
  for (let i = 0; i < 600; i++) {
    const a = await api(`/alerts/${id}`);
    const figures = ["targeted", "sent", "failed", "pruned"].map((name) =>
      `<div><dt>${escapeHtml(t(`alerts.figure_${name}`))}</dt><dd data-figure="${name}">${a[name]}</dd></div>`).join("");
    // Without FCM credentials (GET /meta push_notifications) "sent" means logged: say so on the card.
    const logged = state.meta.push_notifications === "logged"
      ? `<p class="hint" data-note="pushes-logged">${escapeHtml(t("alerts.pushes_logged"))}</p>` : "";
    card.innerHTML = `<strong>${escapeHtml(a.title)}</strong> <span class="badge" data-status="${a.status}">${a.status}</span>
      <dl class="figures">${figures}</dl>${a.status === "failed" && a.last_error
        ? `<p class="error" data-figure="last_error">${escapeHtml(a.last_error)}</p>` : ""}${logged}`;
    if (a.status === "sent" || a.status === "failed") return;
    await sleep(1000);
  }
}

/* ---- cluster alerts waiting for a person -------------------------------------------------------- */

// A cluster alert has reached the safety team's phones; commuters get it once a staff member has
// looked at the cluster and confirmed it here (POST /alerts/{id}/confirm).
async function loadWaitingClusters() {
  const alerts = await api("/alerts/awaiting-confirmation");
  const list = $("#clusters-waiting");
  $("#clusters-waiting-none").hidden = alerts.length > 0;
  list.replaceChildren(...alerts.map((a) => {
    const item = document.createElement("li");
    item.dataset.id = a.id;
    const when = new Date(a.created_at).toLocaleTimeString("en-GB", { timeZone: state.meta.time_zone, hour: "2-digit", minute: "2-digit" });
    item.innerHTML = `<div><strong>${escapeHtml(a.title)}</strong> <span class="badge" data-severity="${escapeHtml(a.severity)}">${escapeHtml(a.severity)}</span></div>
      <p>${escapeHtml(a.body)}</p><p class="hint">${escapeHtml(t("alerts.cluster_detected", { time: when }))}</p>
      <div class="row"><button type="button" data-action="show">${escapeHtml(t("alerts.cluster_show"))}</button>
      <button type="button" data-action="confirm">${escapeHtml(t("alerts.cluster_confirm"))}</button></div><p class="result" role="status"></p>`;
    $("[data-action=show]", item).addEventListener("click", () => showCluster(a).catch(showError));
    $("[data-action=confirm]", item).addEventListener("click", () => confirmCluster(a, item));
    return item;
  }));
}

async function showCluster(alert) {
  const [lon, lat] = alert.area.center.coordinates;
  const area = await api(`/alerts/circle?${new URLSearchParams({ lon, lat, radius_m: alert.area.radius_m })}`);
  state.map.getSource("alert-area").setData({ type: "FeatureCollection", features: [{ type: "Feature", geometry: area.outline, properties: {} }] });
  state.map.flyTo({ center: [lon, lat], zoom: 15 });
}

async function confirmCluster(alert, item) {
  const button = $("[data-action=confirm]", item);
  button.disabled = true;
  try {
    await api(`/alerts/${alert.id}/confirm`, { method: "POST" });
    $(".result", item).textContent = t("alerts.cluster_confirmed");
    watchAlert(alert.id);
  } catch (error) {
    button.disabled = false;
    $(".result", item).textContent = error instanceof ApiError ? error.detail() : error.message;
  }
}

/* ---- exports ---------------------------------------------------------------------------------- */

async function setUpExports() {
  const select = $("#export-council");
  if (state.user.role === "council") {
    const mine = state.councils.find((c) => c.code === state.user.council);
    select.innerHTML = `<option value="${state.user.council}">${escapeHtml(mine ? mine.name : state.user.council)}</option>`;
    select.disabled = true;
  } else {
    select.innerHTML = state.councils.map((c) => `<option value="${c.code}">${escapeHtml(c.name)}</option>`).join("");
  }
  const form = $("#export-form");
  const today = new Date();
  form.to.value = localDay(today);
  form.from.value = localDay(new Date(today.getTime() - 365 * 86400000));
  await loadExports();
}

async function requestExport(event) {
  event.preventDefault();
  const form = event.target;
  $("#export-error").textContent = "";
  try {
    const created = await api("/exports", { method: "POST", body: {
      kind: "lighting", council: $("#export-council").value, from: form.from.value, to: form.to.value, format: form.format.value } });
    await loadExports();
    watchExport(created.id);
  } catch (error) {
    $("#export-error").textContent = error.detail ? error.detail() : error.message;
  }
}

function exportItem(e) {
  const name = (state.councils.find((c) => c.code === e.council) || {}).name || e.council || t("exports.area");
  const item = document.createElement("li");
  item.className = "export";
  item.dataset.id = e.id;
  const status = e.status === "done" ? t("exports.places", { status: e.status, rows: e.rows }) : e.status;
  item.innerHTML = `<div><strong>${escapeHtml(name)}</strong> ${escapeHtml(t("exports.range", { from: e.from, to: e.to, format: e.format.toUpperCase() }))}</div>
    <progress max="100" value="${e.progress}" aria-label="${escapeHtml(t("exports.progress"))}">${e.progress}%</progress>
    <span class="export-status" data-status="${e.status}">${escapeHtml(status)}${e.error ? `: ${escapeHtml(e.error)}` : ""}</span>
    ${e.download_url ? `<button type="button" class="download">${escapeHtml(t("exports.download"))}</button>` : ""}`;
  const button = item.querySelector(".download");
  if (button) button.addEventListener("click", () => download(e));
  return item;
}

async function loadExports() {
  const list = $("#exports");
  const exports = await api("/exports");
  list.innerHTML = "";
  exports.forEach((e) => list.appendChild(exportItem(e)));
  exports.filter((e) => e.status === "queued" || e.status === "running").forEach((e) => watchExport(e.id));
}

const watching = new Set();
async function watchExport(id) {
  if (watching.has(id)) return;
  watching.add(id);
  try {
    for (let i = 0; i < 3600; i++) {
      const e = await api(`/exports/${id}`);
      const old = $(`#exports li[data-id="${id}"]`);
      const fresh = exportItem(e);
      if (old) old.replaceWith(fresh); else $("#exports").prepend(fresh);
      if (e.status === "done" || e.status === "failed") return;
      await sleep(1000);
    }
  } finally {
    watching.delete(id);
  }
}

async function download(e) {
  // The file needs the Authorization header, so fetch it and hand the browser a local copy.
  const response = await api(`/exports/${e.id}/download`, { raw: true });
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    $("#export-error").textContent = (body && body.message) || `HTTP ${response.status}`;
    return;
  }
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = disposition.match(/filename="?([^";]+)"?/);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = match ? match[1] : `safetravel-lighting.${e.format}`;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

/* ---- page wiring ------------------------------------------------------------------------------ */

function isStaff() {
  return STAFF.includes(state.user.role);
}

function selectTab(name) {
  $$(".tabs [role=tab]").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === name)));
  $$(".tab").forEach((t) => { t.hidden = t.id !== `tab-${name}`; });
  if (name === "triage") loadTriage().catch(showError);
  if (name === "alerts") {
    drawAlertArea();
    loadWaitingClusters().catch(showError);
  }
}

function mapClicked(lngLat) {
  const coordinates = [Number(lngLat.lng.toFixed(6)), Number(lngLat.lat.toFixed(6))];
  if (state.picking === "hub") {
    const form = $("#hub-form");
    [form.lon.value, form.lat.value] = coordinates;
    state.picking = null;
    $("#hub-message").textContent = t("hubs.place_set");
    return;
  }
  if (!$("#tab-alerts").hidden && $("#alert-form").where.value === "circle") {
    state.alertCentre = coordinates;
    drawAlertArea();
  }
}

function showError(error) {
  const message = error instanceof ApiError ? error.detail() : error.message;
  $("#who").textContent = message;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main() {
  applyStrings();
  await loadMeta();
  fillVocabulary();
  drawLegend();
  formFromUrl();
  await authenticate();
  const { role, council } = state.user;
  const roleName = t(`roles.${role}`);
  $("#sign-out").hidden = false;
  $("#sign-out").addEventListener("click", signOut);
  if (!isStaff() && role !== "council") {
    // A commuter (or any other account): no map and no tabs, but where to go instead.
    $(".layout").hidden = true;
    $("#staff-only").hidden = false;
    $("#who").textContent = t("page.staff_only_who");
    document.body.dataset.ready = "staff-only";
    return;
  }
  state.councils = await api("/councils");
  const councilName = council ? ((state.councils.find((c) => c.code === council) || {}).name || council) : null;
  $("#who").textContent = councilName ? t("page.who_council", { role: roleName, council: councilName }) : t("page.who", { role: roleName });
  $$("[data-staff]").forEach((el) => { if (!isStaff()) el.hidden = true; });
  $$(".tabs [role=tab]").forEach((b) => b.addEventListener("click", () => selectTab(b.dataset.tab)));

  await createMap();
  await fitToOwnArea();
  $("#filters").addEventListener("change", applyFilters);
  $("#filters").addEventListener("reset", () => setTimeout(applyFilters, 0));
  loadHotspots(filtersFromForm());
  await loadHubs();

  setUpTriage(); // triage.js
  $("#hub-form").addEventListener("submit", saveHub);
  $("#hub-new").addEventListener("click", newHub);
  $("#hub-close").addEventListener("click", () => closeHub().catch(showError));
  $("#hub-pick").addEventListener("click", () => { state.picking = "hub"; $("#hub-message").textContent = t("hubs.pick_prompt"); });
  $("#hours-always").addEventListener("change", () => { $("#hours-days").hidden = $("#hours-always").checked; });
  setHours("24/7");
  if (!state.stations.length) state.stations = (await (await fetch("/dashboard/data/stations.geojson")).json()).features;
  fillStationPickers();
  $("#alert-form").addEventListener("submit", sendAlert);
  $("#alert-form").addEventListener("change", (event) => {
    if (event.target.name === "line") fillStations();
    if (["where", "hub", "line", "station"].includes(event.target.name)) aimAtChosenPlace();
    else drawAlertArea();
  });
  $("#alert-form").radius_m.addEventListener("input", drawAlertArea);
  $("#export-form").addEventListener("submit", requestExport);
  await setUpExports();
  document.body.dataset.ready = "true";
}

main().catch(showError);
