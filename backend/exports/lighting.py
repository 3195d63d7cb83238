"""The lighting-improvement ranking, as one set-based query (docs/exports.md explains it to councils).

Places are street segments when the loaded street network covers the export's area
(``backend/streets``, ``covers``), otherwise grid cells: map tiles of level 19
(``ST_TileEnvelope(19, x, y)``, about 48 m across in London, the same Web Mercator pyramid as the
heatmap's). A report counts once on each place it touches:

- its location's place: the cell holding it, or the nearest segment within ``STREET_MATCH_M``;
- with a route, every place the route passes through: each cell whose inside the route crosses,
  or each segment whose midpoint lies within ``STREET_MATCH_M`` of the route (the streets walked
  along, not the side streets met at a junction).

Only what lies inside the export's area counts: a location outside it does not, and a route is
clipped to the area first. Reports rejected at triage are left out. A place reported by fewer than
the export's ``min_reporters`` distinct people is left out of the file (1, the default, keeps all).

For each place: ``report_count``; ``poor_lighting_count`` (reports with the ``poor_lighting``
factor); ``night_share`` (the share of reports made while the sun was down at the report's place and
moment: ``sun_is_down()``, migration 0007); ``first_reported`` and ``last_reported`` (local dates);
``priority_score = report_count + 2 * poor_lighting_count + after_dark_count``, and for a segment
tagged unlit (``lit = 'no'``) its ``after_dark_count`` once more; ``rank`` (1 = the
highest score; ties go to more poor-lighting reports, then the more recent, then the place id).

The same text serves the export job (through a server-side cursor) and the benchmark's floor
(``ogr2ogr -sql``), so both make exactly the same rows.
"""

from __future__ import annotations

from backend.heatmap.grid import EARTH_CIRCUMFERENCE_M

CELL_LEVEL = 19
CELL_M = EARTH_CIRCUMFERENCE_M / 2**CELL_LEVEL  # Web Mercator metres (about 48 m on the ground in London)
HALF_WORLD_M = EARTH_CIRCUMFERENCE_M / 2
# ST_Segmentize below this length: a piece then crosses at most one vertical and one horizontal grid line.
PIECE_M = CELL_M * 0.999

# Geometry encodings, by who reads the rows.
GEOMETRY_SQL = {
    "geojson": "ST_AsGeoJSON(ST_ForcePolygonCCW(p.geom), 7)",  # RFC 7946: right-hand rule, 7 decimals (1 cm)
    "wkt": "ST_AsText(p.geom, 7)",
    "wkb": "ST_AsBinary(p.geom)",
    "geometry": "p.geom",  # for ogr2ogr
}

_SCOPED = """
    e AS MATERIALIZED (
        SELECT area, min_reporters,
               period_from::timestamp AT TIME ZONE %(tz)s AS starts,
               (period_to + 1)::timestamp AT TIME ZONE %(tz)s AS ends
        FROM exports WHERE id = %(export_id)s
    ),
    scoped AS MATERIALIZED (
        SELECT r.id, r.author_id, r.location, r.route,
               ST_Intersects(e.area, r.location) AS located_inside,
               'poor_lighting' = ANY (r.factors) AS poor_lighting,
               sun_is_down(r.occurred_at, ST_X(r.location), ST_Y(r.location)) AS after_dark,
               local_day(r.occurred_at, %(tz)s) AS day
        FROM reports r CROSS JOIN e
        WHERE r.occurred_at >= e.starts AND r.occurred_at < e.ends AND r.status <> 'rejected'
          AND (ST_Intersects(e.area, r.location) OR (r.route IS NOT NULL AND ST_Intersects(e.area, r.route)))
    ),
    -- Routes clipped to the area (the clipping skipped when the route lies inside), one row per line.
    route_parts AS (
        SELECT id, part FROM (
            SELECT s.id, (ST_Dump(CASE WHEN ST_CoveredBy(s.route, e.area) THEN s.route
                                       ELSE ST_Intersection(s.route, e.area) END)).geom AS part
            FROM scoped s CROSS JOIN e WHERE s.route IS NOT NULL
        ) AS dumped
        WHERE ST_GeometryType(part) = 'ST_LineString'
    )"""

