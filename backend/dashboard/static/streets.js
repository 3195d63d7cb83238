/* Streets and walking routes on the dashboard (docs/dashboard.md, "Streets"): the streets known to be
   unlit in view (GET /api/v1/streets?lit=no) and, on request, the shortest and a safer walking route
   between two places (GET /api/v1/routes/safer). Uses the page's state, api() and helpers from
   dashboard.js, which is loaded first; starts once the page is ready (body[data-ready]). */
"use strict";

const STREETS_MAX_SPAN_DEG = 0.1; // the API's limit on a box of streets
const ROUTE_STYLE = { shortest: { color: "#555555", width: 3 }, safer: { color: "#1a9850", width: 5 } };

function emptyCollection() {
  return { type: "FeatureCollection", features: [] };
}

function whenPageReady(callback) {
  if (document.body.dataset.ready === "true") { callback(); return; }
  new MutationObserver((_, observer) => {
    if (document.body.dataset.ready === "true") { observer.disconnect(); callback(); }
  }).observe(document.body, { attributes: true, attributeFilter: ["data-ready"] });
}

async function showUnlitStreets() {
  const source = state.map.getSource("unlit-streets");
  const status = $("#unlit-status");
  if (!$("#unlit-toggle").checked) {
    source.setData(emptyCollection());
    status.textContent = "";
    return;
  }
  const bounds = state.map.getBounds();
  const [west, south, east, north] = [bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()];
  if (east - west > STREETS_MAX_SPAN_DEG || north - south > STREETS_MAX_SPAN_DEG) {
    source.setData(emptyCollection());
    status.textContent = t("streets.zoom_in");
    return;
  }
  const bbox = [west, south, east, north].map((v) => v.toFixed(5)).join(",");
  const streets = await api(`/streets?bbox=${bbox}&lit=no`);
  source.setData(streets);
  const count = streets.features.length;
  status.textContent = t("streets.unlit_count", { count }) + t(streets.truncated ? "streets.truncated" : "streets.full_stop");
}

function describeRoute(feature, afterDark) {
  const p = feature.properties;
  const reports = Object.entries(p.reports_nearby).map(([category, n]) => `${label(category).toLowerCase()} ${n}`);
  const parts = [
    t("streets.length", { metres: Math.round(p.length_m).toLocaleString("en-GB"), minutes: Math.round(p.walk_min) }),
    reports.length ? t("streets.reports_nearby", { reports: reports.join(", ") }) : t("streets.no_reports"),
    afterDark ? t("streets.unlit_m", { metres: Math.round(p.unlit_m) }) : t("streets.daylight"),
    t("streets.open_hubs", { count: p.open_hubs_within_200m }),
  ];
  return t("streets.route", { kind: label(p.kind), parts: parts.join("; ") });
}

async function findRoutes(event) {
  event.preventDefault();
  const form = $("#route-form");
  $("#route-error").textContent = "";
  const query = new URLSearchParams({ from: form.from.value.trim(), to: form.to.value.trim() });
  if (form.at.value) query.set("at", new Date(form.at.value).toISOString());
  let answer;
  try {
    answer = await api(`/routes/safer?${query}`);
  } catch (error) {
    $("#route-error").textContent = error instanceof ApiError ? error.detail() : error.message;
    return;
  }
  state.map.getSource("routes").setData(answer);
  const list = $("#routes");
  list.replaceChildren(...answer.features.map((feature) => {
    const item = document.createElement("li");
    item.textContent = describeRoute(feature, answer.after_dark);
    return item;
  }));
  if (answer.note) {
    const note = document.createElement("li");
    note.textContent = answer.note;
    list.append(note);
  }
  const bounds = new maplibregl.LngLatBounds();
  answer.features.forEach((f) => f.geometry.coordinates.forEach((c) => bounds.extend(c)));
  state.map.fitBounds(bounds, { padding: 40, maxZoom: 17 });
}

function setUpStreets() {
  const map = state.map;
  map.addSource("unlit-streets", { type: "geojson", data: emptyCollection(), attribution: t("map.streets_attribution") });
  map.addSource("routes", { type: "geojson", data: emptyCollection() });
  map.addLayer({ id: "unlit-streets", type: "line", source: "unlit-streets",
    paint: { "line-color": "#6a1b9a", "line-width": 3, "line-opacity": 0.85 } });
  for (const kind of ["shortest", "safer"]) {
    map.addLayer({ id: `route-${kind}`, type: "line", source: "routes", filter: ["==", ["get", "kind"], kind],
      layout: { "line-cap": "round", "line-join": "round" },
      paint: { "line-color": ROUTE_STYLE[kind].color, "line-width": ROUTE_STYLE[kind].width,
        "line-opacity": kind === "safer" ? 0.8 : 1 } });
  }
  $("#unlit-toggle").addEventListener("change", () => showUnlitStreets().catch(showError));
  map.on("moveend", () => { if ($("#unlit-toggle").checked) showUnlitStreets().catch(showError); });
  $("#route-form").addEventListener("submit", findRoutes);
  for (const end of ["from", "to"]) {
    $(`#route-pick-${end}`).addEventListener("click", () => {
      state.picking = `route-${end}`;
      $("#route-error").textContent = t(end === "from" ? "streets.pick_start" : "streets.pick_end");
    });
  }
  map.on("click", (event) => {
    if (state.picking !== "route-from" && state.picking !== "route-to") return;
    $(`#${state.picking}`).value = `${event.lngLat.lng.toFixed(6)},${event.lngLat.lat.toFixed(6)}`;
    state.picking = null;
    $("#route-error").textContent = "";
  });
  document.body.dataset.streetsReady = "true";
}

whenPageReady(setUpStreets);
