"""Heatmap aggregates: maintained report by report, rebuilt in bulk, read as cells, tiles and hotspots.

``heatmap_cells`` holds counts per cell (level, x, y), local day and hour, category and transport
mode ('' for none). A report counts once in every cell it touches at each level: the cell of its
location and, for a route, every cell the route passes through (backend/heatmap/grid.py).
``heatmap_counted_at`` on the report makes counting it idempotent; ``heatmap_retained`` keeps
the counts of erased reports, which a rebuild adds back; ``heatmap_reporters`` lists who reported
in each public cell per day and category, for the public heatmap's distinct-reporter threshold.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import shapely
from psycopg.errors import SerializationFailure
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from backend.config import current_settings
from backend.extensions import db
from backend.heatmap.grid import (
    FINE_LEVEL,
    LEVELS,
    PUBLIC_LEVEL,
    bbox_cell_range,
    key_ranges,
    morton,
    route_fine_cells,
    tile_key_range,
)
from backend.reports.vocabulary import CATEGORIES

log = logging.getLogger(__name__)

PUBLIC_SHIFT = FINE_LEVEL - PUBLIC_LEVEL
CUBE_KEY = ("level", "q", "day", "hour", "category", "mode")
REBUILD_WORK_MEM = "512MB"


def _tz() -> str:
    return current_settings().city_timezone


# The columns a report contributes with: its local day and hour, and where it lies in Web Mercator.
_REPORT_FACTS = """
    r.id, r.author_id, r.category, coalesce(r.mode, '') AS mode,
    (r.occurred_at AT TIME ZONE :tz)::date AS day,
    extract(hour FROM r.occurred_at AT TIME ZONE :tz)::smallint AS hour,
    heatmap_fine_x(ST_X(heatmap_point_3857(r.location))) AS fx,
    heatmap_fine_y(ST_Y(heatmap_point_3857(r.location))) AS fy,
    ST_AsBinary(heatmap_route_3857(r.route)) AS route_wkb
"""


# Reports whose route counts (a route beyond Web Mercator's latitudes counts at its location only).
_HAS_ROUTE = "r.route IS NOT NULL AND heatmap_route_3857(r.route) IS NOT NULL"


@dataclass(frozen=True)
class Contribution:
    cube: Counter  # (level, x, y, day, hour, category, mode) -> count
    reporters: set  # (x, y, day, category, author_id) at the public level


def _fine_cell_rows(facts: Sequence[Any], offset: int = 0) -> np.ndarray:
    """Unique rows (report number, x, y) of the reports' fine cells: each location's cell and each
    route's cells. Reports are numbered from ``offset`` in the order given."""
    points = np.asarray([(offset + i, f.fx, f.fy) for i, f in enumerate(facts)], dtype=np.int64).reshape(-1, 3)
    routed = [(i, f.route_wkb) for i, f in enumerate(facts) if f.route_wkb is not None]
    if not routed:
        return points
    lines = shapely.from_wkb([bytes(wkb) for _, wkb in routed])
    coords, index = shapely.get_coordinates(lines, return_index=True)
    owners = np.asarray([offset + i for i, _ in routed])[index]
    return np.unique(np.concatenate([points, route_fine_cells(owners, coords[:, 0], coords[:, 1])]), axis=0)


def contributions(facts: Sequence[Any]) -> Contribution:
    """What these reports add to the aggregates: one count per report in each cell it touches."""
    cube: Counter = Counter()
    reporters: set = set()
    rows = _fine_cell_rows(facts)
    keys = morton(rows[:, 1], rows[:, 2]).tolist()
    fine: list[set[int]] = [set() for _ in facts]
    for owner, q in zip(rows[:, 0].tolist(), keys):
        fine[owner].add(q)
    for f, cells in zip(facts, fine):
        for level in LEVELS:
            shift = 2 * (FINE_LEVEL - level)
            for q in {q >> shift for q in cells}:
                cube[(level, q, f.day, f.hour, f.category, f.mode)] += 1
        for q in {q >> 2 * PUBLIC_SHIFT for q in cells}:
            reporters.add((q, f.day, f.category, f.author_id))
    return Contribution(cube, reporters)


