"""Abuse limits (Flask-Limiter, counters in Redis): per user and per client IP on report creation,
device registration and exports, answered 429 with ``Retry-After``. Limits come from settings
(``RATE_LIMIT_*``, docs/operations.md).

Redis down must never cost a report: the limiter then falls back to in-process counters and, failing
those, lets the request through (``swallow_errors``); the report still lands in PostgreSQL."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from flask_limiter import Limiter

from backend.auth import current_principal
from backend.config import Settings, current_settings


def client_ip() -> str:
    return request.remote_addr or "unknown"


def user_key() -> str:
    return f"user:{current_principal().uid}"


# Flask-Limiter's own headers are off: it would stamp its Retry-After on every response, a 503's too.
limiter = Limiter(key_func=client_ip, key_prefix="safetravel-limits", headers_enabled=False, swallow_errors=True,
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
        return getattr(current_settings(), f"rate_limit_{name}")

    def per_ip() -> str:
        return getattr(current_settings(), f"rate_limit_{name}_ip")

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        # Shared: the single report and the offline batch draw on one allowance.
        view = limiter.shared_limit(per_ip, key_func=client_ip, scope=f"{name}-ip",
                             error_message=f"Too many {name} requests from this address; retry after Retry-After seconds.")(view)
        return limiter.shared_limit(per_user, key_func=user_key, scope=f"{name}-user",
                             error_message=f"Too many {name} requests from this account; retry after Retry-After seconds.")(view)

    return decorate
