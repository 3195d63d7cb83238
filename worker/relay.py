"""The outbox relay: moves committed follow-up tasks from PostgreSQL to RQ (backend/outbox/service.py).

It runs as a thread of every worker process. It sleeps on ``LISTEN outbox`` (woken within
milliseconds of a commit that added tasks), with a periodic poll as a safety net, and backs off
while Redis or PostgreSQL is unavailable; nothing is lost meanwhile, the tasks wait in the table.
``sweep()`` (a scheduled job) hands back to the relay tasks that RQ lost. When Redis returns after an
outage, or is found restarted (its ``run_id`` changed: it may have come back empty), the relay sweeps
at once, and at every poll for RECOVERY_S more (the worker that lost Redis mid-job forgets itself a
few seconds after Redis returns), instead of leaving lost tasks to the scheduled sweep's STALE_CLAIM_S.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from redis.exceptions import RedisError
from rq import Queue, Retry, Worker
from rq.job import Job, JobStatus
from sqlalchemy.exc import OperationalError

from backend.config import libpq_dsn
from backend.extensions import db, redis_conn
from backend.outbox import service as outbox

log = logging.getLogger(__name__)

# The job every outbox task runs as (worker/jobs.py), named so that RQ imports it in the worker.
RUN_TASK = "worker.jobs.run_outbox_task"
# The job a batch of tasks of one kind runs as (backend/outbox/service.py, run_batch).
RUN_BATCH = "worker.jobs.run_outbox_batch"
JOB_TIMEOUT_S = 600
# RQ retries a failing job this often before the sweep takes over (outbox.MAX_ATTEMPTS in all).
RQ_RETRY = Retry(max=3, interval=[2, 10, 60])
RELAY_BATCH = 500
LIVE_JOB_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
POLL_S = 2.0
# Woken, the relay waits this long for more commits before claiming: under a steady stream of reports it
# claims a few tasks per round trip instead of one (each claim costs the worker and PostgreSQL CPU).
GATHER_S = 0.05
WAIT_SLICE_S = 0.5
MAX_BACKOFF_S = 10.0
# Redis is tried again this often while it is away, so that the relay resumes soon after it returns.
REDIS_BACKOFF_S = 1.0
RECOVERY_S = 15.0
REDIS_CHECK_S = 1.0
RECENT_CLAIM_S = 2.0
POPPED_GRACE_S = 0.5


def job_id(task_id: int) -> str:
    return f"outbox-{task_id}"


def enqueue(tasks: Sequence[Any]) -> None:
    """Enqueue tasks (anything with ``id``, ``task``, ``queue``, ``payload``), a job each, in one Redis
    round trip."""
    enqueue_jobs([[task] for task in tasks])


def enqueue_jobs(jobs: Sequence[Sequence[Any]]) -> None:
    """Enqueue jobs (each a list of tasks of one kind: one task, or a batch named after its first) in
    one Redis round trip."""
    connection = redis_conn.client
    by_queue: dict[str, list[Sequence[Any]]] = {}
    for job in jobs:
        by_queue.setdefault(job[0].queue, []).append(job)
    with connection.pipeline() as pipe:
        for queue_name, queue_jobs in by_queue.items():
            Queue(queue_name, connection=connection).enqueue_many(
                [
                    Queue.prepare_data(
                        RUN_TASK if len(job) == 1 else RUN_BATCH,
                        args=(job[0].id,) if len(job) == 1 else ([task.id for task in job],),
                        job_id=job_id(job[0].id),
                        timeout=JOB_TIMEOUT_S,
                        retry=RQ_RETRY,
                        description=(f"{job[0].task} {job[0].payload}" if len(job) == 1
                                     else f"{len(job)} x {job[0].task} from task {job[0].id}"),
                    )
                    for job in queue_jobs
                ],
                pipeline=pipe,
            )
        pipe.execute()


def relay(limit: int = RELAY_BATCH) -> int:
    """Claim unclaimed tasks and enqueue them (tasks of a batched handler in batches, one job each);
    returns how many tasks. Raises RedisError (and claims nothing) when Redis is down."""
    claimed = outbox.claim(limit)
    if not claimed:
        db.session.rollback()
        return 0
    try:
        jobs = outbox.batches(claimed)
        outbox.mark_batches(jobs)
        enqueue_jobs(jobs)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return len(claimed)


def sweep(stale_after_s: float = outbox.STALE_CLAIM_S, limit: int = 5000) -> int:
    """Release claimed tasks that RQ no longer holds, for the relay to enqueue again."""
    stale = outbox.stale_claims(stale_after_s, limit)
    if not stale:
        db.session.rollback()
        return 0
    # A task claimed in a batch is held by its batch's job (named after the batch's first task).
    claimed = [task.id for task in stale]
    carriers = [task.carrier for task in stale]
    connection = redis_conn.client
    fetched = Job.fetch_many([job_id(i) for i in carriers], connection=connection)
    # A job Redis says is queued but that sits in no queue list was popped by a worker that lost
    # Redis before it could start it: nobody will run it.
    queued_ids: dict[str, set[str]] = {}
    for job in fetched:
        if job is not None and job.get_status(refresh=False) == JobStatus.QUEUED and job.origin not in queued_ids:
            queued_ids[job.origin] = set(Queue(job.origin, connection=connection).get_job_ids())
    lost = [
        i for i, job in zip(claimed, fetched)
        if job is None or job.get_status(refresh=False) not in LIVE_JOB_STATUSES
        or (job.get_status(refresh=False) == JobStatus.QUEUED and job.id not in queued_ids[job.origin])
        # A job "started" by a worker that stopped beating (killed mid-job) will not finish.
        or (job.get_status(refresh=False) == JobStatus.STARTED and not _worker_alive(job))
    ]
    # A live worker marks the job it pops started within milliseconds: one still "queued" in no queue
    # a moment later is really lost (without this look, a busy worker's next job was enqueued twice).
    popped = {i for i, job in zip(claimed, fetched) if i in lost and job is not None
              and job.get_status(refresh=False) == JobStatus.QUEUED}
    if popped:
        time.sleep(POPPED_GRACE_S)
        carrier_of = dict(zip(claimed, carriers))
        again = Job.fetch_many([job_id(carrier_of[i]) for i in sorted(popped)], connection=connection)
        started = {i for i, job in zip(sorted(popped), again)
                   if job is not None and job.get_status(refresh=False) != JobStatus.QUEUED}
        lost = [i for i in lost if i not in started]
    if lost:
        outbox.release(lost)
        log.info("outbox sweep released %d task(s) lost from RQ", len(lost))
    db.session.commit()
    return len(lost)


def _worker_alive(job: Job) -> bool:
    """Whether the worker running a job still beats: a worker's key lapses about a minute and a half
    after its last heartbeat, so a worker killed mid-job (SIGKILL, a lost node) is noticed then."""
    return bool(job.worker_name) and bool(job.connection.exists(f"{Worker.redis_worker_namespace_prefix}{job.worker_name}"))


class Relay(threading.Thread):
    def __init__(self, database_url: str, poll_s: float = POLL_S) -> None:
        super().__init__(name="outbox-relay", daemon=True)
        self.dsn = libpq_dsn(database_url)
        self.poll_s = poll_s
        self.stopping = threading.Event()
        self.listening = threading.Event()  # set once LISTEN is in place (tests wait on it)
        self.relayed = 0
        self.redis_lost = False
        self.redis_run_id: str | None = None
        self.redis_checked_at = 0.0
        self.recovering_until = 0.0

    def stop(self) -> None:
        self.stopping.set()

    def drain(self) -> int:
        """Relay until nothing is left; returns how many tasks were enqueued."""
        total = 0
        try:
            self.check_redis()
            while not self.stopping.is_set():
                count = relay()
                total += count
                if count < RELAY_BATCH:
                    break
        finally:
            db.session.remove()
        self.relayed += total
        return total

    def check_redis(self) -> None:
        """After an outage or a restart of Redis, release at once the tasks it lost (see the module's
        docstring). Raises RedisError while Redis is away."""
        now = time.monotonic()
        if not self.redis_lost and now - self.redis_checked_at < REDIS_CHECK_S:
            return
        run_id = redis_conn.client.info("server")["run_id"]
        self.redis_checked_at = now
        if self.redis_lost or (self.redis_run_id is not None and run_id != self.redis_run_id):
            log.info("Redis is back: releasing the tasks it lost at once")
            self.recovering_until = now + RECOVERY_S
        self.redis_lost = False
        self.redis_run_id = run_id
        # Tasks claimed in the last seconds are left alone: a worker may have just taken their job.
        if now < self.recovering_until and (released := sweep(stale_after_s=RECENT_CLAIM_S)):
            log.info("released %d task(s) Redis had lost", released)

    def run(self) -> None:
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as listener:
                    listener.execute(f"LISTEN {outbox.CHANNEL}")
                    self.drain()  # whatever was committed before we listened
                    self.listening.set()
                    backoff = 0.5
                    last_drain = time.monotonic()
                    while not self.stopping.is_set():
                        # Short slices, so that stop() is honoured within half a second.
                        woke = any(True for _ in listener.notifies(timeout=WAIT_SLICE_S, stop_after=1))
                        if woke:
                            self.stopping.wait(GATHER_S)
                            for _ in listener.notifies(timeout=0):
                                pass  # the commits meanwhile: this drain claims their tasks too
                        if woke or time.monotonic() - last_drain >= self.poll_s:
                            count = self.drain()
                            last_drain = time.monotonic()
                            if count and not woke:
                                log.info("relay poll found %d task(s)", count)
            except (RedisError, OperationalError, psycopg.OperationalError) as exc:
                if isinstance(exc, RedisError):
                    self.redis_lost = True
                    backoff = min(backoff, REDIS_BACKOFF_S)
                log.warning("outbox relay paused (%s: %s); retrying in %.1fs", type(exc).__name__, exc, backoff)
                self.stopping.wait(backoff)
                backoff = min(REDIS_BACKOFF_S if self.redis_lost else MAX_BACKOFF_S, backoff * 2)


def start_relay(database_url: str) -> Relay:
    relay = Relay(database_url)
    relay.start()
    return relay


def relay_pending_now() -> tuple[int, int]:
    """Release every lost task and enqueue everything pending at once; (released, enqueued)."""
    released = sweep(stale_after_s=0)
    enqueued = 0
    while count := relay():
        enqueued += count
    return released, enqueued


if __name__ == "__main__":
    # ``python -m worker.relay``: what the workers do continuously, once, now (docs/operations.md).
    from worker.app import worker_app

    worker_app()
    released, enqueued = relay_pending_now()
    print(f"released {released} lost task(s); enqueued {enqueued} task(s)")
