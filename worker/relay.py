"""The outbox relay: moves committed follow-up tasks from PostgreSQL to RQ (backend/outbox/service.py).

It runs as a thread of every worker process. It sleeps on ``LISTEN outbox`` (woken within
milliseconds of a commit that added tasks), with a periodic poll as a safety net, and backs off
while Redis or PostgreSQL is unavailable; nothing is lost meanwhile, the tasks wait in the table.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from backend.extensions import db
from backend.outbox import service as outbox

log = logging.getLogger(__name__)

POLL_S = 2.0
WAIT_SLICE_S = 0.5
MAX_BACKOFF_S = 10.0


def libpq_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Relay(threading.Thread):
    def __init__(self, database_url: str, poll_s: float = POLL_S) -> None:
        super().__init__(name="outbox-relay", daemon=True)
        self.dsn = libpq_dsn(database_url)
        self.poll_s = poll_s
        self.stopping = threading.Event()
        self.listening = threading.Event()  # set once LISTEN is in place (tests wait on it)
        self.relayed = 0

    def stop(self) -> None:
        self.stopping.set()

    def drain(self) -> int:
        """Relay until nothing is left; returns how many tasks were enqueued."""
        total = 0
        try:
            while not self.stopping.is_set():
                count = outbox.relay()
                total += count
                if count < outbox.RELAY_BATCH:
                    break
        finally:
            db.session.remove()
        self.relayed += total
        return total

    def run(self) -> None:
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as listener:
                    listener.execute(f"LISTEN {outbox.CHANNEL}")
                    self.drain()  # whatever was committed before we listened
                    self.listening.set()
                    backoff = 0.5
                    last_drain = time.monotonic()
                    while not self.stopping.is_set():
                        # Short slices, so that stop() is honoured within half a second.
                        woke = any(True for _ in listener.notifies(timeout=WAIT_SLICE_S, stop_after=1))
                        if woke or time.monotonic() - last_drain >= self.poll_s:
                            count = self.drain()
                            last_drain = time.monotonic()
                            if count and not woke:
                                log.info("relay poll found %d task(s)", count)
            except (RedisError, OperationalError, psycopg.OperationalError) as exc:
                log.warning("outbox relay paused (%s: %s); retrying in %.1fs", type(exc).__name__, exc, backoff)
                self.stopping.wait(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)


def start_relay(database_url: str) -> Relay:
    relay = Relay(database_url)
    relay.start()
    return relay

