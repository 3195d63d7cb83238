"""Configuration from environment variables, with development defaults (see docs/operations.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backend.vocabulary import STATUSES

APP_ENVS = ("development", "test", "production")
# Export files in development: next to the local servers' data, outside git.
DEFAULT_EXPORT_DIR = str(Path(__file__).resolve().parent.parent / ".local" / "exports")


# Development and tests follow Firebase's emulator convention unless told otherwise (docs/api.md).
DEVELOPMENT_AUTH_EMULATOR_HOST = "127.0.0.1:9099"


class ConfigError(RuntimeError):
    """The configuration is unsafe or unusable; the process must not start."""


def _wants_emulator_default(env: dict[str, str] | os._Environ) -> bool:
    return (env.get("APP_ENV", "development") != "production" and not env.get("FIREBASE_AUTH_EMULATOR_HOST")
            and not env.get("GOOGLE_APPLICATION_CREDENTIALS"))


def prepare_process_environment() -> None:
    """Called once by each process's entry point (gunicorn's app, the worker, the CLI, benchmarks,
    the test session) before anything reads the environment. firebase-admin decides on every token
    whether to accept the emulator's unsigned tokens by reading FIREBASE_AUTH_EMULATOR_HOST from the
    process environment, so the development default must be there, not only in Settings; nothing
    else writes the environment."""
    if _wants_emulator_default(os.environ):
        os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = DEVELOPMENT_AUTH_EMULATOR_HOST


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: dict[str, str], name: str, default: float, minimum: float, maximum: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {raw}")
    return value


# The public heatmap's noise in development and tests; production must set a secret of its own.
DEVELOPMENT_PUBLIC_NOISE_SECRET = "development-public-noise-secret-not-for-production"
MIN_PUBLIC_NOISE_SECRET_CHARS = 32


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in ("1", "true", "yes", "0", "false", "no"):
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    return raw in ("1", "true", "yes")


def _origins(env: dict[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of origins (``https://tiles.example.org``), checked: each becomes part of
    a Content-Security-Policy, where a stray character would widen or break it."""
    from urllib.parse import urlsplit

    origins = []
    for raw in filter(None, (part.strip() for part in (env.get(name) or "").split(","))):
        parts = urlsplit(raw)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.path not in ("", "/") \
                or parts.query or parts.fragment or any(c in raw for c in " ;'\""):
            raise ConfigError(f"{name}: {raw!r} is not an origin such as https://tiles.example.org")
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return tuple(origins)


