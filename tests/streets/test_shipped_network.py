"""The street network shipped in data/: loaded once (and not twice), Camden's export ranks its named
streets, and a commuter gets a safer walk from King's Cross to Russell Square.

The module loads the network for real (committed) and removes it afterwards: every other test runs
without a network, as the session starts (tests/conftest.py), so the grid-cell exports stay tested.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pyogrio
import pytest
from sqlalchemy import text

from backend.extensions import db
from backend.routes import service as routes_service
from backend.streets.service import SHIPPED, clear_street_segments, load_shipped_network, loaded_network
from tests.exports.helpers import add_report, built, read_features

KINGS_CROSS = "-0.1239,51.5306"
RUSSELL_SQUARE = "-0.1246,51.5231"
EVENING = datetime(2026, 11, 20, 21, 30, tzinfo=ZoneInfo("Europe/London"))


@pytest.fixture(scope="module")
def shipped(app):
    with app.app_context():
        count = load_shipped_network()
        db.session.commit()
        db.session.remove()
    yield count
    with app.app_context():
        clear_street_segments()
        db.session.commit()
        db.session.remove()


def test_the_shipped_file_loads_once_and_the_second_load_is_skipped(app, shipped):
    assert shipped == 28_704
    with app.app_context():
        before = db.session.execute(text(
            "SELECT (SELECT count(*) FROM street_segments), (SELECT count(*) FROM street_edges)")).one()
        assert load_shipped_network() is None  # the same file: nothing read, nothing added
        after = db.session.execute(text(
            "SELECT (SELECT count(*) FROM street_segments), (SELECT count(*) FROM street_edges)")).one()
        lit = dict(db.session.execute(text("SELECT coalesce(lit, 'unknown'), count(*) FROM street_segments GROUP BY 1")).all())
        network = loaded_network()
    assert before == after and after[0] == 28_704 and after[1] > 28_704  # ways cut at junctions
    assert lit == {"yes": 8_926, "no": 456, "unknown": 28_704 - 8_926 - 456}
    assert network.source == SHIPPED["path"].name and network.segments == 28_704
    with app.app_context():  # the routes' ellipse test: planar metres never more than PLANAR_SCALE_MAX true ones
        scale = db.session.scalar(text("""
            SELECT max(sqrt((source_x - target_x)^2 + (source_y - target_y)^2)
                       / ST_Distance(ST_StartPoint(geom)::geography, ST_EndPoint(geom)::geography))
            FROM street_edges WHERE ST_Distance(ST_StartPoint(geom)::geography, ST_EndPoint(geom)::geography) > 10"""))
    assert 0.999 < scale <= routes_service.PLANAR_SCALE_MAX
    result = app.test_cli_runner().invoke(args=["streets", "load"])
    assert result.exit_code == 0 and "already loaded" in result.output


def test_camdens_export_ranks_named_streets(app, client, camden, commuter, shipped):
    with app.app_context():
        street = db.session.execute(text("""
            SELECT name, ST_X(midpoint) AS lon, ST_Y(midpoint) AS lat FROM street_segments
            WHERE name = 'Camden High Street' ORDER BY length_m DESC LIMIT 1""")).one()
    for _ in range(3):
        add_report(commuter.uid, street.lon, street.lat, EVENING, factors=("poor_lighting",))
    add_report(commuter.uid, -0.1337, 51.5290, EVENING)  # Euston Road, once
    status, path = built(client, camden, council="E09000007", format="gpkg")
    assert status["places"] == "segments" and status["rows"] >= 2
    info = pyogrio.read_info(str(path))  # GDAL opens it
    assert info["geometry_type"] == "LineString" and info["crs"] == "EPSG:4326"
    assert list(info["fields"])[:6] == ["rank", "segment_id", "street_name", "road_class", "length_m", "lit"]
    rows = read_features(path)
    first = rows[0]
    assert (first["rank"], first["street_name"], first["report_count"]) == (1, "Camden High Street", 3)
    assert first["lit"] in ("yes", "no", "unknown") and first["road_class"]
    assert first["priority_score"] == 3 + 2 * 3 + 3  # all after dark and about poor lighting


def test_a_commuter_gets_a_safer_walk_from_kings_cross_to_russell_square(client, commuter, shipped):
    response = client.get("/api/v1/routes/safer", headers=commuter.headers(),
                          query_string={"from": KINGS_CROSS, "to": RUSSELL_SQUARE, "at": "2026-11-20T21:30:00Z"})
    assert response.status_code == 200, response.json
    shortest, safer = (f["properties"] for f in response.json["features"])
    assert 800 < shortest["length_m"] < 1500 and shortest["unlit_m"] is not None  # 21:30 in November: dark
    assert shortest["length_m"] <= safer["length_m"] <= 1.5 * shortest["length_m"]
    line = response.json["features"][0]["geometry"]["coordinates"]
    assert abs(line[0][1] - 51.5306) < 0.002 and abs(line[-1][1] - 51.5231) < 0.002  # from the one, to the other
