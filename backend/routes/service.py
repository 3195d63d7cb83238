"""The shortest and a safer walking route between two places, with pgRouting over ``street_edges``.

The safer route minimises each edge's length times ``1 + penalty``, where the penalty is

- ``REPORT_WEIGHT`` for each report near the edge (within 25 m: ``report_edges``, recorded when the
  report arrived by backend/streets/nearby.py) in the ``RECENT_DAYS`` before the
  walk (a report whose local hour is within ``SAME_TIME_H`` hours of the walk's counts fully, any other
  ``OTHER_TIME_SHARE``), at most ``REPORT_PENALTY_CAP`` in all; plus
- after dark (``sun_is_down`` at ``from``), ``UNLIT_PENALTY`` on a street tagged unlit.

It is never longer than ``MAX_DETOUR`` times the shortest: when the penalised route is longer, the
penalties are halved and the route sought again (``STRENGTHS``); when none fits, the safer route is the
shortest and the answer says so. The shortest route is sought among the edges in an ellipse around
its two ends, kept when its length proves it the shortest of all, else in a box around them
(pgRouting reads its edge query on every call; the whole city would take seconds); the
safer one among the edges in a corridor around the shortest
(``CORRIDOR_SHARE``), and only when the shortest has a penalty at all. A report is near a route when
it is near one of its edges: the route's ``reports_nearby`` are read from ``report_edges`` too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text

from backend.extensions import db
from backend.geo import haversine_m
from backend.hubs import opening_hours

SNAP_M = 200  # how far a place may be from the nearest street
RECENT_DAYS = 90
SAME_TIME_H = 2
OTHER_TIME_SHARE = 0.25
REPORT_WEIGHT = 0.5
REPORT_PENALTY_CAP = 3.0
UNLIT_PENALTY = 1.0
MAX_DETOUR = 1.5
STRENGTHS = (1.0, 0.5, 0.25)
HUB_NEAR_M = 200
WALK_M_PER_MIN = 80.0
# The box: the two places' bounding box widened by this share of their distance, and at least BOX_MIN_M.
BOX_SHARE = 0.6
BOX_MIN_M = 300
# The shortest route is sought first among the edges both of whose ends lie in the ellipse of the two
# corners' foci whose points P have |AP| + |PB| <= ELLIPSE_SHARE x |AB| (planar, British National Grid:
# street_edges.source_x ...); the path found is the shortest when no path leaving the ellipse can be
# shorter. A planar distance there is at most PLANAR_SCALE_MAX times the true one (over London the grid's
# scale is 0.9998: tests/streets check the shipped network).
ELLIPSE_SHARE = 1.4
PLANAR_SCALE_MAX = 1.001
# The safer route is sought among the edges within this share of the shortest route's length of it
# (at least CORRIDOR_MIN_M): the streets a walker would take to go round a block or two.
CORRIDOR_SHARE = 0.2
CORRIDOR_MIN_M = 150
SAME_NOTE = "No route within 1.5 times the shortest avoids more reports or unlit streets: the shortest is the safer."


class RouteInputError(ValueError):
    """A place the network cannot route from or to: ``field`` names the query parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class Box:
    west: float
    south: float
    east: float
    north: float

    def sql(self) -> str:
        return f"ST_MakeEnvelope({self.west!r}, {self.south!r}, {self.east!r}, {self.north!r}, 4326)"


def _box(start: tuple[float, float], end: tuple[float, float], apart_m: float, margin: float | None = None) -> Box:
    """The two places' bounding box widened by ``margin`` metres (default: BOX_SHARE of their distance)."""
    margin = max(BOX_MIN_M, BOX_SHARE * apart_m) if margin is None else margin
    row = db.session.execute(text("""
        SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)
        FROM expand_by_metres(ST_MakeEnvelope(:w, :s, :e, :n, 4326), :m) AS b"""),
        {"w": min(start[0], end[0]), "s": min(start[1], end[1]), "e": max(start[0], end[0]),
         "n": max(start[1], end[1]), "m": margin}).one()
    return Box(*row)


@dataclass
class Vertex:
    id: int
    lon: float
    lat: float
    x: float  # British National Grid, metres
    y: float


