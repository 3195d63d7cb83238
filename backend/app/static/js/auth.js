// Sign-in: Firebase anonymous sign-in in production (the web SDK vendored for the dashboard, configured
// by the server's environment); in development an unsigned emulator token from /app/dev-sign-in for an
// anonymous uid the phone keeps. The current token is kept in IndexedDB for the service worker.
import { getValue, setValue } from "./store.js";

const EARLY_S = 60; // refresh a minute before expiry
const FIREBASE = "/dashboard/static/vendor/firebase/";
let config = null;
let firebaseUser = null;

export function configure(appConfig) { config = appConfig; }
export function mode() { return config.firebase ? "firebase" : config.devSignIn ? "development" : "none"; }

export async function getToken(force = false) {
  const stored = await getValue("token");
  if (!force && stored && stored.expires_at > Date.now() + EARLY_S * 1000) return stored.token;
  const fresh = config.firebase ? await firebaseToken(force) : config.devSignIn ? await devToken() : null;
  if (!fresh) throw new Error("no sign-in available");
  await setValue("token", fresh);
  return fresh.token;
}

export function expiryOf(token) {
  const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  return payload.exp * 1000;
}

async function devToken() {
  const uid = await getValue("uid");
  const answer = await fetch("/app/dev-sign-in", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(uid ? { uid } : {}),
  });
  if (!answer.ok) throw new Error(`sign-in answered ${answer.status}`);
  const body = await answer.json();
  await setValue("uid", body.uid);
  return { token: body.token, expires_at: expiryOf(body.token) };
}

async function firebaseToken(force) {
  if (!firebaseUser) {
    const auth = (await firebaseApp(["firebase-auth-compat.js"])).auth();
    firebaseUser = await new Promise((resolve) => { const stop = auth.onAuthStateChanged((u) => { stop(); resolve(u); }); });
    firebaseUser ||= (await auth.signInAnonymously()).user;
  }
  const token = await firebaseUser.getIdToken(force);
  return { token, expires_at: expiryOf(token) };
}

export async function forget() {
  if (firebaseUser) { await firebaseUser.delete().catch(() => {}); firebaseUser = null; }
}

/** The Firebase app (the dashboard's vendored compat SDK), with the extra SDK files named loaded. */
export async function firebaseApp(parts = []) {
  for (const part of ["firebase-app-compat.js", ...parts]) await loadScript(`${FIREBASE}${part}`);
  return window.firebase.apps.length ? window.firebase.app() : window.firebase.initializeApp(config.firebase);
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    if (document.querySelector(`script[src="${src}"]`)) { resolve(); return; }
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}
