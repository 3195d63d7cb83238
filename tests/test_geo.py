"""backend/geo.py: the one place metres become degrees, and circles become polygons."""

from __future__ import annotations

import pytest
from shapely.geometry import Point
from sqlalchemy import text

from backend.extensions import db
from backend.geo import CIRCLE_SEGMENTS, circle, destination
from tests.factories import PECKHAM


@pytest.mark.parametrize("centre", [tuple(PECKHAM), (0.0, 0.0), (18.07, 59.33), (-70.65, -33.45)])
@pytest.mark.parametrize("radius_m", [50, 500, 20_000])
def test_every_vertex_of_a_circle_is_its_radius_from_the_centre_as_postgis_measures(app, centre, radius_m):
    outline = circle(centre, radius_m)
    with app.app_context():
        distances = db.session.scalars(text("""
            SELECT ST_Distance(ST_MakePoint(:lon, :lat)::geography, ST_MakePoint(x, y)::geography, false)
            FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) AS v(x, y)
        """), {"lon": centre[0], "lat": centre[1], "xs": list(outline.exterior.xy[0]),
               "ys": list(outline.exterior.xy[1])}).all()
    assert all(abs(d - radius_m) < 0.02 for d in distances), (min(distances), max(distances))


def test_a_circle_is_a_closed_counterclockwise_ring_starting_due_north():
    outline = circle(tuple(PECKHAM), 500)
    ring = list(outline.exterior.coords)
    assert len(ring) == CIRCLE_SEGMENTS + 1 and ring[0] == ring[-1]
    assert outline.is_valid and outline.exterior.is_ccw  # RFC 7946's exterior ring order
    assert ring[0][0] == pytest.approx(PECKHAM[0]) and ring[0][1] > PECKHAM[1]
    assert outline.contains(Point(PECKHAM))


def test_a_destination_due_east_on_the_equator_moves_only_in_longitude():
    lon, lat = destination((0.0, 0.0), 111_195.08, 90)  # a degree of arc on the mean-radius sphere
    assert lon == pytest.approx(1.0, abs=1e-6) and lat == pytest.approx(0.0, abs=1e-9)


def test_longitudes_stay_within_the_range_geojson_allows():
    lon, _ = destination((179.999, 0.0), 1_000, 90)
    assert -180 <= lon < -179.99