def _add_counts(table: str, cube: Counter) -> None:
    if not cube:
        return
    columns = list(zip(*cube.keys()))
    db.session.execute(
        text(f"""
            INSERT INTO {table} (level, q, day, hour, category, mode, count)
            SELECT * FROM unnest(CAST(:level AS smallint[]), CAST(:q AS bigint[]), CAST(:day AS date[]),
                                 CAST(:hour AS smallint[]), CAST(:category AS text[]), CAST(:mode AS text[]),
                                 CAST(:count AS integer[]))
            ON CONFLICT ON CONSTRAINT {table}_pkey DO UPDATE SET count = {table}.count + EXCLUDED.count
        """),
        dict(zip((*CUBE_KEY, "count"), (*map(list, columns), list(cube.values())))),
    )


def _add_totals(cube: Counter) -> None:
    """The all-time counts: the cube without its day and hour (a report has one of each)."""
    totals: Counter = Counter()
    for (level, q, _day, _hour, category, mode), count in cube.items():
        totals[(level, q, category, mode)] += count
    if not totals:
        return
    level, q, category, mode = map(list, zip(*totals.keys()))
    db.session.execute(
        text("""
            INSERT INTO heatmap_totals (level, q, category, mode, count)
            SELECT * FROM unnest(CAST(:level AS smallint[]), CAST(:q AS bigint[]), CAST(:category AS text[]),
                                 CAST(:mode AS text[]), CAST(:count AS integer[]))
            ON CONFLICT ON CONSTRAINT heatmap_totals_pkey DO UPDATE SET count = heatmap_totals.count + EXCLUDED.count
        """),
        {"level": level, "q": q, "category": category, "mode": mode, "count": list(totals.values())},
    )


def _add_reporters(reporters: Iterable[tuple]) -> None:
    reporters = list(reporters)
    if not reporters:
        return
    q, day, category, author = map(list, zip(*reporters))
    db.session.execute(
        text("""
            INSERT INTO heatmap_reporters (q, day, category, author_id)
            SELECT * FROM unnest(CAST(:q AS bigint[]), CAST(:day AS date[]), CAST(:category AS text[]),
                                 CAST(:author AS uuid[]))
            ON CONFLICT DO NOTHING
        """),
        {"q": q, "day": day, "category": category, "author": author},
    )


def apply_report(report_id: str) -> bool:
    """Count one report into the aggregates, once: a second call for the same report changes
    nothing. Runs in the caller's transaction (the outbox task's). False when there was nothing to do."""
    # Lock order shared with rebuild(): aggregates first, then the report.
    db.session.execute(text("LOCK TABLE heatmap_cells, heatmap_totals, heatmap_reporters IN ROW EXCLUSIVE MODE"))
    facts = db.session.execute(
        text(f"""
            UPDATE reports AS r SET heatmap_counted_at = clock_timestamp()
            WHERE r.id = :id AND r.heatmap_counted_at IS NULL
            RETURNING {_REPORT_FACTS}
        """),
        {"id": report_id, "tz": _tz()},
    ).all()
    if not facts:
        return False
    added = contributions(facts)
    _add_counts("heatmap_cells", added.cube)
    _add_totals(added.cube)
    _add_reporters(added.reporters)
    return True


def retain_counts_of_author(author_id: Any) -> int:
    """Before a person's reports are erased, keep what they added to the heatmap as bare counts,
    so that aggregates keep their counts and a rebuild still gives them. Returns reports retained."""
    return _retain_counts("r.author_id = :author", {"author": author_id})


def retain_counts_of_reports(report_ids: list[Any]) -> int:
    """The same before reports are deleted for their age (``reports.service.purge_expired_reports``);
    their entries in ``heatmap_reporters`` (who reported in which public cell on which day) go, unless
    another report of the same person still supports them, as a rebuild would have it."""
    retained = _retain_counts("r.id = ANY(:ids)", {"ids": report_ids})
    gone = contributions(_facts("r.id = ANY(:ids)", {"ids": report_ids})).reporters
    if gone:
        pairs = sorted({(str(author), day) for _q, day, _category, author in gone})
        still = contributions(_facts(
            "NOT r.id = ANY(:ids) AND (r.author_id::text, (r.occurred_at AT TIME ZONE :tz)::date) IN "
            "(SELECT * FROM unnest(CAST(:authors AS text[]), CAST(:days AS date[])))",
            {"ids": report_ids, "authors": [a for a, _ in pairs], "days": [d for _, d in pairs]},
        )).reporters
        orphans = list(gone - still)
        if orphans:
            q, day, category, author = map(list, zip(*orphans))
            db.session.execute(text("""
                DELETE FROM heatmap_reporters h
                USING unnest(CAST(:q AS bigint[]), CAST(:day AS date[]), CAST(:category AS text[]),
                             CAST(:author AS uuid[])) AS o (q, day, category, author_id)
                WHERE (h.q, h.day, h.category, h.author_id) = (o.q, o.day, o.category, o.author_id)
            """), {"q": q, "day": day, "category": category, "author": author})
    return retained


