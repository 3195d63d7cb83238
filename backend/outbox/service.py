"""Record follow-up work with the data, relay it to RQ, run it exactly once.

The life of a task (a transactional outbox with a relay):
1. ``add()`` (or a producer's own SQL) inserts it in the producer's transaction and sends
   ``NOTIFY outbox``, so the data and its follow-up work commit together: nothing is lost, and the
   web request never talks to Redis;
2. the relay (a thread of every worker, ``worker/relay.py``) wakes on the notification, claims
   unclaimed tasks (``FOR UPDATE SKIP LOCKED``: several relays never claim one task twice),
   enqueues RQ jobs ``outbox-<id>`` in one pipeline and marks them claimed; if Redis is down it
   rolls back and tries again later: the tasks wait in PostgreSQL;
3. ``sweep()``, scheduled every few seconds, releases tasks that were claimed long ago but are
   neither done nor held by RQ (lost with a Redis restart, or failed for good before a fix), so
   that the relay enqueues them again;
4. ``run()`` (in the worker) locks the task, skips it if done, runs its handler and marks it done
   in the same transaction: a job delivered twice has its effects once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from rq import Queue, Retry, Worker
from rq.job import Job, JobStatus
from sqlalchemy import delete, select, text, update

from backend.extensions import db, redis_conn
from backend.logs import current_request_id, request_id_var
from backend.outbox.models import OutboxTask

log = logging.getLogger(__name__)

CHANNEL = "outbox"
RUN_TASK = "worker.jobs.run_outbox_task"
JOB_TIMEOUT_S = 600
# RQ retries a failing job this often before the sweep takes over; a task is tried at most
# MAX_ATTEMPTS times in all, then left for an operator (docs/operations.md).
RQ_RETRY = Retry(max=3, interval=[2, 10, 60])
MAX_ATTEMPTS = 10
RELAY_BATCH = 500
# A claimed task not done after this long, and not in RQ, is released for the relay again.
STALE_CLAIM_S = 60
LIVE_JOB_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
NOTIFY_SQL = text(f"SELECT pg_notify('{CHANNEL}', '')")


def job_id(task_id: int) -> str:
    return f"outbox-{task_id}"


def add(task: str, queue: str, payload: dict[str, Any]) -> OutboxTask:
    """Record a task in the current transaction; the relay enqueues it once that commits."""
    row = OutboxTask(task=task, queue=queue, payload=payload, request_id=current_request_id())
    db.session.add(row)
    db.session.execute(NOTIFY_SQL)
    return row


def enqueue(tasks: Sequence[Any]) -> None:
    """Enqueue tasks (anything with ``id``, ``task``, ``queue``, ``payload``) in one Redis round trip."""
    connection = redis_conn.client
    by_queue: dict[str, list[Any]] = {}
    for task in tasks:
        by_queue.setdefault(task.queue, []).append(task)
    with connection.pipeline() as pipe:
        for queue_name, queue_tasks in by_queue.items():
            Queue(queue_name, connection=connection).enqueue_many(
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


# The claimed rows are picked once (a MATERIALIZED CTE): a LIMIT ... SKIP LOCKED subquery inside an
# UPDATE may be rescanned by a nested loop and claim more than ``limit`` rows.
_CLAIM = text("""
    WITH claimed AS MATERIALIZED (
        SELECT id FROM outbox
        WHERE done_at IS NULL AND enqueued_at IS NULL AND attempts < :max_attempts
        ORDER BY id LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE outbox SET enqueued_at = clock_timestamp()
    FROM claimed WHERE outbox.id = claimed.id
    RETURNING outbox.id, outbox.task, outbox.queue, outbox.payload
""")


def relay(limit: int = RELAY_BATCH) -> int:
    """Claim unclaimed tasks and enqueue them; returns how many. Raises RedisError (and claims
    nothing) when Redis is down."""
    claimed = db.session.execute(_CLAIM, {"limit": limit, "max_attempts": MAX_ATTEMPTS}).all()
    if not claimed:
        db.session.rollback()
        return 0
    try:
        enqueue(claimed)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return len(claimed)


def sweep(stale_after_s: float = STALE_CLAIM_S, limit: int = 5000) -> int:
    """Release claimed tasks that RQ no longer holds, for the relay to enqueue again."""
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=stale_after_s)
    claimed = db.session.execute(
        select(OutboxTask.id)
        .where(OutboxTask.done_at.is_(None), OutboxTask.enqueued_at < cutoff, OutboxTask.attempts < MAX_ATTEMPTS)
        .order_by(OutboxTask.id)
        .limit(limit)
    ).scalars().all()
    if not claimed:
        db.session.rollback()
        return 0
    connection = redis_conn.client
    jobs = Job.fetch_many([job_id(i) for i in claimed], connection=connection)
    # A job Redis says is queued but that sits in no queue list was popped by a worker that lost
    # Redis before it could start it: nobody will run it.
    queued_ids: dict[str, set[str]] = {}
    for job in jobs:
        if job is not None and job.get_status(refresh=False) == JobStatus.QUEUED and job.origin not in queued_ids:
            queued_ids[job.origin] = set(Queue(job.origin, connection=connection).get_job_ids())
    lost = [
        i for i, job in zip(claimed, jobs)
        if job is None or job.get_status(refresh=False) not in LIVE_JOB_STATUSES
        or (job.get_status(refresh=False) == JobStatus.QUEUED and job.id not in queued_ids[job.origin])
        # A job "started" by a worker that stopped beating (killed mid-job) will not finish.
        or (job.get_status(refresh=False) == JobStatus.STARTED and not _worker_alive(job))
    ]
    if lost:
        db.session.execute(update(OutboxTask).where(OutboxTask.id.in_(lost)).values(enqueued_at=None))
        db.session.execute(NOTIFY_SQL)
        log.info("outbox sweep released %d task(s) lost from RQ", len(lost))
    db.session.commit()
    return len(lost)


def _worker_alive(job: Job) -> bool:
    """Whether the worker running a job still beats: a worker's key lapses about a minute and a half
    after its last heartbeat, so a worker killed mid-job (SIGKILL, a lost node) is noticed then."""
    return bool(job.worker_name) and bool(job.connection.exists(f"{Worker.redis_worker_namespace_prefix}{job.worker_name}"))


def run(task_id: int, handlers: dict[str, Callable[..., Any]]) -> str:
    """Run one task exactly once: its handler's writes and its ``done_at`` commit together."""
    task = db.session.scalar(select(OutboxTask).where(OutboxTask.id == task_id).with_for_update())
    if task is None:
        db.session.rollback()
        return "gone"
    token = request_id_var.set(task.request_id or f"task-{task_id}")
    try:
        return _run_locked(task, handlers)
    finally:
        request_id_var.reset(token)


def _run_locked(task: OutboxTask, handlers: dict[str, Callable[..., Any]]) -> str:
    task_id, name = task.id, task.task
    if task.done_at is not None:
        db.session.rollback()
        return "already done"
    try:
        handlers[name](**task.payload)
    except Exception as exc:
        db.session.rollback()
        db.session.execute(
            update(OutboxTask)
            .where(OutboxTask.id == task_id)
            .values(attempts=OutboxTask.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:1000])
        )
        db.session.commit()
        log.warning("outbox task %d %s failed: %s", task_id, name, exc)
        raise
    task.attempts += 1
    task.done_at = datetime.now(timezone.utc)
    task.last_error = None
    db.session.commit()
    log.info("outbox task %d %s done", task_id, name)
    return "done"


def purge_done(older_than: timedelta = timedelta(days=1)) -> int:
    """Forget finished tasks after a while; they are kept a day for inspection."""
    cutoff = datetime.now(timezone.utc) - older_than
    result = db.session.execute(delete(OutboxTask).where(OutboxTask.done_at < cutoff))
    db.session.commit()
    return result.rowcount
