"""Erasure raced against the worker counting the same person's reports (issue: DELETE /me answered 503
while the worker's counting and cluster update held the locks erasure wanted, in the other order)."""

from __future__ import annotations

import random
import time

import requests

from tests.factories import Caller, new_key, report_body
from tests.faults.conftest import scalar, wait_until, worker_log

RACES = 100
SPOT = {"type": "Point", "coordinates": [-0.1145, 51.4627]}


def test_erasure_raced_against_the_worker_100_times_answers_204_and_leaves_each_count_once(platform):
    session = requests.Session()

    def report(caller: Caller) -> int:
        return session.post(f"{platform.url}/api/v1/reports", json=report_body(location=SPOT), timeout=10,
                            headers=caller.headers(**{"Idempotency-Key": new_key()})).status_code

    burst = Caller("race-burst")  # a cluster at the spot: each new report there also updates it
    assert [report(burst) for _ in range(5)] == [201] * 5
    wait_until(lambda: scalar("SELECT count(*) FROM outbox WHERE done_at IS NULL") == 0, 60, "the cluster to form")

    erasures = []
    started = time.monotonic()
    for n in range(RACES):
        person = Caller(f"race-{n}")
        assert report(person) == 201 and report(person) == 201
        if n % 2:  # half the time, while the worker is between the person's two reports
            wait_until(lambda: scalar("SELECT count(*) FROM reports r JOIN users u ON u.id = r.author_id "
                                      "WHERE u.firebase_uid = :uid AND r.heatmap_counted_at IS NOT NULL",
                                      uid=person.uid) > 0, 10, "the worker to count a report")
        time.sleep(random.uniform(0, 0.03))
        response = session.delete(f"{platform.url}/api/v1/me", headers=person.headers(), timeout=30)
        erasures.append(response.status_code)
    raced_s = time.monotonic() - started
    try:
        wait_until(lambda: scalar("SELECT count(*) FROM outbox WHERE done_at IS NULL") == 0, 120, "the worker")
    except AssertionError:
        print(worker_log(platform))
        raise
    # Every report that was counted before its author went is kept once as a retained count; the
    # others were never counted. Nothing counted twice, nothing lost from the map by an erasure.
    totals = scalar("SELECT coalesce(sum(count), 0) FROM heatmap_totals WHERE level = 12")
    retained = scalar("SELECT coalesce(sum(count), 0) FROM heatmap_retained WHERE level = 12")
    burst_counted = scalar("SELECT count(*) FROM reports WHERE heatmap_counted_at IS NOT NULL")
    print(f"\nerasure raced against the worker {RACES} times ({raced_s:.0f} s): answers {set(erasures)}; "
          f"{retained} of {2 * RACES} erased reports had been counted (kept once each), heatmap total {totals}")
    assert erasures == [204] * RACES
    assert scalar("SELECT count(*) FROM reports") == burst_counted == 5  # only the burst's remain
    assert totals == burst_counted + retained  # each erased report counted at most once, and kept
    assert retained <= 2 * RACES
