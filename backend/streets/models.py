from __future__ import annotations

import uuid
from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import Base


class StreetSegment(Base):
    """One street segment. Indexed by geography on ``geom`` and ``midpoint`` (migration 0007)."""

    __tablename__ = "street_segments"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source_id: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(200))
    road_class: Mapped[str | None] = mapped_column(String(100))
    geom = mapped_column(Geometry("LINESTRING", srid=4326, spatial_index=False), nullable=False)
    midpoint = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)
    length_m: Mapped[float] = mapped_column(Float)
    lit: Mapped[str | None] = mapped_column(Text)  # "yes", "no", or None: not known (migration 0014)

    __table_args__ = (
        Index("ix_street_segments_geog", text("(geom::geography)"), postgresql_using="gist"),
        Index("ix_street_segments_midpoint_geog", text("(midpoint::geography)"), postgresql_using="gist"),
    )


class StreetNetwork(Base):
    """The one loaded network's provenance: loading the same file again is skipped by its SHA-256."""

    __tablename__ = "street_networks"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default=text("1"))
    source: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(Text, nullable=False)
    segments: Mapped[int] = mapped_column(Integer, nullable=False)
    edges: Mapped[int] = mapped_column(Integer, nullable=False)
    extent = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False)
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class StreetVertex(Base):
    """A vertex of the routable graph: a junction or a dead end (``backend/streets/graph.py``)."""

    __tablename__ = "street_vertices"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)

    __table_args__ = (Index("ix_street_vertices_geom", "geom", postgresql_using="gist"),)


class StreetEdge(Base):
    """A piece of a segment between two vertices of the graph; ``length_m`` is its cost."""

    __tablename__ = "street_edges"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    segment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("street_segments.id", ondelete="CASCADE"),
                                            nullable=False)
    source: Mapped[int] = mapped_column(BigInteger, nullable=False)
    target: Mapped[int] = mapped_column(BigInteger, nullable=False)
    length_m: Mapped[float] = mapped_column(Float, nullable=False)
    lit: Mapped[str | None] = mapped_column(Text)  # the segment's, copied
    geom = mapped_column(Geometry("LINESTRING", srid=4326, spatial_index=False), nullable=False)
    geom_m = mapped_column(Geometry("LINESTRING", srid=3857, spatial_index=False), nullable=False)  # Web Mercator
    # The source and target vertex in the British National Grid (EPSG:27700, metres; migration 0019).
    source_x: Mapped[float] = mapped_column(Float, nullable=False)
    source_y: Mapped[float] = mapped_column(Float, nullable=False)
    target_x: Mapped[float] = mapped_column(Float, nullable=False)
    target_y: Mapped[float] = mapped_column(Float, nullable=False)

    __table_args__ = (
        Index("ix_street_edges_geom", "geom", postgresql_using="gist"),
        Index("ix_street_edges_geom_m", "geom_m", postgresql_using="gist"),
        Index("ix_street_edges_geog", text("(geom::geography)"), postgresql_using="gist"),
        Index("ix_street_edges_segment", "segment_id"),
    )


class ReportEdge(Base):
    """A street edge a report lies near (within 25 m): a route's report penalty is a join on this
    (``backend/streets/nearby.py``). Goes with its report and with its edge (migration 0017)."""

    __tablename__ = "report_edges"

    edge_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("street_edges.id", ondelete="CASCADE"), primary_key=True)
    report_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("reports.id", ondelete="CASCADE"),
                                                 primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)  # the report's, copied

    __table_args__ = (
        Index("ix_report_edges_report", "report_id"),
        Index("ix_report_edges_edge_occurred_at", "edge_id", "occurred_at", postgresql_include=["report_id"]),
    )
