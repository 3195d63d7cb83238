"""Abuse limits (Flask-Limiter, counters in Redis): per user and per client IP on report creation,
device registration and exports, answered 429 with ``Retry-After``. Limits come from settings
(``RATE_LIMIT_*``, docs/operations.md).

Redis down must never cost a report: the limiter then falls back to in-process counters and, failing
those, lets the request through (``swallow_errors``); the report still lands in PostgreSQL."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request
from flask_limiter import Limiter
from limits import parse_many

from backend.auth import current_principal
from backend.config import Settings, current_settings

log = logging.getLogger(__name__)

KEY_PREFIX = "safetravel-limits"


def client_ip() -> str:
    return request.remote_addr or "unknown"


def user_key() -> str:
    return f"user:{current_principal().uid}"


# Flask-Limiter's own headers are off: it would stamp its Retry-After on every response, a 503's too.
limiter = Limiter(key_func=client_ip, key_prefix=KEY_PREFIX, headers_enabled=False, swallow_errors=True,
                  in_memory_fallback_enabled=True, strategy="moving-window")


def init_app(app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]
    app.config.update(
        RATELIMIT_STORAGE_URI=settings.redis_url,
        RATELIMIT_STORAGE_OPTIONS={"socket_connect_timeout": settings.redis_timeout_s,
                                   "socket_timeout": settings.redis_timeout_s},
        RATELIMIT_ENABLED=settings.rate_limits_enabled,
    )
    limiter.init_app(app)

    @app.after_request
    def _retry_after(response: Response) -> Response:
        if response.status_code == 429 and limiter.current_limit is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(limiter.current_limit.reset_at - time.time())))
        return response


def limited(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The per-user and per-IP limits called ``name`` (``reports``, ``devices``, ``exports``); goes
    under ``@requires`` so that the caller is known."""

    def per_user() -> str:
        return _setting(name)

    def per_ip() -> str:
        return _setting(name, "_ip")

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        # Shared: the single report and the offline batch draw on one allowance.
        view = limiter.shared_limit(per_ip, key_func=client_ip, scope=_scope(name, "ip"),
                             error_message=f"Too many {name} requests from this address; retry after Retry-After seconds.")(view)
        return limiter.shared_limit(per_user, key_func=user_key, scope=_scope(name, "user"),
                             error_message=f"Too many {name} requests from this account; retry after Retry-After seconds.")(view)

    return decorate


def _setting(name: str, suffix: str = "") -> str:
    return getattr(current_settings(), f"rate_limit_{name}{suffix}")


def _scope(name: str, who: str) -> str:
    return f"{name}-{who}"


@dataclass(frozen=True)
class Allowance:
    granted: int  # how many of the units asked for may go ahead (they are counted)
    retry_after_s: int  # when the next unit would be allowed, if some were refused (else 0)


def take_allowance(name: str, wanted: int) -> Allowance:
    """Count ``wanted`` units (the reports of an offline batch) one by one against the limits called
    ``name``, on the very counters ``@limited(name)`` keeps: the first units that fit are granted and
    counted, the rest refused. Goes after ``@requires``. Like the decorator, it never refuses because
    Redis is unreachable (the in-process fallback counters, failing those, everything is granted)."""
    if not current_settings().rate_limits_enabled or wanted <= 0:
        return Allowance(max(wanted, 0), 0)
    counters = [(item, (KEY_PREFIX, key(), _scope(name, who)))
                for setting, key, who in ((_setting(name), user_key, "user"), (_setting(name, "_ip"), client_ip, "ip"))
                for item in parse_many(setting)]
    try:
        strategy = limiter.limiter
        windows = [strategy.get_window_stats(item, *args) for item, args in counters]
        granted = max(0, min([wanted] + [w.remaining for w in windows]))
        # A concurrent request may have taken some of what was left: then grant nothing rather than overshoot.
        if granted and not all(strategy.hit(item, *args, cost=granted) for item, args in counters):
            granted = 0
        retry_after_s = 0
        if granted < wanted:
            retry_after_s = max([1] + [math.ceil(w.reset_time - time.time()) for w in windows if w.remaining < wanted])
        return Allowance(granted, retry_after_s)
    except Exception as exc:  # noqa: BLE001 - as swallow_errors does for the decorator: a report is never lost to Redis
        log.warning("rate limits unavailable (%s): the batch is let through", type(exc).__name__)
        return Allowance(wanted, 0)
