"""The platform run outside a test client, for the benchmarks (bench/), the fuzzer and the fault drills
(tests/): a free port, a database of its own, the API under gunicorn as shipped. Also the libpq form of
a database URL, which psycopg needs wherever it connects without SQLAlchemy (the outbox relay's LISTEN,
COPY in the benchmarks)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import URL, make_url

from backend.config import RATE_LIMIT_SETTINGS, libpq_dsn
from backend.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_database(database_url: str | URL) -> None:
    """Create the database (with PostGIS and pgRouting) if it does not exist yet."""
    target = make_url(database_url)
    with psycopg.connect(libpq_dsn(target.set(database="postgres")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)).fetchone():
            conn.execute(f'CREATE DATABASE "{target.database}"')
    with psycopg.connect(libpq_dsn(target), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgrouting")


def scratch_database(database_url: str, suffix: str) -> tuple[str, str]:
    """``<database>_<suffix>`` next to ``database_url``'s, created if needed and migrated; returns
    (SQLAlchemy URL, libpq DSN)."""
    target = make_url(database_url)
    url = target.set(database=f"{target.database}_{suffix}").render_as_string(hide_password=False)
    ensure_database(url)
    upgrade(url)
    return url, libpq_dsn(url)


def start_api(database_url: str, redis_url: str, port: int, server: str = "gunicorn", log: Path | None = None,
              **extra_env: str) -> subprocess.Popen:
    """gunicorn as shipped (deploy/gunicorn.conf.py) on ``port``, in a session of its own (stop it with
    ``os.killpg``); returns once ``/healthz`` answers. ``extra_env`` adds settings (RATE_LIMITS_ENABLED...).
    ``server="granian"`` runs granian instead, in gunicorn's shape (its workers and threads), for
    ``make bench-ingest BENCH_ARGS="--server granian"`` (docs/benchmarks.md). ``log``: a file its output
    is appended to (else it is discarded)."""
    # Limits high enough never to refuse a benchmark's users on one address, yet still checked
    # (a Redis round trip per request), as in production.
    generous = {name.upper(): "1000000/minute" for name in RATE_LIMIT_SETTINGS}
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "APP_ENV": "development", **generous, **extra_env}
    if server == "granian":
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="safetravel-metrics-"))
    return serve(server, "backend.wsgi:app", port, env, log=log)


def serve(server: str, target: str, port: int, env: dict[str, str], factory: bool = False, log: Path | None = None,
          attempts: int = 150) -> subprocess.Popen:
    """The WSGI app ``target`` (``module:app``, or ``module:function`` making it when ``factory``) under
    gunicorn as shipped or granian in gunicorn's shape, on ``port``, with ``env`` over this process's
    environment, in a session of its own; returns once ``/healthz`` answers (0.1 s x ``attempts``)."""
    env = {**os.environ, **env, "PORT": str(port)}
    if server == "gunicorn":
        command = [str(Path(sys.executable).parent / "gunicorn"), "--config", "deploy/gunicorn.conf.py",
                   f"{target}()" if factory else target]
    else:
        command = [str(Path(sys.executable).parent / "granian"), "--interface", "wsgi", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", env.get("WEB_CONCURRENCY", str(max(2, os.cpu_count() or 1))),
                   "--blocking-threads", env.get("GUNICORN_THREADS", "4"), "--no-ws",
                   *(["--factory"] if factory else []), target]
    output = open(log, "a") if log else subprocess.DEVNULL  # noqa: SIM115 (the server's, for its life)
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
    )
    for _ in range(attempts):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError(f"{server} {target} did not start")
