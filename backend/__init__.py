"""SafeTravel's Flask application: ``create_app()`` wires configuration, extensions and domains."""

from __future__ import annotations

import importlib
import importlib.util
import logging

from flask import Flask, request
from flask_smorest import abort
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import InternalServerError, ServiceUnavailable
from werkzeug.middleware.proxy_fix import ProxyFix

from backend import auth, logs, metrics, security, transient
from backend.config import Settings
from backend.extensions import db, redis_conn
from backend.http import Api
from backend.outbox import registry as outbox_registry

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"
RETRY_AFTER_S = "5"
MAX_QUERY_BYTES = 4096
MAX_HEADER_BYTES = 8192
# The domains (backend/<name>/), in the order their HTTP APIs are documented and their event handlers
# registered: an event's outbox tasks are written, and so first run, in this order.
DOMAINS = ("health", "meta", "reports", "users", "councils", "heatmap", "hubs", "devices", "alerts", "exports",
           "webhooks", "open311", "streets", "routes", "audit", "dashboard", "app", "demo")


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.json.sort_keys = False  # answer fields in the schema's order, as documented
    app.config.update(
        SETTINGS=settings,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="SafeTravel API",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        # The docs page (/api/docs) is backend/apidocs: Swagger UI without an inline script.
        API_SPEC_OPTIONS={
            "info": {"description": "The SafeTravel backend: reports, heatmaps, safe hubs, alerts, exports."},
            "servers": [{"url": "/"}],
        },
    )
    logs.configure(settings)

    db.init_app(app)
    redis_conn.init_app(app)
    auth.init_app(app)
    logs.init_app(app)
    metrics.init_app(app)
    security.init_app(app)
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops)  # type: ignore[method-assign]

    outbox_registry.load(DOMAINS)  # every domain's handlers, checked against the events they handle
    api = Api(app)
    api.spec.components.security_scheme("firebase", auth.SECURITY_SCHEME)
    _register_blueprints(api)
    from backend.apidocs import bp as api_docs
    from backend.dashboard.views import bp as dashboard

    app.register_blueprint(dashboard)  # HTML pages, not part of the API document
    app.register_blueprint(api_docs)
    from backend.app.views import bp as commuter_app

    app.register_blueprint(commuter_app)  # the commuter's web app, a client of the API like any other
    from backend.landing.views import bp as landing

    app.register_blueprint(landing)  # / : where the app, the dashboard and the API reference are
    _register_request_hooks(app, api)
    _register_cli(app)

    return app


def _register_blueprints(api: Api) -> None:
    """Each domain's HTTP API (``backend/<domain>/api.py``, a ``blp``), in the order of DOMAINS."""
    for domain in DOMAINS:
        if importlib.util.find_spec(f"backend.{domain}.api") is not None:
            api.register_blueprint(importlib.import_module(f"backend.{domain}.api").blp)


def _register_request_hooks(app: Flask, api: Api) -> None:
    settings: Settings = app.config["SETTINGS"]

    @app.before_request
    def _query_limit() -> None:
        # Longer query strings are abuse, not filters; refused here as JSON (gunicorn refuses request
        # lines past its own limit, 8 KiB, before the app sees them).
        if len(request.query_string) > MAX_QUERY_BYTES:
            abort(414, message=f"The query string is too long: at most {MAX_QUERY_BYTES:,} bytes.")

    @app.before_request
    def _header_limit() -> None:
        # gunicorn lets header fields up to 64 KiB through (deploy/gunicorn.conf.py) so that this
        # answer, not its HTML page, is what a client sending an oversized one (a token) gets.
        for name, value in request.headers.items():
            if len(value) > MAX_HEADER_BYTES:
                abort(431, message=f"The {name} header is too long: at most {MAX_HEADER_BYTES:,} bytes.",
                      errors={name: [f"at most {MAX_HEADER_BYTES:,} bytes"]})

    @app.before_request
    def _body_limit() -> None:
        # A view class may allow a larger body than the default (the offline batch does), naming
        # the setting that says how much larger.
        view = app.view_functions.get(request.endpoint or "")
        setting = getattr(getattr(view, "view_class", None), "max_body_setting", None)
        if setting:
            request.max_content_length = getattr(settings, setting)

    def _service_unavailable(message: str, retry_after_s: str):
        db.session.remove()
        error = ServiceUnavailable(message)
        error.data = {"message": error.description, "headers": {"Retry-After": retry_after_s}}
        return api.handle_http_exception(error)

    def _database_error(exc: OperationalError):
        # PostgreSQL down or restarting: a clear 503 the app can retry (with its Idempotency-Key).
        if transient.unreachable(exc):
            log.warning("database unreachable: %s: %s", type(exc.orig).__name__, str(exc.orig).strip()[:200])
            return _service_unavailable("The database is unavailable; retry shortly.", RETRY_AFTER_S)
        # A race lost even after the service's own retries (backend/transient.py): not an outage.
        if cause := transient.transient_cause(exc):
            log.warning("database conflict: %s, still after retries", cause)
            return _service_unavailable("The database was busy with conflicting changes; retry.", "1")
        log.error("database error: %s", type(exc.orig).__name__, exc_info=exc)
        db.session.remove()
        return api.handle_http_exception(InternalServerError())

    def _pool_exhausted(exc: PoolTimeoutError):
        log.warning("database connection pool exhausted: %s", exc)
        return _service_unavailable("The database is unavailable; retry shortly.", RETRY_AFTER_S)

    app.register_error_handler(OperationalError, _database_error)
    app.register_error_handler(PoolTimeoutError, _pool_exhausted)


def _register_cli(app: Flask) -> None:
    from backend.cli import register

    register(app)


