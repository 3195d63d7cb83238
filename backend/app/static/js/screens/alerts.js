// Alerts nearby: GET /alerts/nearby at the phone's position, again every minute while the screen is open.
import { call } from "../api.js";
import { el } from "../dom.js";
import { formatTime, t, word } from "../i18n.js";
import { here } from "../position.js";
import * as push from "../push.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 60000;
let meta = null;
let timer = null;

let linked = null;

export function init(appMeta) {
  meta = appMeta;
  $("push-enable").addEventListener("click", async () => {
    try {
      $("push-status").textContent = (await push.enable()) ? t("push.on") : t("push.denied");
    } catch (error) {
      $("push-status").textContent = t("push.failed", { message: error.message });
    }
    showPushButton();
  });
}

function showPushButton() { $("push-enable").hidden = !push.available() || push.enabled(); }

/** Open on one alert (a tapped notification): it is marked and focused once listed. */
export function link(alertId) { linked = alertId; }
export function setMeta(appMeta) { meta = appMeta; }

export async function show() {
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
  $("alerts-status").textContent = t("alerts.finding");
  showPushButton();
  if (push.enabled()) $("push-status").textContent = t("push.on");
  await refresh();
  const target = linked && document.getElementById(`alert-${linked}`);
  if (target) {
    target.classList.add("linked");
    target.tabIndex = -1;
    target.focus();
  }
  linked = null;
}

export function hide() { clearInterval(timer); timer = null; }

async function refresh() {
  try {
    const { coordinates } = await here();
    const alerts = await call("GET", "/alerts/nearby", { query: { lon: coordinates[0], lat: coordinates[1] } });
    $("alerts-status").textContent = alerts.length ? "" : t("alerts.none");
    $("alert-list").replaceChildren(...alerts.map((alert) => el("li", { class: `severity-${alert.severity}`, id: `alert-${alert.id}` },
      el("h3", {}, alert.title),
      el("p", {}, el("span", { class: "badge" }, word(alert.severity)), " ",
        t("alerts.until", { time: formatTime(alert.expires_at, meta.time_zone) })),
      el("p", {}, alert.body))));
  } catch (error) {
    $("alerts-status").textContent = error instanceof TypeError ? t("alerts.offline") : t("error.generic", { message: error.message });
  }
}
