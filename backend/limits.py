"""Abuse limits: per user and per client IP on report creation, device registration and exports,
answered 429 with ``Retry-After``. Limits come from settings (``RATE_LIMIT_*``, docs/operations.md).

Each limit is a moving window (the last hour's, minute's or day's requests, not a fixed calendar
window) kept in Redis as the ``limits`` library keeps it: a list of timestamps, newest first, under
``LIMITS:LIMITER/safetravel-limits/<who>/<name>-<user|ip>/<amount>/<multiples>/<period>``. All the
windows one request counts against (a report: 60 a minute and 1,000 a day for the account, 600 a
minute for the address) are checked and counted by one Lua script, in **one Redis round trip**, all
or nothing: a refused request is counted in none of them (docs/benchmarks.md, "The API's floor").

Redis down must never cost a report: the windows are then kept in this process's memory (each
process its own) and Redis is tried again after ``REDIS_RETRY_S``; the report still lands in PostgreSQL."""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import request
from flask_smorest import abort
from limits import RateLimitItem, parse_many
from redis.commands.core import Script
from redis.exceptions import RedisError

from backend.auth import current_principal
from backend.config import current_settings
from backend.extensions import redis_conn

log = logging.getLogger(__name__)

KEY_PREFIX = "safetravel-limits"
STORAGE_PREFIX = "LIMITS"  # the `limits` library's Redis storage prefix: the counters Flask-Limiter kept
REDIS_RETRY_S = 5.0  # after a Redis failure, the in-process windows serve this long before Redis is tried again
WHO = ("user", "ip")  # the order windows are checked in: the account's first (its message wins)

# KEYS: the windows (lists of timestamps, newest first). ARGV[1]: now (seconds); ARGV[2]: units wanted;
# ARGV[2i+1], ARGV[2i+2]: KEYS[i]'s limit and period in seconds. Grants the most units up to the
# wanted number that fit in every window and records them in each; returns {granted, the first window
# short of the wanted units (1-based, 0 if none), seconds until the window that frees up last among
# those short has room for one more (its oldest entry leaves)}.
_TAKE = Script(None, b"""
local now = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local limits, periods, free = {}, {}, {}
local granted, first_short = wanted, 0

local function used(key, limit, since)
  local low, high, found = 0, limit - 1, -1
  while low <= high do
    local mid = math.floor((low + high) / 2)
    local value = tonumber(redis.call('lindex', key, mid))
    if value and value >= since then found = mid; low = mid + 1 else high = mid - 1 end
  end
  return found + 1
end

for i = 1, #KEYS do
  local limit, period = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  limits[i], periods[i] = limit, period
  local since = now - period
  local room = false
  if wanted <= limit then
    local entry = redis.call('lindex', KEYS[i], limit - wanted)
    room = not (entry and tonumber(entry) >= since)
  end
  if room then free[i] = wanted else free[i] = limit - used(KEYS[i], limit, since) end
  if free[i] < wanted and first_short == 0 then first_short = i end
  if free[i] < granted then granted = free[i] end
end

local retry_after = 0
for i = 1, #KEYS do
  if free[i] < wanted then
    local wait = periods[i]
    local count = limits[i] - free[i]
    if count > 0 then wait = tonumber(redis.call('lindex', KEYS[i], count - 1)) + periods[i] - now end
    if wait > retry_after then retry_after = wait end
  end
end

if granted > 0 then
  local entries = {}
  for j = 1, granted do entries[j] = ARGV[1] end
  for i = 1, #KEYS do
    redis.call('lpush', KEYS[i], unpack(entries))
    redis.call('ltrim', KEYS[i], 0, limits[i] - 1)
    redis.call('expire', KEYS[i], periods[i])
  end
end
return {granted, first_short, tostring(retry_after)}
""")


def client_ip() -> str:
    return request.remote_addr or "unknown"


def user_key() -> str:
    return f"user:{current_principal().uid}"


@dataclass(frozen=True)
class Allowance:
    granted: int  # how many of the units asked for may go ahead (they are counted)
    retry_after_s: int  # when the next unit would be allowed, if some were refused (else 0)
    refused_by: str | None = None  # "user" or "ip": the first limit that was short, if any


@dataclass(frozen=True)
class _Window:
    who: str
    key: str
    limit: int
    period_s: int


@functools.lru_cache(maxsize=64)
def _parsed(setting: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(setting))


