"""Identity links."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from backend.extensions import db
from backend.users.models import User


def user_id_for(firebase_uid: str) -> uuid.UUID:
    """The caller's internal id, created on first use (safe under concurrent first requests)."""
    existing = db.session.scalar(select(User.id).where(User.firebase_uid == firebase_uid))
    if existing is not None:
        return existing
    inserted = db.session.scalar(
        insert(User).values(firebase_uid=firebase_uid).on_conflict_do_nothing(index_elements=[User.firebase_uid])
        .returning(User.id)
    )
    if inserted is not None:
        return inserted
    return db.session.scalar(select(User.id).where(User.firebase_uid == firebase_uid))


def find_user_id(firebase_uid: str) -> uuid.UUID | None:
    return db.session.scalar(select(User.id).where(User.firebase_uid == firebase_uid))


def erase_user(firebase_uid: str) -> bool:
    """Erase a person: their identity link and, by cascade, everything they submitted.

    Aggregates (heatmap cells) hold counts only and keep them."""
    deleted = db.session.execute(delete(User).where(User.firebase_uid == firebase_uid).returning(User.id)).first()
    db.session.commit()
    return deleted is not None
