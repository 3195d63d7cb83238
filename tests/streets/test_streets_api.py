"""GET /api/v1/streets: the streets in a box with their lighting, for staff and councils."""

from __future__ import annotations

import json

import pytest

from backend.extensions import db
from backend.streets.service import load_street_segments
from tests.factories import PECKHAM

LON, LAT = PECKHAM


@pytest.fixture
def network(app, tmp_path):
    def street(coords, **properties):
        return {"type": "Feature", "properties": properties, "geometry": {"type": "LineString", "coordinates": coords}}

    path = tmp_path / "streets.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        street([[LON, LAT], [LON, LAT + 0.003]], id="1", name="Rye Lane", highway="secondary", lit="yes"),
        street([[LON, LAT], [LON + 0.001, LAT]], id="2", name="Dark Alley", highway="footway", lit="no"),
        street([[LON, LAT], [LON - 0.002, LAT]], id="3", name=None, highway="service", lit=""),
        street([[LON + 0.05, LAT], [LON + 0.051, LAT]], id="4", name="Far Away", highway="residential", lit="no"),
    ]}))
    with app.app_context():
        load_street_segments(path, id_field="id", class_field="highway", lit_field="lit")
        db.session.commit()


BOX = f"{LON - 0.01},{LAT - 0.01},{LON + 0.01},{LAT + 0.01}"


def test_the_streets_in_a_box_longest_first_with_their_lighting(client, staff, network):
    response = client.get(f"/api/v1/streets?bbox={BOX}", headers=staff.headers())
    assert response.status_code == 200, response.json
    body = response.json
    assert body["type"] == "FeatureCollection" and body["truncated"] is False
    got = [(f["properties"]["segment_id"], f["properties"]["name"], f["properties"]["road_class"],
            f["properties"]["lit"]) for f in body["features"]]
    assert got == [("1", "Rye Lane", "secondary", "yes"), ("3", None, "service", "unknown"),
                   ("2", "Dark Alley", "footway", "no")]
    assert body["features"][0]["geometry"] == {"type": "LineString", "coordinates": [[LON, LAT], [LON, LAT + 0.003]]}
    assert 330 < body["features"][0]["properties"]["length_m"] < 337


def test_streets_known_to_be_unlit(client, camden, network):
    response = client.get(f"/api/v1/streets?bbox={BOX}&lit=no", headers=camden.headers())
    assert [f["properties"]["name"] for f in response.json["features"]] == ["Dark Alley"]
    both = client.get(f"/api/v1/streets?bbox={BOX}&lit=no&lit=unknown", headers=camden.headers()).json
    assert {f["properties"]["segment_id"] for f in both["features"]} == {"2", "3"}


def test_a_limit_says_the_answer_is_truncated(client, staff, network):
    body = client.get(f"/api/v1/streets?bbox={BOX}&limit=2", headers=staff.headers()).json
    assert len(body["features"]) == 2 and body["truncated"] is True


@pytest.mark.parametrize(("query", "field"), [
    ("", "bbox"), ("bbox=-0.2,51.4,0,51.6", "bbox"), (f"bbox={BOX}&lit=dim", "lit"), (f"bbox={BOX}&limit=0", "limit"),
])
def test_bad_queries_are_422_naming_the_field(client, staff, query, field):
    response = client.get(f"/api/v1/streets?{query}", headers=staff.headers())
    assert response.status_code == 422 and field in response.json["errors"], response.json


def test_commuters_may_not_list_streets(client, commuter):
    assert client.get(f"/api/v1/streets?bbox={BOX}", headers=commuter.headers()).status_code == 403
