from __future__ import annotations

import uuid
from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import ARRAY, Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import Base

PLATFORMS = ("android", "ios", "web")


def interest_box(device: str = "d") -> str:
    """A device's interest box: its location widened by its own radius_m (``expand_by_metres``,
    migration 0009). Indexed (ix_devices_interest_box): queries name it this way for the index to serve them."""
    return f"expand_by_metres({device}.location, {device}.radius_m)"


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The account the token was registered on before it last moved (its app is told, docs/api.md).
    previous_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL", name="fk_devices_previous_user_id"))
    token: Mapped[str] = mapped_column(String(4096), unique=True)
    platform: Mapped[str] = mapped_column(String(16))
    audience: Mapped[str] = mapped_column(String(16))
    location = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    radius_m: Mapped[int] = mapped_column(Integer, server_default="1000")
    categories: Mapped[list[str]] = mapped_column(ARRAY(String(32)), server_default="{}")
    # The app's language (BCP 47) for messages to this device, and whether it wants its reports' updates.
    locale: Mapped[str] = mapped_column(String(35), server_default="en")
    updates: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))

    __table_args__ = (
        CheckConstraint("platform IN ('android', 'ios', 'web')", name="ck_devices_platform"),
        CheckConstraint("audience IN ('commuter', 'staff')", name="ck_devices_audience"),
        CheckConstraint("radius_m BETWEEN 100 AND 5000", name="ck_devices_radius_m"),
        Index("ix_devices_user_id", "user_id"),
        Index("ix_devices_location_geog", text("(location::geography)"), postgresql_using="gist",
              postgresql_where=text("location IS NOT NULL")),
        Index("ix_devices_audience", "audience", postgresql_where=text("audience = 'staff'")),
        Index("ix_devices_interest_box", text("expand_by_metres(location, radius_m)"), postgresql_using="gist",
              postgresql_where=text("location IS NOT NULL")),
    )
