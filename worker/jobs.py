"""RQ job functions. Each runs inside the worker's app context and calls one service."""

from __future__ import annotations

from backend.config import current_settings
from backend.exports import service as exports
from backend.outbox import service as outbox
from backend.reports import service as reports
from worker.tasks import HANDLERS


def run_outbox_task(task_id: int) -> str:
    """Carry out one outbox task exactly once (see backend/outbox/service.py)."""
    return outbox.run(task_id, HANDLERS)


def sweep_outbox() -> int:
    """Release outbox tasks that RQ lost (a Redis restart, a job failed for good) for the relay."""
    return outbox.sweep()


def purge_outbox() -> int:
    """Forget tasks finished more than a day ago."""
    return outbox.purge_done()


def purge_exports() -> int:
    """Delete the files of expired exports (the export records stay, as the audit trail)."""
    return exports.delete_expired_files()


def purge_expired_reports() -> int:
    """Delete reports older than REPORT_RETENTION_DAYS (aggregates keep their counts)."""
    return reports.purge_expired_reports(current_settings().report_retention_days)
