"""Periodic work, on RQ's own cron scheduler (``python -m worker.scheduler``)."""

from __future__ import annotations

from rq.cron import CronScheduler

from backend import queues
from worker import jobs

# (job, queue, interval in seconds)
PERIODIC = (
    (jobs.sweep_outbox, queues.MAINTENANCE, 10),
    (jobs.deliver_webhooks, queues.WEBHOOKS, 5),
    (jobs.purge_outbox, queues.MAINTENANCE, 3600),
    (jobs.purge_exports, queues.MAINTENANCE, 3600),
    (jobs.purge_expired_reports, queues.MAINTENANCE, 86400),
)


def register_all(scheduler: CronScheduler) -> None:
    for func, queue, interval_s in PERIODIC:
        scheduler.register(func, queue, interval=interval_s, job_timeout=300)
