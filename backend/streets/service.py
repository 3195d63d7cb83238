"""Load a street network from any line file GDAL reads (OS Open Roads, an OpenStreetMap extract)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyogrio
import shapely
from sqlalchemy import delete, func, select, text

from backend.councils.service import source_srid
from backend.extensions import db
from backend.streets import graph
from backend.streets.models import StreetNetwork, StreetSegment, StreetVertex

# The network shipped in data/ (OpenStreetMap, ODbL: data/SOURCES.md) and how to read it; `make run`
# loads it on every start (skipped when the same file is already loaded).
SHIPPED = {"path": Path(__file__).resolve().parents[2] / "data" / "london_streets.gpkg",
           "id_field": "osm_id", "name_field": "name", "class_field": "highway", "lit_field": "lit"}
# The network's extent: the squares of this grid (about 330 m by 210 m in London) holding a segment's midpoint.
EXTENT_SQUARE_DEGREES = 0.003
# An export's area is ranked by street when the network's extent covers at least this share of it.
COVERAGE_SHARE = 0.8
LIT_YES = {"yes", "24/7", "yes;24/7", "automatic", "limited", "interval"}

CHUNK = 5000

_INSERT = text("""
    INSERT INTO street_segments (source_id, name, road_class, lit, geom, midpoint, length_m)
    SELECT source_id, name, road_class, lit, geom, ST_LineInterpolatePoint(geom, 0.5), ST_Length(geom::geography)
    FROM (
        SELECT s.source_id, s.name, s.road_class, s.lit,
               (ST_Dump(ST_Transform(ST_SetSRID(ST_GeomFromWKB(s.wkb), :srid), 4326))).geom AS geom
        FROM unnest(CAST(:source_ids AS text[]), CAST(:names AS text[]), CAST(:classes AS text[]),
                    CAST(:lits AS text[]), CAST(:wkbs AS bytea[])) AS s (source_id, name, road_class, lit, wkb)
    ) AS parts
    WHERE ST_GeometryType(geom) = 'ST_LineString' AND ST_NPoints(geom) >= 2 AND ST_Length(geom) > 0
