"""Erasure and the heatmap's counting take their locks in one order (docs/architecture.md, "Lock
order"); a deadlock that happens anyway is retried inside the service, and only an unreachable
PostgreSQL is a 503 "database unavailable"."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import create_engine, text

from backend.extensions import db
from tests.factories import report_body
from tests.faults.conftest import wait_until


def waiting_on_locks() -> int:
    with db.engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND wait_event_type = 'Lock'"))


def test_a_deadlocked_erasure_is_retried_and_answers_204(app, real_commits, client, commuter, caplog):
    report = client.post("/api/v1/reports", json=report_body(), headers=commuter.headers(
        **{"Idempotency-Key": "6f1d1c2e-1b8e-4f57-9d0e-0c6a1f1b2a01"}))
    assert report.status_code == 201
    report_id = report.json["id"]
    holder = db.engine.connect()
    done = threading.Event()

    def other_transaction() -> None:
        # Holds the person's report, waits until erasure waits for it, then asks for a lock erasure
        # holds: a cycle. Its own deadlock check comes late, so erasure is the side PostgreSQL fails.
        holder.begin()
        holder.execute(text("SET LOCAL deadlock_timeout = '30s'"))
        holder.execute(text("SELECT FROM reports WHERE id = :id FOR UPDATE"), {"id": report_id})
        done.set()
        wait_until(lambda: waiting_on_locks() == 1, 30, "erasure to wait for the report")
        holder.execute(text("LOCK TABLE heatmap_cells IN SHARE MODE"))
        holder.rollback()

    thread = threading.Thread(target=other_transaction)
    thread.start()
    done.wait(10)
    try:
        with caplog.at_level(logging.WARNING, logger="backend.transient"):
            response = client.delete("/api/v1/me", headers=commuter.headers())
    finally:
        thread.join(timeout=30)
        holder.close()

    assert response.status_code == 204, response.json
    assert "erasure met a DeadlockDetected (attempt 1 of 4); retrying" in caplog.text
    assert client.get(f"/api/v1/reports/{report_id}", headers=commuter.headers()).status_code == 404


def test_postgresql_unreachable_answers_503_with_retry_after_and_says_so_in_the_log(app, client, commuter, caplog):
    unreachable = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", pool_pre_ping=False)
    with app.app_context():
        db.session.remove()
        db.session.configure(bind=unreachable)
    try:
        with caplog.at_level(logging.WARNING, logger="backend"):
            response = client.delete("/api/v1/me", headers=commuter.headers())
    finally:
        db.session.remove()
        db.session.configure(bind=db.engine)
        unreachable.dispose()

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json["message"] == "The database is unavailable; retry shortly."
    assert "database unreachable: OperationalError" in caplog.text
