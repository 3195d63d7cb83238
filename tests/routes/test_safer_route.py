"""GET /api/v1/routes/safer on a small synthetic grid whose shortest path is known.

Two north-south streets 50 m apart, five rungs 100 m apart between them:

    B0 ---- B1        column 0 (x = 0) is one way, not split at the rungs, tagged unlit;
    |       |         column 1 (x = 50 m) is lit; the rungs are lit.
    ...    ...        From A0 to A4 the shortest way is column 0 (400 m); the other way,
    |       |         along column 1, is 500 m (1.25 times).
    A0 ---- A1
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from backend.extensions import db
from backend.outbox import service as outbox
from backend.reports import service as reports_service
from backend.routes import service
from backend.streets.service import load_street_segments
from tests import factories

LON0, LAT0 = factories.PECKHAM
M_LAT = 1 / 111_320
M_LON = 1 / (111_320 * math.cos(math.radians(LAT0)))
NIGHT = datetime(2026, 11, 20, 22, 15, tzinfo=timezone.utc)  # dark in London
NOON = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def point(x_m: float, y_m: float) -> tuple[float, float]:
    return round(LON0 + x_m * M_LON, 7), round(LAT0 + y_m * M_LAT, 7)


def lonlat(x_m: float, y_m: float) -> str:
    return "{},{}".format(*point(x_m, y_m))


def street(coords, **properties) -> dict:
    return {"type": "Feature", "properties": properties,
            "geometry": {"type": "LineString", "coordinates": [list(point(*c)) for c in coords]}}


def load_grid(app, directory: Path) -> Path:
    """A ladder of streets, committed: two columns 50 m apart (column 0 unlit), five rungs 100 m apart."""
    features = [street([(0, 100 * i) for i in range(5)], name="Column Nought", highway="residential", lit="no"),
                street([(50, 100 * i) for i in range(5)], name="Column One", highway="residential", lit="yes")]
    features += [street([(0, 100 * i), (50, 100 * i)], name=f"Rung {i}", highway="footway", lit="yes") for i in range(5)]
    path = directory / "grid.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with app.app_context():
        assert load_street_segments(path, class_field="highway", lit_field="lit") == 7
        db.session.commit()
    return path


@pytest.fixture
def grid(app, tmp_path):
    return load_grid(app, tmp_path)


def route(client, caller, start=(0, 0), end=(0, 400), at=NIGHT, **query):
    params = {"from": lonlat(*start), "to": lonlat(*end), "at": factories.iso(at), **query}
    return client.get("/api/v1/routes/safer", query_string={k: v for k, v in params.items() if v is not None},
                      headers=caller.headers())


def by_kind(answer: dict) -> dict[str, dict]:
    assert answer["type"] == "FeatureCollection"
    assert [f["properties"]["kind"] for f in answer["features"]] == ["shortest", "safer"]
    return {f["properties"]["kind"]: f for f in answer["features"]}


def xs(feature: dict) -> set[int]:
    """The columns (0 or 50 m) the route's vertices lie on."""
    return {round((lon - LON0) / M_LON) for lon, _ in feature["geometry"]["coordinates"]}


def record_nearby_streets() -> None:
    """Run the new reports' ``streets.report_edges`` tasks, as the worker would (and no other task)."""
    for task_id in db.session.scalars(text(
            "SELECT id FROM outbox WHERE task = 'streets.report_edges' AND done_at IS NULL ORDER BY id")).all():
        assert outbox.run(task_id) == "done"


def report_at(commuter, x_m: float, y_m: float, at: datetime, count: int = 1, category: str = "harassment",
              recorded: bool = True) -> list[str]:
    """Reports at a place of the grid; ``recorded``: their nearby streets recorded, as the worker does."""
    ids = [factories.add_report(commuter.uid, *point(x_m, y_m), at, category=category) for _ in range(count)]
    if recorded:
        record_nearby_streets()
    return ids