def _nearest_vertex(place: tuple[float, float], field: str) -> Vertex:
    """The nearer end of the street edge nearest the place (within SNAP_M)."""
    # Its planar position is the one the graph stored for the edge's end (the ellipse's own figures).
    row = db.session.execute(text("""
        SELECT v.id, ST_X(v.geom) AS lon, ST_Y(v.geom) AS lat,
               CASE WHEN e.at_source THEN e.source_x ELSE e.target_x END AS x,
               CASE WHEN e.at_source THEN e.source_y ELSE e.target_y END AS y
        FROM (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS p) AS q
        CROSS JOIN LATERAL (
            SELECT source, target, source_x, source_y, target_x, target_y,
                   ST_LineLocatePoint(geom, q.p) < 0.5 AS at_source
            FROM street_edges
            WHERE ST_DWithin(geom::geography, q.p::geography, :snap)
            ORDER BY geom::geography <-> q.p::geography LIMIT 1
        ) AS e
        JOIN street_vertices v ON v.id = CASE WHEN e.at_source THEN e.source ELSE e.target END
        """), {"lon": place[0], "lat": place[1], "snap": SNAP_M}).first()
    if row is None:
        raise RouteInputError(field, f"is more than {SNAP_M} m from any street of the network")
    return Vertex(row.id, row.lon, row.lat, row.x, row.y)


def _corridor(edge_ids: list[int], length_m: float) -> str:
    """The area a safer route is sought in, as an SQL literal: the shortest route widened by
    CORRIDOR_SHARE of its length (at least CORRIDOR_MIN_M), as hex EWKB."""
    hexed = db.session.scalar(text("""
        SELECT ST_AsHEXEWKB(ST_Transform(ST_Buffer(ST_Simplify(ST_Transform(line, 3857), 10 / scale),
                                                   :width / scale, 'quad_segs=2'), 4326))
        FROM (SELECT ST_LineMerge(ST_Collect(geom)) AS line FROM street_edges WHERE id = ANY(:ids)) AS path,
             cos(radians(ST_Y(ST_Centroid(path.line)))) AS scale  -- Web Mercator metres per metre: 1 / scale
    """), {"ids": edge_ids, "width": max(CORRIDOR_MIN_M, CORRIDOR_SHARE * length_m)})
    return f"'{hexed}'::geometry"


def penalties_sql(at: datetime, tz: str, edges: str) -> str:
    """Per edge (``id``), its report penalty (``penalty``), for the edges ``edges`` (an SQL condition
    on ``re.edge_id``) that have one: a join on the edges recorded near each report when it arrived
    (``report_edges``, backend/streets/nearby.py). As SQL text: pgRouting's edge query embeds it."""
    walk, zone = f"'{at.isoformat()}'::timestamptz", "'" + tz.replace("'", "''") + "'"
    hours_apart = f"abs(local_hour(re.occurred_at, {zone}) - local_hour({walk}, {zone}))"
    return (f"SELECT re.edge_id AS id, least({REPORT_PENALTY_CAP!r}, {REPORT_WEIGHT!r} * sum("
            f"CASE WHEN least({hours_apart}, 24 - {hours_apart}) <= {SAME_TIME_H} THEN 1.0 ELSE {OTHER_TIME_SHARE!r} END"
            f")) AS penalty "
            f"FROM report_edges re JOIN reports r ON r.id = re.report_id "
            f"WHERE ({edges}) AND {recent_sql(walk)} GROUP BY re.edge_id")


def recent_sql(walk: str) -> str:
    """A report of ``report_edges re`` joined to ``reports r`` that counts for a walk at ``walk`` (SQL)."""
    return (f"re.occurred_at > {walk} - make_interval(days => {RECENT_DAYS}) AND re.occurred_at <= {walk} "
            f"AND r.status <> 'rejected'")


def _penalties(edge_ids: list[int], at: datetime, tz: str) -> dict[int, float]:
    """The report penalty of each of these edges that has one (edge id -> penalty)."""
    rows = db.session.execute(text(penalties_sql(at, tz, "re.edge_id = ANY(:ids)")), {"ids": edge_ids}).all()
    return {row.id: float(row.penalty) for row in rows}


def edges_sql(box: Box) -> str:
    """pgRouting's edge query for the shortest route: the edges in the box, cost in metres."""
    return f"SELECT id, source, target, length_m AS cost FROM street_edges WHERE geom && {box.sql()}"


def ellipse_edges_sql(box: Box, a: Vertex, b: Vertex, reach_m: float) -> str:
    """pgRouting's edge query for the shortest route within an ellipse: the edges in ``box`` (which holds
    the ellipse) both of whose ends P have |AP| + |PB| <= ``reach_m`` in planar metres, cost in metres.
    Plain float arithmetic on the edge's own columns, inside the box's index scan."""
    def within(end: str) -> str:
        return (f"sqrt(({end}_x - {a.x!r})^2 + ({end}_y - {a.y!r})^2) + "
                f"sqrt(({end}_x - {b.x!r})^2 + ({end}_y - {b.y!r})^2) <= {float(reach_m)!r}")
    return (f"SELECT id, source, target, length_m AS cost FROM street_edges "
            f"WHERE geom && {box.sql()} AND {within('source')} AND {within('target')}")


