"""Counting reports into the heatmap's aggregates, report by report, exactly once; keeping the counts
of reports that are erased or expire.

``heatmap_cells`` holds counts per cell (level, x, y), local day and hour, category and transport
mode ('' for none). A report counts once in every cell it touches at each level: the cell of its
location and, for a route, every cell the route passes through (backend/heatmap/grid.py).
``heatmap_counted_at`` on the report makes counting it idempotent; ``heatmap_retained`` keeps
the counts of erased reports, which a rebuild adds back; ``heatmap_reporters`` lists who reported
in each public cell per day and category, for the public heatmap's distinct-reporter threshold;
``heatmap_public_units`` how many reports each person filed in time into each published unit of the
public heatmap (backend/heatmap/publishing.py).

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
from backend.heatmap.publishing import counts_publicly, week_of

log = logging.getLogger(__name__)

PUBLIC_SHIFT = FINE_LEVEL - PUBLIC_LEVEL
CUBE_KEY = ("level", "q", "day", "hour", "category", "mode")


def city_tz() -> str:
    return current_settings().city_timezone


# The columns a report contributes with: its local day and hour, and where it lies in Web Mercator.
REPORT_FACTS = """
    r.id, r.author_id, r.category, coalesce(r.mode, '') AS mode,
    local_day(r.occurred_at, :tz) AS day, local_hour(r.occurred_at, :tz) AS hour,
    local_day(r.created_at, :tz) AS filed_day,
    heatmap_fine_x(ST_X(heatmap_point_3857(r.location))) AS fx,
    heatmap_fine_y(ST_Y(heatmap_point_3857(r.location))) AS fy,
    ST_AsBinary(heatmap_route_3857(r.route)) AS route_wkb
"""


# Reports whose route counts (a route beyond Web Mercator's latitudes counts at its location only).
HAS_ROUTE = "r.route IS NOT NULL AND heatmap_route_3857(r.route) IS NOT NULL"

# What a report contributes to each council whose area it touches (alias ``a``, council_areas): its
# location only when inside the area, its route only the part inside (clipping skipped when the route
# lies inside). A council's heatmap counts nothing else (docs/privacy.md).
COUNCIL_FACTS = """
    a.code AS council, r.id, r.author_id, r.category, coalesce(r.mode, '') AS mode,
    local_day(r.occurred_at, :tz) AS day, local_hour(r.occurred_at, :tz) AS hour,
    local_day(r.created_at, :tz) AS filed_day,
    CASE WHEN ST_Intersects(a.geom, r.location) THEN heatmap_fine_x(ST_X(heatmap_point_3857(r.location))) END AS fx,
    CASE WHEN ST_Intersects(a.geom, r.location) THEN heatmap_fine_y(ST_Y(heatmap_point_3857(r.location))) END AS fy,
    ST_AsBinary(heatmap_route_3857(CASE WHEN r.route IS NULL THEN NULL
                                        WHEN ST_CoveredBy(r.route, a.geom) THEN r.route
                                        ELSE ST_CollectionExtract(ST_Intersection(r.route, a.geom), 2) END)) AS route_wkb
"""
COUNCIL_JOIN = """
    JOIN council_areas a ON ST_Intersects(a.geom, r.location) OR (r.route IS NOT NULL AND ST_Intersects(a.geom, r.route))
