"""Reading the heatmap's aggregates: cells, vector tiles, hotspots and the public heatmap, from the hot
standby when there is a fit one (``db.reads``, backend/extensions.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import text

from backend.extensions import db
from backend.heatmap.grid import bbox_cell_range, key_ranges, tile_key_range
from backend.heatmap.publishing import Window, published_cells
from backend.vocabulary import CATEGORIES


@dataclass(frozen=True)
class Filters:
    """What to count. None means no restriction. Days are local dates, both ends included.

    Nights: the hours of ``after_midnight`` (those past midnight of an ``hours`` range that wraps it,
    such as 0-3 of ``22-4``) count with the day before, the day the night started on, for ``from_day``,
    ``to_day`` and ``weekdays`` alike (SQL ``night_day``, migration 0016)."""

    categories: tuple[str, ...] | None = None
    modes: tuple[str, ...] | None = None
    from_day: date | None = None
    to_day: date | None = None
    hours: tuple[int, ...] | None = None  # local hours of the day, 0-23
    after_midnight: tuple[int, ...] = ()  # of those, the hours that belong to the night before
    weekdays: tuple[int, ...] | None = None  # ISO weekdays, 1 = Monday
    council: str | None = None  # count only what lies inside this council's area (heatmap_council_cells)

    @property
    def timeless(self) -> bool:
        return self.from_day is None and self.to_day is None and self.hours is None and self.weekdays is None

    def shifted(self, days: int) -> "Filters":
        return replace(self, from_day=self.from_day - timedelta(days=days), to_day=self.to_day - timedelta(days=days))


@dataclass(frozen=True)
class Area:
    """Which cells of a level: key ranges (an index range scan each), optionally trimmed to a box."""

    level: int
    ranges: tuple[tuple[int, int], ...] | None = None  # None: the whole level
    box: tuple[int, int, int, int] | None = None  # x0, x1, y0, y1 inclusive

    @classmethod
    def tile(cls, level: int, z: int, x: int, y: int) -> "Area":
        return cls(level, (tile_key_range(level, z, x, y),))

    @classmethod
    def bbox(cls, level: int, bbox: tuple[float, float, float, float] | None) -> "Area":
        if bbox is None:
            return cls(level)
        box = bbox_cell_range(bbox, level)
        return cls(level, tuple(key_ranges(level, *box)), box)


def _area_conditions(area: Area, alias: str, level_column: bool = True) -> tuple[list[str], dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    if level_column:
        where.append(f"{alias}.level = :level")
        params["level"] = area.level
    if area.ranges:
        where.append("(" + " OR ".join(
            f"{alias}.q BETWEEN :lo{i} AND :hi{i}" for i in range(len(area.ranges))) + ")")
        for i, (lo, hi) in enumerate(area.ranges):
            params[f"lo{i}"], params[f"hi{i}"] = lo, hi
    if area.box:
        where.append(f"heatmap_cell_x({alias}.q) BETWEEN :x0 AND :x1 AND heatmap_cell_y({alias}.q) BETWEEN :y0 AND :y1")
        params.update(zip(("x0", "x1", "y0", "y1"), area.box))
    return where, params


def night_day(f: Filters, alias: str = "c") -> str:
    """The SQL for the day a row counts on: its local day, or, under an hours filter with a range
    that wraps midnight, the day its night started on (binds ``:after_midnight``)."""
    if not f.after_midnight:
        return f"{alias}.day"
    return f"night_day({alias}.day, {alias}.hour, CAST(:after_midnight AS smallint[]))"


def _conditions(f: Filters, area: Area | None, alias: str = "c") -> tuple[list[str], dict[str, Any]]:
    where, params = _area_conditions(area, alias) if area is not None else ([], {})
    if f.categories:
        where.append(f"{alias}.category = ANY(:categories)")
        params["categories"] = list(f.categories)
    if f.modes:
        where.append(f"{alias}.mode = ANY(:modes)")
        params["modes"] = list(f.modes)
    day = night_day(f, alias)
    if f.after_midnight:
        params["after_midnight"] = list(f.after_midnight)
    # The bare day bounds, one day wider when nights shift days back, keep the key's index usable.
    if f.from_day:
        where.append(f"{alias}.day >= :from_day")
        params["from_day"] = f.from_day
        if f.after_midnight:
            where.append(f"{day} >= :from_day")
    if f.to_day:
        if f.after_midnight:
            where.append(f"{alias}.day <= :to_day_next AND {day} <= :to_day")
            params["to_day_next"] = f.to_day + timedelta(days=1)
        else:
            where.append(f"{alias}.day <= :to_day")
        params["to_day"] = f.to_day
    if f.hours is not None:
        where.append(f"{alias}.hour = ANY(:hours)")
        params["hours"] = list(f.hours)
    if f.weekdays is not None:
        where.append(f"extract(isodow FROM {day}) = ANY(:weekdays)")
        params["weekdays"] = list(f.weekdays)
    if f.council:
        where.append(f"{alias}.council = :council")
        params["council"] = f.council
    return where, params


def _table(f: Filters) -> str:
    """Where the counts come from: a council's own counts (only what lies inside its area: a location
    inside it, the part of a route inside it); without a time filter the compact all-time table."""
    if f.council:
        return "heatmap_council_cells"
    return "heatmap_totals" if f.timeless else "heatmap_cells"


def _and(where: list[str]) -> str:
    return " AND ".join(where) or "true"


_PER_CATEGORY = ", ".join(f"coalesce(sum(c.count) FILTER (WHERE c.category = '{k}'), 0)::integer AS {k}"
                          for k in CATEGORIES)


def _cell_counts_sql(f: Filters, area: Area) -> tuple[str, dict[str, Any]]:
    """Counts per cell. Without a time filter the compact all-time table answers."""
    where, params = _conditions(f, area)
    sql = f"""
        SELECT c.level, c.q, heatmap_cell_x(c.q) AS x, heatmap_cell_y(c.q) AS y,
               sum(c.count)::integer AS count, {_PER_CATEGORY}
        FROM {_table(f)} c
        WHERE {_and(where)}
        GROUP BY c.level, c.q
    """
    return sql, params


def cells(f: Filters, area: Area, limit: int) -> list[dict[str, Any]]:
    """Cells with their counts and GeoJSON polygons (at most ``limit``, densest first)."""
    sql, params = _cell_counts_sql(f, area)
    rows = db.reads.execute(
        text(f"""
            SELECT cc.*, ST_AsGeoJSON(ST_Transform(ST_TileEnvelope(cc.level, cc.x, cc.y), 4326), 6) AS geometry
            FROM ({sql}) AS cc ORDER BY cc.count DESC, cc.q LIMIT :limit
        """),
        {**params, "limit": limit},
    ).mappings().all()
    return [dict(row) for row in rows]


def tile(f: Filters, z: int, x: int, y: int, level: int) -> bytes:
    """A Mapbox Vector Tile (layer ``heatmap``) of the cells in map tile z/x/y; empty bytes if none."""
    sql, params = _cell_counts_sql(f, Area.tile(level, z, x, y))
    data = db.reads.execute(
        text(f"""
            SELECT ST_AsMVT(t, 'heatmap', 4096, 'geom') FROM (
                SELECT ST_AsMVTGeom(ST_TileEnvelope(cc.level, cc.x, cc.y), ST_TileEnvelope(:z, :tx, :ty),
                                    4096, 0, false) AS geom,
                       cc.level || '/' || cc.x || '/' || cc.y AS cell, cc.count,
                       {', '.join(f'cc.{k}' for k in CATEGORIES)}
                FROM ({sql}) AS cc
                ORDER BY cc.q  -- the same cells give the same bytes, and so the same ETag
            ) AS t
        """),
        {**params, "z": z, "tx": x, "ty": y},
    ).scalar()
    return bytes(data or b"")


# A hotspot's street: the nearest named segment of the loaded network within this distance of the
# cell's centre (none where the network does not reach).
STREET_NAME_M = 200


def hotspots(f: Filters, area: Area, limit: int, min_count: int) -> list[dict[str, Any]]:
    """The cells with at least ``min_count`` reports in [from_day, to_day], most first, with the
    previous equal period's count, the cell's outline and centre, and the places that name it: the
    nearest station (and how far), the nearest named street of the loaded network within
    STREET_NAME_M, and the council area the centre lies in."""
    days = (f.to_day - f.from_day).days + 1
    previous = f.shifted(days)
    where, params = _conditions(replace(f, from_day=previous.from_day), area)
    rows = db.reads.execute(
        text(f"""
            WITH counted AS (
                SELECT c.level, c.q, heatmap_cell_x(c.q) AS x, heatmap_cell_y(c.q) AS y,
                       coalesce(sum(c.count) FILTER (WHERE {night_day(f)} >= :period_from), 0)::integer AS count,
                       coalesce(sum(c.count) FILTER (WHERE {night_day(f)} < :period_from), 0)::integer
                           AS previous_count
                FROM {'heatmap_council_cells' if f.council else 'heatmap_cells'} c
                WHERE {_and(where)}
                GROUP BY c.level, c.q
            ), ranked AS (
                SELECT h.*, ST_Transform(ST_TileEnvelope(h.level, h.x, h.y), 4326) AS outline,
                       ST_Transform(ST_Centroid(ST_TileEnvelope(h.level, h.x, h.y)), 4326) AS middle
                FROM counted h
                WHERE h.count >= :min_count
                ORDER BY h.count DESC, h.count - h.previous_count DESC, h.q
                LIMIT :limit
            )
            SELECT r.level, r.q, r.x, r.y, r.count, r.previous_count,
                   ST_AsGeoJSON(r.outline, 6) AS geometry, ST_AsGeoJSON(r.middle, 6) AS centre,
                   station.name AS station, station.distance_m AS station_distance_m,
                   street.name AS street, council.name AS borough
            FROM ranked r
            LEFT JOIN LATERAL (
                SELECT s.name, round(ST_Distance(s.geom::geography, r.middle::geography))::integer AS distance_m
                FROM stations s ORDER BY s.geom <-> r.middle LIMIT 1
            ) AS station ON true
            LEFT JOIN LATERAL (
                SELECT seg.name FROM street_segments seg
                WHERE seg.name IS NOT NULL AND ST_DWithin(seg.geom::geography, r.middle::geography, :street_m)
                ORDER BY seg.geom::geography <-> r.middle::geography LIMIT 1
            ) AS street ON true
            LEFT JOIN LATERAL (
                SELECT a.name FROM council_areas a WHERE ST_Intersects(a.geom, r.middle) LIMIT 1
            ) AS council ON true
            ORDER BY r.count DESC, r.count - r.previous_count DESC, r.q
        """),
        {**params, "period_from": f.from_day, "limit": limit, "min_count": min_count, "street_m": STREET_NAME_M},
    ).mappings().all()
    return [dict(row) for row in rows]


def public_cells(window: Window, categories: tuple[str, ...] | None, area: Area, min_reporters: int,
                 epsilon: float, secret: bytes) -> list[dict[str, Any]]:
    """Public cells (level PUBLIC_LEVEL), each the sum of its published units in the window: counts only
    (backend/heatmap/publishing.py)."""
    where, params = _area_conditions(area, "u", level_column=False)
    return published_cells(window, categories, where, params, min_reporters, epsilon, secret)
