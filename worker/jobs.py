"""RQ job functions. Each runs inside the worker's app context, calls one service and owns its
transaction: it commits what the service flushed (STYLE.md: the edge commits)."""

from __future__ import annotations

from backend.config import current_settings
from backend.exports import service as exports
from backend.extensions import db
from backend.outbox import service as outbox
from backend.reports import service as reports
from backend.webhooks import delivery as webhooks
from worker import relay


def run_outbox_task(task_id: int) -> str:
    """Carry out one outbox task exactly once, with the handler the registry names for it
    (backend/outbox/registry.py; outbox.run commits the task's transaction)."""
    return outbox.run(task_id)


def run_outbox_batch(task_ids: list[int]) -> str:
    """Carry out a batch of outbox tasks of one kind exactly once, in one transaction (outbox.run_batch
    commits it)."""
    return outbox.run_batch(task_ids)


def sweep_outbox() -> int:
    """Release outbox tasks that RQ lost (a Redis restart, a job failed for good) for the relay."""
    return relay.sweep()


def purge_outbox() -> int:
    """Forget tasks finished more than a day ago."""
    purged = outbox.purge_done()
    db.session.commit()
    return purged


def purge_exports() -> int:
    """Delete the files of expired exports (the export records stay, as the audit trail)."""
    purged = exports.delete_expired_files()
    db.session.commit()
    return purged


def purge_expired_reports(retention_days: int | None = None, batch: int = 5000) -> int:
    """Delete reports older than REPORT_RETENTION_DAYS, a batch per transaction (aggregates keep
    their counts: the heatmap handles the ``reports.deleting`` event each batch publishes)."""
    days = retention_days or current_settings().report_retention_days
    deleted = 0
    while in_batch := reports.delete_expired_batch(days, batch=batch):
        db.session.commit()
        deleted += in_batch
    db.session.rollback()
    return deleted


def deliver_webhooks() -> dict[str, int]:
    """Send the webhook deliveries whose retry is due (each outcome committed as its receiver answers)."""
    return webhooks.deliver()
