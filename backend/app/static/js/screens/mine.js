// My reports: those still on the phone (waiting, or not accepted with the server's reasons, to fix or
// discard) and those sent (GET /me/reports with their triage status; offline, the ids the phone kept).
import { call } from "../api.js";
import { el } from "../dom.js";
import { formatDateTime, t, word } from "../i18n.js";
import { REJECTED } from "../queue.js";
import { queued, removeQueued, sentIds } from "../store.js";

const $ = (id) => document.getElementById(id);
let meta = null;
let onFix = null;

export function init(appMeta, fix) { meta = appMeta; onFix = fix; }
export function setMeta(appMeta) { meta = appMeta; }

export async function show() {
  await showQueue();
  $("mine-status").textContent = t("mine.loading");
  try {
    const page = await call("GET", "/me/reports", { query: { limit: 50 } });
    $("mine-status").textContent = page.items.length ? "" : t("mine.none");
    $("mine-list").replaceChildren(...page.items.map(sentCard));
  } catch {
    const ids = await sentIds();
    $("mine-status").textContent = ids.length ? t("mine.offline") : t("mine.none");
    $("mine-list").replaceChildren(...ids.map((item) => el("li", {},
      el("span", { class: "badge sent" }, t("state.sent")), " ", t("mine.reference", { id: item.id.slice(0, 8) }))));
  }
}

export async function showQueue() {
  const items = await queued();
  $("queue-empty").hidden = items.length > 0;
  $("queue-list").replaceChildren(...items.map(queuedCard));
}

function sentCard(report) {
  return el("li", { "data-report-id": report.id },
    el("h3", {}, word(report.category), report.subcategory ? ` · ${word(report.subcategory)}` : ""),
    el("p", {}, formatDateTime(report.occurred_at, meta.time_zone)),
    el("p", {}, el("span", { class: "badge sent" }, t("state.sent")), " ", t("mine.status", { status: word(report.status) })),
    report.status_note ? el("p", {}, report.status_note) : null);
}

function queuedCard(item) {
  const rejected = item.state === REJECTED;
  const card = el("li", { "data-client-id": item.client_id, class: rejected ? "rejected" : "queued" },
    el("h3", {}, word(item.report.category)),
    el("p", {}, formatDateTime(item.report.occurred_at, meta.time_zone)),
    el("p", {}, el("span", { class: `badge ${rejected ? "error" : "queued"}` }, t(rejected ? "state.rejected" : "state.queued"))));
  if (rejected) {
    const reasons = Object.entries(item.errors || {}).map(([field, messages]) =>
      el("li", {}, `${t(`field.${field}`)}: ${[].concat(messages).map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join("; ")}`));
    const fix = el("button", { type: "button", class: "secondary" }, t("mine.fix"));
    const discard = el("button", { type: "button", class: "secondary" }, t("mine.discard"));
    fix.addEventListener("click", () => onFix(item));
    discard.addEventListener("click", async () => { await removeQueued(item.client_id); await showQueue(); });
    card.append(el("ul", { class: "error", role: "list" }, ...reasons), el("p", { class: "row" }, fix, discard));
  }
  return card;
}
