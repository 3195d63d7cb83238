"""Logs: one JSON object a line in production (LOG_FORMAT=json), text in development; every line
carries the ``request_id`` of the request it serves, and a report's jobs log under the id of the
request that created it (the outbox keeps it, ``backend/outbox/service.py``).

A request's id is its ``X-Request-Id`` header when the caller (a load balancer, the app) sends a sane
one, a fresh one otherwise; the answer carries it back in ``X-Request-Id``."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from flask import Flask, Response, request
from pythonjsonlogger.json import JsonFormatter

from backend.config import Settings

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"


def current_request_id() -> str | None:
    return request_id_var.get()


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


def configure(settings: Settings) -> None:
    """Set up the root logger once per process (the API, a worker, the CLI)."""
    root = logging.getLogger()
    if any(getattr(h, "safetravel", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.safetravel = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level",
                                                                        "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def init_app(app: Flask) -> None:
    @app.before_request
    def _request_id() -> None:
        given = request.headers.get("X-Request-Id", "")
        request_id_var.set(given if SANE_ID.match(given) else uuid.uuid4().hex)

    @app.after_request
    def _echo(response: Response) -> Response:
        request_id = request_id_var.get()
        if request_id:
            response.headers["X-Request-Id"] = request_id
        return response

    @app.teardown_request
    def _forget(_exc: BaseException | None) -> None:
        request_id_var.set(None)