def safer_edges_sql(corridor: str, at: datetime, tz: str, after_dark: bool, strength: float) -> str:
    """pgRouting's edge query for the safer route: the edges in the corridor, cost in metres times
    1 + strength x (report penalty + unlit penalty after dark); each edge's penalty read by its id."""
    unlit = f"CASE WHEN e.lit = 'no' THEN {UNLIT_PENALTY!r} ELSE 0 END" if after_dark else "0"
    return (f"SELECT e.id, e.source, e.target, "
            f"e.length_m * (1 + {float(strength)!r} * (coalesce(p.penalty, 0) + {unlit})) AS cost "
            f"FROM street_edges e LEFT JOIN LATERAL ({penalties_sql(at, tz, 're.edge_id = e.id')}) AS p ON true "
            f"WHERE e.geom && {corridor} AND ST_Intersects(e.geom, {corridor})")


@dataclass
class Path:
    edges: list[int]
    length_m: float
    unlit_m: float


def dijkstra(edges_query: str, source: int, target: int) -> Path:
    """The cheapest path's edges, in order, and its length in metres (no edges when there is none)."""
    edges = list(db.session.scalars(text(
        "SELECT edge FROM pgr_dijkstra(:edges, CAST(:source AS bigint), CAST(:target AS bigint), directed => false) "
        "WHERE edge <> -1 ORDER BY path_seq"), {"edges": edges_query, "source": source, "target": target}))
    # Apart: joined to pgRouting's answer, the planner would scan every edge (it expects 1,000 rows).
    rows = db.session.execute(text("SELECT length_m, lit FROM street_edges WHERE id = ANY(:ids)"), {"ids": edges}).all()
    return Path(edges, sum(row.length_m for row in rows), sum(row.length_m for row in rows if row.lit == "no"))


def _summaries(routes: dict[str, list[int]], source: int, at: datetime, after_dark: bool,
               tz: ZoneInfo) -> dict[str, dict[str, Any]]:
    """Each route (kind: "shortest" or "safer" -> its edges) as a GeoJSON Feature with its figures,
    all routes in one statement (one round trip)."""
    rows = db.session.execute(text(f"""
        SELECT route.kind, figures.*
        FROM (VALUES ('shortest', CAST(:shortest AS bigint[])), ('safer', CAST(:safer AS bigint[]))) AS route(kind, ids)
        CROSS JOIN LATERAL (
            WITH path AS (
                SELECT e.id, e.geom, e.length_m, s.lit FROM street_edges e JOIN street_segments s ON s.id = e.segment_id
                WHERE e.id = ANY(route.ids)
            ),
            line AS (
                SELECT g
                FROM (
                    SELECT CASE WHEN ST_Distance(ST_StartPoint(m), v.geom) <= ST_Distance(ST_EndPoint(m), v.geom)
                                THEN m ELSE ST_Reverse(m) END AS g
                    FROM (SELECT ST_LineMerge(ST_Collect(geom)) AS m FROM path) AS merged, street_vertices v
                    WHERE v.id = :source
                ) AS oriented
            )
            SELECT ST_AsGeoJSON(line.g, 6)::json AS geometry,
                   (SELECT sum(length_m) FROM path) AS length_m,
                   (SELECT coalesce(sum(length_m) FILTER (WHERE lit = 'no'), 0) FROM path) AS unlit_m,
                   -- near the route: near one of its edges (report_edges, as the penalties)
                   (SELECT coalesce(json_object_agg(category, n), '{{}}'::json) FROM (
                        SELECT r.category, count(DISTINCT r.id) AS n
                        FROM report_edges re JOIN reports r ON r.id = re.report_id
                        WHERE re.edge_id = ANY(route.ids) AND {recent_sql("CAST(:at AS timestamptz)")}
                        GROUP BY r.category ORDER BY r.category) AS c) AS reports_nearby,
                   (SELECT coalesce(json_agg(h.opening_hours), '[]'::json) FROM safe_hubs h
                    WHERE ST_Intersects(h.location, expand_by_metres(line.g, :hub_m))
                      AND ST_DWithin(h.location::geography, line.g::geography, :hub_m)) AS hub_hours
            FROM line
        ) AS figures
        WHERE route.ids IS NOT NULL
    """), {"shortest": routes.get("shortest"), "safer": routes.get("safer"), "source": source, "at": at,
           "hub_m": HUB_NEAR_M}).all()
    return {row.kind: _feature(row, at, after_dark, tz) for row in rows}