def _windows(name: str) -> list[_Window]:
    settings = current_settings()
    windows = []
    for who in WHO:
        identity = user_key() if who == "user" else client_ip()
        setting = getattr(settings, f"rate_limit_{name}" if who == "user" else f"rate_limit_{name}_ip")
        for item in _parsed(setting):
            key = f"{STORAGE_PREFIX}:{item.key_for(KEY_PREFIX, identity, f'{name}-{who}')}"
            windows.append(_Window(who, key, item.amount, item.get_expiry()))
    return windows


class _InProcessWindows:
    """The same moving windows in this process's memory, while Redis cannot be reached."""

    MAX_WINDOWS = 100_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[deque[float], int]] = {}

    def take(self, now: float, wanted: int, windows: list[_Window]) -> tuple[int, int, float]:
        with self._lock:
            if len(self._entries) > self.MAX_WINDOWS:
                self._entries = {k: v for k, v in self._entries.items() if v[0] and v[0][0] >= now - v[1]}
            lists = [self._entries.setdefault(w.key, (deque(maxlen=w.limit), w.period_s))[0] for w in windows]
            free = [w.limit - sum(1 for t in entries if t >= now - w.period_s) for w, entries in zip(windows, lists)]
            granted = max(0, min([wanted, *free]))
            first_short = next((i + 1 for i, f in enumerate(free) if f < wanted), 0)
            retry_after = 0.0
            for w, entries, f in zip(windows, lists, free):
                if f < wanted:
                    count = w.limit - f
                    retry_after = max(retry_after, entries[count - 1] + w.period_s - now if count > 0 else w.period_s)
            for entries in lists:
                entries.extendleft([now] * granted)
            return granted, first_short, retry_after


_in_process = _InProcessWindows()
_redis_failed: tuple[Any, float] | None = None  # (the client that failed, when)


def take_allowance(name: str, wanted: int) -> Allowance:
    """Count ``wanted`` units (a request: 1; the reports of an offline batch: their number) against the
    limits called ``name``, per user and per address, in one Redis round trip: the first units that fit
    every window are granted and counted, the rest refused. Goes after ``@requires`` (the caller is
    known). Never refuses because Redis is unreachable (the in-process windows, failing those, everything
    is granted)."""
    global _redis_failed
    if not current_settings().rate_limits_enabled or wanted <= 0:
        return Allowance(max(wanted, 0), 0)
    windows = _windows(name)
    now = time.time()
    client = redis_conn.client
    try:
        if _redis_failed is not None and _redis_failed[0] is client and now - _redis_failed[1] < REDIS_RETRY_S:
            granted, first_short, retry_after = _in_process.take(now, wanted, windows)
        else:
            try:
                args: list[Any] = [repr(now), wanted]
                for window in windows:
                    args += [window.limit, window.period_s]
                granted, first_short, retry_after = _TAKE(keys=[w.key for w in windows], args=args, client=client)
                if _redis_failed is not None:
                    log.info("rate limits: Redis answers again; counting there")
                    _redis_failed = None
            except RedisError as exc:
                log.warning("rate limits: Redis unavailable (%s); counting in this process for %.0f s",
                            type(exc).__name__, REDIS_RETRY_S)
                _redis_failed = (client, now)
                granted, first_short, retry_after = _in_process.take(now, wanted, windows)
    except Exception as exc:  # noqa: BLE001 - a report is never lost to the limits
        log.warning("rate limits unavailable (%s): the request is let through", type(exc).__name__)
        return Allowance(wanted, 0)
    granted = int(granted)
    refused_by = windows[int(first_short) - 1].who if int(first_short) and granted < wanted else None
    retry_after_s = max(1, math.ceil(float(retry_after))) if granted < wanted else 0
    return Allowance(granted, retry_after_s, refused_by)


def limited(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The per-user and per-IP limits called ``name`` (``reports``, ``devices``, ``exports``): one unit
    per request, 429 with ``Retry-After`` when it does not fit. Goes under ``@requires`` so that the
    caller is known. The single report and the offline batch draw on one allowance (``take_allowance``)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            allowance = take_allowance(name, 1)
            if not allowance.granted:
                whom = "this account" if allowance.refused_by == "user" else "this address"
                abort(429, message=f"Too many {name} requests from {whom}; retry after Retry-After seconds.",
                      headers={"Retry-After": str(allowance.retry_after_s)})
            return view(*args, **kwargs)

        return wrapper

    return decorate
