"""RQ job functions. Each runs inside the worker's app context and calls one service."""

from __future__ import annotations

from backend.outbox import service as outbox
from worker.tasks import HANDLERS


def run_outbox_task(task_id: int) -> str:
    """Carry out one outbox task exactly once (see backend/outbox/service.py)."""
    return outbox.run(task_id, HANDLERS)


def sweep_outbox() -> int:
    """Enqueue outbox tasks that never reached RQ (Redis was down) or were lost from it."""
    return outbox.sweep()


def purge_outbox() -> int:
    """Forget tasks finished more than a day ago."""
    return outbox.purge_done()
