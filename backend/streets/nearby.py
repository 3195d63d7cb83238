"""Which street edges each report lies near: ``report_edges``, kept so that a route's report penalty
is a join, not a spatial search on every request (backend/routes/service.py).

A report is near an edge when its route (or, without one, its place) passes within ``NEAR_M`` of it,
measured as the routes service measures it: planar in Web Mercator at the latitude's scale, a route
looked up in runs of a few vertices. Rows are written when a report arrives (the ``report.created``
handler, streets/handlers.py) and all again whenever the graph is rebuilt (a network load) or reports
are seeded in bulk. A report erased with its author or purged for its age takes its rows with it
(``ON DELETE CASCADE``, migration 0017), in the deleting transaction: nothing else needs telling.
Whether a report still counts (its age, a rejection) is decided when the route is sought.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from backend.extensions import db

NEAR_M = 25

_INSERT = """
    INSERT INTO report_edges (report_id, occurred_at, edge_id)
    SELECT DISTINCT p.id, p.occurred_at, e.id
    FROM (
        SELECT r.id, r.occurred_at, ST_Subdivide(ST_Transform(coalesce(r.route, r.location), 3857), 8) AS g,
               :near / cos(radians(ST_Y(r.location))) AS near_m  -- 25 m in Web Mercator units there
        FROM reports r WHERE {where}
    ) AS p
    JOIN street_edges e ON ST_DWithin(e.geom_m, p.g, p.near_m)
    ON CONFLICT DO NOTHING
"""


def _insert(where: str, params: dict[str, Any]) -> int:
    return db.session.execute(text(_INSERT.format(where=where)), {**params, "near": NEAR_M}).rowcount


def add_report(report_id: str) -> int:
    """The ``report.created`` handler: record the edges near one report; returns how many. A report
    erased before this runs is skipped (its row is locked first, so it cannot go meanwhile)."""
    return add_reports([{"report_id": report_id}])


def add_reports(payloads: list[dict[str, Any]]) -> int:
    """A batch of ``report.created`` (under a backlog, backend/outbox): the edges near every report of
    the batch still there, in one statement. The reports are locked in id order, as erasure locks them."""
    ids = sorted({str(p["report_id"]) for p in payloads})
    kept = db.session.execute(text(
        "SELECT id FROM reports WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR KEY SHARE"), {"ids": ids}).scalars().all()
    if not kept:
        return 0
    # Not compiled by JIT: PostGIS's costs (ST_Subdivide's thousand rows a report, each an index probe)
    # put a batch of a few reports past jit_above_cost, and compiling took 100-250 ms for a statement
    # that runs in about 1 ms: most of PostgreSQL's CPU per report under a stream (docs/benchmarks.md).
    db.session.execute(text("SET LOCAL jit = off"))
    return _insert("r.id = ANY(CAST(:ids AS uuid[]))", {"ids": [str(i) for i in kept]})


def rebuild() -> int:
    """Every report's edges again (after the graph is rebuilt, whose edge ids are new, or a bulk seed);
    returns the rows written. Flushes only: the caller commits."""
    db.session.flush()
    db.session.execute(text("DELETE FROM report_edges"))
    written = _insert("true", {})
    db.session.execute(text("ANALYZE report_edges"))
    return written
