"""The street network noded into a graph pgRouting walks (``backend/routes``), rebuilt on every load.

The sources were not all split at junctions (an OpenStreetMap way runs on through the junctions it
meets), so every vertex is first snapped to a grid of ``SNAP_DEGREES`` (about a metre) and a segment
is cut at each snapped vertex it shares with another segment, and at its two ends. The cut points are
the graph's vertices (``street_vertices``); the pieces between them its edges (``street_edges``),
each with its ``source`` and ``target`` vertex, its length in metres as its cost, the segment it
belongs to, that segment's ``lit``, and its two ends in planar metres (``source_x`` ... ``target_y``,
British National Grid: the routes service's ellipse test, backend/routes/service.py). Each report's nearby edges (``report_edges``) are
recorded again for the new edges. Pieces of the graph cut off from the rest (fewer
than ``ISLAND_SHARE`` of the largest piece's vertices) are left out of it. Two streets that cross without sharing a vertex
(a bridge over a road) stay unconnected, as they should.
"""

from __future__ import annotations

from sqlalchemy import text

from backend.extensions import db
from backend.streets import nearby

# 0.00001 degrees: 1.1 m north-south and 0.7 m east-west in London.
SNAP_DEGREES = 0.00001
# A connected piece of the graph with fewer vertices than this share of the largest piece's is dropped.
ISLAND_SHARE = 0.05

_STEPS = (
    "DELETE FROM report_edges",  # at once, rather than edge by edge by cascade
    "DELETE FROM street_edges",
    "DELETE FROM street_vertices",
    "DROP TABLE IF EXISTS pg_temp.street_points",
    "DROP TABLE IF EXISTS pg_temp.street_nodes",
    # Every vertex of every segment, with its snapped grid key (kx, ky).
    """CREATE TEMP TABLE street_points AS
       SELECT s.id AS segment_id, d.path[1] AS i, d.geom AS pt,
              round(ST_X(d.geom) / :grid)::bigint AS kx, round(ST_Y(d.geom) / :grid)::bigint AS ky,
              d.path[1] IN (1, ST_NPoints(s.geom)) AS is_end
       FROM street_segments s CROSS JOIN LATERAL ST_DumpPoints(s.geom) AS d""",
    # The keys where the graph has a vertex: a segment's end, or a point two segments share.
    """CREATE TEMP TABLE street_nodes AS
       SELECT kx, ky, row_number() OVER (ORDER BY kx, ky) AS id
       FROM street_points GROUP BY kx, ky
       HAVING bool_or(is_end) OR count(DISTINCT segment_id) > 1""",
    """INSERT INTO street_vertices (id, geom)
       SELECT id, ST_SetSRID(ST_MakePoint(kx * :grid, ky * :grid), 4326) FROM street_nodes""",
    # Each segment cut at its vertices: the pieces between consecutive cuts, ends moved onto the vertices.
    """INSERT INTO street_edges (segment_id, source, target, length_m, lit, geom, geom_m,
                                source_x, source_y, target_x, target_y)
       SELECT segment_id, source, target, ST_Length(geom::geography), lit, geom, ST_Transform(geom, 3857),
              ST_X(ST_Transform(ST_StartPoint(geom), 27700)), ST_Y(ST_Transform(ST_StartPoint(geom), 27700)),
              ST_X(ST_Transform(ST_EndPoint(geom), 27700)), ST_Y(ST_Transform(ST_EndPoint(geom), 27700))
       FROM (
           SELECT c.segment_id, c.source, c.target, s.lit,
                  ST_SetPoint(ST_SetPoint(ST_MakeLine(array_agg(p.pt ORDER BY p.i)), 0, vs.geom), -1, vt.geom) AS geom
           FROM (
               SELECT segment_id, i AS a, lead(i) OVER w AS b, id AS source, lead(id) OVER w AS target
               FROM (SELECT p.segment_id, p.i, n.id FROM street_points p JOIN street_nodes n USING (kx, ky)) AS cuts
               WINDOW w AS (PARTITION BY segment_id ORDER BY i)
           ) AS c
           JOIN street_points p ON p.segment_id = c.segment_id AND p.i BETWEEN c.a AND c.b
           JOIN street_segments s ON s.id = c.segment_id
           JOIN street_vertices vs ON vs.id = c.source
           JOIN street_vertices vt ON vt.id = c.target
           WHERE c.b IS NOT NULL AND c.source <> c.target
           GROUP BY c.segment_id, c.a, c.source, c.target, s.lit, vs.geom, vt.geom
       ) AS pieces
       WHERE ST_Length(geom) > 0""",
    "DROP TABLE street_points",
    "DROP TABLE street_nodes",
    # Islands (a courtyard's paths, a fragment cut off at the data's edge) out of the graph: a route's
    # ends are put on the nearest street it can leave from.
    """WITH components AS (
           SELECT node, component, count(*) OVER (PARTITION BY component) AS size
           FROM pgr_connectedComponents('SELECT id, source, target, length_m AS cost FROM street_edges')
       ),
       islands AS (
           SELECT node FROM components WHERE size < :island_share * (SELECT max(size) FROM components)
       ),
       gone AS (DELETE FROM street_edges WHERE source IN (SELECT node FROM islands))
       DELETE FROM street_vertices
       WHERE id IN (SELECT node FROM islands) OR id NOT IN (SELECT node FROM components)""",
    "ANALYZE street_edges",
    "ANALYZE street_vertices",
)


def rebuild() -> int:
    """Node the loaded segments into the routing graph (replacing the previous one); returns the
    number of edges. Flushes only: the caller commits."""
    db.session.flush()
    for step in _STEPS:
        db.session.execute(text(step), {"grid": SNAP_DEGREES, "island_share": ISLAND_SHARE})
    nearby.rebuild()  # the edges are new: each report's nearby edges again
    return db.session.scalar(text("SELECT count(*) FROM street_edges")) or 0
