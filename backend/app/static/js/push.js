// Push: alerts reach the phone while the app is closed, through Firebase web messaging, only when the
// server configured it (config.vapidKey: FIREBASE_VAPID_KEY and the web app's ids). The browser's
// push subscription is made on the app's own service worker, which shows the notification (sw.js).
import { call } from "./api.js";
import { firebaseApp } from "./auth.js";
import { here } from "./position.js";
import { setValue } from "./store.js";

let config = null;
export function configure(appConfig) { config = appConfig; }

export function available() {
  return Boolean(config.vapidKey && config.firebase && "Notification" in window && "PushManager" in window
    && navigator.serviceWorker);
}

export function enabled() { return available() && Notification.permission === "granted"; }

/** Ask for permission (from a tap) and register this browser for alerts near it. */
export async function enable() {
  if ((await Notification.requestPermission()) !== "granted") return false;
  await register();
  return true;
}

/** POST /devices with the FCM token and a coarse position (200 for a token already known: updated). */
export async function register() {
  const app = await firebaseApp(["firebase-messaging-compat.js"]);
  const serviceWorkerRegistration = await navigator.serviceWorker.ready;
  const token = await app.messaging().getToken({ vapidKey: config.vapidKey, serviceWorkerRegistration });
  const body = { token, platform: "web" };
  try {
    body.location = { type: "Point", coordinates: (await here()).coordinates };
  } catch { /* no position: geofenced alerts reach it once a later start sends one */ }
  const device = await call("POST", "/devices", { body });
  await setValue("device", device.id);
}

/** At start-up: keep the registration's token and position current when push is on. */
export async function refresh() {
  if (enabled()) await register().catch(() => {});
}
