from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, Float, Identity, Index, String, text
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

    __table_args__ = (
        Index("ix_street_segments_geog", text("(geom::geography)"), postgresql_using="gist"),
        Index("ix_street_segments_midpoint_geog", text("(midpoint::geography)"), postgresql_using="gist"),
    )
