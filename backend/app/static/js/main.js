// The commuter's app: starts the screens, keeps the queue moving, and offers Quick exit everywhere.
// No screen changes the browser history, so that Quick exit (location.replace) leaves no way back.
import * as api from "./api.js";
import * as auth from "./auth.js";
import { load, preferred, t } from "./i18n.js";
import * as maps from "./map.js";
import * as push from "./push.js";
import { flush, onChange, QUEUED, REJECTED } from "./queue.js";
import * as alerts from "./screens/alerts.js";
import * as help from "./screens/help.js";
import * as mine from "./screens/mine.js";
import * as reportScreen from "./screens/report.js";
import * as settings from "./screens/settings.js";
import * as walk from "./screens/walk.js";
import { queued } from "./store.js";

const $ = (id) => document.getElementById(id);
const config = JSON.parse($("app-config").textContent);
const META_KEY = "safetravel.meta";
const ESCAPE_TWICE_MS = 1500;
const SCREENS = { home: "home-title", report: "report-title", help: "help-title", alerts: "alerts-title",
  mine: "mine-title", settings: "settings-title", walk: "walk-title" };
let current = "home";

// -- Quick exit first: it must work even if the rest fails to start --------------------------------
function quickExit() {
  document.body.replaceChildren();
  document.title = "";
  location.replace(config.neutralSite);
}
$("quick-exit").addEventListener("click", quickExit);
let lastEscape = 0;
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  if (event.timeStamp - lastEscape < ESCAPE_TWICE_MS) quickExit();
  lastEscape = event.timeStamp;
});

api.configure(config);
auth.configure(config);
maps.configure(config);
push.configure(config);

async function meta() {
  try {
    const fresh = await api.call("GET", "/meta", { auth: false });
    localStorage.setItem(META_KEY, JSON.stringify(fresh));
    return fresh;
  } catch {
    const kept = localStorage.getItem(META_KEY);
    if (kept) return JSON.parse(kept);
    throw new Error("GET /meta unavailable and never seen");
  }
}

async function lines() {
  try { return (await (await fetch("/app/data/lines.json")).json()).lines; } catch { return []; }
}

function go(screen) {
  if (current === "report" && screen !== "report") reportScreen.close();
  if (current === "alerts" && screen !== "alerts") alerts.hide();
  current = screen;
  for (const name of Object.keys(SCREENS)) $(`screen-${name}`).hidden = name !== screen;
  for (const button of document.querySelectorAll(".tabs button")) {
    const mine_ = button.dataset.goto === screen || (button.dataset.goto === "home" && ["report", "walk"].includes(screen));
    if (mine_) button.setAttribute("aria-current", "page"); else button.removeAttribute("aria-current");
  }
  $(SCREENS[screen]).focus();
  window.scrollTo(0, 0);
  if (screen === "help") help.show();
  if (screen === "alerts") alerts.show();
  if (screen === "mine") mine.show();
  if (screen === "settings") settings.show();
  if (screen === "walk") walk.show();
  if (screen === "home") showQueueStatus();
}

async function showQueueStatus() {
  const items = await queued();
  const waiting = items.filter((item) => item.state === QUEUED).length;
  const rejected = items.filter((item) => item.state === REJECTED).length;
  const parts = [];
  if (waiting) parts.push(t("queue.waiting", { count: waiting }));
  if (rejected) parts.push(t("queue.rejected", { count: rejected }));
  $("queue-status").textContent = parts.join(" ") || (document.body.dataset.sentOnce ? t("queue.all_sent") : "");
  document.body.dataset.queued = String(waiting);
  document.body.dataset.rejected = String(rejected);
}

async function send() {
  const outcome = await flush(api.apiBase(), auth.getToken);
  if (outcome.sent) document.body.dataset.sentOnce = "true";
  if (outcome.left) await askForBackgroundSync(); // the browser sends them when the network is back
  await showQueueStatus();
  if (current === "mine") await mine.show();
}

async function askForBackgroundSync() {
  try {
    const registration = await navigator.serviceWorker?.ready;
    await registration?.sync?.register("send-reports");
  } catch { /* Background Sync is a bonus: start-up and the online event send too */ }
}

async function start() {
  const [, appMeta, lineNames] = await Promise.all([load(preferred()), meta(), lines()]);
  reportScreen.init({ meta: appMeta, lines: lineNames, onSaved: async () => {
    go("home");
    $("queue-status").textContent = t("report.saved");
    await send();
  } });
  help.init(appMeta);
  walk.init();
  alerts.init(appMeta);
  mine.init(appMeta, (item) => { go("report"); reportScreen.open(item.report.category, item); });
  settings.init({
    onLanguage: () => { reportScreen.relabel(); go(current); },
    onDeleted: () => { delete document.body.dataset.sentOnce; signIn(); },
  });
  onChange(showQueueStatus);

  for (const button of document.querySelectorAll("[data-goto]")) button.addEventListener("click", () => go(button.dataset.goto));
  for (const button of document.querySelectorAll("[data-category]")) {
    button.addEventListener("click", () => { go("report"); reportScreen.open(button.dataset.category); });
    button.disabled = false;
  }
  $("report-cancel").addEventListener("click", () => go("home"));
  await showQueueStatus();
  document.body.dataset.ready = "true";
  performance.mark("safetravel-ready"); // make bench-app: ready to report

  if (navigator.serviceWorker) {
    navigator.serviceWorker.register("/app/sw.js", { scope: "/app/", type: "module" }).catch(() => {});
    navigator.serviceWorker.addEventListener("message", (event) => {
      if (event.data === "queue-changed") showQueueStatus();
      if (event.data?.type === "alert") { alerts.link(event.data.id); go("alerts"); } // a notification tapped
    });
  }
  const alertId = new URLSearchParams(location.search).get("alert");
  if (alertId) { // opened from a notification: show the alert; replaceState adds no history entry
    history.replaceState(null, "", "/app/");
    alerts.link(alertId);
    go("alerts");
  }
  window.addEventListener("online", send);
  await signIn();
  await send();
  await push.refresh();
}

async function signIn() {
  $("dev-banner").hidden = auth.mode() !== "development";
  try { await auth.getToken(); } catch { /* offline: reports wait on the phone */ }
}

start().catch((error) => {
  document.body.dataset.ready = "failed";
  $("queue-status").textContent = t("error.generic", { message: error.message });
});