def _facts(where: str, params: dict[str, Any]) -> list[Any]:
    return db.session.execute(
        text(f"SELECT {_REPORT_FACTS} FROM reports r WHERE {where} AND r.heatmap_counted_at IS NOT NULL"),
        {**params, "tz": _tz()},
    ).all()


def _retain_counts(where: str, params: dict[str, Any]) -> int:
    facts = _facts(where, params)
    _add_counts("heatmap_retained", contributions(facts).cube)
    return len(facts)


def rebuild(chunk: int = 20_000, attempts: int = 3) -> dict[str, float]:
    """Recompute every aggregate from the reports (plus the retained counts of erased ones), in one
    transaction on one snapshot. Gives exactly what incremental updates give. Heatmap reads and
    incremental updates wait while it runs (about a minute per million reports)."""
    if db.session().in_transaction():
        raise RuntimeError("heatmap rebuild runs in a transaction of its own: commit or roll back first")
    for attempt in range(1, attempts + 1):
        try:
            return _rebuild(chunk)
        except OperationalError as exc:
            db.session.rollback()
            if not isinstance(exc.orig, SerializationFailure) or attempt == attempts:
                raise
            log.warning("heatmap rebuild met a concurrent update (attempt %d); retrying", attempt)
    raise AssertionError("unreachable")


