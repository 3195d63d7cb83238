"""Follow-up work: queued with the report, run exactly once, never lost while Redis is down."""

from __future__ import annotations

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import select

from backend.extensions import db
from backend.outbox import service as outbox
from backend.outbox.models import OutboxTask
from tests.factories import report_body
from worker import queues
from worker.__main__ import SafeTravelWorker

URL = "/api/v1/reports"


def run_worker(redis_url: str) -> None:
    """Drain every queue in-process, as `python -m worker --burst` would."""
    SafeTravelWorker(list(queues.ALL), connection=Redis.from_url(redis_url)).work(burst=True)


def tasks() -> list[OutboxTask]:
    db.session.expire_all()
    return db.session.scalars(select(OutboxTask).order_by(OutboxTask.id)).all()


def test_worker_runs_each_follow_up_once(client, commuter, settings):
    client.post(URL, json=report_body(), headers=commuter.headers())
    run_worker(settings.redis_url)

    done = tasks()
    assert [(t.task, t.attempts, t.done_at is not None) for t in done] == [
        ("heatmap.apply_report", 1, True),
        ("alerts.check_cluster", 1, True),
    ]


def test_redis_down_during_post_still_answers_201_and_work_runs_when_it_returns(
    client, commuter, disposable_redis, settings
):
    disposable_redis.stop()

    response = client.post(URL, json=report_body(), headers=commuter.headers())

    assert response.status_code == 201
    assert [t.done_at for t in tasks()] == [None, None]
    disposable_redis.start()
    # The scheduled sweep (worker.jobs.sweep_outbox) finds the tasks Redis never received.
    assert outbox.sweep(grace_s=0) == 2
    assert outbox.sweep(grace_s=0) == 0  # already queued: not queued twice
    run_worker(disposable_redis.url)
    assert [(t.attempts, t.done_at is not None) for t in tasks()] == [(1, True), (1, True)]
    assert client.get(f"{URL}/{response.json['id']}", headers=commuter.headers()).status_code == 200


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


def test_dispatched_job_is_retried_by_rq_before_the_sweep_takes_over(redis_client):
    task = outbox.add("missing-handler", queues.HEATMAP, {})
    db.session.commit()
    outbox.dispatch([task])
    job = Queue(queues.HEATMAP, connection=redis_client).fetch_job(outbox.job_id(task.id))
    assert job.retries_left == outbox.RQ_RETRY.max


def test_sweep_ignores_finished_and_exhausted_tasks():
    done = outbox.add("x", queues.HEATMAP, {})
    exhausted = outbox.add("x", queues.HEATMAP, {})
    db.session.flush()
    done.done_at = db.session.scalar(select(OutboxTask.created_at).where(OutboxTask.id == done.id))
    exhausted.attempts = outbox.MAX_ATTEMPTS
    db.session.commit()
    assert outbox.sweep(grace_s=0) == 0


def test_dispatch_returns_false_and_keeps_the_task_when_redis_is_down(disposable_redis):
    disposable_redis.stop()
    task = outbox.add("x", queues.HEATMAP, {})
    db.session.commit()
    assert outbox.dispatch([task]) is False
    assert tasks()[0].done_at is None
