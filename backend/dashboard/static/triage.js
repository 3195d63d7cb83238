/* Triage on the dashboard (docs/dashboard.md, "Triage"): staff page through the reports (GET
   /api/v1/reports, newest first, with its cursor), filtered by category, status, mode, dates and the
   map's view; each card has the report's facts, shows it on the map, and sets its status with a note
   for the reporter (PATCH /api/v1/reports/{id}), by mouse or by keys. Uses the page's state, api() and
   helpers from dashboard.js, which is loaded first; dashboard.js calls setUpTriage() once the map is
   there, and loadTriage() when the tab is chosen. */
"use strict";

const TRIAGE_PAGE_SIZE = 50;
const TRIAGE_URL_PREFIX = "triage_"; // the address bar's triage filters: triage_category=spiking, ...
const TRIAGE_FILTERS = ["category", "status", "mode", "from", "to", "view"];
const TRIAGE_MARK = "#7b2cbf";

const triage = { cursors: [null], page: 0, reports: [], current: -1, request: 0, ready: false };

/* ---- filters and the address bar -------------------------------------------------------------- */

function triageForm() {
  return $("#triage-filters");
}

function triageFiltersFromForm() {
  const form = triageForm();
  const chosen = {};
  for (const name of ["category", "status", "mode", "from", "to"]) if (form[name].value) chosen[name] = form[name].value;
  if (form.view.checked) chosen.view = "1";
  return chosen;
}

function triageFormFromUrl() {
  const params = new URLSearchParams(location.search);
  const form = triageForm();
  for (const name of ["category", "status", "mode", "from", "to"]) form[name].value = params.get(TRIAGE_URL_PREFIX + name) || "";
  form.view.checked = params.get(TRIAGE_URL_PREFIX + "view") === "1";
  return TRIAGE_FILTERS.some((name) => params.has(TRIAGE_URL_PREFIX + name));
}

// Only the triage_ parameters are the tab's: the Filters tab's stay as they are.
function triageFiltersToUrl(chosen) {
  const url = new URL(location.href);
  TRIAGE_FILTERS.forEach((name) => url.searchParams.delete(TRIAGE_URL_PREFIX + name));
  Object.entries(chosen).forEach(([name, value]) => url.searchParams.set(TRIAGE_URL_PREFIX + name, value));
  history.replaceState(null, "", url);
}

function viewBbox() {
  const bounds = state.map.getBounds();
  return [bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()].map((v) => v.toFixed(5)).join(",");
}

function triageQuery(chosen, cursor) {
  const query = new URLSearchParams({ limit: TRIAGE_PAGE_SIZE });
  for (const name of ["category", "status", "mode"]) if (chosen[name]) query.set(name, chosen[name]);
  // The page's From and To are local days, both included, as GET /reports takes them (docs/api.md).
  if (chosen.from) query.set("from", chosen.from);
  if (chosen.to) query.set("to", chosen.to);
  if (chosen.view) query.set("bbox", viewBbox());
  if (cursor) query.set("cursor", cursor);
  return query;
}

function triageFiltersValid(chosen) {
  let message = "";
  if (chosen.from && chosen.to && chosen.from > chosen.to) message = t("triage.from_after_to");
  $("#triage-filters-error").textContent = message;
  return !message;
}

/* ---- the list --------------------------------------------------------------------------------- */

// A new filter starts again from the newest report.
function triageFiltersChanged() {
  triage.cursors = [null];
  triage.page = 0;
  loadTriage().catch(showError);
}

async function loadTriage() {
  if (!triage.ready) return;
  const chosen = triageFiltersFromForm();
  if (!triageFiltersValid(chosen)) return;
  triageFiltersToUrl(chosen);
  const request = ++triage.request;
  let data;
  try {
    data = await api(`/reports?${triageQuery(chosen, triage.cursors[triage.page])}`);
  } catch (error) {
    if (request !== triage.request) return;
    $("#triage-filters-error").textContent = error instanceof ApiError ? error.detail() : error.message;
    return;
  }
  if (request !== triage.request) return; // a later filter's answer wins
  triage.cursors.length = triage.page + 1;
  if (data.next_cursor) triage.cursors.push(data.next_cursor);
  triage.reports = data.items;
  triage.current = -1;
  const list = $("#triage");
  list.replaceChildren(...data.items.map(triageCard));
  if (!data.items.length) {
    const none = document.createElement("li");
    none.className = "hint";
    none.textContent = t("triage.none");
    list.append(none);
  }
  const first = triage.page * TRIAGE_PAGE_SIZE + 1;
  $("#triage-range").textContent = data.items.length
    ? t(data.next_cursor ? "triage.range_more" : "triage.range", { first, last: first + data.items.length - 1 })
    : "";
  $("#triage-newer").disabled = triage.page === 0;
  $("#triage-older").disabled = !data.next_cursor;
}

