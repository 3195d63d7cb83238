"""Council areas: load boundaries from GeoJSON or GeoPackage (GDAL, through pyogrio), list them."""

from __future__ import annotations

from pathlib import Path

import pyogrio
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from backend.councils.models import CouncilArea
from backend.extensions import db


def source_srid(crs: str | None) -> int:
    """The EPSG code of a file's CRS as pyogrio reports it ("EPSG:27700"); WGS 84 when it has none."""
    if not crs:
        return 4326
    authority, _, code = crs.partition(":")
    return int(code) if authority.upper() == "EPSG" and code.isdigit() else 4326


def load_council_areas(path: str | Path, code_field: str = "code", name_field: str = "name") -> int:
    """Insert or update council areas from any vector file GDAL reads; returns how many were loaded.

    Geometries are reprojected to WGS 84 when the file is in another CRS, made valid, and stored as
    MultiPolygons."""
    meta, _, geometries, field_data = pyogrio.raw.read(str(path), columns=[code_field, name_field])
    names = list(meta["fields"])
    codes, labels = field_data[names.index(code_field)], field_data[names.index(name_field)]
    srid = source_srid(meta.get("crs"))
    loaded = 0
    for code, label, wkb in zip(codes, labels, geometries):
        if wkb is None:
            continue
        geom = func.ST_Multi(func.ST_CollectionExtract(func.ST_MakeValid(
            func.ST_Transform(func.ST_SetSRID(func.ST_GeomFromWKB(bytes(wkb)), srid), 4326)
        ), 3))
        statement = insert(CouncilArea).values(code=str(code).strip(), name=str(label).strip(), geom=geom)
        db.session.execute(statement.on_conflict_do_update(
            index_elements=[CouncilArea.code],
            set_={"name": statement.excluded.name, "geom": statement.excluded.geom},
        ))
        loaded += 1
    db.session.flush()
    return loaded


def council_exists(code: str) -> bool:
    return db.session.scalar(select(func.count()).select_from(CouncilArea).where(CouncilArea.code == code)) > 0


def list_council_areas() -> list[CouncilArea]:
    return list(db.session.scalars(select(CouncilArea).order_by(CouncilArea.code)))
