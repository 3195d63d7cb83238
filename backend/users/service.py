"""Identity links."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select, text

from backend import transient
from backend.extensions import db
from backend.outbox import service as outbox
from backend.users.models import User

# What this domain announces (backend/outbox/registry.py).
USER_ERASING = "user.erasing"

# The caller's identity link, found or created on first use, as common table expressions for a
# statement that needs the caller's internal id in the same round trip: ``identity`` holds it. It is
# empty only when a brand-new user's first requests race (the other request's insert wins, and this
# statement's snapshot cannot see it yet): callers run the statement once more.
IDENTITY_CTE = """
    found_identity AS (SELECT id FROM users WHERE firebase_uid = :uid),
    created_identity AS (
        INSERT INTO users (firebase_uid) SELECT :uid WHERE NOT EXISTS (SELECT FROM found_identity)
        ON CONFLICT (firebase_uid) DO NOTHING
        RETURNING id
    ),
    identity AS (SELECT id FROM found_identity UNION ALL SELECT id FROM created_identity)
"""


def find_user_id(firebase_uid: str) -> uuid.UUID | None:
    return db.session.scalar(select(User.id).where(User.firebase_uid == firebase_uid))


def erase_user(firebase_uid: str) -> bool:
    """Erase a person: their identity link and, by cascade, everything they submitted (the caller
    commits). Announced first as ``user.erasing``, in the same transaction, so that aggregates, which
    hold counts only, can keep what the person's reports added to them. False: nobody to erase.

    Locks in the order every writer of reports and their aggregates uses (docs/architecture.md,
    "Lock order"): the heatmap's tables (its handler, first), the person's reports in id order, then
    the identity link and what cascades from it. A deadlock or lock conflict is retried here."""
    user_id = find_user_id(firebase_uid)
    if user_id is None:
        return False

    def erase() -> None:
        outbox.publish(USER_ERASING, {"user_id": user_id})
        db.session.execute(text("SELECT FROM reports WHERE author_id = :user_id ORDER BY id FOR UPDATE"),
                           {"user_id": user_id})
        db.session.execute(delete(User).where(User.id == user_id))

    transient.retrying(erase, "erasure")
    return True
