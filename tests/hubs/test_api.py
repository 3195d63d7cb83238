"""Safe hubs over HTTP: staff manage them; anyone signed in finds the nearest (open) ones."""

from __future__ import annotations

import uuid

import pytest

URL = "/api/v1/safe-hubs"
BRIXTON = (-0.1145, 51.4627)


def hub(name: str, lon: float, lat: float, hours="24/7", kind="staffed_station", **extra):
    return {"name": name, "kind": kind, "location": {"type": "Point", "coordinates": [lon, lat]},
            "opening_hours": hours, **extra}


@pytest.fixture
def hubs(client, staff):
    made = {}
    for body in (
        hub("Brixton station", -0.1145, 51.4627),
        hub("Stockwell station", -0.1228, 51.4723),
        hub("Never open pharmacy", -0.1150, 51.4630, hours={}, kind="pharmacy"),
        hub("Far away hospital", -0.0900, 51.5200, kind="hospital", address="1 Hospital Road", phone="020 7000 0000"),
    ):
        response = client.post(URL, json=body, headers=staff.headers())
        assert response.status_code == 201, response.json
        made[body["name"]] = response.json
    return made


def test_staff_add_a_hub_and_anyone_signed_in_reads_it(client, hubs, commuter):
    created = hubs["Far away hospital"]
    assert created["kind"] == "hospital" and created["opening_hours"] == "24/7"
    assert created["location"] == {"type": "Point", "coordinates": [-0.09, 51.52]}
    assert client.get(f"{URL}/{created['id']}", headers=commuter.headers()).json["name"] == "Far away hospital"
    names = [h["name"] for h in client.get(URL, headers=commuter.headers()).json]
    assert names == sorted(names) and len(names) == 4


def test_nearest_hubs_come_nearest_first_with_distances(client, hubs, commuter):
    response = client.get(f"{URL}/nearest", query_string={"lon": BRIXTON[0], "lat": BRIXTON[1], "limit": 3},
                          headers=commuter.headers())
    assert response.status_code == 200
    found = response.json
    assert [h["name"] for h in found] == ["Brixton station", "Never open pharmacy", "Stockwell station"]
    assert found[0]["distance_m"] == 0
    assert 40 < found[1]["distance_m"] < 60  # about 50 m
    assert 1150 < found[2]["distance_m"] < 1300
    assert found[0]["open_now"] is True and found[0]["closes_at"] is None
    assert found[1]["open_now"] is False and found[1]["opens_at"] is None  # never opens


def test_open_now_skips_closed_hubs(client, hubs, commuter):
    found = client.get(f"{URL}/nearest", query_string={"lon": BRIXTON[0], "lat": BRIXTON[1], "open_now": "true"},
                       headers=commuter.headers()).json
    assert "Never open pharmacy" not in [h["name"] for h in found]
    assert all(h["open_now"] for h in found) and len(found) == 3


def test_staff_change_and_remove_hubs(client, hubs, staff, commuter):
    hub_id = hubs["Stockwell station"]["id"]
    changed = client.patch(f"{URL}/{hub_id}", json={"opening_hours": {"fri": [["18:00", "04:00"]]}},
                           headers=staff.headers())
    assert changed.status_code == 200 and changed.json["opening_hours"] == {"fri": [["18:00", "04:00"]]}
    assert client.delete(f"{URL}/{hub_id}", headers=staff.headers()).status_code == 204
    assert client.get(f"{URL}/{hub_id}", headers=commuter.headers()).status_code == 404
    assert client.delete(f"{URL}/{hub_id}", headers=staff.headers()).status_code == 404


@pytest.mark.parametrize("method, path, body", [
    ("post", URL, hub("x", 0, 51)),
    ("patch", f"{URL}/{uuid.uuid4()}", {"name": "y"}),
    ("delete", f"{URL}/{uuid.uuid4()}", None),
])
def test_commuters_and_councils_cannot_manage_hubs(client, commuter, southwark, method, path, body):
    for caller in (commuter, southwark):
        assert getattr(client, method)(path, json=body, headers=caller.headers()).status_code == 403
    assert getattr(client, method)(path, json=body).status_code == 401


@pytest.mark.parametrize("body, field", [
    (hub("", 0, 51), "name"),
    (hub("x", 0, 51, kind="cafe"), "kind"),
    (hub("x", 200, 51), "location"),
    (hub("x", 0, 51, hours="sometimes"), "opening_hours"),
    (hub("x", 0, 51, hours={"mon": [["09:00", "26:00"]]}), "opening_hours"),
    ({"name": "x", "kind": "venue", "location": {"type": "Point", "coordinates": [0, 51]}}, "opening_hours"),
    (hub("x", 0, 51, website="https://x"), "website"),
])
def test_bad_hubs_answer_422(client, staff, body, field):
    response = client.post(URL, json=body, headers=staff.headers())
    assert response.status_code == 422 and field in response.json["errors"]


@pytest.mark.parametrize("params, field", [
    ({"lat": 51.5}, "lon"),
    ({"lon": -0.1, "lat": 95}, "lat"),
    ({"lon": "nan", "lat": 51.5}, "lon"),
    ({"lon": -0.1, "lat": 51.5, "limit": 0}, "limit"),
    ({"lon": -0.1, "lat": 51.5, "open_now": "perhaps"}, "open_now"),
])
def test_bad_nearest_queries_answer_422(client, commuter, params, field):
    response = client.get(f"{URL}/nearest", query_string=params, headers=commuter.headers())
    assert response.status_code == 422 and field in response.json["errors"]


def test_empty_patch_answers_422(client, hubs, staff):
    response = client.patch(f"{URL}/{hubs['Brixton station']['id']}", json={}, headers=staff.headers())
    assert response.status_code == 422
