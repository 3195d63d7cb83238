from __future__ import annotations

import uuid
from datetime import date, datetime

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, CheckConstraint, Date, DateTime, Index, Integer, SmallInteger, String, Text, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import Base

KINDS = ("lighting",)
FORMATS = ("geojson", "csv", "gpkg")
STATUSES = ("queued", "running", "done", "failed")


class Export(Base):
    """One export job, kept after its file expires as the record of who exported what and when."""

    __tablename__ = "exports"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(8))
    requested_by: Mapped[str] = mapped_column(String(128))
    requester_role: Mapped[str] = mapped_column(String(16))
    council: Mapped[str | None] = mapped_column(String(9))
    area = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False)
    period_from: Mapped[date] = mapped_column(Date)
    period_to: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    progress: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    rows: Mapped[int | None] = mapped_column(Integer)
    places: Mapped[str | None] = mapped_column(String(16))
    unmatched_reports: Mapped[int | None] = mapped_column(Integer)
    min_reporters: Mapped[int] = mapped_column(SmallInteger, server_default="1")  # places with fewer are left out
    file_name: Mapped[str | None] = mapped_column(String(200))
    file_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def downloadable(self) -> bool:
        """Built, not yet expired: its file can be fetched."""
        return self.status == "done" and self.deleted_at is None and self.file_name is not None

    __table_args__ = (
        CheckConstraint("kind IN ('lighting')", name="ck_exports_kind"),
        CheckConstraint("format IN ('geojson', 'csv', 'gpkg')", name="ck_exports_format"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="ck_exports_status"),
        CheckConstraint("progress BETWEEN 0 AND 100", name="ck_exports_progress"),
        CheckConstraint("min_reporters >= 1", name="ck_exports_min_reporters"),
        Index("ix_exports_requested_by_created_at", "requested_by", "created_at"),
        Index("ix_exports_expires_at", "expires_at", postgresql_where=text("deleted_at IS NULL")),
    )
