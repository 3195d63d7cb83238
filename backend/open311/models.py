from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, LargeBinary, String, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import Base


class CouncilApiKey(Base):
    """An Open311 api_key issued by staff to one council: only its SHA-256 digest is kept."""

    __tablename__ = "council_api_keys"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))
    council: Mapped[str] = mapped_column(String(9))
    label: Mapped[str | None] = mapped_column(String(200))
    key_sha256: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
