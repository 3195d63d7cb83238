"""A council's heatmap, tiles, hotspots and exports count only what lies inside its area: a report
located inside it, and the part of a route inside it (issue 17). Lambeth and Southwark share a long
border; reports a few metres on Southwark's side of it never show for Lambeth, at any zoom."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import mapbox_vector_tile
import pytest
import shapely
from sqlalchemy import text

from backend.extensions import db
from backend.heatmap import grid
from backend.heatmap.rebuild import rebuild
from tests.factories import BRIXTON, PECKHAM, Caller
from tests.heatmap.helpers import add_report

LAMBETH = Caller("council-lambeth", role="council", council="E09000022")
NIGHT = datetime(2026, 11, 20, 22, tzinfo=timezone.utc)
BOTH_BOROUGHS = "-0.16,51.41,-0.03,51.52"
# Seeds along the Lambeth-Southwark border: Waterloo, Kennington, Camberwell, Herne Hill, Dulwich.
SEEDS = [(-0.108, 51.503), (-0.100, 51.488), (-0.095, 51.470), (-0.098, 51.455), (-0.085, 51.440)]


def border_points() -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """For each seed, a point 20 m inside Southwark and one 20 m inside Lambeth, either side of the border."""
    pairs = []
    for lon, lat in SEEDS:
        ring = db.session.execute(text("""
            WITH b AS (
                SELECT ST_ClosestPoint(ST_Boundary(s.geom), ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) AS p
                FROM council_areas s WHERE s.code = 'E09000028'
            )
            SELECT ST_X(q) AS lon, ST_Y(q) AS lat,
                   ST_Intersects((SELECT geom FROM council_areas WHERE code = 'E09000028'), q) AS southwark,
                   ST_Intersects((SELECT geom FROM council_areas WHERE code = 'E09000022'), q) AS lambeth
            FROM b, generate_series(0, 350, 10) AS a,
                 LATERAL (SELECT ST_Project(b.p::geography, 20, radians(a))::geometry AS q) AS projected
        """), {"lon": lon, "lat": lat}).all()
        southwark = next((r for r in ring if r.southwark and not r.lambeth), None)
        lambeth = next((r for r in ring if r.lambeth and not r.southwark), None)
        assert southwark and lambeth, f"no shared border near {lon}, {lat}"
        pairs.append(((southwark.lon, southwark.lat), (lambeth.lon, lambeth.lat)))
    return pairs


@pytest.fixture
def border_reports():
    return add_border_reports()


def add_border_reports():
    """Three spiking reports just inside Southwark at each seed, one harassment report just inside
    Lambeth, and an unsafe route from Peckham (Southwark) to Brixton (Lambeth), located in Peckham."""
    pairs = border_points()
    for n, (southwark, lambeth) in enumerate(pairs):
        for i in range(3):
            add_report(f"southwark-{n}-{i}", *southwark, NIGHT - timedelta(days=i), "spiking")
        add_report(f"lambeth-{n}", *lambeth, NIGHT, "harassment")
    add_report("walker", *PECKHAM, NIGHT, "unsafe_route", route=[tuple(PECKHAM), (-0.09, 51.47), tuple(BRIXTON)])
    return pairs


def heatmap(client, caller, zoom, **params):
    response = client.get("/api/v1/heatmap", query_string={"zoom": zoom, "bbox": BOTH_BOROUGHS, **params},
                          headers=caller.headers())
    assert response.status_code == 200, response.json
    return response.json["features"]


def totals(features, key):
    return sum(f["properties"][key] for f in features)


@pytest.mark.parametrize("zoom", range(0, 19))
def test_a_lambeth_officer_sees_no_southwark_report_in_any_cell_at_any_zoom(client, southwark, staff, border_reports, zoom):
    mine = heatmap(client, LAMBETH, zoom)
    assert totals(mine, "spiking") == 0
    assert totals(mine, "harassment") == len(SEEDS)
    assert heatmap(client, LAMBETH, zoom, category="spiking") == []
    # Its part of the route: only cells the route crosses inside Lambeth, none in Peckham's.
    peckham_cell = "{}/{}/{}".format(level := grid.level_for_zoom(zoom), *grid.lonlat_to_cell(*PECKHAM, level))
    routes = {f["properties"]["cell"] for f in mine if f["properties"]["unsafe_route"]}
    assert routes and peckham_cell not in routes
    # Southwark sees its own, and the staff see everything.
    assert totals(heatmap(client, southwark, zoom), "spiking") == 3 * len(SEEDS)
    assert totals(heatmap(client, southwark, zoom), "harassment") == 0
    assert totals(heatmap(client, staff, zoom), "spiking") == 3 * len(SEEDS)


@pytest.mark.parametrize("zoom", [10, 12, 14, 16, 18])
def test_nor_in_any_tile(client, southwark, border_reports, zoom):
    for southwark_point, _ in border_reports:
        x, y = grid.lonlat_to_cell(*southwark_point, zoom)
        url = f"/api/v1/heatmap/tiles/{zoom}/{x}/{y}.mvt"
        assert client.get(url, query_string={"category": "spiking"}, headers=LAMBETH.headers()).status_code == 204
        response = client.get(url, headers=LAMBETH.headers())
        if response.status_code == 200:
            features = mapbox_vector_tile.decode(response.data)["heatmap"]["features"]
            assert sum(f["properties"]["spiking"] for f in features) == 0
        theirs = client.get(url, query_string={"category": "spiking"}, headers=southwark.headers())
        assert theirs.status_code == 200


@pytest.mark.parametrize("zoom", [0, 8, 10, 12, 14, 16, 18])
def test_nor_in_any_hotspot(client, border_reports, zoom):
    params = {"zoom": zoom, "from": "2026-11-01", "to": "2026-11-30", "min_count": 1}
    assert client.get("/api/v1/hotspots", query_string={**params, "category": "spiking"},
                      headers=LAMBETH.headers()).json["hotspots"] == []
    hotspots = client.get("/api/v1/hotspots", query_string={**params, "category": "harassment"},
                          headers=LAMBETH.headers()).json["hotspots"]
    assert sum(h["count"] for h in hotspots) == len(SEEDS)


def test_nor_in_its_export(client, border_reports):
    from tests.exports.helpers import built, read_features

    status, path = built(client, LAMBETH, council="E09000022", format="geojson", **{"from": "2026-11-01", "to": "2026-11-30"})
    route_inside = shapely.from_wkb(bytes(db.session.scalar(text("""
        SELECT ST_AsBinary(ST_Intersection(r.route, a.geom)) FROM reports r, council_areas a
        WHERE r.route IS NOT NULL AND a.code = 'E09000022'"""))))
    lambeth_points = [shapely.Point(lambeth) for _, lambeth in border_reports]
    for row in read_features(path):
        place = shapely.from_wkb(row["geometry"])
        # A place (a 48 m cell) may reach over the border, but counts only Lambeth's reports in it.
        expected = sum(place.covers(p) for p in lambeth_points) + place.intersects(route_inside)
        assert row["report_count"] == expected
    assert status["rows"] > len(SEEDS)


def test_a_rebuild_gives_the_councils_the_same_counts(app, real_commits, client):
    with app.app_context():
        add_border_reports()
        db.session.commit()
        before = {zoom: heatmap(client, LAMBETH, zoom) for zoom in (8, 14, 18)}
        db.session.remove()
        rebuild()
        assert {zoom: heatmap(client, LAMBETH, zoom) for zoom in (8, 14, 18)} == before
        db.session.remove()


def test_nor_in_its_report_list(client, southwark, border_reports):
    listed = client.get("/api/v1/reports", query_string={"limit": 200}, headers=LAMBETH.headers()).json["items"]
    assert sorted(r["category"] for r in listed) == ["harassment"] * len(SEEDS)  # its own, not Southwark's
    theirs = client.get("/api/v1/reports", query_string={"limit": 200}, headers=southwark.headers()).json["items"]
    assert sorted(r["category"] for r in theirs) == ["spiking"] * (3 * len(SEEDS)) + ["unsafe_route"]
