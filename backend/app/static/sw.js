// The app's service worker: keeps the app shell (page, code, catalogues, icons, the map library) so the
// app opens with no network, and sends queued reports by Background Sync. It never caches report
// content or API answers: /api/ requests go straight to the network, untouched.
import { flush } from "./static/js/queue.js";
import { getValue } from "./static/js/store.js";

const VERSION = "safetravel-app-v1";
const SHELL = [
  "/app/",
  "/app/manifest.webmanifest",
  "/app/data/lines.json",
  "/app/data/stations.json",
  "/app/static/app.css",
  "/app/static/icons/icon.svg",
  "/app/static/icons/icon-192.png",
  "/app/static/icons/icon-512.png",
  "/app/static/js/main.js",
  "/app/static/js/api.js",
  "/app/static/js/auth.js",
  "/app/static/js/dom.js",
  "/app/static/js/i18n.js",
  "/app/static/js/map.js",
  "/app/static/js/position.js",
  "/app/static/js/push.js",
  "/app/static/js/queue.js",
  "/app/static/js/store.js",
  "/app/static/js/catalogues/en.js",
  "/app/static/js/catalogues/cy.js",
  "/app/static/js/catalogues/pl.js",
  "/app/static/js/screens/alerts.js",
  "/app/static/js/screens/help.js",
  "/app/static/js/screens/mine.js",
  "/app/static/js/screens/report.js",
  "/app/static/js/screens/settings.js",
  "/app/static/js/screens/walk.js",
  "/app/static/vendor/idb/idb.js",
];
// Not the app's own shell, but what it needs to draw maps offline (kept once fetched, too).
const MAP = [
  "/dashboard/static/vendor/maplibre-gl/maplibre-gl-csp.js",
  "/dashboard/static/vendor/maplibre-gl/maplibre-gl-csp-worker.js",
  "/dashboard/static/vendor/maplibre-gl/maplibre-gl.css",
];
const KEPT_WHEN_FETCHED = ["/dashboard/data/underground.geojson", "/dashboard/static/vendor/firebase/"];
const ICON = "/app/static/icons/icon-192.png";

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(VERSION);
    await cache.addAll(SHELL);
    await cache.addAll(MAP).catch(() => {}); // the app works without maps
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== VERSION) await caches.delete(name);
    await self.clients.claim();
  })());
});

function isShell(url) {
  return url.origin === self.location.origin && (SHELL.includes(url.pathname) || MAP.includes(url.pathname)
    || KEPT_WHEN_FETCHED.some((prefix) => url.pathname.startsWith(prefix)));
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || !isShell(url)) return; // the API and everything else: the network's
  event.respondWith((async () => {
    const cache = await caches.open(VERSION);
    const cached = await cache.match(url.pathname);
    // The page is revalidated in the background so that a deployment shows on the next start.
    const refresh = fetch(event.request).then((answer) => {
      if (answer.ok) cache.put(url.pathname, answer.clone());
      return answer;
    });
    if (cached) { event.waitUntil(refresh.catch(() => {})); return cached; }
    return refresh;
  })());
});

self.addEventListener("sync", (event) => {
  if (event.tag !== "send-reports") return;
  event.waitUntil((async () => {
    const outcome = await flush("/api/v1", async () => {
      const stored = await getValue("token");
      if (!stored || stored.expires_at < Date.now() + 60000) throw new Error("no fresh token: the page will send");
      return stored.token;
    });
    if (outcome.sent || outcome.rejected) {
      for (const client of await self.clients.matchAll()) client.postMessage("queue-changed");
    }
    if (outcome.left) throw new Error("some reports are still waiting"); // the browser tries again later
  })());
});

// Push (Firebase web messaging delivers to this worker's subscription): an alert's title and body only,
// tagged with its id so that a repeated push replaces the first (docs/api.md, "Alerts").
self.addEventListener("push", (event) => {
  let payload = {};
  try { payload = event.data ? event.data.json() : {}; } catch { return; }
  const data = payload.data || {};
  const notification = payload.notification || {};
  const title = notification.title || data.title;
  if (!title) return;
  const tag = data.alert_id || notification.tag;
  event.waitUntil(self.registration.showNotification(title, {
    body: notification.body || data.body || "", tag, icon: ICON, data: { alert_id: data.alert_id || null },
  }));
});

// A tapped notification opens the alert in the app (focusing it if it is open).
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const id = event.notification.data && event.notification.data.alert_id;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window" });
    const open = windows.find((client) => new URL(client.url).pathname.startsWith("/app/"));
    if (open) {
      await open.focus();
      if (id) open.postMessage({ type: "alert", id });
      return;
    }
    await self.clients.openWindow(id ? `/app/?alert=${encodeURIComponent(id)}` : "/app/");
  })());
});
