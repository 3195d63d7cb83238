"""Rebuilding every heatmap aggregate from the reports in bulk (``safetravel heatmap rebuild``, and the
demo seed after adding reports). Gives exactly what counting report by report gives (tested)."""

from __future__ import annotations

import logging
import time

from psycopg.errors import SerializationFailure
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from backend.extensions import db
from backend.heatmap.counting import (
    COUNCIL_FACTS,
    COUNCIL_JOIN,
    CUBE_KEY,
    HAS_ROUTE,
    PUBLIC_SHIFT,
    REPORT_FACTS,
    city_tz,
    fine_cell_rows,
)
from backend.heatmap.grid import FINE_LEVEL, LEVELS, morton
from backend.heatmap.publishing import COUNTS_PUBLICLY_SQL

log = logging.getLogger(__name__)

REBUILD_WORK_MEM = "512MB"


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
    tz = city_tz()
    # One snapshot for every statement: the reports counted are exactly the reports marked counted,
    # even while new ones arrive.
    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    session.execute(text("LOCK TABLE heatmap_cells, heatmap_totals, heatmap_reporters, heatmap_public_units, "
                         "heatmap_council_cells IN ACCESS EXCLUSIVE MODE"))
    session.execute(text("TRUNCATE heatmap_cells, heatmap_totals, heatmap_reporters, heatmap_public_units, "
                         "heatmap_council_cells"))
    # Bulk work: hash aggregates in memory, and the primary keys built once at the end, not row by row.
    session.execute(text(f"SET LOCAL work_mem = '{REBUILD_WORK_MEM}'"))
    session.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    session.execute(text("ALTER TABLE heatmap_cells DROP CONSTRAINT heatmap_cells_pkey"))
    session.execute(text("ALTER TABLE heatmap_reporters DROP CONSTRAINT heatmap_reporters_pkey"))
    session.execute(text("ALTER TABLE heatmap_council_cells DROP CONSTRAINT heatmap_council_cells_pkey"))
    session.execute(text("""
        CREATE TEMP TABLE heatmap_route_facts (n integer, author_id uuid, day date, hour smallint,
                                               category text, mode text, filed_day date) ON COMMIT DROP;
        CREATE TEMP TABLE heatmap_route_cells (n integer, q bigint) ON COMMIT DROP;
        CREATE TEMP TABLE heatmap_council_route_facts (n integer, council text, day date, hour smallint,
                                                       category text, mode text) ON COMMIT DROP;
        CREATE TEMP TABLE heatmap_council_route_cells (n integer, q bigint) ON COMMIT DROP;
    """))

    # Reports with a route: their cells come from grid.py, fed in chunks, written with COPY.
    routes = session.execute(
        text(f"SELECT {REPORT_FACTS} FROM reports r WHERE {HAS_ROUTE}"),
        {"tz": tz},
        execution_options={"stream_results": True, "yield_per": chunk},
    )
    cursor = session.connection().connection.driver_connection.cursor()
    n = 0
    for batch in routes.partitions(chunk):
        with cursor.copy("COPY heatmap_route_facts FROM STDIN") as copy:
            for i, f in enumerate(batch):
                copy.write_row((n + i, f.author_id, f.day, f.hour, f.category, f.mode, f.filed_day))
        cells = fine_cell_rows(batch, offset=n)
        keys = morton(cells[:, 1], cells[:, 2])
        with cursor.copy("COPY heatmap_route_cells FROM STDIN") as copy:
            copy.write("".join(f"{r}\t{q}\n" for r, q in zip(cells[:, 0].tolist(), keys.tolist())))
        n += len(batch)
    # The same for each council a routed report touches: its route clipped to the area, its
    # location only when inside.
    council_routes = session.execute(
        text(f"SELECT {COUNCIL_FACTS} FROM reports r {COUNCIL_JOIN} WHERE {HAS_ROUTE}"),
        {"tz": tz},
        execution_options={"stream_results": True, "yield_per": chunk},
    )
    m = 0
    for batch in council_routes.partitions(chunk):
        with cursor.copy("COPY heatmap_council_route_facts FROM STDIN") as copy:
            for i, f in enumerate(batch):
                copy.write_row((m + i, f.council, f.day, f.hour, f.category, f.mode))
        cells = fine_cell_rows(batch, offset=m)
        keys = morton(cells[:, 1], cells[:, 2])
        with cursor.copy("COPY heatmap_council_route_cells FROM STDIN") as copy:
            copy.write("".join(f"{r}\t{q}\n" for r, q in zip(cells[:, 0].tolist(), keys.tolist())))
        m += len(batch)
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
                           local_day(r.occurred_at, :tz) AS day, local_hour(r.occurred_at, :tz) AS hour,
                           r.category, coalesce(r.mode, '') AS mode, count(*) AS n
                    FROM reports r, heatmap_point_3857(r.location) AS pt
                    WHERE NOT ({HAS_ROUTE})
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
            INSERT INTO heatmap_council_cells (council, level, q, day, hour, category, mode, count)
            SELECT council, level, q, day, hour, category, mode, sum(n)::integer FROM (
                SELECT p.council, l.level, p.q >> (2 * ({FINE_LEVEL} - l.level)) AS q, p.day, p.hour, p.category,
                       p.mode, p.n
                FROM (
                    SELECT a.code AS council,
                           heatmap_morton(heatmap_fine_x(ST_X(pt)), heatmap_fine_y(ST_Y(pt))) AS q,
                           local_day(r.occurred_at, :tz) AS day, local_hour(r.occurred_at, :tz) AS hour,
                           r.category, coalesce(r.mode, '') AS mode, count(*) AS n
                    FROM council_areas a
                    JOIN reports r ON ST_Intersects(a.geom, r.location)
                    CROSS JOIN heatmap_point_3857(r.location) AS pt
                    WHERE NOT ({HAS_ROUTE})
                    GROUP BY 1, 2, 3, 4, 5, 6
                ) AS p CROSS JOIN unnest(CAST(:levels AS smallint[])) AS l (level)
                UNION ALL
                SELECT f.council, d.level, d.q, f.day, f.hour, f.category, f.mode, 1
                FROM (
                    SELECT DISTINCT l.level, c.n, c.q >> (2 * ({FINE_LEVEL} - l.level)) AS q
                    FROM heatmap_council_route_cells c CROSS JOIN unnest(CAST(:levels AS smallint[])) AS l (level)
                ) AS d JOIN heatmap_council_route_facts f USING (n)
                UNION ALL
                SELECT council, level, q, day, hour, category, mode, count FROM heatmap_council_retained
            ) AS everything
            GROUP BY council, level, q, day, hour, category, mode
            ORDER BY council, level, q
        """),
        {"tz": tz, "levels": levels},
    )
    session.execute(text(
        f"ALTER TABLE heatmap_council_cells ADD CONSTRAINT heatmap_council_cells_pkey PRIMARY KEY (council, {', '.join(CUBE_KEY)})"
    ))
    phases["council_cells_s"] = time.perf_counter() - started - sum(phases.values())
    session.execute(
        text(f"""
            INSERT INTO heatmap_reporters (q, day, category, author_id)
            SELECT heatmap_morton(heatmap_fine_x(ST_X(pt)), heatmap_fine_y(ST_Y(pt))) >> {2 * PUBLIC_SHIFT},
                   local_day(r.occurred_at, :tz), r.category, r.author_id
            FROM reports r, heatmap_point_3857(r.location) AS pt
            WHERE NOT ({HAS_ROUTE})
            UNION
            SELECT c.q >> {2 * PUBLIC_SHIFT}, f.day, f.category, f.author_id
            FROM heatmap_route_cells c JOIN heatmap_route_facts f USING (n)
        """),
        {"tz": tz},
    )
    # The public units: each report once in each public cell it touches, when filed in time.
    session.execute(
        text(f"""
            INSERT INTO heatmap_public_units (q, week, category, author_id, reports)
            SELECT q, date_trunc('week', day)::date, category, author_id, count(*)
            FROM (
                SELECT heatmap_morton(heatmap_fine_x(ST_X(pt)), heatmap_fine_y(ST_Y(pt))) >> {2 * PUBLIC_SHIFT} AS q,
                       local_day(r.occurred_at, :tz) AS day, r.category, r.author_id
                FROM reports r, heatmap_point_3857(r.location) AS pt
                WHERE NOT ({HAS_ROUTE})
                  AND {COUNTS_PUBLICLY_SQL.format(filed="local_day(r.created_at, :tz)", day="local_day(r.occurred_at, :tz)")}
                UNION ALL
                SELECT p.q, f.day, f.category, f.author_id
                FROM (SELECT DISTINCT n, q >> {2 * PUBLIC_SHIFT} AS q FROM heatmap_route_cells) AS p
                JOIN heatmap_route_facts f USING (n)
                WHERE {COUNTS_PUBLICLY_SQL.format(filed="f.filed_day", day="f.day")}
            ) AS placed
            GROUP BY 1, 2, 3, 4
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