_CELL_INCIDENCES = f"""
    point_places AS (
        SELECT id, floor((ST_X(p) + {HALF_WORLD_M}) / {CELL_M})::integer AS x,
                   floor(({HALF_WORLD_M} - ST_Y(p)) / {CELL_M})::integer AS y
        FROM (SELECT id, heatmap_point_3857(location) AS p FROM scoped WHERE located_inside) AS located
    ),
    -- Each route, in Web Mercator, cut into pieces shorter than a cell, in grid units (u, v).
    route_vertices AS (
        SELECT rp.id, rp.n, d.path[1] AS i,
               (ST_X(d.geom) + {HALF_WORLD_M}) / {CELL_M} AS u, ({HALF_WORLD_M} - ST_Y(d.geom)) / {CELL_M} AS v
        FROM (SELECT id, row_number() OVER () AS n, heatmap_route_3857(part) AS g FROM route_parts) AS rp
        CROSS JOIN LATERAL ST_DumpPoints(ST_Segmentize(rp.g, {PIECE_M})) AS d
        WHERE rp.g IS NOT NULL
    ),
    -- A piece lies in the cells of its two ends and, when those are diagonal neighbours, in the corner
    -- cell on the side of the grid line it crosses first (none when it passes through the corner).
    corners AS (
        SELECT id, CASE WHEN first_cross < 0 THEN bx ELSE ax END AS x, CASE WHEN first_cross < 0 THEN ay ELSE by END AS y
        FROM (
            SELECT id, ax, ay, bx, by,
                   sign((greatest(ax, bx) - u0) / (u1 - u0) - (greatest(ay, by) - v0) / (v1 - v0)) AS first_cross
            FROM (
                SELECT id, u0, v0, u1, v1, floor(u0)::integer AS ax, floor(v0)::integer AS ay,
                       floor(u1)::integer AS bx, floor(v1)::integer AS by
                FROM (SELECT id, u AS u0, v AS v0, lead(u) OVER w AS u1, lead(v) OVER w AS v1
                      FROM route_vertices WINDOW w AS (PARTITION BY n ORDER BY i)) AS steps
                WHERE u1 IS NOT NULL
            ) AS pieces
            WHERE ax <> bx AND ay <> by
        ) AS diagonal
        WHERE first_cross <> 0
    ),
    route_places AS (
        SELECT id, floor(u)::integer AS x, floor(v)::integer AS y FROM route_vertices
        UNION ALL
        SELECT id, x, y FROM corners
    ),
    incidences AS (
        SELECT id, x, y FROM point_places UNION SELECT id, x, y FROM route_places
    ),
    places AS (
        SELECT concat_ws('/', {CELL_LEVEL}, x, y) AS place, x, y,
               ST_Transform(ST_TileEnvelope({CELL_LEVEL}, x, y), 4326) AS geom,
               {{counts}}
        FROM incidences JOIN scoped USING (id)
        GROUP BY x, y
    )"""

_SEGMENT_INCIDENCES = """
    point_places AS (
        SELECT s.id, m.segment_id
        FROM scoped s CROSS JOIN LATERAL (
            SELECT g.id AS segment_id FROM street_segments g
            WHERE ST_DWithin(g.geom::geography, s.location::geography, %(match_m)s)
            ORDER BY g.geom::geography <-> s.location::geography
            LIMIT 1
        ) AS m
        WHERE s.located_inside
    ),
    route_places AS (
        SELECT rp.id, g.id AS segment_id
        FROM route_parts rp JOIN street_segments g ON ST_DWithin(g.midpoint::geography, rp.part::geography, %(match_m)s)
    ),
    incidences AS (
        SELECT id, segment_id FROM point_places UNION SELECT id, segment_id FROM route_places
    ),
    places AS (
        SELECT coalesce(g.source_id, g.id::text) AS place, g.id AS x, 0 AS y, g.name AS street_name,
               g.road_class, round(g.length_m::numeric, 1) AS length_m, coalesce(g.lit, 'unknown') AS lit, g.geom,
               {counts}
        FROM incidences i JOIN scoped USING (id) JOIN street_segments g ON g.id = i.segment_id
        GROUP BY g.id
    )"""

