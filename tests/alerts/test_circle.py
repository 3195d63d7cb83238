"""GET /api/v1/alerts/circle: the outline of a circular alert area, for pages to draw before sending."""

from __future__ import annotations

import pytest
from shapely.geometry import Point, shape

from backend.geo import circle, haversine_m
from tests.factories import PECKHAM

CIRCLE = "/api/v1/alerts/circle"


def test_staff_get_the_outline_the_server_measures_with(client, staff):
    response = client.get(f"{CIRCLE}?lon={PECKHAM[0]}&lat={PECKHAM[1]}&radius_m=400", headers=staff.headers())
    assert response.status_code == 200, response.json
    body = response.json
    assert body["center"] == {"type": "Point", "coordinates": PECKHAM} and body["radius_m"] == 400
    outline = shape(body["outline"])
    assert outline.equals(circle(tuple(PECKHAM), 400))
    assert all(abs(haversine_m(PECKHAM, vertex) - 400) < 0.05 for vertex in outline.exterior.coords)
    assert outline.contains(Point(PECKHAM))


@pytest.mark.parametrize("query, field", [
    ("lon=-0.07&lat=51.47&radius_m=49", "radius_m"),
    ("lon=-0.07&lat=51.47&radius_m=20001", "radius_m"),
    ("lon=-0.07&lat=51.47", "radius_m"),
    ("lon=-0.07&lat=91&radius_m=500", "lat"),
    ("lon=-0.07&lat=51.47&radius_m=500&radius=1", "radius"),
])
def test_the_circle_is_checked_as_an_alerts_area_is(client, staff, query, field):
    response = client.get(f"{CIRCLE}?{query}", headers=staff.headers())
    assert response.status_code == 422 and field in response.json["errors"], response.json
