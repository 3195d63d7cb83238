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

    Aggregates hold counts only and keep them: what the person's reports added to the heatmap is
    set aside as bare counts first, so that a rebuild gives the same heatmap."""
    from backend.heatmap.service import retain_counts_of_author

    user_id = find_user_id(firebase_uid)
    if user_id is None:
        return False
    retain_counts_of_author(user_id)
    db.session.execute(delete(User).where(User.id == user_id))
    db.session.commit()
    return True
