"""Record follow-up work with the data, hand it to RQ, run it exactly once.

The life of a task:
1. ``add()`` inserts it in the caller's transaction (the report and its follow-ups commit together);
2. after the commit, ``dispatch()`` enqueues an RQ job ``outbox-<id>``; if Redis is down it logs and
   returns, and the task waits in PostgreSQL;
3. ``sweep()``, scheduled every few seconds, enqueues tasks that are pending and not in RQ (never
   dispatched, lost with a Redis restart, or failed for good before a fix);
4. ``run()`` (in the worker) locks the row, skips it if done, runs the handler and marks it done in
   the same transaction: a job delivered twice has its effects once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.job import Job, JobStatus
from sqlalchemy import delete, select, update

from backend.extensions import db, redis_conn
from backend.outbox.models import OutboxTask

log = logging.getLogger(__name__)

RUN_TASK = "worker.jobs.run_outbox_task"
JOB_TIMEOUT_S = 600
# RQ retries a failing job this often before the sweep takes over (a task is tried at most
# MAX_ATTEMPTS times in all, then left for an operator: see docs/operations.md).
RQ_RETRY = Retry(max=3, interval=[2, 10, 60])
MAX_ATTEMPTS = 10
SWEEP_GRACE_S = 5
LIVE_JOB_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def job_id(task_id: int) -> str:
    return f"outbox-{task_id}"


def add(task: str, queue: str, payload: dict[str, Any]) -> OutboxTask:
    """Record a task in the current transaction; dispatch it after the commit."""
    row = OutboxTask(task=task, queue=queue, payload=payload)
    db.session.add(row)
    return row


def dispatch(tasks: Iterable[OutboxTask]) -> bool:
    """Enqueue committed tasks on RQ in one round trip. False (and nothing lost) when Redis is down."""
    tasks = list(tasks)
    if not tasks:
        return True
    try:
        _enqueue(tasks)
    except RedisError as exc:
        log.warning("Redis unavailable; %d task(s) wait in the outbox for the sweep: %s", len(tasks), exc)
        return False
    return True


def _enqueue(tasks: list[OutboxTask]) -> None:
    connection = redis_conn.client
    by_queue: dict[str, list[OutboxTask]] = {}
    for task in tasks:
        by_queue.setdefault(task.queue, []).append(task)
    with connection.pipeline() as pipe:
        for queue_name, queue_tasks in by_queue.items():
            queue = Queue(queue_name, connection=connection)
            queue.enqueue_many(
                [
                    Queue.prepare_data(
                        RUN_TASK,
                        args=(task.id,),
                        job_id=job_id(task.id),
                        timeout=JOB_TIMEOUT_S,
                        retry=RQ_RETRY,
                        description=f"{task.task} {task.payload}",
                    )
                    for task in queue_tasks
                ],
                pipeline=pipe,
            )
        pipe.execute()


def sweep(grace_s: float = SWEEP_GRACE_S, limit: int = 5000) -> int:
    """Enqueue pending tasks that RQ does not hold; returns how many were enqueued."""
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=grace_s)
    pending = db.session.scalars(
        select(OutboxTask)
        .where(OutboxTask.done_at.is_(None), OutboxTask.created_at < cutoff, OutboxTask.attempts < MAX_ATTEMPTS)
        .order_by(OutboxTask.id)
        .limit(limit)
    ).all()
    if not pending:
        return 0
    jobs = Job.fetch_many([job_id(t.id) for t in pending], connection=redis_conn.client)
    lost = [task for task, job in zip(pending, jobs) if job is None or job.get_status(refresh=False) not in LIVE_JOB_STATUSES]
    if lost:
        _enqueue(lost)
        db.session.execute(
            update(OutboxTask).where(OutboxTask.id.in_([t.id for t in lost])).values(enqueued_at=datetime.now(timezone.utc))
        )
    db.session.commit()
    if lost:
        log.info("outbox sweep enqueued %d task(s)", len(lost))
    return len(lost)


def run(task_id: int, handlers: dict[str, Callable[..., Any]]) -> str:
    """Run one task exactly once: its handler's writes and its ``done_at`` commit together."""
    task = db.session.scalar(select(OutboxTask).where(OutboxTask.id == task_id).with_for_update())
    if task is None:
        db.session.rollback()
        return "gone"
    if task.done_at is not None:
        db.session.rollback()
        return "already done"
    handler = handlers[task.task]
    try:
        handler(**task.payload)
    except Exception as exc:
        db.session.rollback()
        db.session.execute(
            update(OutboxTask)
            .where(OutboxTask.id == task_id)
            .values(attempts=OutboxTask.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:1000])
        )
        db.session.commit()
        raise
    task.attempts += 1
    task.done_at = datetime.now(timezone.utc)
    task.last_error = None
    db.session.commit()
    return "done"


def purge_done(older_than: timedelta = timedelta(days=1)) -> int:
    """Forget finished tasks after a while; they are kept a day for inspection."""
    cutoff = datetime.now(timezone.utc) - older_than
    result = db.session.execute(delete(OutboxTask).where(OutboxTask.done_at < cutoff))
    db.session.commit()
    return result.rowcount
