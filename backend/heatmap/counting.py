"""Counting reports into the heatmap's aggregates, report by report, exactly once; keeping the counts
of reports that are erased or expire.

``heatmap_cells`` holds counts per cell (level, x, y), local day and hour, category and transport
mode ('' for none). A report counts once in every cell it touches at each level: the cell of its
location and, for a route, every cell the route passes through (backend/heatmap/grid.py).
``heatmap_counted_at`` on the report makes counting it idempotent; ``heatmap_retained`` keeps
the counts of erased reports, which a rebuild adds back; ``heatmap_reporters`` lists who reported
in each public cell per day and category, for the public heatmap's distinct-reporter threshold.

These are the heatmap's handlers of other domains' events (heatmap/handlers.py). They flush; the
outbox task, or the request that erases a person, commits.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text

from backend.config import current_settings
from backend.extensions import db
from backend.heatmap.grid import FINE_LEVEL, LEVELS, PUBLIC_LEVEL, morton, route_fine_cells

log = logging.getLogger(__name__)

PUBLIC_SHIFT = FINE_LEVEL - PUBLIC_LEVEL
CUBE_KEY = ("level", "q", "day", "hour", "category", "mode")


def city_tz() -> str:
    return current_settings().city_timezone


# The columns a report contributes with: its local day and hour, and where it lies in Web Mercator.
REPORT_FACTS = """
    r.id, r.author_id, r.category, coalesce(r.mode, '') AS mode,
    local_day(r.occurred_at, :tz) AS day, local_hour(r.occurred_at, :tz) AS hour,
    heatmap_fine_x(ST_X(heatmap_point_3857(r.location))) AS fx,
    heatmap_fine_y(ST_Y(heatmap_point_3857(r.location))) AS fy,
    ST_AsBinary(heatmap_route_3857(r.route)) AS route_wkb
"""


# Reports whose route counts (a route beyond Web Mercator's latitudes counts at its location only).
HAS_ROUTE = "r.route IS NOT NULL AND heatmap_route_3857(r.route) IS NOT NULL"


@dataclass(frozen=True)
class Contribution:
    cube: Counter  # (level, x, y, day, hour, category, mode) -> count
    reporters: set  # (x, y, day, category, author_id) at the public level


def fine_cell_rows(facts: Sequence[Any], offset: int = 0) -> np.ndarray:
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
    rows = fine_cell_rows(facts)
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


def lock_aggregates() -> None:
    """The first lock of every transaction that writes the aggregates or deletes counted reports
    (docs/architecture.md, "Lock order"): the aggregate tables, then reports. rebuild() takes the
    same tables in ACCESS EXCLUSIVE mode, first too."""
    db.session.execute(text("LOCK TABLE heatmap_cells, heatmap_totals, heatmap_reporters IN ROW EXCLUSIVE MODE"))


def apply_report(report_id: str) -> bool:
    """Count one report into the aggregates, once: a second call for the same report changes
    nothing. Runs in the caller's transaction (the outbox task's). False when there was nothing to do."""
    lock_aggregates()
    facts = db.session.execute(
        text(f"""
            UPDATE reports AS r SET heatmap_counted_at = clock_timestamp()
            WHERE r.id = :id AND r.heatmap_counted_at IS NULL
            RETURNING {REPORT_FACTS}
        """),
        {"id": report_id, "tz": city_tz()},
    ).all()
    if not facts:
        return False
    added = contributions(facts)
    _add_counts("heatmap_cells", added.cube)
    _add_totals(added.cube)
    _add_reporters(added.reporters)
    return True


def retain_counts_of_author(user_id: Any) -> int:
    """Before a person's reports are erased (the ``user.erasing`` event), keep what they added to the heatmap as bare counts,
    so that aggregates keep their counts and a rebuild still gives them. Returns reports retained.
    Runs first in the erasure's transaction, so it takes the first locks: the aggregates, then the
    person's reports in id order, before reading which of them are counted (a report being counted
    meanwhile is waited for, and then seen counted: kept once, never missed)."""
    lock_aggregates()
    db.session.execute(text("SELECT FROM reports WHERE author_id = :author ORDER BY id FOR UPDATE"), {"author": user_id})
    return _retain_counts("r.author_id = :author", {"author": user_id})


def retain_counts_of_reports(report_ids: list[Any]) -> int:
    """The same before reports are deleted for their age (the ``reports.deleting`` event);
    their entries in ``heatmap_reporters`` (who reported in which public cell on which day) go, unless
    another report of the same person still supports them, as a rebuild would have it."""
    lock_aggregates()
    retained = _retain_counts("r.id = ANY(:ids)", {"ids": report_ids})
    gone = contributions(_facts("r.id = ANY(:ids)", {"ids": report_ids})).reporters
    if gone:
        pairs = sorted({(str(author), day) for _q, day, _category, author in gone})
        still = contributions(_facts(
            "NOT r.id = ANY(:ids) AND (r.author_id::text, local_day(r.occurred_at, :tz)) IN "
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
        text(f"SELECT {REPORT_FACTS} FROM reports r WHERE {where} AND r.heatmap_counted_at IS NOT NULL"),
        {**params, "tz": city_tz()},
    ).all()


def _retain_counts(where: str, params: dict[str, Any]) -> int:
    facts = _facts(where, params)
    _add_counts("heatmap_retained", contributions(facts).cube)
    return len(facts)
