// The public API with the signed-in user's token. Throws ApiError for 4xx/5xx, TypeError when offline.
import { getToken } from "./auth.js";

let base = "/api/v1";
export function configure(appConfig) { base = appConfig.api; }
export function apiBase() { return base; }

export class ApiError extends Error {
  constructor(status, body) { super(body?.message || `HTTP ${status}`); this.status = status; this.body = body; }
}

export async function call(method, path, { query, body, auth = true } = {}) {
  const url = new URL(`${base}${path}`, location.origin);
  for (const [key, value] of Object.entries(query || {})) url.searchParams.set(key, value);
  const send = async (force) => fetch(url, {
    method,
    headers: { ...(body ? { "Content-Type": "application/json" } : {}),
      ...(auth ? { Authorization: `Bearer ${await getToken(force)}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  let answer = await send(false);
  if (answer.status === 401 && auth) answer = await send(true);
  const text = await answer.text();
  const json = text ? JSON.parse(text) : null;
  if (!answer.ok) throw new ApiError(answer.status, json);
  return json;
}