def test_in_daylight_with_no_reports_the_safer_route_is_the_shortest(client, commuter, grid):
    response = route(client, commuter, at=NOON)
    assert response.status_code == 200, response.json
    routes = by_kind(response.json)
    shortest = routes["shortest"]
    assert shortest["geometry"]["type"] == "LineString"
    assert xs(shortest) == {0}
    assert shortest["geometry"]["coordinates"][0] == pytest.approx(list(point(0, 0)), abs=2e-5)  # from A0 ...
    assert shortest["geometry"]["coordinates"][-1] == pytest.approx(list(point(0, 400)), abs=2e-5)  # ... to A4
    props = shortest["properties"]
    assert props["length_m"] == pytest.approx(400, abs=2) and props["walk_min"] == pytest.approx(5.0, abs=0.1)
    assert props["reports_nearby"] == {} and props["unlit_m"] is None and props["open_hubs_within_200m"] == 0
    assert routes["safer"]["geometry"] == shortest["geometry"]
    assert response.json["same_route"] is True and "1.5 times" in response.json["note"]
    assert response.json["after_dark"] is False


def test_after_dark_the_unlit_street_is_avoided(client, commuter, grid):
    response = route(client, commuter, at=NIGHT)
    assert response.status_code == 200, response.json
    routes = by_kind(response.json)
    assert response.json["after_dark"] is True and response.json["same_route"] is False
    assert xs(routes["shortest"]) == {0} and routes["shortest"]["properties"]["unlit_m"] == pytest.approx(400, abs=2)
    assert xs(routes["safer"]) == {0, 50}
    assert routes["safer"]["properties"]["length_m"] == pytest.approx(500, abs=3)
    assert routes["safer"]["properties"]["unlit_m"] == 0


def test_reports_on_the_shortest_path_divert_the_safer_route(client, commuter, grid):
    report_at(commuter, 0, 200, NOON - timedelta(days=3), count=3)
    report_at(commuter, 0, 210, NOON - timedelta(days=200))  # too old to count
    response = route(client, commuter, at=NOON)
    assert response.status_code == 200, response.json
    routes = by_kind(response.json)
    assert response.json["same_route"] is False and response.json["note"] is None
    assert xs(routes["shortest"]) == {0} and xs(routes["safer"]) == {0, 50}
    assert routes["shortest"]["properties"]["reports_nearby"] == {"harassment": 3}
    assert routes["safer"]["properties"]["reports_nearby"] == {}
    assert routes["safer"]["properties"]["length_m"] <= 1.5 * routes["shortest"]["properties"]["length_m"]


def test_reports_made_after_the_walk_do_not_count(client, commuter, grid):
    report_at(commuter, 0, 200, NOON + timedelta(hours=1), count=3)
    routes = by_kind(route(client, commuter, at=NOON).json)
    assert xs(routes["safer"]) == {0} and routes["shortest"]["properties"]["reports_nearby"] == {}


def test_the_safer_route_is_never_longer_than_one_and_a_half_times_the_shortest(client, commuter, grid):
    # A0 to A1 is 100 m; the way round along column 1 is 200 m (twice): never taken, however many reports.
    report_at(commuter, 0, 50, NOON - timedelta(days=1), count=10)
    response = route(client, commuter, end=(0, 100), at=NOON)
    assert response.status_code == 200, response.json
    routes = by_kind(response.json)
    assert routes["safer"]["geometry"] == routes["shortest"]["geometry"]
    assert routes["safer"]["properties"]["reports_nearby"] == {"harassment": 10}
    assert response.json["same_route"] is True and "1.5 times the shortest" in response.json["note"]


def test_open_hubs_near_the_route_are_counted(client, commuter, staff, grid):
    for name, hours in (("Always open", "24/7"), ("Never open", {})):
        created = client.post("/api/v1/safe-hubs", headers=staff.headers(), json={
            "name": name, "kind": "venue", "opening_hours": hours,
            "location": {"type": "Point", "coordinates": list(point(-100, 200))}})
        assert created.status_code == 201, created.json
    routes = by_kind(route(client, commuter, at=NOON).json)
    assert routes["shortest"]["properties"]["open_hubs_within_200m"] == 1


