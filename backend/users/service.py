"""Identity links."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select

from backend.extensions import db
from backend.users.models import User


def find_user_id(firebase_uid: str) -> uuid.UUID | None:
    return db.session.scalar(select(User.id).where(User.firebase_uid == firebase_uid))


def erase_user(firebase_uid: str) -> bool:
    """Erase a person: their identity link and, by cascade, everything they submitted.

    Aggregates (heatmap cells) hold counts only and keep them."""
    deleted = db.session.execute(delete(User).where(User.firebase_uid == firebase_uid).returning(User.id)).first()
    db.session.commit()
    return deleted is not None
