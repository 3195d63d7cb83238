"""Faults survived under traffic: Redis stopped, PostgreSQL restarted, a worker killed mid-job.
Figures are printed (``-s``) and recorded in docs/reliability.md."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.faults.conftest import ROOT, Traffic, scalar, wait_until, worker_log

REDIS_DOWN_S = float(os.environ.get("FAULT_REDIS_DOWN_S", "30"))
PG_DOWN_S = float(os.environ.get("FAULT_PG_DOWN_S", "10"))


def reports_check(traffic: Traffic) -> dict:
    ids = list(traffic.created.values())
    stored = scalar("SELECT count(*) FROM reports WHERE id = ANY(CAST(:ids AS uuid[]))", ids=ids)
    total = scalar("SELECT count(*) FROM reports")
    counted = scalar("SELECT count(*) FROM reports WHERE heatmap_counted_at IS NOT NULL")
    # Each report is a point: it counts once per level; the level-12 total is the number counted.
    heatmap_total = scalar("SELECT coalesce(sum(count), 0) FROM heatmap_totals WHERE level = 12")
    return {"answered_201": len(ids), "stored": stored, "rows": total, "counted": counted, "heatmap_total": heatmap_total}


def test_redis_stopped_for_30_s_under_traffic_loses_nothing_and_counts_each_report_once(platform):
    traffic = Traffic(platform.url)
    traffic.start()
    time.sleep(3)
    platform.redis.stop()
    down_at = len(traffic.created)
    time.sleep(REDIS_DOWN_S)
    during = len(traffic.created) - down_at
    platform.redis.start()
    time.sleep(3)
    traffic.stop()
    try:
        # Up to a minute more for a job a worker lost with Redis: the sweep releases it after STALE_CLAIM_S.
        drained_s = wait_until(lambda: scalar("SELECT count(*) FROM outbox WHERE done_at IS NULL") == 0, 150,
                               "the worker to catch up")
    except AssertionError:
        from sqlalchemy import text

        from backend.extensions import db
        print(db.session.execute(text("SELECT id, task, enqueued_at, attempts, last_error, created_at FROM outbox "
                                      "WHERE done_at IS NULL ORDER BY id LIMIT 10")).all())
        print(worker_log(platform))
        raise
    check = reports_check(traffic)
    print(f"\nredis down {REDIS_DOWN_S:.0f} s: {check['answered_201']} reports answered 201 ({during} while Redis was "
          f"down), answers {dict(traffic.statuses)}, caught up {drained_s:.1f} s after; {check}")
    assert during > 0  # reports kept being accepted while Redis was down
    assert set(traffic.statuses) == {201}
    assert check["stored"] == check["rows"] == check["answered_201"]  # none lost, none extra
    assert check["counted"] == check["heatmap_total"] == check["answered_201"]  # each in the heatmap, once


def test_postgresql_restarted_under_traffic_answers_503_then_recovers_with_each_report_once(platform, settings):
    if not (ROOT / ".local" / "pg.location").exists():
        pytest.skip("PostgreSQL is not the project's own local server (DATABASE_URL given): not restarting it")
    traffic = Traffic(platform.url)
    traffic.start()
    time.sleep(2)
    subprocess.run([str(ROOT / "deploy/local/stack.sh"), "pg-stop"], check=True, capture_output=True)
    time.sleep(PG_DOWN_S)
    subprocess.run([str(ROOT / "deploy/local/stack.sh"), "pg-start"], check=True, capture_output=True)
    recovered_at = len(traffic.created)
    recovery_s = wait_until(lambda: len(traffic.created) > recovered_at + 20, 60, "the API to recover")
    traffic.stop()
    wait_until(lambda: scalar("SELECT count(*) FROM outbox WHERE done_at IS NULL") == 0, 150, "the worker to catch up")
    check = reports_check(traffic)
    keys = list(traffic.created)
    per_key = scalar("SELECT count(*) FROM reports WHERE idempotency_key = ANY(CAST(:keys AS uuid[]))", keys=keys)
    print(f"\npostgresql down {PG_DOWN_S:.0f} s: answers {dict(traffic.statuses)}; recovered {recovery_s:.1f} s after "
          f"the restart; {check}")
    assert traffic.statuses[503] > 0  # it was down, and said so
    assert set(traffic.statuses) <= {201, 503, "connection error"}  # never a 500
    assert traffic.bad_bodies == []  # every 503 a JSON error, no stack trace
    assert per_key == len(keys) == check["answered_201"] == check["rows"]  # retried keys: each report once
    assert check["counted"] == check["heatmap_total"] == check["answered_201"]


def waiting_on_locks() -> int:
    return scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")


def test_workers_killed_mid_aggregation_and_mid_export_leave_results_as_if_they_had_not_been(platform, tmp_path):
    """Two workers are caught in the middle of a job each, by locks the test holds: one counting a
    report into the heatmap (its cells written, its totals waiting), one writing an export (status
    running, its ranking query waiting). Both are SIGKILLed; a fresh worker must finish both jobs, with
    the report counted once and the export's file whole."""

    import requests

    from backend.extensions import db
    from tests.factories import Caller, new_key, route_body

    staff = Caller("fault-staff", role="safety_team")
    # Unsafe-route reports: no cluster check follows them, so the heatmap job is each report's only job.
    post = lambda: requests.post(f"{platform.url}/api/v1/reports", json=route_body(), timeout=10,  # noqa: E731
                                 headers=staff.headers(**{"Idempotency-Key": new_key()}))
    assert post().status_code == 201
    wait_until(lambda: scalar("SELECT count(*) FROM outbox WHERE done_at IS NULL") == 0, 60, "the first report counted")
    platform.start_worker("worker2")

    # 1. A worker in the middle of an aggregation: the totals rows it must update are locked.
    holder, blocker = db.engine.connect(), db.engine.connect()
    try:
        caught_mid_job(platform, post, holder, blocker, staff)
    finally:
        holder.close()
        blocker.close()
    killed_at = time.monotonic()
    platform.start_worker()
    export_id = scalar("SELECT id::text FROM exports")
    try:
        recovered_s = wait_until(lambda: scalar("SELECT count(*) FROM outbox WHERE done_at IS NULL") == 0, 240,
                                 "a fresh worker to finish both jobs")
    except AssertionError:
        from redis import Redis
        from rq.job import Job
        from sqlalchemy import text

        from backend.extensions import db
        rows = db.session.execute(text("SELECT id, task, enqueued_at, attempts, last_error FROM outbox "
                                       "WHERE done_at IS NULL")).all()
        redis = Redis.from_url(platform.redis.url)
        print(rows, [(r.id, Job.fetch(f"outbox-{r.id}", connection=redis).get_status()) for r in rows],
              redis.keys("rq:registry:started:*"), [redis.zrange(k, 0, -1, withscores=True) for k in redis.keys("rq:registry:started:*")],
              time.time())
        print(worker_log(platform))
        raise
    print(f"\nworkers SIGKILLed mid-aggregation and mid-export: both jobs done {recovered_s:.0f} s after the kill "
          f"(RQ notices a dead worker's job when its heartbeat lapses)")
    assert scalar("SELECT count(*) FROM reports WHERE heatmap_counted_at IS NOT NULL") == 2
    assert scalar("SELECT sum(count) FROM heatmap_totals WHERE level = 12") == 2  # counted once, not twice
    status = requests.get(f"{platform.url}/api/v1/exports/{export_id}", headers=staff.headers(), timeout=10).json()
    assert status["status"] == "done" and status["rows"] >= 1 and time.monotonic() > killed_at
    document = requests.get(f"{platform.url}{status['download_url']}", headers=staff.headers(), timeout=10).json()
    assert document["type"] == "FeatureCollection"  # a whole file: it parses
    assert {f["properties"]["report_count"] for f in document["features"]} == {2}  # both reports, each cell once
    assert not list((tmp_path / "exports").glob("*.part.*"))