@pytest.mark.parametrize(("query", "field", "words"), [
    ({"from": "-0.07"}, "from", "lon,lat"),
    ({"from": "abc,51.47"}, "from", "two numbers"),
    ({"to": "-0.07,51.47,3"}, "to", "lon,lat"),
    ({"from": "-200,51.47"}, "from", "within -180..180"),
    ({"from": "nan,51.47"}, "from", "within -180..180"),
    ({"to": None}, "to", "Missing"),
    ({"at": "tonight"}, "at", ""),
    ({"to": lonlat(0, 0)}, "to", "another place"),
    ({"to": lonlat(0, 20_000)}, "to", "within 10 km"),
    ({"from": lonlat(-1000, 0)}, "from", "more than 200 m from any street"),
    ({"to": lonlat(1000, 400)}, "to", "more than 200 m from any street"),
    ({"to": lonlat(3, 2)}, "to", "same street corner"),
    ({"colour": "red"}, "colour", "Unknown"),
])
def test_bad_input_is_a_422_naming_the_field(client, commuter, grid, query, field, words):
    params = {"from": lonlat(0, 0), "to": lonlat(0, 400), "at": factories.iso(NOON), **query}
    response = client.get("/api/v1/routes/safer", query_string={k: v for k, v in params.items() if v is not None},
                          headers=commuter.headers())
    assert response.status_code == 422, response.json
    assert list(response.json["errors"]) == [field]
    assert words in " ".join(response.json["errors"][field])


def test_without_a_street_network_every_place_is_too_far(client, commuter):
    response = route(client, commuter)
    assert response.status_code == 422 and list(response.json["errors"]) == ["from"]


def test_signing_in_is_required(client, grid):
    response = client.get("/api/v1/routes/safer", query_string={"from": lonlat(0, 0), "to": lonlat(0, 400)})
    assert response.status_code == 401


def post_report(client, caller, x_m: float, y_m: float, at: datetime) -> str:
    body = factories.report_body(occurred_at=factories.iso(at), transport=None,
                                 location={"type": "Point", "coordinates": list(point(x_m, y_m))})
    response = client.post("/api/v1/reports", json=body, headers=caller.headers(**{"Idempotency-Key": factories.new_key()}))
    assert response.status_code == 201, response.json
    return response.json["id"]


def edges_state() -> tuple:
    return tuple(db.session.execute(text("SELECT count(*), min(id), max(id) FROM street_edges")).one())


def test_a_new_report_changes_the_safer_route_once_its_task_has_run_without_any_rebuild(client, commuter,
                                                                                          other_commuter, grid):
    assert by_kind(route(client, commuter, at=NOON).json)["safer"]["properties"]["length_m"] == pytest.approx(400, abs=2)
    graph = edges_state()
    for _ in range(3):
        post_report(client, other_commuter, 0, 200, NOON - timedelta(days=2))
    record_nearby_streets()
    assert edges_state() == graph  # the same graph: nothing was rebuilt
    answer = route(client, commuter, at=NOON).json
    routes = by_kind(answer)
    assert answer["same_route"] is False and xs(routes["safer"]) == {0, 50}
    assert routes["safer"]["properties"]["reports_nearby"] == {}
    assert routes["shortest"]["properties"]["reports_nearby"] == {"harassment": 3}


def test_a_report_is_recorded_near_the_streets_within_25_metres_of_it(client, commuter, grid):
    [report_id] = report_at(commuter, 10, 200, NOON)  # 10 m off column 0, 40 m off column 1
    names = db.session.scalars(text("""
        SELECT DISTINCT s.name FROM report_edges re JOIN street_edges e ON e.id = re.edge_id
        JOIN street_segments s ON s.id = e.segment_id WHERE re.report_id = :id ORDER BY s.name"""),
        {"id": report_id}).all()
    assert names == ["Column Nought", "Rung 2"]


def test_a_batch_of_reports_records_the_same_streets_as_one_by_one(client, commuter, other_commuter, grid):
    one = report_at(commuter, 10, 200, NOON, recorded=False)
    post_report(client, other_commuter, 0, 200, NOON - timedelta(days=2))  # then erased: skipped in the batch
    assert client.delete("/api/v1/me", headers=other_commuter.headers()).status_code == 204
    one += report_at(commuter, 10, 300, NOON, recorded=False)
    tasks = db.session.scalars(text(
        "SELECT id FROM outbox WHERE task = 'streets.report_edges' AND done_at IS NULL ORDER BY id")).all()
    assert len(tasks) == 3
    assert outbox.run_batch(tasks) == "3 done"
    batched = db.session.execute(text("SELECT report_id, edge_id FROM report_edges ORDER BY 1, 2")).all()
    db.session.execute(text("DELETE FROM report_edges"))
    for task_id in tasks:
        db.session.execute(text("UPDATE outbox SET done_at = NULL WHERE id = :id"), {"id": task_id})
    record_nearby_streets()  # one by one
    assert db.session.execute(text("SELECT report_id, edge_id FROM report_edges ORDER BY 1, 2")).all() == batched
    assert {str(r) for r, _ in batched} == set(one)