function turnTriagePage(step) {
  const page = triage.page + step;
  if (page < 0 || page >= triage.cursors.length) return;
  triage.page = page;
  loadTriage().then(() => $("#triage-range").scrollIntoView({ block: "nearest" })).catch(showError);
}

function fact(term, value) {
  return value ? `<div><dt>${escapeHtml(term)}</dt><dd>${escapeHtml(value)}</dd></div>` : "";
}

function triageCard(report, index) {
  const item = document.createElement("li");
  item.className = "report triage-card";
  item.dataset.id = report.id;
  item.tabIndex = -1;
  const when = new Date(report.occurred_at).toLocaleString("en-GB", { timeZone: state.meta.time_zone, dateStyle: "medium", timeStyle: "short" });
  const transport = report.transport || {};
  const headingId = `triage-card-${index}`;
  item.setAttribute("aria-labelledby", headingId);
  item.innerHTML = `<div class="triage-head"><strong id="${headingId}">${escapeHtml(label(report.category))}${report.subcategory
      ? ` · ${escapeHtml(label(report.subcategory).toLowerCase())}` : ""}</strong>
      <span class="badge" data-status="${escapeHtml(report.status)}">${escapeHtml(report.status)}</span>
      <small>${escapeHtml(when)}</small></div>
    <dl class="triage-facts">${fact(t("triage.mode"), transport.mode && label(transport.mode))}${fact(t("triage.line"), transport.line)}${
      fact(t("triage.station"), transport.station)}${fact(t("triage.factors"), (report.factors || []).map((f) => label(f).toLowerCase()).join(", "))}${
      fact(t("triage.route"), report.route && t("triage.route_points", { count: report.route.coordinates.length }))}</dl>
    <p class="description">${escapeHtml(report.description || t("triage.no_description"))}</p>
    <p class="triage-told">${escapeHtml(report.public_note ? t("triage.told", { note: report.public_note }) : t("triage.told_nothing"))}</p>
    <form class="triage-change">
      <label for="triage-status-${index}">${escapeHtml(t("triage.status"))}</label> <select class="status" name="status"
        id="triage-status-${index}">${options(state.meta.vocabulary.statuses, { labelled: false, selected: report.status })}</select>
      <label><span>${escapeHtml(t("triage.public_note"))}</span> <input name="public_note" maxlength="1000"
        value="${escapeHtml(report.public_note || "")}"></label>
      <div class="row"><button type="submit">${escapeHtml(t("triage.save"))}</button>
        <button type="button" class="locate">${escapeHtml(t("triage.show_on_map"))}</button></div>
      <p class="saved" role="status"></p>
    </form>`;
  const form = $(".triage-change", item);
  form.status.addEventListener("change", () => saveTriage(report, item));
  form.addEventListener("submit", (event) => { event.preventDefault(); saveTriage(report, item); });
  $(".locate", item).addEventListener("click", () => selectTriageCard(index));
  // A click on the card itself (not on its controls) shows the report on the map too.
  item.addEventListener("click", (event) => { if (!event.target.closest("input, select, button, label")) selectTriageCard(index); });
  return item;
}

async function saveTriage(report, item) {
  const form = $(".triage-change", item);
  const saved = $(".saved", item);
  const body = { status: form.status.value };
  const note = form.public_note.value.trim();
  if (note) body.public_note = note;
  saved.textContent = "";
  try {
    const updated = await api(`/reports/${report.id}`, { method: "PATCH", body });
    Object.assign(report, updated);
    $(".badge", item).textContent = updated.status;
    $(".badge", item).dataset.status = updated.status;
    $(".triage-told", item).textContent = updated.public_note ? t("triage.told", { note: updated.public_note }) : t("triage.told_nothing");
    saved.textContent = t("triage.saved", { status: updated.status });
  } catch (error) {
    saved.textContent = error instanceof ApiError ? error.detail() : error.message;
  }
}

/* ---- the report on the map -------------------------------------------------------------------- */