"""


@dataclass(frozen=True)
class Contribution:
    cube: Counter  # (level, x, y, day, hour, category, mode) -> count
    reporters: set  # (q, day, category, author_id) at the public level
    units: Counter  # (q, week, category, author_id) -> reports filed in time, at the public level


def fine_cell_rows(facts: Sequence[Any], offset: int = 0) -> np.ndarray:
    """Unique rows (report number, x, y) of the reports' fine cells: each location's cell (none when
    ``fx`` is null: a location outside a council's area) and each route's cells (a route clipped to an
    area may be in several parts). Reports are numbered from ``offset`` in the order given."""
    points = np.asarray([(offset + i, f.fx, f.fy) for i, f in enumerate(facts) if f.fx is not None],
                        dtype=np.int64).reshape(-1, 3)
    routed = [(i, f.route_wkb) for i, f in enumerate(facts) if f.route_wkb is not None]
    if not routed:
        return points
    parts, line_of_part = shapely.get_parts(shapely.from_wkb([bytes(wkb) for _, wkb in routed]), return_index=True)
    coords, part_of_vertex = shapely.get_coordinates(parts, return_index=True)
    if not len(coords):
        return points
    cells = route_fine_cells(part_of_vertex, coords[:, 0], coords[:, 1])
    cells[:, 0] = np.asarray([offset + i for i, _ in routed])[line_of_part][cells[:, 0]]
    return np.unique(np.concatenate([points, cells]), axis=0)


def contributions(facts: Sequence[Any]) -> Contribution:
    """What these reports add to the aggregates: one count per report in each cell it touches."""
    cube: Counter = Counter()
    reporters: set = set()
    units: Counter = Counter()
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
        in_time = counts_publicly(f.day, f.filed_day)
        for q in {q >> 2 * PUBLIC_SHIFT for q in cells}:
            reporters.add((q, f.day, f.category, f.author_id))
            if in_time:
                units[(q, week_of(f.day), f.category, f.author_id)] += 1
    return Contribution(cube, reporters, units)


def council_contributions(facts: Sequence[Any]) -> Counter:
    """What council facts (COUNCIL_FACTS) add to the councils' counts: (council, *cube key) -> count."""
    cube: Counter = Counter()
    by_council: dict[str, list[Any]] = {}
    for f in facts:
        by_council.setdefault(f.council, []).append(f)
    for council, theirs in by_council.items():
        for key, count in contributions(theirs).cube.items():
            cube[(council, *key)] += count
    return cube


def _add_counts(table: str, cube: Counter, council: bool = False) -> None:
    if not cube:
        return
    # In key order: two transactions upserting the same cells lock them in the same order.
    cube = dict(sorted(cube.items()))
    columns = list(zip(*cube.keys()))
    key = ("council", *CUBE_KEY) if council else CUBE_KEY
    db.session.execute(
        text(f"""
            INSERT INTO {table} ({', '.join(key)}, count)
            SELECT * FROM unnest({'CAST(:council AS text[]), ' if council else ''}
                                 CAST(:level AS smallint[]), CAST(:q AS bigint[]), CAST(:day AS date[]),
                                 CAST(:hour AS smallint[]), CAST(:category AS text[]), CAST(:mode AS text[]),
                                 CAST(:count AS integer[]))
            ON CONFLICT ON CONSTRAINT {table}_pkey DO UPDATE SET count = {table}.count + EXCLUDED.count
        """),
        dict(zip((*key, "count"), (*map(list, columns), list(cube.values())))),
    )


def _add_totals(cube: Counter) -> None:
    """The all-time counts: the cube without its day and hour (a report has one of each)."""
    totals: Counter = Counter()
    for (level, q, _day, _hour, category, mode), count in cube.items():
        totals[(level, q, category, mode)] += count
    if not totals:
        return
    totals = dict(sorted(totals.items()))
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


def _add_units(units: Counter) -> None:
    if not units:
        return
    q, week, category, author = map(list, zip(*units.keys()))
    db.session.execute(
        text("""
            INSERT INTO heatmap_public_units (q, week, category, author_id, reports)
            SELECT * FROM unnest(CAST(:q AS bigint[]), CAST(:week AS date[]), CAST(:category AS text[]),
                                 CAST(:author AS uuid[]), CAST(:reports AS integer[]))
            ON CONFLICT ON CONSTRAINT heatmap_public_units_pkey
            DO UPDATE SET reports = heatmap_public_units.reports + EXCLUDED.reports
        """),
        {"q": q, "week": week, "category": category, "author": author, "reports": list(units.values())},
    )


def _remove_units(units: Counter) -> None:
    """Take reports out of the published units; a person left with none there is no longer its reporter."""
    if not units:
        return
    q, week, category, author = map(list, zip(*units.keys()))
    params = {"q": q, "week": week, "category": category, "author": author, "reports": list(units.values())}
    gone = """
        unnest(CAST(:q AS bigint[]), CAST(:week AS date[]), CAST(:category AS text[]), CAST(:author AS uuid[]),
               CAST(:reports AS integer[])) AS g (q, week, category, author_id, reports)
    """
    same = "(u.week, u.q, u.category, u.author_id) = (g.week, g.q, g.category, g.author_id)"
    db.session.execute(text(f"DELETE FROM heatmap_public_units u USING {gone} WHERE {same} AND u.reports <= g.reports"),
                       params)
    db.session.execute(text(f"UPDATE heatmap_public_units u SET reports = u.reports - g.reports FROM {gone} WHERE {same}"),
                       params)


def lock_aggregates() -> None:
    """The first lock of every transaction that writes the aggregates or deletes counted reports
    (docs/architecture.md, "Lock order"): the aggregate tables, then reports. rebuild() takes the
    same tables in ACCESS EXCLUSIVE mode, first too, for its short swap: whatever marks a report
    counted takes this lock before it, so that no counting is half done while the swap runs."""
    db.session.execute(text("LOCK TABLE heatmap_cells, heatmap_totals, heatmap_reporters, heatmap_public_units, "
                            "heatmap_council_cells IN ROW EXCLUSIVE MODE"))


def note_removal() -> None:
    """Reports are about to go: a rebuild running meanwhile counted them from its snapshot and starts
    again rather than swap stale tables in (backend/heatmap/rebuild.py)."""
    db.session.execute(text("INSERT INTO heatmap_removals DEFAULT VALUES"))


def add_counted_reports(report_ids: list[Any]) -> None:
    """Add what these counted reports contribute to the aggregate tables found on the search path: the
    rebuild's catch-up, for the reports the worker counted into the old tables while it built the new
    ones. The same contributions as apply_report()."""
    added = contributions(_facts("r.id = ANY(:ids)", {"ids": report_ids}))
    _add_counts("heatmap_cells", added.cube)
    _add_totals(added.cube)
    _add_reporters(added.reporters)
    _add_units(added.units)
    _add_counts("heatmap_council_cells", council_contributions(_council_facts("r.id = ANY(:ids)", {"ids": report_ids})),
                council=True)


def apply_report(report_id: str) -> bool:
    """Count one report into the aggregates, once: a second call for the same report changes
    nothing. Runs in the caller's transaction (the outbox task's). False when there was nothing to do."""
    return count_reports([report_id]) > 0


def apply_reports(payloads: list[dict[str, Any]]) -> int:
    """``apply_report`` for a batch of ``report.created`` tasks (their payloads), in one transaction."""
    return count_reports([p["report_id"] for p in payloads])


def count_reports(report_ids: list[Any]) -> int:
    """Count reports into the aggregates, each once whatever the repeats (in the list, or of earlier
    calls): one pass over their contributions and one upsert per aggregate table. Runs in the caller's
    transaction; returns how many were counted now."""
    lock_aggregates()
    # The reports in id order, as erasure takes them (docs/architecture.md, "Lock order").
    facts = db.session.execute(
        text(f"""
            WITH locked AS (
                SELECT id FROM reports WHERE id = ANY(CAST(:ids AS uuid[])) AND heatmap_counted_at IS NULL
                ORDER BY id FOR UPDATE
            )
            UPDATE reports AS r SET heatmap_counted_at = clock_timestamp()
            FROM locked WHERE r.id = locked.id AND r.heatmap_counted_at IS NULL
            RETURNING {REPORT_FACTS}
        """),
        {"ids": [str(i) for i in report_ids], "tz": city_tz()},
    ).all()
    if not facts:
        return 0
    added = contributions(facts)
    _add_counts("heatmap_cells", added.cube)
    _add_totals(added.cube)
    _add_reporters(added.reporters)
    _add_units(added.units)
    counted = [str(f.id) for f in facts]
    _add_counts("heatmap_council_cells",
                council_contributions(_council_facts("r.id = ANY(CAST(:ids AS uuid[]))", {"ids": counted})),
                council=True)
    return len(facts)


def retain_counts_of_author(user_id: Any) -> int:
    """Before a person's reports are erased (the ``user.erasing`` event), keep what they added to the heatmap as bare counts,
    so that aggregates keep their counts and a rebuild still gives them. Returns reports retained.
    The person leaves ``heatmap_reporters`` and ``heatmap_public_units`` by cascade when their identity
    link is deleted: public units lose their reports. Runs first in the erasure's transaction, so it
    takes the first locks: the aggregates, then the person's reports in id order, before reading which
    of them are counted (a report being counted meanwhile is waited for, and then seen counted: kept
    once, never missed)."""
    lock_aggregates()
    note_removal()
    db.session.execute(text("SELECT FROM reports WHERE author_id = :author ORDER BY id FOR UPDATE"), {"author": user_id})
    return _retain_counts("r.author_id = :author", {"author": user_id})


def retain_counts_of_reports(report_ids: list[Any]) -> int:
    """The same before reports are deleted for their age (the ``reports.deleting`` event);
    their entries in ``heatmap_reporters`` (who reported in which public cell on which day) go, unless
    another report of the same person still supports them, as a rebuild would have it; the public
    units lose these reports."""
    lock_aggregates()
    note_removal()
    retained = _retain_counts("r.id = ANY(:ids)", {"ids": report_ids})
    leaving = contributions(_facts("r.id = ANY(:ids)", {"ids": report_ids}))
    _remove_units(leaving.units)
    gone = leaving.reporters
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


def _council_facts(where: str, params: dict[str, Any]) -> list[Any]:
    return db.session.execute(
        text(f"SELECT {COUNCIL_FACTS} FROM reports r {COUNCIL_JOIN} WHERE {where} ORDER BY r.id, a.code"),
        {**params, "tz": city_tz()},
    ).all()


def _retain_counts(where: str, params: dict[str, Any]) -> int:
    facts = _facts(where, params)
    _add_counts("heatmap_retained", contributions(facts).cube)
    _add_counts("heatmap_council_retained",
                council_contributions(_council_facts(f"{where} AND r.heatmap_counted_at IS NOT NULL", params)),
                council=True)
    return len(facts)
