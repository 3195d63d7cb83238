// Reports leave the phone only through POST /reports/batch, each with its client_id: sending the same
// item again (a lost answer, a second tab, Background Sync) can never store it twice. An item is
// written to IndexedDB before any network call; it leaves storage only when the server accepted it.
import { markSent, putQueued, queued } from "./store.js";

export const QUEUED = "queued";
export const REJECTED = "rejected";
const BATCH_MAX = 100; // the batch endpoint's limit (docs/api.md, "Offline batches")
const listeners = new Set();
let running = null;

export function onChange(listener) { listeners.add(listener); }
function changed() { for (const listener of listeners) listener(); }

export function newClientId() { return crypto.randomUUID(); }

/** Keep a report on the phone; the caller flushes afterwards. */
export async function enqueue(report, clientId = newClientId()) {
  await putQueued({ client_id: clientId, report, state: QUEUED, errors: null, saved_at: new Date().toISOString() });
  changed();
  return clientId;
}

/**
 * Send every queued item (not those the server rejected, which wait to be fixed or discarded).
 * getToken() gives a bearer token or throws when none can be had (offline, signed out).
 * Answers {sent, rejected, left} counts; network failures leave everything queued.
 */
export function flush(apiBase, getToken) {
  running ||= send(apiBase, getToken).finally(() => { running = null; });
  return running;
}

async function send(apiBase, getToken) {
  const outcome = { sent: 0, rejected: 0, left: 0 };
  const items = (await queued()).filter((item) => item.state === QUEUED);
  for (let start = 0; start < items.length; start += BATCH_MAX) {
    const chunk = items.slice(start, start + BATCH_MAX);
    let answer;
    try {
      answer = await post(apiBase, await getToken(), chunk);
      if (answer.status === 401) answer = await post(apiBase, await getToken(true), chunk);
    } catch {
      outcome.left += items.length - start;
      break;
    }
    if (answer.status !== 200) { outcome.left += items.length - start; break; } // 429, 503...: later
    const body = await answer.json();
    for (const result of body.results) {
      const item = chunk[result.index];
      if (result.status === 201) {
        await markSent(item.client_id, result.report.id);
        outcome.sent += 1;
      } else {
        await putQueued({ ...item, state: REJECTED, errors: result.errors || { _schema: [`HTTP ${result.status}`] } });
        outcome.rejected += 1;
      }
    }
  }
  if (outcome.sent || outcome.rejected) changed();
  return outcome;
}

function post(apiBase, token, chunk) {
  return fetch(`${apiBase}/reports/batch`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ reports: chunk.map((item) => ({ ...item.report, client_id: item.client_id })) }),
  });
}