function addTriageLayers(map) {
  map.addSource("triage-report", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  map.addLayer({ id: "triage-report-route", type: "line", source: "triage-report", filter: ["==", ["geometry-type"], "LineString"],
    paint: { "line-color": TRIAGE_MARK, "line-width": 5, "line-opacity": 0.85 } });
  map.addLayer({ id: "triage-report-point", type: "circle", source: "triage-report", filter: ["==", ["geometry-type"], "Point"],
    paint: { "circle-radius": 8, "circle-color": TRIAGE_MARK, "circle-stroke-color": "#fff", "circle-stroke-width": 2 } });
}

function showTriageReport(report) {
  const features = [{ type: "Feature", geometry: report.location, properties: { id: report.id } }];
  if (report.route) features.unshift({ type: "Feature", geometry: report.route, properties: { id: report.id } });
  state.map.getSource("triage-report").setData({ type: "FeatureCollection", features });
  if (report.route) {
    const bounds = new maplibregl.LngLatBounds();
    report.route.coordinates.forEach((c) => bounds.extend(c));
    bounds.extend(report.location.coordinates);
    state.map.fitBounds(bounds, { padding: 60, maxZoom: 17 });
  } else {
    state.map.flyTo({ center: report.location.coordinates, zoom: 16 });
  }
}

function selectTriageCard(index) {
  const cards = $$("#triage .triage-card");
  if (!cards.length) return;
  triage.current = Math.max(0, Math.min(index, cards.length - 1));
  cards.forEach((card, i) => card.toggleAttribute("aria-current", i === triage.current));
  const card = cards[triage.current];
  if (!card.contains(document.activeElement)) card.focus();
  card.scrollIntoView({ block: "nearest" });
  showTriageReport(triage.reports[triage.current]);
}

/* ---- keys ------------------------------------------------------------------------------------- */

// j / k: the next or previous card; Enter: show it on the map; 1-5: set its status; n: its note.
// Never while typing in a field, nor with a modifier held (the browser's own shortcuts).
function triageKey(event) {
  if ($("#tab-triage").hidden || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest("input, select, textarea, [contenteditable]") || $("dialog[open]")) return;
  const cards = $$("#triage .triage-card");
  const focused = cards.findIndex((card) => card.contains(event.target));
  const current = focused >= 0 ? focused : triage.current;
  const statuses = state.meta.vocabulary.statuses;
  if (event.key === "j" || event.key === "k") {
    selectTriageCard(current < 0 ? 0 : current + (event.key === "j" ? 1 : -1));
  } else if (event.key === "Enter" && current >= 0 && event.target === cards[current]) {
    selectTriageCard(current);
  } else if (/^[1-9]$/.test(event.key) && Number(event.key) <= statuses.length && current >= 0) {
    const form = $(".triage-change", cards[current]);
    form.status.value = statuses[Number(event.key) - 1];
    saveTriage(triage.reports[current], cards[current]);
  } else if (event.key === "n" && current >= 0) {
    $(".triage-change", cards[current]).public_note.focus();
  } else {
    return;
  }
  event.preventDefault();
}

/* ---- start ------------------------------------------------------------------------------------ */

function setUpTriage() {
  const form = triageForm();
  const { vocabulary } = state.meta;
  const all = `<option value="">${escapeHtml(t("triage.all"))}</option>`;
  form.category.innerHTML = all + options(vocabulary.categories.map((c) => c.name));
  form.status.innerHTML = all + options(vocabulary.statuses, { labelled: false });
  form.mode.innerHTML = all + options(vocabulary.modes);
  $("#triage-keys").textContent = t("triage.keys", {
    last: vocabulary.statuses.length, statuses: vocabulary.statuses.map((s, i) => `${i + 1} ${s}`).join(", ") });
  if (!isStaff()) return;
  addTriageLayers(state.map);
  const fromUrl = triageFormFromUrl();
  form.addEventListener("change", triageFiltersChanged);
  form.addEventListener("submit", (event) => { event.preventDefault(); triageFiltersChanged(); });
  $("#triage-newer").addEventListener("click", () => turnTriagePage(-1));
  $("#triage-older").addEventListener("click", () => turnTriagePage(1));
  document.addEventListener("keydown", triageKey);
  // "In the map's view" follows the person's own panning and zooming (events with an originalEvent),
  // not the page's flights to a report, which would reload the list under them.
  state.map.on("moveend", (event) => {
    if (event.originalEvent && form.view.checked && !$("#tab-triage").hidden) triageFiltersChanged();
  });
  triage.ready = true;
  if (fromUrl) selectTab("triage"); // a shared link to a triage list opens on it
}