def test_an_erased_reporter_s_reports_stop_counting(client, commuter, other_commuter, grid):
    for _ in range(3):
        post_report(client, other_commuter, 0, 200, NOON - timedelta(days=2))
    record_nearby_streets()
    assert route(client, commuter, at=NOON).json["same_route"] is False
    assert client.delete("/api/v1/me", headers=other_commuter.headers()).status_code == 204
    answer = route(client, commuter, at=NOON).json
    assert answer["same_route"] is True and by_kind(answer)["shortest"]["properties"]["reports_nearby"] == {}
    assert db.session.scalar(text("SELECT count(*) FROM report_edges")) == 0


def test_a_report_erased_before_its_task_runs_leaves_nothing_behind(client, commuter, other_commuter, grid):
    post_report(client, other_commuter, 0, 200, NOON - timedelta(days=2))
    assert client.delete("/api/v1/me", headers=other_commuter.headers()).status_code == 204
    record_nearby_streets()  # the task finds no report: done, nothing written
    assert db.session.scalar(text("SELECT count(*) FROM report_edges")) == 0


def test_purged_reports_stop_counting(app, client, commuter, grid):
    report_at(commuter, 0, 200, NOON - timedelta(days=2), count=3)
    assert route(client, commuter, at=NOON).json["same_route"] is False
    with app.app_context():  # the daily purge job's work
        assert reports_service.delete_expired_batch(0, now=datetime.now(timezone.utc) + timedelta(days=1)) == 3
        db.session.commit()
    assert route(client, commuter, at=NOON).json["same_route"] is True
    assert db.session.scalar(text("SELECT count(*) FROM report_edges")) == 0


def test_loading_the_network_again_records_every_report_s_streets_again(app, client, commuter, grid, tmp_path):
    report_at(commuter, 0, 200, NOON - timedelta(days=2), count=3)
    with app.app_context():
        load_street_segments(grid, class_field="highway", lit_field="lit")  # replaces the graph: new edge ids
        db.session.commit()
    assert db.session.scalar(text("SELECT count(DISTINCT report_id) FROM report_edges")) == 3
    assert route(client, commuter, at=NOON).json["same_route"] is False


def test_a_shortest_route_that_leaves_the_ellipse_is_still_found(app, client, commuter, tmp_path):
    # From A (0, 0) to B (100 m, 0): inside the ellipse of the first search (|AP| + |PB| <= 140 m) only a
    # zigzag of 225 m; outside it, round a block 60 m north, 220 m. The zigzag is too long for the
    # ellipse to prove it the shortest, so the box is searched: the answer is the block.
    features = [street([(0, 0), (50, 45), (50, -45), (100, 0)], name="Zigzag", highway="footway", lit="yes"),
                # two streets meeting at (50 m, 60 m): a vertex of the graph outside the ellipse
                street([(0, 0), (0, 60), (50, 60)], name="Round the block", highway="residential", lit="yes"),
                street([(50, 60), (100, 60), (100, 0)], name="Round the block", highway="residential", lit="yes")]
    path = tmp_path / "detour.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with app.app_context():
        assert load_street_segments(path, class_field="highway", lit_field="lit") == 3
        db.session.commit()
    response = route(client, commuter, start=(0, 0), end=(100, 0), at=NOON)
    assert response.status_code == 200, response.json
    shortest = by_kind(response.json)["shortest"]
    assert shortest["properties"]["length_m"] == pytest.approx(220, abs=2)
    assert max(lat for _, lat in shortest["geometry"]["coordinates"]) == pytest.approx(point(0, 60)[1], abs=2e-5)


def test_the_ellipse_proves_a_route_that_stays_inside_it(app, client, commuter, grid):
    # A0 to A4: 400 m straight along column 0, well inside the ellipse; the same answer as the box's.
    with app.app_context():
        source = service._nearest_vertex(point(0, 0), "from")
        target = service._nearest_vertex(point(0, 400), "to")
        found = service._shortest(source, target)
        planar = math.hypot(source.x - target.x, source.y - target.y)
        assert found.length_m == pytest.approx(400, abs=2)
        assert found.length_m * service.PLANAR_SCALE_MAX <= service.ELLIPSE_SHARE * planar  # proved at once
        db.session.rollback()
