from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import CheckConstraint, DateTime, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import Base

KINDS = ("staffed_station", "safe_haven", "police", "hospital", "pharmacy", "venue")


class SafeHub(Base):
    __tablename__ = "safe_hubs"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    location = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)
    address: Mapped[str | None] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(40))
    opening_hours: Mapped[Any] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))

    __table_args__ = (
        CheckConstraint("kind IN ('staffed_station', 'safe_haven', 'police', 'hospital', 'pharmacy', 'venue')",
                        name="ck_safe_hubs_kind"),
        Index("ix_safe_hubs_location", "location", postgresql_using="gist"),
        Index("ix_safe_hubs_location_geog", text("(location::geography)"), postgresql_using="gist"),
    )
