"""The heatmap endpoints over HTTP: GeoJSON cells, vector tiles, hotspots, the public heatmap."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import mapbox_vector_tile
import pytest

from backend.heatmap import grid
from tests.factories import CAMDEN_TOWN, PECKHAM, Caller
from tests.heatmap.helpers import add_report

NIGHT = datetime(2026, 11, 20, 22, 15, tzinfo=timezone.utc)
# Tile z14 around Peckham, and the box it covers.
TILE = (14, *grid.lonlat_to_cell(*PECKHAM, 14))


def tile_bbox(z: int, x: int, y: int) -> str:
    import math

    def lon(tx):
        return tx / 2**z * 360 - 180

    def lat(ty):
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * ty / 2**z))))

    # Shrunk by a hair so that the box does not reach into neighbouring tiles' cells.
    eps = 1e-9
    return f"{lon(x) + eps},{lat(y + 1) + eps},{lon(x + 1) - eps},{lat(y) - eps}"


@pytest.fixture
def peckham_reports():
    for i in range(6):
        add_report(f"p{i}", PECKHAM[0] + 0.001 * i, PECKHAM[1] + 0.0005 * i, NIGHT - timedelta(days=i),
                   ("harassment", "spiking")[i % 2], "night_bus" if i % 3 == 0 else None)
    add_report("walker", PECKHAM[0], PECKHAM[1], NIGHT, "unsafe_route",
               route=[(PECKHAM[0], PECKHAM[1]), (PECKHAM[0] + 0.004, PECKHAM[1] + 0.001)])


def test_heatmap_answers_geojson_cells_with_per_category_counts(client, staff, peckham_reports):
    response = client.get("/api/v1/heatmap", query_string={"zoom": 11}, headers=staff.headers())
    assert response.status_code == 200
    body = response.json
    assert body["type"] == "FeatureCollection" and body["level"] == 14 and body["truncated"] is False
    feature = body["features"][0]
    assert feature["geometry"]["type"] == "Polygon"
    props = feature["properties"]
    assert props["count"] == props["harassment"] + props["spiking"] + props["unsafe_route"]
    assert sum(f["properties"]["harassment"] for f in body["features"]) == 3
    assert sum(f["properties"]["spiking"] for f in body["features"]) == 3


def test_filters_narrow_the_counts(client, staff, peckham_reports):
    def total(**params):
        features = client.get("/api/v1/heatmap", query_string={"zoom": 8, **params}, headers=staff.headers()).json
        return sum(f["properties"]["count"] for f in features["features"])

    assert total() == 7
    assert total(category="spiking") == 3
    assert total(category=["spiking", "unsafe_route"]) == 4
    assert total(mode="night_bus") == 2
    assert total(**{"from": "2026-11-19", "to": "2026-11-20"}) == 3  # 20, 19 November and the route
    assert total(hours="22-4") == 7  # all at 22:15 UTC, 22:15 GMT
    assert total(hours="8-18") == 0
    assert total(days="fri") == 2  # 20 November 2026 is a Friday


def test_tile_decodes_into_the_cells_and_counts_of_heatmap(client, staff, peckham_reports):
    z, x, y = TILE
    response = client.get(f"/api/v1/heatmap/tiles/{z}/{x}/{y}.mvt", headers=staff.headers())
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.mapbox-vector-tile"
    assert response.headers["ETag"] and "max-age" in response.headers["Cache-Control"]
    layer = mapbox_vector_tile.decode(response.data)["heatmap"]
    from_tile = {f["properties"]["cell"]: f["properties"]["count"] for f in layer["features"]}
    geojson = client.get("/api/v1/heatmap", query_string={"zoom": z, "bbox": tile_bbox(z, x, y)},
                         headers=staff.headers()).json
    assert from_tile == {f["properties"]["cell"]: f["properties"]["count"] for f in geojson["features"]}
    assert sum(from_tile.values()) >= 7


def test_tile_with_matching_etag_answers_304_and_an_empty_tile_204(client, staff, peckham_reports):
    z, x, y = TILE
    first = client.get(f"/api/v1/heatmap/tiles/{z}/{x}/{y}.mvt", headers=staff.headers())
    again = client.get(f"/api/v1/heatmap/tiles/{z}/{x}/{y}.mvt",
                       headers=staff.headers(**{"If-None-Match": first.headers["ETag"]}))
    assert again.status_code == 304
    empty = client.get("/api/v1/heatmap/tiles/14/0/0.mvt", headers=staff.headers())
    assert empty.status_code == 204 and empty.data == b""


def test_changing_a_filter_changes_the_tile(client, staff, peckham_reports):
    z, x, y = TILE
    everything = client.get(f"/api/v1/heatmap/tiles/{z}/{x}/{y}.mvt", headers=staff.headers())
    spiking = client.get(f"/api/v1/heatmap/tiles/{z}/{x}/{y}.mvt", query_string={"category": "spiking"},
                         headers=staff.headers())
    assert everything.headers["ETag"] != spiking.headers["ETag"]
    counts = {f["properties"]["cell"]: f["properties"]["count"]
              for f in mapbox_vector_tile.decode(spiking.data)["heatmap"]["features"]}
    geojson = client.get("/api/v1/heatmap", query_string={"zoom": z, "bbox": tile_bbox(z, x, y), "category": "spiking"},
                         headers=staff.headers()).json["features"]
    assert counts == {f["properties"]["cell"]: f["properties"]["spiking"] for f in geojson} and counts


def test_council_sees_only_cells_inside_its_area(client, southwark, camden, staff, peckham_reports):
    add_report("camdener", *CAMDEN_TOWN, NIGHT)
    for caller, expected in ((southwark, 6), (camden, 1), (staff, 7)):
        features = client.get("/api/v1/heatmap", query_string={"zoom": 11, "category": ["harassment", "spiking"]},
                              headers=caller.headers()).json["features"]
        assert sum(f["properties"]["count"] for f in features) == expected
    # A Camden tile is empty for Southwark.
    z, x, y = 14, *grid.lonlat_to_cell(*CAMDEN_TOWN, 14)
    assert client.get(f"/api/v1/heatmap/tiles/{z}/{x}/{y}.mvt", headers=southwark.headers()).status_code == 204
    assert client.get(f"/api/v1/heatmap/tiles/{z}/{x}/{y}.mvt", headers=camden.headers()).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/heatmap", "/api/v1/heatmap/tiles/10/511/340.mvt", "/api/v1/hotspots"])
def test_commuters_get_403_and_anonymous_callers_401(client, commuter, path):
    assert client.get(path, headers=commuter.headers()).status_code == 403
    assert client.get(path).status_code == 401


@pytest.mark.parametrize("params, field", [
    ({"zoom": 19}, "zoom"),
    ({"zoom": "near"}, "zoom"),
    ({"hours": "25-3"}, "hours"),
    ({"hours": "night"}, "hours"),
    ({"days": "funday"}, "days"),
    ({"from": "2026-11-20", "to": "2026-11-01"}, "from"),
    ({"from": "yesterday"}, "from"),
    ({"from": "2026-11-20T22:00:00"}, "from"),
    ({"category": "theft"}, "category"),
    ({"mode": "rocket"}, "mode"),
    ({"bbox": "0,0,10,10"}, "bbox"),
    ({"limit": 0}, "limit"),
    ({"colour": "red"}, "colour"),
])
def test_bad_heatmap_parameters_answer_422(client, staff, params, field):
    response = client.get("/api/v1/heatmap", query_string=params, headers=staff.headers())
    assert response.status_code == 422, response.json
    assert field in response.json["errors"]


@pytest.mark.parametrize("path, field", [
    ("/api/v1/heatmap/tiles/19/0/0.mvt", "z"),
    ("/api/v1/heatmap/tiles/3/8/0.mvt", "x"),
    ("/api/v1/heatmap/tiles/3/0/9.mvt", "y"),
])
def test_tile_coordinates_out_of_range_answer_422(client, staff, path, field):
    response = client.get(path, headers=staff.headers())
    assert response.status_code == 422 and field in response.json["errors"]


def test_hotspots_compare_with_the_previous_period(client, staff):
    spot = (-0.1145, 51.4627)
    for i in range(5):  # this week
        add_report(f"now{i}", spot[0], spot[1], NIGHT - timedelta(days=i % 3))
    for i in range(2):  # the week before
        add_report(f"then{i}", spot[0], spot[1], NIGHT - timedelta(days=8 + i))
    add_report("elsewhere", *CAMDEN_TOWN, NIGHT)
    response = client.get("/api/v1/hotspots", query_string={"from": "2026-11-14", "to": "2026-11-20", "zoom": 14,
                                                            "min_count": 1}, headers=staff.headers())
    assert response.status_code == 200
    body = response.json
    assert body["period"] == {"from": "2026-11-14", "to": "2026-11-20"}
    assert body["previous_period"] == {"from": "2026-11-07", "to": "2026-11-13"}
    top = body["hotspots"][0]
    assert (top["count"], top["previous_count"], top["change"], top["change_pct"]) == (5, 2, 3, 150.0)
    assert top["centre"]["type"] == "Point" and top["geometry"]["type"] == "Polygon"
    assert [h["count"] for h in body["hotspots"]] == [5, 1]
    assert body["hotspots"][1]["change_pct"] is None


def test_hotspots_default_to_the_last_28_days(client, staff):
    response = client.get("/api/v1/hotspots", headers=staff.headers())
    period = response.json["period"]
    assert (date.fromisoformat(period["to"]) - date.fromisoformat(period["from"])).days == 27


def test_public_heatmap_hides_a_cell_with_4_reporters_even_with_40_reports(client):
    filed = NIGHT + timedelta(hours=1)  # filed at the time: counted in its week's public unit
    for person in range(4):
        for i in range(10):
            add_report(f"person-{person}", PECKHAM[0], PECKHAM[1], NIGHT - timedelta(hours=i), filed_at=filed)
    hidden = client.get("/api/v1/public/heatmap")
    assert hidden.status_code == 200 and hidden.json["features"] == []
    assert hidden.json["min_reporters"] == 5
    add_report("person-4", PECKHAM[0], PECKHAM[1], NIGHT, filed_at=filed)
    shown = client.get("/api/v1/public/heatmap").json["features"]
    assert len(shown) == 1 and set(shown[0]["properties"]) == {"count"}  # counts only (with noise: test_publishing)
    assert abs(shown[0]["properties"]["count"] - 41) < 10


def test_public_threshold_follows_the_filters(client):
    for person in range(5):
        add_report(f"person-{person}", PECKHAM[0], PECKHAM[1], NIGHT, "spiking" if person < 4 else "harassment",
                   filed_at=NIGHT + timedelta(hours=1))
    assert client.get("/api/v1/public/heatmap").json["features"] == []  # no unit has five people
    for person in range(5, 9):
        for _ in range(3):  # enough reports that the noise cannot pull the count under the threshold
            add_report(f"person-{person}", PECKHAM[0], PECKHAM[1], NIGHT, "harassment", filed_at=NIGHT + timedelta(hours=1))
    assert len(client.get("/api/v1/public/heatmap").json["features"]) == 1
    assert client.get("/api/v1/public/heatmap", query_string={"category": "spiking"}).json["features"] == []
    assert client.get("/api/v1/public/heatmap", query_string={"from": "2026-11-23"}).json["features"] == []


def test_public_heatmap_takes_no_fine_filters_and_is_cacheable(client):
    assert client.get("/api/v1/public/heatmap", query_string={"hours": "22-4"}).status_code == 422
    assert client.get("/api/v1/public/heatmap", query_string={"zoom": 18}).status_code == 422
    assert "public" in client.get("/api/v1/public/heatmap").headers["Cache-Control"]


def test_unknown_role_cannot_read_heatmaps(client):
    assert client.get("/api/v1/heatmap", headers=Caller("x", role="superuser").headers()).status_code == 403


def test_street_level_cells_as_geojson_need_a_bbox(client, staff):
    response = client.get("/api/v1/heatmap", query_string={"zoom": 14}, headers=staff.headers())
    assert response.status_code == 422 and "bbox" in response.json["errors"]