def _statuses(env: dict[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None:
        return default
    values = tuple(s.strip() for s in raw.split(",") if s.strip())
    if unknown := [s for s in values if s not in STATUSES]:
        raise ConfigError(f"{name} must list statuses among {', '.join(STATUSES)}, got {', '.join(unknown)}")
    return values


RATE_LIMIT_SETTINGS = ("rate_limit_reports", "rate_limit_reports_ip", "rate_limit_devices", "rate_limit_devices_ip",
                       "rate_limit_exports", "rate_limit_exports_ip")


def _limit(env: dict[str, str], name: str, default: str) -> str:
    from limits import parse_many

    raw = env.get(name) or default
    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(f"{name} must look like 60/minute or 60/minute;1000/day, got {raw!r}") from None
    return raw


@dataclass(frozen=True)
class Settings:
    app_env: str = "development"
    database_url: str = "postgresql+psycopg://safetravel@127.0.0.1:5432/safetravel"
    redis_url: str = "redis://127.0.0.1:6379/0"
    firebase_project_id: str = "demo-safetravel"
    firebase_auth_emulator_host: str | None = None
    google_application_credentials: str | None = None
    port: int = 8000
    public_min_reporters: int = 5
    # The public heatmap's noise (docs/privacy.md): epsilon per published unit, and the secret the
    # noise is derived from (repeating a query gives the same answer).
    public_epsilon: float = 1.0
    public_noise_secret: str = DEVELOPMENT_PUBLIC_NOISE_SECRET
    report_retention_days: int = 1095
    city_timezone: str = "Europe/London"
    # Request bodies: one report is a few kB; a batch of 100 with long routes stays well under 4 MiB.
    max_body_bytes: int = 256 * 1024
    max_batch_body_bytes: int = 4 * 1024 * 1024
    db_pool_size: int = 10
    # Reads on a PostgreSQL hot standby (heatmap, tiles, hotspots, the public heatmap, nearest hubs):
    # unset, everything reads the primary; they fall back to it while the standby is unreachable or
    # more than READ_MAX_LAG_S behind (backend/extensions.py).
    database_read_url: str | None = None
    read_max_lag_s: float = 5.0
    # Cluster detection (docs/api.md, "Cluster alerts"): reports of one category from this many different people within
    # this radius and time (an account counts once, however many reports it sends).
    cluster_min_reporters: int = 3
    cluster_radius_m: int = 300
    cluster_window_h: int = 6
    # A cluster alert reaches staff devices at once; commuters only once a staff member confirms it,
    # unless this is on (then one person's or a few colluding accounts' reports can push to the public).
    cluster_auto_public_push: bool = False
    redis_timeout_s: float = 0.5
    # Council exports: where files are written (shared by the API and the workers), how long they are
    # kept, and how far a report may be from a street segment to count on it.
    export_dir: str = DEFAULT_EXPORT_DIR
    export_ttl_days: int = 7
    street_match_m: int = 25
    # The dashboard: a MapLibre style URL for the basemap (none: a plain background with borough
    # outlines and Underground lines), and the Firebase web app's config for signing in.
    basemap_style_url: str | None = None
    # Origins the basemap style loads tiles, glyphs and sprites from, besides the style's own: the
    # dashboard's Content-Security-Policy allows these and no others (backend/security.py).
    basemap_origins: tuple[str, ...] = ()
    # Abuse limits (limits' notation: "60/minute;1000/day"), per user and per client IP. A phone
    # flushing its offline queue sends one batch; a station's Wi-Fi puts many people behind one IP.
    rate_limits_enabled: bool = True
    rate_limit_reports: str = "60/minute;1000/day"
    rate_limit_reports_ip: str = "600/minute"
    rate_limit_devices: str = "30/hour"
    rate_limit_devices_ip: str = "600/hour"
    rate_limit_exports: str = "20/hour"
    rate_limit_exports_ip: str = "100/hour"
    # Behind a load balancer: how many proxies' X-Forwarded-For entries to trust for the client IP.
    proxy_hops: int = 0
    # "json" (one object a line, for log collectors) or "text"; default: json in production.
    log_format: str = "text"
    firebase_web_api_key: str | None = None
    firebase_auth_domain: str | None = None
    # Partner webhooks: a failed delivery is tried again after WEBHOOK_RETRY_BASE_S, doubling up to
    # WEBHOOK_RETRY_MAX_S, for WEBHOOK_RETRY_FOR_S in all, then marked failed. A POST waits at most
    # WEBHOOK_TIMEOUT_S; a delivery taken by a worker that died is tried again after WEBHOOK_LEASE_S.
    webhook_retry_base_s: int = 30
    webhook_retry_max_s: int = 3600
    webhook_retry_for_s: int = 86400
    webhook_timeout_s: int = 10
    webhook_lease_s: int = 60
    # Triage statuses that push an update to the reporter's devices.
    reporter_update_statuses: tuple[str, ...] = ("actioned", "closed", "rejected")
    # The commuter's app's push (Firebase web messaging): all three, with FIREBASE_WEB_API_KEY, turn it on.
    firebase_web_app_id: str | None = None
    firebase_messaging_sender_id: str | None = None
    firebase_vapid_key: str | None = None
    # /metrics asks for this as a Bearer token when set; without it, /metrics is open in development
    # and test and refused (403) in production.
    metrics_token: str | None = None

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.city_timezone)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        app_env = env.get("APP_ENV", "development")
        if env.get("CLUSTER_MIN_REPORTS"):
            raise ConfigError("CLUSTER_MIN_REPORTS is now CLUSTER_MIN_REPORTERS: a cluster needs this many different "
                              "people, each counted once however many reports they send (docs/operations.md)")
        if _wants_emulator_default(env):
            env["FIREBASE_AUTH_EMULATOR_HOST"] = DEVELOPMENT_AUTH_EMULATOR_HOST
        if app_env not in APP_ENVS:
            raise ConfigError(f"APP_ENV must be one of {', '.join(APP_ENVS)}, got {app_env!r}")
        settings = cls(
            app_env=app_env,
            database_url=_normalise_database_url(env.get("DATABASE_URL") or cls.database_url),
            redis_url=env.get("REDIS_URL") or cls.redis_url,
            firebase_project_id=env.get("FIREBASE_PROJECT_ID") or cls.firebase_project_id,
            firebase_auth_emulator_host=env.get("FIREBASE_AUTH_EMULATOR_HOST") or None,
            google_application_credentials=env.get("GOOGLE_APPLICATION_CREDENTIALS") or None,
            port=_int(env, "PORT", cls.port, minimum=1),
            public_min_reporters=_int(env, "PUBLIC_MIN_REPORTERS", cls.public_min_reporters, minimum=1),
            public_epsilon=_float(env, "PUBLIC_EPSILON", cls.public_epsilon, minimum=0.01, maximum=10.0),
            public_noise_secret=env.get("PUBLIC_NOISE_SECRET") or cls.public_noise_secret,
            report_retention_days=_int(env, "REPORT_RETENTION_DAYS", cls.report_retention_days, minimum=1),
            city_timezone=env.get("CITY_TIMEZONE") or cls.city_timezone,
            db_pool_size=_int(env, "DB_POOL_SIZE", cls.db_pool_size, minimum=1),
            database_read_url=_normalise_database_url(env["DATABASE_READ_URL"]) if env.get("DATABASE_READ_URL") else None,
            read_max_lag_s=_float(env, "READ_MAX_LAG_S", cls.read_max_lag_s, minimum=0.1, maximum=3600.0),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", cls.max_body_bytes, minimum=1024),
            max_batch_body_bytes=_int(env, "MAX_BATCH_BODY_BYTES", cls.max_batch_body_bytes, minimum=1024),
            cluster_min_reporters=_int(env, "CLUSTER_MIN_REPORTERS", cls.cluster_min_reporters, minimum=2),
            cluster_auto_public_push=_flag(env, "CLUSTER_AUTO_PUBLIC_PUSH", cls.cluster_auto_public_push),
            cluster_radius_m=_int(env, "CLUSTER_RADIUS_M", cls.cluster_radius_m, minimum=10),
            cluster_window_h=_int(env, "CLUSTER_WINDOW_H", cls.cluster_window_h, minimum=1),
            export_dir=env.get("EXPORT_DIR") or cls.export_dir,
            export_ttl_days=_int(env, "EXPORT_TTL_DAYS", cls.export_ttl_days, minimum=1),
            street_match_m=_int(env, "STREET_MATCH_M", cls.street_match_m, minimum=1),
            basemap_style_url=env.get("BASEMAP_STYLE_URL") or None,
            basemap_origins=_origins(env, "BASEMAP_ORIGINS"),
            rate_limits_enabled=env.get("RATE_LIMITS_ENABLED", "true").lower() not in ("0", "false", "no"),
            **{name: _limit(env, name.upper(), getattr(cls, name)) for name in RATE_LIMIT_SETTINGS},
            proxy_hops=_int(env, "PROXY_HOPS", cls.proxy_hops),
            log_format=env.get("LOG_FORMAT") or ("json" if app_env == "production" else "text"),
            firebase_web_api_key=env.get("FIREBASE_WEB_API_KEY") or None,
            firebase_auth_domain=env.get("FIREBASE_AUTH_DOMAIN") or None,
            webhook_retry_base_s=_int(env, "WEBHOOK_RETRY_BASE_S", cls.webhook_retry_base_s, minimum=1),
            webhook_retry_max_s=_int(env, "WEBHOOK_RETRY_MAX_S", cls.webhook_retry_max_s, minimum=1),
            webhook_retry_for_s=_int(env, "WEBHOOK_RETRY_FOR_S", cls.webhook_retry_for_s, minimum=1),
            webhook_timeout_s=_int(env, "WEBHOOK_TIMEOUT_S", cls.webhook_timeout_s, minimum=1),
            webhook_lease_s=_int(env, "WEBHOOK_LEASE_S", cls.webhook_lease_s, minimum=1),
            reporter_update_statuses=_statuses(env, "REPORTER_UPDATE_STATUSES", cls.reporter_update_statuses),
            firebase_web_app_id=env.get("FIREBASE_WEB_APP_ID") or None,
            firebase_messaging_sender_id=env.get("FIREBASE_MESSAGING_SENDER_ID") or None,
            firebase_vapid_key=env.get("FIREBASE_VAPID_KEY") or None,
            metrics_token=env.get("METRICS_TOKEN") or None,
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.log_format not in ("json", "text"):
            raise ConfigError(f"LOG_FORMAT must be json or text, got {self.log_format!r}")
        try:
            self.tz
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"CITY_TIMEZONE is not a known time zone: {self.city_timezone!r}") from None
        if self.basemap_style_url:
            from urllib.parse import urlsplit

            parts = urlsplit(self.basemap_style_url)
            if parts.scheme not in ("http", "https") or not parts.netloc or any(c in self.basemap_style_url for c in " ;'\""):
                raise ConfigError(f"BASEMAP_STYLE_URL must be an http(s) URL, got {self.basemap_style_url!r}")
        if self.is_production:
            if self.firebase_auth_emulator_host:
                raise ConfigError(
                    "FIREBASE_AUTH_EMULATOR_HOST is set while APP_ENV=production: unsigned ID tokens "
                    "would be accepted. Unset it to start in production."
                )
            if self.firebase_project_id.startswith("demo-"):
                raise ConfigError("FIREBASE_PROJECT_ID must name a real Firebase project in production")
            if (self.public_noise_secret == DEVELOPMENT_PUBLIC_NOISE_SECRET
                    or len(self.public_noise_secret) < MIN_PUBLIC_NOISE_SECRET_CHARS):
                raise ConfigError(
                    f"PUBLIC_NOISE_SECRET must be set in production, at least {MIN_PUBLIC_NOISE_SECRET_CHARS} "
                    "random characters (e.g. `openssl rand -hex 32`): the public heatmap's noise is derived from it"
                )


def libpq_dsn(database_url: str) -> str:
    """The libpq form of a database URL, for psycopg where it connects without SQLAlchemy (the outbox
    relay's LISTEN, COPY in the benchmarks)."""
    from sqlalchemy.engine import make_url

    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _normalise_database_url(url: str) -> str:
    # Accept the libpq-style URLs people paste; SQLAlchemy needs the driver named.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def current_settings() -> Settings:
    """The running app's settings: the one way code reads its configuration (views, services, jobs
    and commands all run inside the app's context). Outside one it is an error, not a silent second
    reading of the environment."""
    from flask import current_app, has_app_context

    if not has_app_context():
        raise RuntimeError("current_settings() needs the app's context (create_app(); worker/app.py for jobs)")
    return current_app.config["SETTINGS"]
