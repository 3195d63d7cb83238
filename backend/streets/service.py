"""Load a street network from any line file GDAL reads (OS Open Roads, an OpenStreetMap extract)."""

from __future__ import annotations

from pathlib import Path

import pyogrio
import shapely
from sqlalchemy import delete, func, select, text

from backend.councils.service import source_srid
from backend.extensions import db
from backend.streets.models import StreetSegment

CHUNK = 5000

_INSERT = text("""
    INSERT INTO street_segments (source_id, name, road_class, geom, midpoint, length_m)
    SELECT source_id, name, road_class, geom, ST_LineInterpolatePoint(geom, 0.5), ST_Length(geom::geography)
    FROM (
        SELECT s.source_id, s.name, s.road_class,
               (ST_Dump(ST_Transform(ST_SetSRID(ST_GeomFromWKB(s.wkb), :srid), 4326))).geom AS geom
        FROM unnest(CAST(:source_ids AS text[]), CAST(:names AS text[]), CAST(:classes AS text[]),
                    CAST(:wkbs AS bytea[])) AS s (source_id, name, road_class, wkb)
    ) AS parts
    WHERE ST_GeometryType(geom) = 'ST_LineString' AND ST_NPoints(geom) >= 2 AND ST_Length(geom) > 0
""")


def _column(names: list[str], data: list, field: str | None, count: int) -> list[str | None]:
    if not field:
        return [None] * count
    if field not in names:
        raise ValueError(f"the file has no field {field!r}; it has: {', '.join(names) or 'none'}")
    return [None if v is None or str(v).strip() == "" else str(v).strip()[:200] for v in data[names.index(field)]]


def load_street_segments(path: str | Path, *, id_field: str | None = None, name_field: str | None = "name",
                         class_field: str | None = None, layer: str | None = None, replace: bool = True) -> int:
    """Load the line features of a file as street segments (MultiLineStrings are split into their
    lines, reprojected to WGS 84); by default they replace the network loaded before. Returns how
    many segments were loaded."""
    info = pyogrio.read_info(str(path), layer=layer)
    fields = [f for f in (id_field, name_field, class_field) if f and f in list(info["fields"])]
    missing = [f for f in (id_field, class_field) if f and f not in list(info["fields"])]
    if missing:
        raise ValueError(f"the file has no field {missing[0]!r}; it has: {', '.join(info['fields']) or 'none'}")
    if name_field and name_field not in list(info["fields"]):
        name_field = None  # names are nice to have, not required
    srid = source_srid(info.get("crs"))
    if replace:
        db.session.execute(delete(StreetSegment))
    loaded = 0
    total = int(info["features"])
    for start in range(0, max(total, 1), CHUNK):
        meta, _, geometries, field_data = pyogrio.raw.read(
            str(path), layer=layer, columns=fields, skip_features=start, max_features=CHUNK)
        names = list(meta["fields"])
        count = len(geometries)
        if count == 0:
            break
        keep = [i for i, wkb in enumerate(geometries) if wkb is not None]
        lines = shapely.from_wkb([bytes(geometries[i]) for i in keep])
        kinds = shapely.get_type_id(lines)
        keep = [i for i, kind in zip(keep, kinds) if kind in (1, 5)]  # LineString, MultiLineString
        ids, labels, classes = (_column(names, field_data, f, count) for f in (id_field, name_field, class_field))
        result = db.session.execute(_INSERT, {
            "srid": srid,
            "source_ids": [ids[i] for i in keep],
            "names": [labels[i] for i in keep],
            "classes": [classes[i] for i in keep],
            "wkbs": [bytes(geometries[i]) for i in keep],
        })
        loaded += result.rowcount
    db.session.flush()
    return loaded


def segment_count() -> int:
    return db.session.scalar(select(func.count()).select_from(StreetSegment)) or 0


def clear_street_segments() -> int:
    removed = db.session.execute(delete(StreetSegment)).rowcount
    db.session.flush()
    return removed
