from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, Index, Integer, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import Base


class OutboxTask(Base):
    """One unit of follow-up work. ``done_at`` is set in the same transaction as the work's own
    writes, so a task's effects happen exactly once however often its job is delivered."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(1000))
    # The request that created the task (X-Request-Id): its jobs log under the same id.
    request_id: Mapped[str | None] = mapped_column(String(64))
    # Claimed as part of a batch (one RQ job for many tasks of one kind): the id of the batch's first
    # task, whose job (``outbox-<id>``) carries this one. NULL: the task's job is its own.
    batch_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_outbox_pending", "id", postgresql_where=text("done_at IS NULL")),
        Index("ix_outbox_done_at", "done_at", postgresql_where=text("done_at IS NOT NULL")),
    )
