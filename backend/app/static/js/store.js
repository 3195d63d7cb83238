// The phone's own storage (IndexedDB through idb), shared by the page and the service worker.
// "queue": reports not yet accepted, keyed by client_id; "sent": ids of reports the server stored
// (nothing else of them); "kv": the sign-in token, so the service worker can send in the background.
import { openDB } from "../vendor/idb/idb.js";

const DB_NAME = "safetravel";
let dbPromise = null;

export function db() {
  dbPromise ||= openDB(DB_NAME, 1, {
    upgrade(database) {
      database.createObjectStore("queue", { keyPath: "client_id" });
      database.createObjectStore("sent", { keyPath: "client_id" });
      database.createObjectStore("kv");
    },
  });
  return dbPromise;
}

export async function getValue(key) { return (await db()).get("kv", key); }
export async function setValue(key, value) { return (await db()).put("kv", value, key); }

export async function queued() {
  const items = await (await db()).getAll("queue");
  return items.sort((a, b) => a.saved_at.localeCompare(b.saved_at));
}

export async function putQueued(item) { return (await db()).put("queue", item); }
export async function removeQueued(clientId) { return (await db()).delete("queue", clientId); }

export async function sentIds() { return (await db()).getAll("sent"); }

/** Move an accepted report out of the queue, keeping only its ids, in one transaction. */
export async function markSent(clientId, reportId) {
  const tx = (await db()).transaction(["queue", "sent"], "readwrite");
  await Promise.all([tx.objectStore("queue").delete(clientId),
    tx.objectStore("sent").put({ client_id: clientId, id: reportId }), tx.done]);
}

export async function clearAll() {
  const tx = (await db()).transaction(["queue", "sent", "kv"], "readwrite");
  await Promise.all([tx.objectStore("queue").clear(), tx.objectStore("sent").clear(), tx.objectStore("kv").clear(), tx.done]);
}
