from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import Base


class CouncilArea(Base):
    __tablename__ = "council_areas"

    code: Mapped[str] = mapped_column(String(9), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False)

    __table_args__ = (Index("ix_council_areas_geom", "geom", postgresql_using="gist"),)
