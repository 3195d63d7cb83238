from __future__ import annotations

import uuid
from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import ARRAY, Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import Base

# The events a subscription may ask for, in the order documented.
EVENTS = ("report.created", "report.status_changed", "cluster.detected", "alert.sent")
PRECISIONS = ("coarse", "exact")
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class WebhookSubscription(Base):
    """A partner's endpoint: which events, where, which categories, how precise."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(200))
    events: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    council: Mapped[str | None] = mapped_column(String(9))
    area = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False)
    categories: Mapped[list[str]] = mapped_column(ARRAY(String(32)), server_default="{}")
    precision: Mapped[str] = mapped_column(String(8), server_default="coarse")
    secret: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))
    secret_rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("precision IN ('coarse', 'exact')", name="ck_webhook_subscriptions_precision"),
        CheckConstraint("cardinality(events) > 0", name="ck_webhook_subscriptions_events"),
        Index("ix_webhook_subscriptions_area", "area", postgresql_using="gist", postgresql_where=text("active")),
    )


class WebhookDelivery(Base):
    """One event for one subscription: its body (signed afresh at each attempt), attempts and outcome."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="ck_webhook_deliveries_status"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index("ix_webhook_deliveries_subscription", "subscription_id", "created_at"),
    )

    @property
    def webhook_id(self) -> str:
        return webhook_id(self.id)


def webhook_id(delivery_id: uuid.UUID) -> str:
    return f"msg_{delivery_id.hex}"
