"""What a database error means, and retrying the ones that pass.

- *Transient*: a deadlock, a serialization failure, a lock not available. The transaction lost a race
  with another one; the same work succeeds when done again. Services that can meet one (erasure, the
  retention purge: backend/users, backend/reports) run their work through ``retrying()``.
- *Unreachable*: PostgreSQL down, restarting, refusing connections. The HTTP edge answers 503 with
  ``Retry-After`` (backend/__init__.py).
- Anything else is a bug or a server fault (a 500, logged with its cause).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy.exc import DBAPIError

from backend.extensions import db

log = logging.getLogger(__name__)

T = TypeVar("T")
TRANSIENT = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure, pg_errors.LockNotAvailable)
# The server is going away or not taking connections (SQLSTATE class 57P: operator intervention).
SERVER_GOING = (pg_errors.AdminShutdown, pg_errors.CrashShutdown, pg_errors.CannotConnectNow)
ATTEMPTS = 4
BASE_DELAY_S = 0.05


def transient_cause(exc: BaseException) -> str | None:
    """The name of the transient error behind ``exc`` (``DeadlockDetected`` ...), or None."""
    orig = getattr(exc, "orig", exc)
    return type(orig).__name__ if isinstance(orig, TRANSIENT) else None


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says PostgreSQL cannot be reached (rather than that a statement failed)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, SERVER_GOING):
        return True
    # A connection that failed or broke has no SQLSTATE, or one of class 08 (connection exception).
    return isinstance(orig, psycopg.OperationalError) and (orig.sqlstate is None or orig.sqlstate.startswith("08"))


def retrying(work: Callable[[], T], what: str, attempts: int = ATTEMPTS) -> T:
    """Run ``work`` (which flushes, in the caller's transaction) inside a savepoint; on a transient error
    roll back to it and run it again, after a random wait that doubles each time, up to ``attempts``
    times in all. The caller still owns (and commits) the transaction."""
    for attempt in range(1, attempts + 1):
        savepoint = db.session.begin_nested()
        try:
            result = work()
            savepoint.commit()
            return result
        except DBAPIError as exc:
            savepoint.rollback()
            cause = transient_cause(exc)
            if cause is None or attempt == attempts:
                raise
            log.warning("%s met a %s (attempt %d of %d); retrying", what, cause, attempt, attempts)
            time.sleep(random.uniform(0, BASE_DELAY_S * 2**attempt))
    raise AssertionError("unreachable")