def _rebuild(chunk: int) -> dict[str, float]:
    started = time.perf_counter()
    session = db.session
    tz = _tz()
    # One snapshot for every statement: the reports counted are exactly the reports marked counted,
    # even while new ones arrive.
    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    session.execute(text("LOCK TABLE heatmap_cells, heatmap_totals, heatmap_reporters IN ACCESS EXCLUSIVE MODE"))
    session.execute(text("TRUNCATE heatmap_cells, heatmap_totals, heatmap_reporters"))
    # Bulk work: hash aggregates in memory, and the primary keys built once at the end, not row by row.
    session.execute(text(f"SET LOCAL work_mem = '{REBUILD_WORK_MEM}'"))
    session.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    session.execute(text("ALTER TABLE heatmap_cells DROP CONSTRAINT heatmap_cells_pkey"))
    session.execute(text("ALTER TABLE heatmap_reporters DROP CONSTRAINT heatmap_reporters_pkey"))
    session.execute(text("""
        CREATE TEMP TABLE heatmap_route_facts (n integer, author_id uuid, day date, hour smallint,
                                               category text, mode text) ON COMMIT DROP;
        CREATE TEMP TABLE heatmap_route_cells (n integer, q bigint) ON COMMIT DROP;
    """))

    # Reports with a route: their cells come from grid.py, fed in chunks, written with COPY.
    routes = session.execute(
        text(f"SELECT {_REPORT_FACTS} FROM reports r WHERE {_HAS_ROUTE}"),
        {"tz": tz},
        execution_options={"stream_results": True, "yield_per": chunk},
    )
    cursor = session.connection().connection.driver_connection.cursor()
    n = 0
    for batch in routes.partitions(chunk):
        with cursor.copy("COPY heatmap_route_facts FROM STDIN") as copy:
            for i, f in enumerate(batch):
                copy.write_row((n + i, f.author_id, f.day, f.hour, f.category, f.mode))
        cells = _fine_cell_rows(batch, offset=n)
        keys = morton(cells[:, 1], cells[:, 2])
        with cursor.copy("COPY heatmap_route_cells FROM STDIN") as copy:
            copy.write("".join(f"{r}\t{q}\n" for r, q in zip(cells[:, 0].tolist(), keys.tolist())))
        n += len(batch)
    phases = {"routes_s": time.perf_counter() - started}

    levels = list(LEVELS)
    session.execute(
        text(f"""
            INSERT INTO heatmap_cells (level, q, day, hour, category, mode, count)
            SELECT level, q, day, hour, category, mode, sum(n)::integer FROM (
                -- Reports without a route: one fine cell each, grouped once, then rolled up per level.
                SELECT l.level, p.q >> (2 * ({FINE_LEVEL} - l.level)) AS q, p.day, p.hour, p.category, p.mode, p.n
                FROM (
                    SELECT heatmap_morton(heatmap_fine_x(ST_X(pt)), heatmap_fine_y(ST_Y(pt))) AS q,
                           (r.occurred_at AT TIME ZONE :tz)::date AS day,
                           extract(hour FROM r.occurred_at AT TIME ZONE :tz)::smallint AS hour,
                           r.category, coalesce(r.mode, '') AS mode, count(*) AS n
                    FROM reports r, heatmap_point_3857(r.location) AS pt
                    WHERE NOT ({_HAS_ROUTE})
                    GROUP BY 1, 2, 3, 4, 5
                ) AS p CROSS JOIN unnest(CAST(:levels AS smallint[])) AS l (level)
                UNION ALL
                -- Reports with a route: once in each distinct cell per level.
                SELECT d.level, d.q, f.day, f.hour, f.category, f.mode, 1
                FROM (
                    SELECT DISTINCT l.level, c.n, c.q >> (2 * ({FINE_LEVEL} - l.level)) AS q
                    FROM heatmap_route_cells c CROSS JOIN unnest(CAST(:levels AS smallint[])) AS l (level)
                ) AS d JOIN heatmap_route_facts f USING (n)
                UNION ALL
                SELECT level, q, day, hour, category, mode, count FROM heatmap_retained
            ) AS everything
            GROUP BY level, q, day, hour, category, mode
            ORDER BY level, q  -- stored in key order: a tile's rows sit on few pages
        """),
        {"tz": tz, "levels": levels},
    )
    phases["cells_s"] = time.perf_counter() - started - sum(phases.values())
    session.execute(
        text(f"""
            INSERT INTO heatmap_reporters (q, day, category, author_id)
            SELECT heatmap_morton(heatmap_fine_x(ST_X(pt)), heatmap_fine_y(ST_Y(pt))) >> {2 * PUBLIC_SHIFT},
                   (r.occurred_at AT TIME ZONE :tz)::date, r.category, r.author_id
            FROM reports r, heatmap_point_3857(r.location) AS pt
            WHERE NOT ({_HAS_ROUTE})
            UNION
            SELECT c.q >> {2 * PUBLIC_SHIFT}, f.day, f.category, f.author_id
            FROM heatmap_route_cells c JOIN heatmap_route_facts f USING (n)
        """),
        {"tz": tz},
    )
    session.execute(text(f"ALTER TABLE heatmap_cells ADD CONSTRAINT heatmap_cells_pkey PRIMARY KEY ({', '.join(CUBE_KEY)})"))
    session.execute(text("""
        INSERT INTO heatmap_totals (level, q, category, mode, count)
        SELECT level, q, category, mode, sum(count) FROM heatmap_cells GROUP BY level, q, category, mode
        ORDER BY level, q
    """))
    session.execute(text(
        "ALTER TABLE heatmap_reporters ADD CONSTRAINT heatmap_reporters_pkey PRIMARY KEY (q, day, category, author_id)"
    ))
    phases["reporters_and_keys_s"] = time.perf_counter() - started - sum(phases.values())
    session.execute(text("UPDATE reports SET heatmap_counted_at = clock_timestamp() WHERE heatmap_counted_at IS NULL"))
    session.commit()
    phases["mark_and_commit_s"] = time.perf_counter() - started - sum(phases.values())
    return {"seconds": time.perf_counter() - started, "routes": n, **phases}


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class Filters:
    """What to count. None means no restriction. Days are local dates, both ends included."""

    categories: tuple[str, ...] | None = None
    modes: tuple[str, ...] | None = None
    from_day: date | None = None
    to_day: date | None = None
    hours: tuple[int, ...] | None = None  # local hours of the day, 0-23
    weekdays: tuple[int, ...] | None = None  # ISO weekdays, 1 = Monday
    council: str | None = None  # only cells whose centre lies in this council's area

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


_ENVELOPE = "ST_TileEnvelope({a}.level, heatmap_cell_x({a}.q), heatmap_cell_y({a}.q))"


