"""Write to the audit log, in the caller's transaction: the action and its record commit together."""

from __future__ import annotations

from typing import Any

from backend.audit.models import AuditEntry
from backend.auth import Principal
from backend.extensions import db


def record(actor: Principal, action: str, subject_type: str, subject_id: Any = None, **details: Any) -> None:
    db.session.add(AuditEntry(
        actor_uid=actor.uid, actor_role=actor.role, action=action, subject_type=subject_type,
        subject_id=None if subject_id is None else str(subject_id), details=details,
    ))
