"""With a street network loaded, exports rank street segments instead of grid cells."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pyogrio.raw
import pytest
import shapely
from sqlalchemy import text

from backend.extensions import db
from backend.streets.service import load_street_segments
from tests.exports.helpers import add_report, built, read_features
from tests.factories import PECKHAM

LON, LAT = PECKHAM
NOON = datetime(2026, 6, 10, 12, tzinfo=ZoneInfo("Europe/London"))


def feature(geometry_type: str, coordinates, **properties) -> dict:
    return {"type": "Feature", "geometry": {"type": geometry_type, "coordinates": coordinates}, "properties": properties}


@pytest.fixture
def network(tmp_path):
    path = tmp_path / "streets.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        feature("LineString", [[LON, LAT], [LON, LAT + 0.003]], id="A", name="Rye Lane", cls="B road", lit="no"),
        feature("LineString", [[LON - 0.004, LAT + 0.001], [LON - 0.001, LAT + 0.001]], id="B", name="High Street",
                cls="A road", lit="yes"),
        feature("LineString", [[LON + 0.01, LAT], [LON + 0.01, LAT + 0.002]], id="C", name="Far Road", cls="Local"),
        feature("MultiLineString", [[[LON + 0.02, LAT], [LON + 0.021, LAT]], [[LON + 0.022, LAT], [LON + 0.023, LAT]]],
                id="D", name=None, cls="Local"),
        feature("Point", [LON, LAT], id="E", name="not a street", cls="Local"),
    ]}))
    return path


def test_loading_splits_multilines_skips_other_shapes_and_replaces_the_network(app, network):
    with app.app_context():
        assert load_street_segments(network, id_field="id", class_field="cls") == 5
        assert load_street_segments(network, id_field="id", class_field="cls") == 5  # replaced, not added
        rows = db.session.execute(text(
            "SELECT source_id, name, road_class, round(length_m) AS m FROM street_segments ORDER BY id")).all()
    assert [(r.source_id, r.name, r.road_class) for r in rows] == [
        ("A", "Rye Lane", "B road"), ("B", "High Street", "A road"), ("C", "Far Road", "Local"),
        ("D", None, "Local"), ("D", None, "Local"),
    ]
    assert 330 <= rows[0].m <= 336  # 0.003 degrees of latitude


def test_a_file_in_british_national_grid_is_reprojected(app, tmp_path):
    path = tmp_path / "roads.gpkg"
    line = shapely.LineString([(533_000, 176_000), (533_200, 176_000)])  # near Peckham, in EPSG:27700
    pyogrio.raw.write(str(path), geometry=np.array([shapely.to_wkb(line)], dtype=object),
                      field_data=[np.array(["Road"], dtype=object)], fields=["name"], geometry_type="LineString",
                      crs="EPSG:27700", driver="GPKG", layer="road_link")
    with app.app_context():
        assert load_street_segments(path, layer="road_link") == 1
        lon, lat, length = db.session.execute(text(
            "SELECT ST_X(midpoint), ST_Y(midpoint), length_m FROM street_segments")).one()
    assert -0.09 < lon < -0.06 and 51.46 < lat < 51.48 and 199 < length < 201


def test_a_missing_field_is_a_clear_error(app, network):
    with app.app_context(), pytest.raises(ValueError, match="no field 'road_type'"):
        load_street_segments(network, class_field="road_type")


def test_the_cli_loads_and_clears_the_network(app, network):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["streets", "load", str(network), "--id-field", "id"])
    assert result.exit_code == 0 and "loaded 5 street segments" in result.output
    result = runner.invoke(args=["streets", "clear"])
    assert result.exit_code == 0 and "removed 5 street segments" in result.output
    bad = runner.invoke(args=["streets", "load", str(network), "--id-field", "fid"])
    assert bad.exit_code == 2 and "no field 'fid'" in bad.output




def box(west: float, south: float, east: float, north: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]]}


# Rye Lane and High Street lie in one square of the network's extent (-0.072..-0.069, 51.474..51.477):
# an export of this area is ranked by street; of the area three times as large, by grid cell.
AROUND = box(-0.07195, 51.47405, -0.06905, 51.47695)
LARGER = box(-0.07195, 51.46805, -0.06905, 51.47695)
NIGHT = datetime(2026, 11, 20, 22, tzinfo=ZoneInfo("Europe/London"))


@pytest.mark.parametrize("fmt", ["geojson", "csv", "gpkg"])
def test_reports_count_on_the_nearest_segment_and_routes_on_the_segments_they_follow(app, client, southwark,
                                                                                    commuter, network, fmt):
    with app.app_context():
        load_street_segments(network, id_field="id", class_field="cls", lit_field="lit")
        db.session.commit()  # the caller commits (here the test, as the CLI does)
    add_report(commuter.uid, LON + 0.0001, LAT + 0.001, NOON, factors=("poor_lighting",))  # 7 m from Rye Lane
    add_report(commuter.uid, LON - 0.0025, LAT + 0.0025, NOON)  # 160 m from any street: unmatched
    walk = [(LON - 0.0039, LAT + 0.00105), (LON - 0.0025, LAT + 0.00106), (LON - 0.0011, LAT + 0.00105)]
    add_report(commuter.uid, *walk[0], NOON, route=walk)  # along High Street, once
    status, path = built(client, southwark, format=fmt, council=None, area=AROUND)
    assert status["places"] == "segments" and status["rows"] == 2 and status["unmatched_reports"] == 1
    info = pyogrio.read_info(str(path))
    assert list(info["fields"])[:6] == ["rank", "segment_id", "street_name", "road_class", "length_m", "lit"]
    rows = read_features(path)
    got = [(str(r["rank"]), r["segment_id"], r["street_name"], r["lit"], str(r["report_count"]),
            str(r["poor_lighting_count"]), str(r["priority_score"])) for r in rows]
    assert got == [("1", "A", "Rye Lane", "no", "1", "1", "3"), ("2", "B", "High Street", "yes", "1", "0", "1")]
    if fmt != "csv":
        assert info["geometry_type"] == "LineString"
        assert shapely.from_wkb(rows[0]["geometry"]).equals(shapely.LineString([(LON, LAT), (LON, LAT + 0.003)]))


def test_after_dark_reports_on_a_street_known_to_be_unlit_count_twice(app, client, southwark, commuter, network):
    with app.app_context():
        load_street_segments(network, id_field="id", class_field="cls", lit_field="lit")
        db.session.commit()
    add_report(commuter.uid, LON + 0.0001, LAT + 0.001, NIGHT)  # Rye Lane, unlit: 1 + 1 + 1
    add_report(commuter.uid, LON - 0.002, LAT + 0.0011, NIGHT)  # High Street, lit: 1 + 1
    add_report(commuter.uid, LON + 0.01, LAT + 0.001, NIGHT)  # Far Road, not tagged: 1 + 1
    status, path = built(client, southwark, format="csv", council=None, area=AROUND)
    rows = {r["street_name"]: (r["lit"], str(r["priority_score"])) for r in read_features(path)}
    assert rows == {"Rye Lane": ("no", "3"), "High Street": ("yes", "2")}  # Far Road lies outside the area
    status, path = built(client, southwark, format="csv", council=None, area=LARGER)
    assert status["places"] == "cells"  # an area the network covers less than 80 % of is ranked by cell


def test_an_area_the_network_barely_covers_is_still_ranked_by_grid_cell(app, client, southwark, commuter, network):
    with app.app_context():
        load_street_segments(network, id_field="id", class_field="cls")
        db.session.commit()
    add_report(commuter.uid, LON + 0.0001, LAT + 0.001, NOON)
    status, _ = built(client, southwark, format="csv")  # all of Southwark: the network is a corner of it
    assert status["places"] == "cells" and status["rows"] == 1
