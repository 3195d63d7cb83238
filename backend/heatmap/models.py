"""Heatmap aggregate tables (migration 0002). Written and read with set-based SQL in service.py; the
models describe the schema for Alembic's comparison and for ad-hoc queries."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import Base

CUBE = ("level", "q", "day", "hour", "category", "mode")


class _Cube:
    level: Mapped[int] = mapped_column(SmallInteger)
    q: Mapped[int] = mapped_column(BigInteger)  # Morton code of the cell's x, y
    day: Mapped[date] = mapped_column(Date)
    hour: Mapped[int] = mapped_column(SmallInteger)
    category: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer)


class HeatmapCell(_Cube, Base):
    """Report counts per cell, local day and hour, category and mode."""

    __tablename__ = "heatmap_cells"
    __table_args__ = (PrimaryKeyConstraint(*CUBE, name="heatmap_cells_pkey"),)


class HeatmapRetained(_Cube, Base):
    """The counts erased reports had added: kept so that a rebuild gives the same heatmap."""

    __tablename__ = "heatmap_retained"
    __table_args__ = (PrimaryKeyConstraint(*CUBE, name="heatmap_retained_pkey"),)


class HeatmapTotal(Base):
    """All-time counts per cell, category and mode (views without a time filter)."""

    __tablename__ = "heatmap_totals"

    level: Mapped[int] = mapped_column(SmallInteger)
    q: Mapped[int] = mapped_column(BigInteger)
    category: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer)

    __table_args__ = (PrimaryKeyConstraint("level", "q", "category", "mode", name="heatmap_totals_pkey"),)


class HeatmapReporter(Base):
    """Who reported in a public (coarse) cell on a local day, per category."""

    __tablename__ = "heatmap_reporters"

    q: Mapped[int] = mapped_column(BigInteger)  # a public-level cell
    day: Mapped[date] = mapped_column(Date)
    category: Mapped[str] = mapped_column(String(32))
    author_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"))

    __table_args__ = (
        PrimaryKeyConstraint("q", "day", "category", "author_id", name="heatmap_reporters_pkey"),
        Index("ix_heatmap_reporters_author_id", "author_id"),
    )


class HeatmapPublicUnit(Base):
    """One person's reports in a published unit of the public heatmap: a public cell, a local ISO week
    (its Monday) and a category (migration 0010; backend/heatmap/publishing.py)."""

    __tablename__ = "heatmap_public_units"

    q: Mapped[int] = mapped_column(BigInteger)
    week: Mapped[date] = mapped_column(Date)
    category: Mapped[str] = mapped_column(String(32))
    author_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"))
    reports: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        PrimaryKeyConstraint("week", "q", "category", "author_id", name="heatmap_public_units_pkey"),
        CheckConstraint("reports > 0", name="ck_heatmap_public_units_reports"),
        Index("ix_heatmap_public_units_author_id", "author_id"),
    )


class _CouncilCube(_Cube):
    council: Mapped[str] = mapped_column(String(9))  # council_areas.code


COUNCIL_CUBE = ("council", *CUBE)


class HeatmapCouncilCell(_CouncilCube, Base):
    """What lies inside each council's area, per cell, local day and hour, category and mode (0010)."""

    __tablename__ = "heatmap_council_cells"
    __table_args__ = (PrimaryKeyConstraint(*COUNCIL_CUBE, name="heatmap_council_cells_pkey"),)


class HeatmapCouncilRetained(_CouncilCube, Base):
    """The council counts erased reports had added."""

    __tablename__ = "heatmap_council_retained"
    __table_args__ = (PrimaryKeyConstraint(*COUNCIL_CUBE, name="heatmap_council_retained_pkey"),)


class HeatmapRemoval(Base):
    """One row per transaction that removes reports (erasure, retention; migration 0015): a rebuild
    running meanwhile sees that its snapshot went stale and starts again (backend/heatmap/rebuild.py)."""

    __tablename__ = "heatmap_removals"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("clock_timestamp()"))


class Station(Base):
    """London's stations (data/london_stations.geojson, loaded by migration 0016): hotspots are named
    by their nearest one."""

    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    lines: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)

    __table_args__ = (Index("ix_stations_geom", "geom", postgresql_using="gist"),)
