"""Follow-up work: recorded with the report, relayed to RQ, run exactly once, never lost while
Redis is down."""

from __future__ import annotations

import time

import pytest
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import select, update

from backend import queues
from backend.extensions import db
from backend.outbox import service as outbox
from backend.outbox.models import OutboxTask
from tests.appctx import app_context
from tests.factories import report_body
from worker import relay as outbox_relay
from worker.__main__ import SafeTravelWorker
from worker.relay import Relay

URL = "/api/v1/reports"


def run_worker(redis_url: str) -> None:
    """Drain every queue in-process, as `python -m worker --burst` would."""
    with app_context():  # as worker/app.py pushes it for a worker's lifetime
        SafeTravelWorker(list(queues.ALL), connection=Redis.from_url(redis_url)).work(burst=True)


def tasks() -> list[OutboxTask]:
    db.session.expire_all()
    return db.session.scalars(select(OutboxTask).order_by(OutboxTask.id)).all()


def test_relayed_follow_ups_run_once_each(client, commuter, settings):
    client.post(URL, json=report_body(), headers=commuter.headers())
    assert outbox_relay.relay() == 3
    assert outbox_relay.relay() == 0  # claimed: never enqueued twice
    run_worker(settings.redis_url)

    # No partner subscribes to report.created: no webhooks task (tests/webhooks: one when one does).
    assert [(t.task, t.attempts, t.done_at is not None) for t in tasks()] == [
        ("heatmap.apply_report", 1, True),
        ("alerts.check_cluster", 1, True),
        ("streets.report_edges", 1, True),
    ]


def test_redis_down_during_post_still_answers_201_and_work_runs_when_it_returns(
    client, commuter, disposable_redis
):
    disposable_redis.stop()

    response = client.post(URL, json=report_body(), headers=commuter.headers())

    assert response.status_code == 201
    with pytest.raises(RedisError):
        outbox_relay.relay()
    assert [(t.enqueued_at, t.done_at) for t in tasks()] == [(None, None)] * 3  # waiting, unclaimed
    disposable_redis.start()
    assert outbox_relay.relay() == 3
    run_worker(disposable_redis.url)
    assert [(t.attempts, t.done_at is not None) for t in tasks()] == [(1, True)] * 3
    assert client.get(f"{URL}/{response.json['id']}", headers=commuter.headers()).status_code == 200


def test_tasks_lost_from_redis_are_released_by_the_sweep_and_run_once(client, commuter, disposable_redis):
    client.post(URL, json=report_body(), headers=commuter.headers())
    assert outbox_relay.relay() == 3
    disposable_redis.stop()  # a Redis without persistence restarts empty: the jobs are gone
    disposable_redis.start()

    assert outbox_relay.sweep(stale_after_s=0) == 3
    assert outbox_relay.relay() == 3
    assert outbox_relay.sweep(stale_after_s=0) == 0  # back in RQ: left alone
    run_worker(disposable_redis.url)
    assert [(t.attempts, t.done_at is not None) for t in tasks()] == [(1, True)] * 3


def test_a_job_popped_by_a_worker_that_then_lost_redis_is_released_by_the_sweep(redis_client):
    """Its hash still says queued, but it is in no queue list: nobody would ever run it."""
    task = outbox.add("x", queues.HEATMAP, {})
    db.session.commit()
    assert outbox_relay.relay() == 1
    assert outbox_relay.sweep(stale_after_s=0) == 0  # queued, and in the queue: left alone
    redis_client.lrem(f"rq:queue:{queues.HEATMAP}", 0, outbox_relay.job_id(task.id))  # what a worker's BLPOP does
    assert outbox_relay.sweep(stale_after_s=0) == 1
    assert outbox_relay.relay() == 1  # enqueued again
    assert outbox_relay.job_id(task.id) in Queue(queues.HEATMAP, connection=redis_client).get_job_ids()


def test_readyz_reports_redis_down(client, disposable_redis):
    assert client.get("/readyz").status_code == 200
    disposable_redis.stop()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["database"] == "ok" and response.json["redis"].startswith("unavailable")


def test_a_task_delivered_twice_has_its_effect_once():
    calls = []
    task = outbox.add("count", queues.HEATMAP, {"n": 1})
    db.session.commit()
    handlers = {"count": lambda n: calls.append(n)}

    assert outbox.run(task.id, handlers) == "done"
    assert outbox.run(task.id, handlers) == "already done"
    assert calls == [1]


def test_a_failing_task_records_the_attempt_and_stays_pending():
    task = outbox.add("boom", queues.HEATMAP, {})
    db.session.commit()

    def boom():
        raise RuntimeError("database said no")

    with pytest.raises(RuntimeError):
        outbox.run(task.id, {"boom": boom})
    (stored,) = tasks()
    assert (stored.attempts, stored.done_at, stored.last_error) == (1, None, "RuntimeError: database said no")


def test_relayed_job_is_retried_by_rq_before_the_sweep_takes_over(redis_client):
    task = outbox.add("x", queues.HEATMAP, {})
    db.session.commit()
    outbox_relay.relay()
    job = Queue(queues.HEATMAP, connection=redis_client).fetch_job(outbox_relay.job_id(task.id))
    assert job.retries_left == outbox_relay.RQ_RETRY.max


def test_exhausted_tasks_are_left_for_an_operator():
    task = outbox.add("x", queues.HEATMAP, {})
    db.session.flush()
    db.session.execute(update(OutboxTask).where(OutboxTask.id == task.id).values(attempts=outbox.MAX_ATTEMPTS))
    db.session.commit()
    assert outbox_relay.relay() == 0
    assert outbox_relay.sweep(stale_after_s=0) == 0


def test_relay_thread_wakes_on_commit(app, real_commits, client, commuter, settings, redis_client):
    relay = Relay(settings.database_url, poll_s=30)  # a long poll: only NOTIFY can wake it in time
    relay.start()
    try:
        assert relay.listening.wait(15)
        client.post(URL, json=report_body(), headers=commuter.headers())
        deadline = time.monotonic() + 5
        while relay.relayed < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert relay.relayed == 3  # heatmap, cluster check, the report's nearby streets (no partner subscribes)
        assert redis_client.llen("rq:queue:heatmap") == 2 and redis_client.llen("rq:queue:alerts") == 1
    finally:
        relay.stop()
        relay.join(timeout=35)
