"""The process-wide resources: the database session, the Redis connection and the API object."""

from __future__ import annotations

import select

from flask import Flask
from psycopg import pq
from redis import Redis
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker

from backend.config import Settings


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

    def configure(self, settings: Settings) -> None:
        if self.engine is not None and str(self.engine.url) == settings.database_url:
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

    def init_app(self, app: Flask) -> None:
        self.configure(app.config["SETTINGS"])
        app.teardown_appcontext(lambda _exc: self.session.remove())


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
