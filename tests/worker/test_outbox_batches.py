"""A backlog of follow-up work runs in batches: pending tasks of one kind, one job and one transaction,
each task done exactly once (backend/outbox/service.py, run_batch)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import func, select, text

from backend import queues
from backend.alerts.models import Alert, Cluster
from backend.extensions import db
from backend.heatmap import counting
from backend.outbox import service as outbox
from backend.outbox.models import OutboxTask
from tests.appctx import app_context
from tests.factories import Caller, report_body, route_body
from worker import relay as outbox_relay
from worker.__main__ import SafeTravelWorker

URL = "/api/v1/reports"
AGGREGATES = ("heatmap_cells", "heatmap_totals", "heatmap_reporters", "heatmap_public_units", "heatmap_council_cells")


def run_worker(redis_url: str) -> None:
    with app_context():
        SafeTravelWorker(list(queues.ALL), connection=Redis.from_url(redis_url)).work(burst=True)


def snapshot() -> dict[str, list]:
    db.session.expire_all()
    return {table: sorted(map(tuple, db.session.execute(text(f"SELECT * FROM {table}")).all())) for table in AGGREGATES}


def post_backlog(client) -> list[str]:
    """Seven reports from three people: points in several places, and routes."""
    ids = []
    for n in range(7):
        caller = Caller(f"batch-commuter-{n % 3}")
        body = (route_body() if n % 3 == 2 else
                report_body(location={"type": "Point", "coordinates": [-0.1145 + n * 0.003, 51.4627 + n * 0.002]}))
        response = client.post(URL, json=body, headers=caller.headers())
        assert response.status_code == 201, response.json
        ids.append(response.json["id"])
    return ids


def test_a_backlog_is_relayed_as_one_job_per_kind_and_counts_each_report_once(client, settings, redis_client):
    report_ids = post_backlog(client)
    # The same report's task twice in the batch (a replayed event): still counted once.
    outbox.add("heatmap.apply_report", queues.HEATMAP, {"report_id": report_ids[0]})
    db.session.commit()

    # Three tasks a report (heatmap, cluster check, the streets' nearby edges; no partner subscribes to
    # report.created, so no webhooks task), but route reports (unsafe_route) need no cluster check; plus
    # the replayed one.
    assert outbox_relay.relay() == 7 * 3 - 2 + 1
    heatmap_jobs = Queue(queues.HEATMAP, connection=redis_client).get_jobs()
    # One batch of the heatmap's tasks and one of the streets' nearby edges, both on the heatmap queue.
    assert [(job.func_name, len(job.args[0])) for job in heatmap_jobs] == [(outbox_relay.RUN_BATCH, 8), (outbox_relay.RUN_BATCH, 7)]
    assert [len(job.args[0]) for job in Queue(queues.ALERTS, connection=redis_client).get_jobs()] == [5]
    run_worker(settings.redis_url)

    db.session.expire_all()
    done = db.session.execute(select(OutboxTask.task, OutboxTask.attempts, OutboxTask.done_at.is_not(None))).all()
    assert sorted(set(done)) == [("alerts.check_cluster", 1, True), ("heatmap.apply_report", 1, True),
                                 ("streets.report_edges", 1, True)]
    batched = snapshot()
    # At level 12 (cells ~10 km across) each of these reports lies in one cell: counted once each.
    assert sum(count for level, *_rest, count in batched["heatmap_totals"] if level == 12) == len(report_ids)
    first = db.session.scalar(select(OutboxTask.id).where(OutboxTask.task == "heatmap.apply_report").order_by(OutboxTask.id))
    assert outbox.run_batch([first]) == "already done"

    # The same reports counted one by one, as before batches, give exactly the same aggregates.
    for table in AGGREGATES:
        db.session.execute(text(f"DELETE FROM {table}"))
    db.session.execute(text("UPDATE reports SET heatmap_counted_at = NULL"))
    with app_context():  # as in a worker
        for report_id in report_ids:
            assert counting.apply_report(report_id)
    assert snapshot() == batched


def test_a_batch_that_fails_runs_its_tasks_one_by_one_and_only_the_bad_one_stays_pending(client, commuter):
    good = client.post(URL, json=report_body(), headers=commuter.headers()).json["id"]
    tasks = [outbox.add("heatmap.apply_report", queues.HEATMAP, {"report_id": good}),
             outbox.add("heatmap.apply_report", queues.HEATMAP, {"report_id": "not-a-uuid"})]
    db.session.commit()
    ids = [t.id for t in tasks]

    with app_context(), pytest.raises(Exception, match="not-a-uuid"):  # as in a worker
        outbox.run_batch(ids)

    db.session.expire_all()
    stored = {t.id: t for t in db.session.scalars(select(OutboxTask).where(OutboxTask.id.in_(ids)))}
    assert stored[ids[0]].done_at is not None and stored[ids[0]].attempts == 1
    assert stored[ids[1]].done_at is None and stored[ids[1]].attempts == 1 and "not-a-uuid" in stored[ids[1]].last_error
    assert db.session.scalar(text("SELECT count(*) FROM reports WHERE heatmap_counted_at IS NOT NULL")) == 1
    assert outbox.run_batch(ids[:1]) == "already done"


def test_mixed_claims_are_grouped_by_kind_in_batches_of_at_most_the_batch_size():
    claimed = [SimpleNamespace(id=i, task=name, queue=queues.HEATMAP, payload={})
               for i, name in enumerate(["heatmap.apply_report", "alerts.check_cluster", "alerts.send",
                                         "heatmap.apply_report", "heatmap.apply_report", "alerts.send",
                                         "alerts.check_cluster", "heatmap.apply_report", "unknown.task"], start=1)]

    jobs = outbox.batches(claimed, size=3)

    # alerts.send commits on its own: never batched; an unknown task runs (and fails) alone.
    assert [[t.id for t in job] for job in jobs] == [[1, 4, 5], [2, 7], [3], [6], [8], [9]]


def test_the_sweep_releases_a_lost_batch_whole_and_it_runs_again_once(client, disposable_redis):
    report_ids = post_backlog(client)
    assert outbox_relay.relay() == 19  # three tasks a report, but no cluster check for the two routes
    disposable_redis.stop()  # restarted empty: the batch jobs are gone
    disposable_redis.start()

    assert outbox_relay.sweep(stale_after_s=0) == 19
    db.session.expire_all()
    assert db.session.scalar(select(OutboxTask.id).where(OutboxTask.batch_id.is_not(None))) is None
    assert outbox_relay.relay() == 19
    assert outbox_relay.sweep(stale_after_s=0) == 0  # every task's batch job is in RQ again: left alone
    run_worker(disposable_redis.url)

    assert db.session.scalar(text("SELECT count(*) FROM outbox WHERE done_at IS NULL OR attempts <> 1")) == 0
    assert db.session.scalar(text("SELECT count(*) FROM reports WHERE heatmap_counted_at IS NOT NULL")) == len(report_ids)



def test_a_batch_of_cluster_checks_makes_one_alert_and_counts_every_report_as_one_by_one_would(app):
    from tests.alerts.test_clusters import NIGHT, moved, report

    for i in range(7):
        report(f"person-{i % 5}", moved(20 * i, 10 * i), NIGHT + timedelta(minutes=10 * i))
    ids = db.session.scalars(select(OutboxTask.id).where(OutboxTask.task == "alerts.check_cluster")
                             .order_by(OutboxTask.id)).all()
    assert len(ids) == 7

    with app.app_context():  # as in a worker
        assert outbox.run_batch(ids) == "7 done"

    db.session.expire_all()
    (cluster,) = db.session.scalars(select(Cluster)).all()
    assert cluster.report_count == 7
    assert db.session.scalar(select(func.count()).select_from(Alert)) == 1
    assert db.session.scalar(text("SELECT count(*) FROM cluster_reports")) == 7
