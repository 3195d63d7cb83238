from __future__ import annotations

import uuid
from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import BYTEA, UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import Base


class Report(Base):
    """One report, as submitted. The schema itself lives in migrations/ (forward only)."""

    __tablename__ = "reports"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid())
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(32))
    subcategory: Mapped[str | None] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    location = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    route = mapped_column(Geometry("LINESTRING", srid=4326, spatial_index=False))
    mode: Mapped[str | None] = mapped_column(String(32))
    line: Mapped[str | None] = mapped_column(String(100))
    station: Mapped[str | None] = mapped_column(String(100))
    factors: Mapped[list[str]] = mapped_column(ARRAY(String(32)), server_default="{}")
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="received")
    status_note: Mapped[str | None] = mapped_column(Text)  # internal: staff only
    public_note: Mapped[str | None] = mapped_column(Text)  # for the reporter (and partners' status_notes)
    idempotency_key: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    request_hash: Mapped[bytes | None] = mapped_column(BYTEA)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))
    # Set when the report was counted into the heatmap: counting it is then a no-op.
    heatmap_counted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("author_id", "idempotency_key", name="uq_reports_author_idempotency_key"),
        CheckConstraint("category IN ('harassment', 'spiking', 'unsafe_route')", name="ck_reports_category"),
        Index("ix_reports_location", "location", postgresql_using="gist"),
        Index("ix_reports_route", "route", postgresql_using="gist", postgresql_where=text("route IS NOT NULL")),
        Index("ix_reports_category_occurred_at", "category", "occurred_at"),
        Index("ix_reports_occurred_at", "occurred_at"),
        Index("ix_reports_mode_occurred_at", "mode", "occurred_at"),
        Index("ix_reports_created_at_id", "created_at", "id"),
        Index("ix_reports_status_created_at", "status", "created_at"),
        Index("ix_reports_author_created_at", "author_id", "created_at"),
    )


class ReportStatusChange(Base):
    """The triage history: who moved a report to which status, when, and why."""

    __tablename__ = "report_status_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    report_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    public_note: Mapped[str | None] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(128))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_report_status_changes_report_id", "report_id", "changed_at"),)
