"""Benchmark databases (created and migrated by backend/devserver.py's ``scratch_database``) filled with
synthetic reports spread like the demo data (backend/demo/seed.py), through COPY. A database already
holding the wanted rows is reused."""

from __future__ import annotations

import time
from itertools import islice

import psycopg

from backend.demo.seed import generate_reports

COPY_COLUMNS = (
    "author_id", "category", "subcategory", "occurred_at", "location", "accuracy_m", "route", "mode", "line",
    "station", "factors", "description", "status", "idempotency_key", "created_at", "updated_at",
)


def ensure_reports(dsn: str, count: int, seed: int = 7, users: int = 20_000) -> float:
    """Make the database hold exactly ``count`` synthetic reports; returns the seconds spent loading
    (0 when they were already there)."""
    with psycopg.connect(dsn) as conn:
        have = conn.execute("SELECT count(*) FROM reports").fetchone()[0]
    if have == count:
        return 0.0
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE report_status_changes, reports, users, outbox RESTART IDENTITY CASCADE")
        conn.execute(
            "INSERT INTO users (firebase_uid) SELECT format('demo-commuter-%%s', lpad(n::text, 5, '0')) "
            "FROM generate_series(0, %s - 1) AS n", (users,),
        )
        user_ids = dict(conn.execute("SELECT firebase_uid, id FROM users").fetchall())
        rows = generate_reports(count, seed=seed, users=users, days=3 * 365)
        with conn.cursor().copy(f"COPY reports ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
            while chunk := list(islice(rows, 10_000)):
                for r in chunk:
                    copy.write_row((
                        user_ids[r["author"]], r["category"], r["subcategory"], r["occurred_at"], r["location"],
                        r["accuracy_m"], r["route"], r["mode"], r["line"], r["station"], r["factors"],
                        r["description"], r["status"], r["idempotency_key"], r["created_at"], r["created_at"],
                    ))
        conn.execute("VACUUM ANALYZE reports")
    return time.perf_counter() - started
