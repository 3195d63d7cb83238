"""Real PostgreSQL + PostGIS and Redis for every test.

- The test database (TEST_DATABASE_URL, set by deploy/local/with-stack) is created if missing and
  migrated with Alembic once per run.
- Each test runs inside a transaction that is rolled back afterwards; the code under test commits
  to SAVEPOINTs (SQLAlchemy's ``join_transaction_mode="create_savepoint"``). Tests that need real
  commits (concurrency, separate processes) ask for ``real_commits``, which truncates afterwards.
- Redis is the local server's test database (TEST_REDIS_URL), flushed before each test.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import text

from backend import create_app
from backend.config import Settings, prepare_process_environment
from backend.councils.service import load_council_areas
from backend.devserver import ensure_database, free_port
from backend.extensions import db, redis_conn
from backend.migrate import upgrade
from backend.models import Base
from tests import appctx
from tests.factories import CALLERS, Caller

prepare_process_environment()  # the test session is a process like any other: its entry point
pytest_plugins = ["tests.browser"]  # `browser` and `live_server` for the dashboard's and the app's browser tests

ROOT = Path(__file__).resolve().parent.parent
# Reference data the session loads once (London's boroughs), kept across tests, as are the stations. The street network is
# not: tests run without one, as exports on grid cells and routes "far from any street" need, and
# those that need one load a small network of their own or, for a module, the shipped file
# (tests/streets/test_shipped_network.py), which the next session's truncation removes in any case.
REFERENCE_TABLES = {"council_areas", "stations"}  # stations: loaded by migration 0016
# Every other model's table is emptied by ``real_commits``: a new model's table is included by itself.
APP_TABLES = tuple(table.name for table in Base.metadata.sorted_tables if table.name not in REFERENCE_TABLES)


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the tests with `make test` (it starts the local stack)", returncode=2)
    return value


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env({
        "APP_ENV": "test",
        "DATABASE_URL": _require("TEST_DATABASE_URL"),
        "REDIS_URL": _require("TEST_REDIS_URL"),
        "FIREBASE_PROJECT_ID": "demo-safetravel",
        "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099",
        "EXPORT_DIR": tempfile.mkdtemp(prefix="safetravel-test-exports-"),
    })


@pytest.fixture(scope="session")
def app(settings: Settings):
    ensure_database(settings.database_url)
    upgrade(settings.database_url)
    app = create_app(settings)
    appctx.session_app = app
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(APP_TABLES)} RESTART IDENTITY CASCADE"))
        load_council_areas(ROOT / "data" / "london_boroughs.geojson")
        db.session.commit()
        db.session.remove()
    return app


@pytest.fixture(autouse=True)
def _isolated_database(request, app):
    """Roll back everything a test wrote, unless it asked for real commits.

    No app context is held across the test: each request of the test client gets its own, as in
    production (a shared one would share ``g`` between requests)."""
    if "real_commits" in request.fixturenames:
        yield
        return
    connection = db.engine.connect()
    transaction = connection.begin()
    db.session.remove()
    db.session.configure(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield
    finally:
        db.session.remove()
        db.session.configure(bind=db.engine, join_transaction_mode="conditional_savepoint")
        transaction.rollback()
        connection.close()


@pytest.fixture
def real_commits(app):
    """The code under test commits for real (threads, other processes); tables are emptied after."""
    yield
    db.session.remove()
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(APP_TABLES)} RESTART IDENTITY CASCADE"))


@pytest.fixture(autouse=True)
def redis_client(settings: Settings, app) -> Redis:
    client = Redis.from_url(settings.redis_url)
    client.flushdb()
    redis_conn.configure(settings)
    yield client
    client.close()


@pytest.fixture
def client(app):
    return app.test_client()


def _caller_fixture(name: str):
    @pytest.fixture(name=name)
    def caller() -> Caller:
        return CALLERS[name]

    return caller


# One fixture per caller of tests/factories.py, named as there: ``def test_x(client, commuter, staff)``.
for _name in CALLERS:
    globals()[_name] = _caller_fixture(_name)


class DisposableRedis:
    """A redis-server of the test's own, to stop and start without disturbing anyone else."""

    def __init__(self, persistent: bool = False) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="safetravel-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        # Persistent: an append-only file, as a production Redis keeps its queues across a restart.
        self.persistence = ["--appendonly", "yes", "--appendfsync", "always"] if persistent else ["--appendonly", "no"]

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *self.persistence,
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def disposable_redis(app, settings: Settings):
    """A Redis of the test's own, which the app (queues and rate limits: backend/limits.py counts on the
    same connection) uses for the length of the test."""
    server = DisposableRedis()
    server.start()
    redis_conn.configure(replace(settings, redis_url=server.url))
    yield server
    server.stop()
    redis_conn.configure(settings)