def _conditions(f: Filters, area: Area | None, alias: str = "c") -> tuple[list[str], dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    if area is not None:
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
    if f.categories:
        where.append(f"{alias}.category = ANY(:categories)")
        params["categories"] = list(f.categories)
    if f.modes:
        where.append(f"{alias}.mode = ANY(:modes)")
        params["modes"] = list(f.modes)
    if f.from_day:
        where.append(f"{alias}.day >= :from_day")
        params["from_day"] = f.from_day
    if f.to_day:
        where.append(f"{alias}.day <= :to_day")
        params["to_day"] = f.to_day
    if f.hours is not None:
        where.append(f"{alias}.hour = ANY(:hours)")
        params["hours"] = list(f.hours)
    if f.weekdays is not None:
        where.append(f"extract(isodow FROM {alias}.day) = ANY(:weekdays)")
        params["weekdays"] = list(f.weekdays)
    if f.council:
        where.append(
            "ST_Intersects((SELECT geom FROM council_areas WHERE code = :council), "
            f"ST_Transform(ST_Centroid({_ENVELOPE.format(a=alias)}), 4326))"
        )
        params["council"] = f.council
    return where, params


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
        FROM {'heatmap_totals' if f.timeless else 'heatmap_cells'} c
        WHERE {_and(where)}
        GROUP BY c.level, c.q
    """
    return sql, params


def cells(f: Filters, area: Area, limit: int) -> list[dict[str, Any]]:
    """Cells with their counts and GeoJSON polygons (at most ``limit``, densest first)."""
    sql, params = _cell_counts_sql(f, area)
    rows = db.session.execute(
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
    data = db.session.execute(
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


def hotspots(f: Filters, area: Area, limit: int) -> list[dict[str, Any]]:
    """The cells with most reports in [from_day, to_day], with the previous equal period's count."""
    days = (f.to_day - f.from_day).days + 1
    previous = f.shifted(days)
    where, params = _conditions(replace(f, from_day=previous.from_day), area)
    rows = db.session.execute(
        text(f"""
            SELECT h.*, ST_AsGeoJSON(ST_Transform(ST_TileEnvelope(h.level, h.x, h.y), 4326), 6) AS geometry,
                   ST_AsGeoJSON(ST_Transform(ST_Centroid(ST_TileEnvelope(h.level, h.x, h.y)), 4326), 6) AS centre
            FROM (
                SELECT c.level, c.q, heatmap_cell_x(c.q) AS x, heatmap_cell_y(c.q) AS y,
                       coalesce(sum(c.count) FILTER (WHERE c.day >= :period_from), 0)::integer AS count,
                       coalesce(sum(c.count) FILTER (WHERE c.day < :period_from), 0)::integer AS previous_count
                FROM heatmap_cells c
                WHERE {_and(where)}
                GROUP BY c.level, c.q
            ) AS h
            WHERE h.count > 0
            ORDER BY h.count DESC, h.count - h.previous_count DESC, h.q
            LIMIT :limit
        """),
        {**params, "period_from": f.from_day, "limit": limit},
    ).mappings().all()
    return [dict(row) for row in rows]


def public_cells(f: Filters, min_reporters: int, area: Area) -> list[dict[str, Any]]:
    """Coarse cells, each shown only when at least ``min_reporters`` distinct people reported in it
    within the filters; counts only."""
    where, params = _conditions(f, area, alias="c")
    reporter_where, _ = _conditions(Filters(f.categories, None, f.from_day, f.to_day), None, alias="r")
    rows = db.session.execute(
        text(f"""
            WITH enough AS (
                SELECT r.q FROM heatmap_reporters r
                WHERE {_and(reporter_where)}
                GROUP BY r.q
                HAVING count(DISTINCT r.author_id) >= :min_reporters
            )
            SELECT cc.count,
                   ST_AsGeoJSON(ST_Transform(ST_TileEnvelope(:level, heatmap_cell_x(cc.q), heatmap_cell_y(cc.q)), 4326), 6)
                       AS geometry
            FROM (
                SELECT c.q, sum(c.count)::integer AS count
                FROM {'heatmap_totals' if f.timeless else 'heatmap_cells'} c JOIN enough e ON e.q = c.q
                WHERE {_and(where)}
                GROUP BY c.q
            ) AS cc
            ORDER BY cc.count DESC, cc.q
        """),
        {**params, "min_reporters": min_reporters},
    ).mappings().all()
    return [dict(row) for row in rows]
