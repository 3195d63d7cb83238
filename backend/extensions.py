"""The process-wide resources: the database session, the Redis connection and the API object."""

from __future__ import annotations

import logging
import math
import os
import select
import threading
import time

from flask import Flask
from psycopg import pq
from redis import Redis
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker

from backend.config import Settings

log = logging.getLogger(__name__)

READ_CHECK_INTERVAL_S = 1.0  # how often each process measures the standby's lag


class ReadReplica:
    """A PostgreSQL hot standby for reads that may lag a little (``DATABASE_READ_URL``), used while it
    answers and is at most ``READ_MAX_LAG_S`` behind the primary.

    A daemon thread in each process measures the lag every READ_CHECK_INTERVAL_S, so that no request
    waits for the check: the primary's WAL position is read first, then the standby's; a standby that
    has replayed past it is 0 s behind, else as far behind as the last transaction it replayed
    (``clock_timestamp() - pg_last_xact_replay_timestamp()`` on the standby). With the primary
    unreachable, the standby is as fresh as anything can be and keeps serving. A standby that errors
    during a request is dropped at once, until the next check finds it well."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.session: scoped_session[Session] = scoped_session(sessionmaker(expire_on_commit=False))
        self.max_lag_s = Settings.read_max_lag_s
        self.lag_s: float | None = None  # None: not measured, or the standby did not answer
        self.fresh = False
        self._primary: Engine | None = None
        self._url: str | None = None
        self._generation = 0
        self._monitor_pid: int | None = None
        self._lock = threading.Lock()

    def configure(self, settings: Settings, primary: Engine) -> None:
        self._primary, self.max_lag_s = primary, settings.read_max_lag_s
        if settings.database_read_url == self._url:
            return
        self.session.remove()
        if self.engine is not None:
            self.engine.dispose()
        self._generation += 1  # the running monitor, if any, stops
        self._monitor_pid, self.engine, self._url, self.fresh, self.lag_s = None, None, settings.database_read_url, False, None
        if not self._url:
            return
        self.engine = create_engine(
            self._url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
            pool_pre_ping=True,
            pool_timeout=5,
            connect_args={"connect_timeout": 2, "application_name": "safetravel-reads"},
        )
        event.listen(self.engine, "handle_error", self._failed)
        self.session.configure(bind=self.engine)

    def in_use(self) -> bool:
        """Whether reads go to the standby now (never waits: the monitor keeps the answer)."""
        if self.engine is None:
            return False
        if self._monitor_pid != os.getpid():  # first use in this process (gunicorn forks after loading)
            with self._lock:
                if self._monitor_pid != os.getpid():
                    self._monitor_pid = os.getpid()
                    threading.Thread(target=self._watch, args=(self._generation,), daemon=True,
                                     name="read-replica-lag").start()
        return self.fresh

    def _watch(self, generation: int) -> None:
        while generation == self._generation:
            self.check()
            time.sleep(READ_CHECK_INTERVAL_S)

    def check(self) -> None:
        """Measure the standby's lag now and decide whether reads may go there."""
        engine, primary = self.engine, self._primary
        if engine is None:
            return
        try:
            primary_lsn = None
            try:
                with primary.connect() as conn:
                    primary_lsn = conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar()
            except Exception:  # noqa: BLE001 - the primary down: the standby is as fresh as it gets
                primary_lsn = None
            with engine.connect() as conn:
                in_recovery, behind_s = conn.execute(text("""
                    SELECT pg_is_in_recovery(),
                           CASE WHEN CAST(:lsn AS pg_lsn) IS NULL OR pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn) THEN 0
                                ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) END
                """), {"lsn": primary_lsn}).one()
        except Exception as exc:  # noqa: BLE001 - whatever the failure, reads go to the primary
            if self.fresh:
                log.warning("read replica unusable, reading the primary: %s", str(exc).strip()[:200])
            self.fresh, self.lag_s = False, None
            return
        if not in_recovery:
            # Promoted, or not a standby at all: it no longer follows the primary.
            self.fresh, self.lag_s = False, None
            return
        self.lag_s = float(behind_s) if behind_s is not None else math.inf
        fresh = self.lag_s <= self.max_lag_s
        if fresh != self.fresh:
            log.warning("read replica %s (%.1f s behind)", "in use" if fresh else "too far behind, reading the primary",
                        self.lag_s)
        self.fresh = fresh

    def _failed(self, context) -> None:
        if context.is_disconnect or context.connection is None:
            self.fresh = False



class Base(DeclarativeBase):
    """Declarative base of every model; Alembic migrations, not create_all, build the schema."""


class Database:
    """One engine and one scoped session per process, shared by web requests, CLI commands and jobs.

    Services use ``db.session``; the web app removes it after each request and the worker after
    each job. Tests bind it to a connection inside a rolled-back transaction (tests/conftest.py).
    """

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.session: scoped_session[Session] = scoped_session(sessionmaker(expire_on_commit=False))
        self.replica = ReadReplica()

    @property
    def reads(self) -> scoped_session[Session]:
        """The session for reads that may lag the primary by up to READ_MAX_LAG_S (the heatmap's, the
        nearest hubs): the hot standby's while it is fit, else the primary's, ``session``."""
        return self.replica.session if self.replica.in_use() else self.session

    def configure(self, settings: Settings) -> None:
        if self.engine is not None and str(self.engine.url) == settings.database_url:
            self.replica.configure(settings, self.engine)
            return
        self.engine = create_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
            # Instead of SQLAlchemy's pre-ping (a SELECT 1 round trip at every checkout, 0.3 ms of
            # CPU per request), a look at the socket: _closed_by_server.
            pool_timeout=5,
            # Fail fast when PostgreSQL is down so that callers answer 503 instead of hanging.
            connect_args={"connect_timeout": 3, "application_name": "safetravel"},
        )
        event.listen(self.engine, "checkout", _refuse_closed_connection)
        self.session.remove()
        self.session.configure(bind=self.engine)
        self.replica.configure(settings, self.engine)

    def init_app(self, app: Flask) -> None:
        self.configure(app.config["SETTINGS"])
        app.teardown_appcontext(lambda _exc: self.remove())

    def remove(self) -> None:
        """Hand both sessions back (after each request and job)."""
        self.session.remove()
        self.replica.session.remove()


def _refuse_closed_connection(dbapi_connection, _record, _proxy) -> None:  # noqa: ANN001 - SQLAlchemy's signature
    """A pooled connection is idle between checkouts: if PostgreSQL wrote to it meanwhile (a restart's
    "terminating connection", then end of file) or it is broken, it is dead. The pool then discards it
    and connects afresh (SQLAlchemy's documented checkout-event pattern). A connection lost without
    a word (a network cut) fails its statement instead, and SQLAlchemy invalidates the pool."""
    pgconn = dbapi_connection.pgconn
    if pgconn.status != pq.ConnStatus.OK:
        raise DisconnectionError("the connection is broken")
    readable, _, _ = select.select([pgconn.socket], [], [], 0)
    if readable:
        raise DisconnectionError("PostgreSQL closed the connection (or wrote to it while idle)")


class RedisConnection:
    """The Redis connection used for RQ; short timeouts so that a Redis outage never stalls a request."""

    def __init__(self) -> None:
        self.client: Redis | None = None

    def configure(self, settings: Settings) -> None:
        self.client = Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=settings.redis_timeout_s,
            socket_timeout=settings.redis_timeout_s,
            health_check_interval=30,
        )

    def init_app(self, app: Flask) -> None:
        self.configure(app.config["SETTINGS"])


db = Database()
redis_conn = RedisConnection()
