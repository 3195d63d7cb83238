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
