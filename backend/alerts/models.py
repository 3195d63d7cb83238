from __future__ import annotations

import uuid
from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import Base

SEVERITIES = ("info", "warning", "urgent")
STATUSES = ("queued", "sending", "sent", "failed")
# Where an alert's push to commuters stands (migration 0011): a cluster alert waits for a staff
# member's confirmation unless the deployment pushes automatically; the fan-out then targets them once.
PUBLIC_PUSH = ("awaiting_confirmation", "due", "done")


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(String(1000))
    severity: Mapped[str] = mapped_column(String(16))
    area = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False)
    radius_m: Mapped[int | None] = mapped_column(Integer)
    safe_hub_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    targeted: Mapped[int] = mapped_column(Integer, server_default="0")
    sent: Mapped[int] = mapped_column(Integer, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, server_default="0")
    pruned: Mapped[int] = mapped_column(Integer, server_default="0")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))
    kind: Mapped[str] = mapped_column(String(16), server_default="manual")
    category: Mapped[str | None] = mapped_column(String(32))
    public_push: Mapped[str] = mapped_column(String(32), server_default="due")
    confirmed_by: Mapped[str | None] = mapped_column(String(128))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why the fan-out gave up (status 'failed'): the error of its last attempt.
    last_error: Mapped[str | None] = mapped_column(String(1000))

    __table_args__ = (
        CheckConstraint("kind IN ('manual', 'cluster')", name="ck_alerts_kind"),
        CheckConstraint("public_push IN ('awaiting_confirmation', 'due', 'done')", name="ck_alerts_public_push"),
        Index("ix_alerts_awaiting_confirmation", "created_at", postgresql_where=text("public_push = 'awaiting_confirmation'")),
        CheckConstraint("severity IN ('info', 'warning', 'urgent')", name="ck_alerts_severity"),
        CheckConstraint("status IN ('queued', 'sending', 'sent', 'failed')", name="ck_alerts_status"),
        CheckConstraint("GeometryType(area) = 'POLYGON' OR (GeometryType(area) = 'POINT' AND radius_m > 0)",
                        name="ck_alerts_area"),
        Index("ix_alerts_area_geog", text("(area::geography)"), postgresql_using="gist"),
        Index("ix_alerts_expires_at", "expires_at"),
    )


class AlertDelivery(Base):
    """One alert to one device: claimed, sent, and recorded, so that nothing is sent twice."""

    __tablename__ = "alert_deliveries"

    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    device_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))

    __table_args__ = (
        PrimaryKeyConstraint("alert_id", "device_id", name="alert_deliveries_pkey"),
        CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'pruned', 'retry')",
                        name="ck_alert_deliveries_status"),
        Index("ix_alert_deliveries_unsent", "alert_id", "status",
              postgresql_where=text("status IN ('pending', 'sending', 'retry')")),
    )


class Cluster(Base):
    """Several reports of one category close in space and time; it has exactly one alert."""

    __tablename__ = "clusters"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))
    category: Mapped[str] = mapped_column(String(32))
    centre = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)
    radius_m: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    report_count: Mapped[int] = mapped_column(Integer)
    alert_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))

    __table_args__ = (
        Index("ix_clusters_centre_geog", text("(centre::geography)"), postgresql_using="gist"),
        Index("ix_clusters_category_last_at", "category", "last_at"),
    )


class ClusterReport(Base):
    __tablename__ = "cluster_reports"

    cluster_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    report_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"))

    __table_args__ = (PrimaryKeyConstraint("cluster_id", "report_id", name="cluster_reports_pkey"),)