def caught_mid_job(platform, post, holder, blocker, staff) -> None:
    import threading

    import requests
    from sqlalchemy import text

    holder.begin()
    holder.execute(text("SELECT * FROM heatmap_totals WHERE level = 12 FOR UPDATE"))
    assert post().status_code == 201
    wait_until(lambda: waiting_on_locks() == 1, 30, "the aggregation to block")
    assert scalar("SELECT count(*) FROM reports WHERE heatmap_counted_at IS NOT NULL") == 1

    # 2. The other worker in the middle of an export: its query waits for the reports table.
    blocker.begin()
    locking = threading.Thread(target=lambda: blocker.execute(text("LOCK TABLE reports IN ACCESS EXCLUSIVE MODE")))
    locking.start()
    wait_until(lambda: waiting_on_locks() == 2, 30, "the table lock to queue")
    export = requests.post(f"{platform.url}/api/v1/exports", timeout=10, headers=staff.headers(), json={
        "kind": "lighting", "council": "E09000022", "from": "2025-01-01", "to": "2030-12-31", "format": "geojson"}).json()
    try:
        wait_until(lambda: waiting_on_locks() == 3, 30, "the export to block")
    except AssertionError:
        print(export, db_activity(), worker_log(platform)[-2500:])
        raise
    assert scalar("SELECT status FROM exports WHERE id = :id", id=export["id"]) == "running"

    platform.kill("worker")
    platform.kill("worker2")
    holder.rollback()  # the killed workers' transactions now fail on their dead connections
    locking.join(timeout=30)
    blocker.rollback()


def db_activity() -> list:
    from sqlalchemy import text

    from backend.extensions import db
    rows = db.session.execute(text("SELECT state, wait_event_type, left(query, 80) FROM pg_stat_activity "
                                   "WHERE datname = current_database()")).all()
    db.session.rollback()
    return rows