_COUNTS = """count(*) AS report_count, count(DISTINCT author_id) AS reporters,
               count(*) FILTER (WHERE poor_lighting) AS poor_lighting_count,
               count(*) FILTER (WHERE after_dark) AS after_dark_count,
               min(day) AS first_reported, max(day) AS last_reported"""

_RANKED = """
SELECT row_number() OVER (ORDER BY priority_score DESC, poor_lighting_count DESC, last_reported DESC, x, y) AS rank,
       place, {extra} report_count, poor_lighting_count, night_share, first_reported, last_reported, priority_score,
       round(ST_X(anchor)::numeric, 6) AS lon, round(ST_Y(anchor)::numeric, 6) AS lat,
       {geometry} AS {geometry_name}, count(*) OVER () AS total_rows{unmatched}
FROM (
    SELECT p.*, round(after_dark_count::numeric / report_count, 3) AS night_share,
           report_count + 2 * poor_lighting_count + after_dark_count{unlit_bonus} AS priority_score,
           CASE WHEN ST_Dimension(p.geom) = 1 THEN ST_LineInterpolatePoint(p.geom, 0.5) ELSE ST_PointOnSurface(p.geom) END
             AS anchor
    FROM places p
    WHERE p.reporters >= (SELECT min_reporters FROM e)  -- a place of fewer distinct people is left out
) AS p
ORDER BY rank
"""

CELL_FIELDS = ("rank", "cell")
SEGMENT_FIELDS = ("rank", "segment_id", "street_name", "road_class", "length_m", "lit")
COUNT_FIELDS = ("report_count", "poor_lighting_count", "night_share", "first_reported", "last_reported", "priority_score")


def output_fields(places: str) -> tuple[str, ...]:
    """The attributes of every feature, in file order (geometry aside)."""
    return (CELL_FIELDS if places == "cells" else SEGMENT_FIELDS) + COUNT_FIELDS


def ranking_sql(places: str, geometry: str) -> str:
    """The ranking query for ``places`` ("cells" or "segments"), with the geometry encoded as
    ``geometry`` (a key of GEOMETRY_SQL). Parameters (psycopg style): ``export_id``, ``tz`` and, for
    segments, ``match_m``. Rows: the output fields, ``lon``, ``lat``, the geometry, ``total_rows``
    and, for segments, ``unmatched`` (reports in the area near no segment)."""
    if places == "cells":
        incidences = _CELL_INCIDENCES.format(counts=_COUNTS)
        extra, unmatched, unlit_bonus = "", "", ""
    else:
        incidences = _SEGMENT_INCIDENCES.format(counts=_COUNTS)
        extra = "street_name, road_class, length_m, lit,"
        unlit_bonus = " + CASE WHEN lit = 'no' THEN after_dark_count ELSE 0 END"
        unmatched = (", (SELECT count(*) FROM scoped s WHERE s.located_inside"
                     " AND NOT EXISTS (SELECT 1 FROM incidences i WHERE i.id = s.id)) AS unmatched")
    ranked = _RANKED.format(extra=extra, unlit_bonus=unlit_bonus, geometry=GEOMETRY_SQL[geometry],
                            geometry_name="geom" if geometry == "geometry" else "geometry", unmatched=unmatched)
    if places == "cells":
        ranked = ranked.replace("       place, ", "       place AS cell, ", 1)
    else:
        ranked = ranked.replace("       place, ", "       place AS segment_id, ", 1)
    return f"WITH {_SCOPED},{incidences}{ranked}"