def _feature(row: Any, at: datetime, after_dark: bool, tz: ZoneInfo) -> dict[str, Any]:
    """A route's figures (a row of _summaries) as a GeoJSON Feature."""
    geometry = row.geometry
    if geometry["type"] != "LineString":  # a path merges into one line; kept whole whatever happens
        geometry = {"type": "LineString", "coordinates": [c for part in geometry["coordinates"] for c in part]}
    length = float(row.length_m)
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {
            "kind": row.kind,
            "length_m": round(length, 1),
            "walk_min": round(length / WALK_M_PER_MIN, 1),
            "reports_nearby": row.reports_nearby,
            "unlit_m": round(float(row.unlit_m), 1) if after_dark else None,
            "open_hubs_within_200m": sum(1 for hours in row.hub_hours if opening_hours.state(hours, at, tz).open_now),
        },
    }


def _shortest(source: Vertex, target: Vertex) -> Path:
    """The shortest path: first among the edges in the ellipse of ELLIPSE_SHARE around its two ends
    (ellipse_edges_sql), kept when it is proved the shortest (any path leaving the ellipse passes a
    vertex P with |AP| + |PB| > reach, so is longer than reach / PLANAR_SCALE_MAX); else among the edges
    in the box around them (edges_sql), once more in a box three times as wide when that box holds no
    path at all (a river between). No edges: none."""
    ends = ((source.lon, source.lat), (target.lon, target.lat))
    apart = haversine_m(*ends)
    planar = math.hypot(source.x - target.x, source.y - target.y)
    reach = ELLIPSE_SHARE * planar
    # The ellipse lies within its semi-minor axis of the segment AB (in true metres a little more).
    half_width = math.sqrt(reach * reach - planar * planar) / 2
    path = dijkstra(ellipse_edges_sql(_box(*ends, apart, margin=1.01 * half_width + 5), source, target, reach),
                    source.id, target.id)
    if path.edges and path.length_m * PLANAR_SCALE_MAX <= reach:
        return path
    for widen in (1.0, 3.0):
        path = dijkstra(edges_sql(_box(*ends, apart, margin=widen * max(BOX_MIN_M, BOX_SHARE * apart))), source.id, target.id)
        if path.edges:
            break
    return path


def safer_route(start: tuple[float, float], end: tuple[float, float], at: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """The shortest and the safer route from ``start`` to ``end`` (lon, lat) for a walk at ``at``, as
    a GeoJSON FeatureCollection. Raises RouteInputError for a place the network cannot serve."""
    db.session.execute(text("SET LOCAL jit = off"))  # compiling these short queries would take longer than running them
    source = _nearest_vertex(start, "from")
    target = _nearest_vertex(end, "to")
    if source.id == target.id:
        raise RouteInputError("to", "is at the same street corner as `from`")
    after_dark = bool(db.session.scalar(text("SELECT sun_is_down(:at, :lon, :lat)"),
                                        {"at": at, "lon": start[0], "lat": start[1]}))
    shortest = _shortest(source, target)
    if not shortest.edges:
        raise RouteInputError("to", "cannot be reached on foot from `from` on the street network")
    safer = shortest
    if _penalties(shortest.edges, at, str(tz)) or (after_dark and shortest.unlit_m > 0):
        corridor = _corridor(shortest.edges, shortest.length_m)
        for strength in STRENGTHS:
            candidate = dijkstra(safer_edges_sql(corridor, at, str(tz), after_dark, strength), source.id, target.id)
            if candidate.edges and candidate.length_m <= MAX_DETOUR * shortest.length_m:
                safer = candidate
                break
    same = sorted(safer.edges) == sorted(shortest.edges)
    features = _summaries({"shortest": shortest.edges} if same else {"shortest": shortest.edges, "safer": safer.edges},
                          source.id, at, after_dark, tz)
    first = features["shortest"]
    second = {**first, "properties": {**first["properties"], "kind": "safer"}} if same else features["safer"]
    return {
        "type": "FeatureCollection",
        "features": [first, second],
        "same_route": same,
        "note": SAME_NOTE if same else None,
        "after_dark": after_dark,
        "at": at,
    }