""")


def _column(names: list[str], data: list, field: str | None, count: int) -> list[str | None]:
    if not field:
        return [None] * count
    if field not in names:
        raise ValueError(f"the file has no field {field!r}; it has: {', '.join(names) or 'none'}")
    return [None if v is None or str(v).strip() == "" else str(v).strip()[:200] for v in data[names.index(field)]]


def _lit(value: str | None) -> str | None:
    """An OpenStreetMap ``lit`` tag as ``yes``, ``no`` or None (not known)."""
    if value is None:
        return None
    value = value.lower()
    return "yes" if value in LIT_YES else "no" if value in ("no", "disused") else None


def file_digest(path: str | Path, *options: object) -> str:
    """SHA-256 of the file's bytes and the options it is read with: the same digest, the same network."""
    digest = hashlib.sha256(repr(options).encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def loaded_network() -> StreetNetwork | None:
    return db.session.get(StreetNetwork, 1)


def load_street_segments(path: str | Path, *, id_field: str | None = None, name_field: str | None = "name",
                         class_field: str | None = None, lit_field: str | None = None, layer: str | None = None,
                         replace: bool = True) -> int:
    """Load the line features of a file as street segments (MultiLineStrings are split into their
    lines, reprojected to WGS 84); by default they replace the network loaded before. The routing
    graph is rebuilt and the file's digest recorded. Returns how many segments were loaded."""
    info = pyogrio.read_info(str(path), layer=layer)
    fields = [f for f in (id_field, name_field, class_field, lit_field) if f and f in list(info["fields"])]
    missing = [f for f in (id_field, class_field, lit_field) if f and f not in list(info["fields"])]
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
        ids, labels, classes, lits = (_column(names, field_data, f, count)
                                      for f in (id_field, name_field, class_field, lit_field))
        result = db.session.execute(_INSERT, {
            "srid": srid,
            "source_ids": [ids[i] for i in keep],
            "names": [labels[i] for i in keep],
            "classes": [classes[i] for i in keep],
            "lits": [_lit(lits[i]) for i in keep],
            "wkbs": [bytes(geometries[i]) for i in keep],
        })
        loaded += result.rowcount
    db.session.flush()
    edges = graph.rebuild()
    digest = file_digest(path, layer, id_field, name_field, class_field, lit_field)
    db.session.execute(text("""
        INSERT INTO street_networks (id, source, sha256, segments, edges, extent)
        SELECT 1, :source, :sha256, :segments, :edges,
               ST_Multi(ST_Union(ST_MakeEnvelope(x * :square, y * :square, (x + 1) * :square, (y + 1) * :square, 4326)))
        FROM (SELECT DISTINCT floor(ST_X(midpoint) / :square) AS x, floor(ST_Y(midpoint) / :square) AS y
              FROM street_segments) AS squares
        HAVING count(*) > 0
        ON CONFLICT (id) DO UPDATE SET source = excluded.source, sha256 = excluded.sha256,
            segments = excluded.segments, edges = excluded.edges, extent = excluded.extent, loaded_at = now()"""),
        {"source": Path(path).name, "sha256": digest if replace else f"{digest}+", "segments": segment_count(),
         "edges": edges, "square": EXTENT_SQUARE_DEGREES})
    db.session.expire_all()
    return loaded


def load_shipped_network(path: str | Path | None = None) -> int | None:
    """Load data/london_streets.gpkg (or a file read the same way) unless the same file is already
    loaded: then None, and nothing is read. Returns how many segments were loaded."""
    options = {key: value for key, value in SHIPPED.items() if key != "path"}
    path = Path(path or SHIPPED["path"])
    network = loaded_network()
    if network is not None and network.sha256 == file_digest(path, None, *options.values()) and segment_count() > 0:
        return None
    return load_street_segments(path, **options)


def covers(area: object) -> bool:
    """Whether the loaded network covers at least COVERAGE_SHARE of ``area`` (a geometry in WGS 84)."""
    share = db.session.scalar(text("""
        SELECT ST_Area(ST_Intersection(n.extent, a.g)::geography) / nullif(ST_Area(a.g::geography), 0)
        FROM street_networks n, (SELECT ST_SetSRID(ST_GeomFromEWKB(:area), 4326) AS g) AS a"""),
        {"area": bytes(area.data) if hasattr(area, "data") else area})
    return share is not None and share >= COVERAGE_SHARE


def segment_count() -> int:
    return db.session.scalar(select(func.count()).select_from(StreetSegment)) or 0


def clear_street_segments() -> int:
    """Remove the network and its graph: exports go back to grid cells, routes are not answered."""
    db.session.execute(delete(StreetNetwork))
    db.session.execute(delete(StreetVertex))
    removed = db.session.execute(delete(StreetSegment)).rowcount  # the edges go with their segments
    db.session.flush()
    return removed


def streets_in(bbox: tuple[float, float, float, float], lit: list[str] | None, limit: int) -> dict:
    """The segments meeting a box (longest first), as a GeoJSON FeatureCollection; ``lit`` filters by
    lighting (``yes``, ``no``, ``unknown``)."""
    rows = db.session.execute(text("""
        SELECT coalesce(source_id, id::text) AS segment_id, name, road_class, coalesce(lit, 'unknown') AS lit,
               round(length_m::numeric, 1) AS length_m, ST_AsGeoJSON(geom, 6)::json AS geometry
        FROM street_segments
        WHERE geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326)
          AND (CAST(:lit AS text[]) IS NULL OR coalesce(lit, 'unknown') = ANY(CAST(:lit AS text[])))
        ORDER BY length_m DESC, id
        LIMIT :limit"""), {"w": bbox[0], "s": bbox[1], "e": bbox[2], "n": bbox[3], "lit": lit or None,
                           "limit": limit + 1}).all()
    return {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "geometry": r.geometry, "properties": {
            "segment_id": r.segment_id, "name": r.name, "road_class": r.road_class, "lit": r.lit,
            "length_m": float(r.length_m)}} for r in rows[:limit]],
        "truncated": len(rows) > limit,
    }
