"""A worker SIGKILLed in the middle of a batch of heatmap updates: the batch's writes vanish with its
transaction, and a fresh worker counts every report of it exactly once."""

from __future__ import annotations

import time
import uuid

import requests
from sqlalchemy import text

from backend.devtokens import emulator_token
from backend.extensions import db
from tests.factories import report_body
from tests.faults.conftest import scalar, wait_until, worker_log

BACKLOG = 30


def post(platform, n: int) -> None:
    headers = {"Authorization": f"Bearer {emulator_token(f'batch-drill-{n % 5}', lifetime_s=3600)}",
               "Idempotency-Key": str(uuid.uuid4())}
    body = report_body(location={"type": "Point", "coordinates": [-0.10, 51.50]})
    response = requests.post(f"{platform.url}/api/v1/reports", json=body, headers=headers, timeout=10)
    assert response.status_code == 201, response.text


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(platform):
    post(platform, 0)  # counted by the platform's worker: its cell's totals row exists to be held
    wait_until(lambda: scalar("SELECT count(*) FROM outbox WHERE done_at IS NULL") == 0, 60, "the first report counted")
    platform.kill("worker")
    for n in range(1, BACKLOG + 1):  # a backlog: nobody relays it yet
        post(platform, n)

    holder = db.engine.connect()
    try:
        holder.begin()
        holder.execute(text("SELECT * FROM heatmap_totals WHERE level = 12 FOR UPDATE"))
        platform.start_worker("doomed")
        # The batch has marked its reports counted and written their cells, and waits on the totals.
        wait_until(lambda: scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                  "AND wait_event_type = 'Lock'") == 1, 60, "the batch to block mid-way")
        batch = scalar("SELECT count(*) FROM outbox WHERE task = 'heatmap.apply_report' AND batch_id IS NOT NULL")
        assert batch == BACKLOG - 1  # one job carries all thirty: its first task and 29 more
        platform.kill("doomed")
        holder.rollback()
    finally:
        holder.close()
    assert scalar("SELECT count(*) FROM reports WHERE heatmap_counted_at IS NOT NULL") == 1  # nothing kept
    killed_at = time.monotonic()

    platform.start_worker("fresh")
    try:
        wait_until(lambda: scalar("SELECT count(*) FROM outbox WHERE done_at IS NULL") == 0, 240,
                   "a fresh worker to run the lost batch")
    except AssertionError:
        print(worker_log(platform))
        raise
    print(f"\na worker SIGKILLed mid-batch ({BACKLOG} heatmap updates): counted again "
          f"{time.monotonic() - killed_at:.0f} s after the kill")
    assert scalar("SELECT count(*) FROM reports WHERE heatmap_counted_at IS NOT NULL") == BACKLOG + 1
    assert scalar("SELECT sum(count) FROM heatmap_totals WHERE level = 12") == BACKLOG + 1
    assert scalar("SELECT count(*) FROM outbox WHERE task = 'heatmap.apply_report' AND done_at IS NOT NULL") == BACKLOG + 1
