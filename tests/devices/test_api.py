"""Devices: registered by their owners, one row per FCM token, stored coarse."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, text

from backend.devices.models import Device
from backend.extensions import db
from tests.factories import Caller

URL = "/api/v1/devices"
TOKEN = "fcm-token-" + "a" * 140


def device(**overrides):
    body = {"token": TOKEN, "platform": "android",
            "location": {"type": "Point", "coordinates": [-0.114537, 51.462712]},
            "radius_m": 1500, "categories": ["spiking"]}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def test_register_stores_a_coarse_location_and_answers_201(client, commuter):
    response = client.post(URL, json=device(), headers=commuter.headers())
    assert response.status_code == 201
    body = response.json
    assert body["radius_m"] == 1500 and body["categories"] == ["spiking"] and "token" not in body
    lon, lat = body["location"]["coordinates"]
    assert (lon, lat) != (-0.114537, 51.462712)
    assert abs(lon - -0.114537) < 0.0011 and abs(lat - 51.462712) < 0.0006  # within about 70 m
    stored = db.session.execute(text("SELECT ST_X(location), ST_Y(location) FROM devices")).one()
    assert stored == (lon, lat)


def test_reregistering_a_token_updates_it_and_moves_it_to_the_caller(client, commuter, other_commuter):
    first = client.post(URL, json=device(), headers=commuter.headers()).json
    again = client.post(URL, json=device(radius_m=300, platform="ios"), headers=other_commuter.headers())
    assert again.status_code == 200 and again.json["id"] == first["id"]
    assert again.json["radius_m"] == 300 and again.json["platform"] == "ios"
    assert db.session.scalar(select(func.count()).select_from(Device)) == 1
    # The first owner no longer has it, and is told why, with a code the app can show its own words for.
    for method, body in (("patch", {"radius_m": 200}), ("delete", None)):
        told = getattr(client, method)(f"{URL}/{first['id']}", json=body, headers=commuter.headers())
        assert told.status_code == 404
        assert told.json["reason"] == "registered_on_another_account"
        assert "registered on another account" in told.json["message"]
    # Anyone else asking about it learns nothing more than "no such device".
    stranger = client.delete(f"{URL}/{first['id']}", headers=Caller("stranger").headers())
    assert stranger.status_code == 404 and "reason" not in stranger.json


def test_a_token_moving_between_accounts_is_written_to_the_audit_log(client, commuter, other_commuter):
    first = client.post(URL, json=device(), headers=commuter.headers()).json
    client.post(URL, json=device(radius_m=300), headers=commuter.headers())  # the same account: not a move
    client.post(URL, json=device(), headers=other_commuter.headers())
    entries = db.session.execute(text(
        "SELECT actor_uid, action, subject_type, subject_id, details FROM audit_log WHERE action = 'device.moved'")).all()
    assert [tuple(e) for e in entries] == [
        (other_commuter.uid, "device.moved", "device", first["id"],
         {"previous_owner": commuter.uid, "audience": "commuter"})]
    assert TOKEN not in str(entries)  # the token itself is a secret: never in the log


def test_a_staff_device_cannot_be_claimed_by_an_account_that_is_not_staff(client, staff, commuter):
    mine = client.post(URL, json=device(), headers=staff.headers()).json
    for caller in (commuter, Caller("council-x", "council", "E09000028")):
        refused = client.post(URL, json=device(categories=[]), headers=caller.headers())
        assert refused.status_code == 409 and refused.json["reason"] == "staff_device"
        assert refused.json["errors"] == {"token": ["belongs to a staff device"]}
    stored = db.session.execute(select(Device.audience, Device.categories)).one()
    assert tuple(stored) == ("staff", ["spiking"])
    assert client.patch(f"{URL}/{mine['id']}", json={"radius_m": 200}, headers=staff.headers()).status_code == 200
    # Another staff account may take it (a shared team phone signed in by a colleague); it is audited.
    colleague = Caller("colleague", "admin")
    assert client.post(URL, json=device(), headers=colleague.headers()).status_code == 200
    assert db.session.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'device.moved'")) == 1


def test_staff_devices_are_marked_for_the_safety_teams_alerts(client, staff):
    client.post(URL, json=device(), headers=staff.headers())
    assert db.session.scalar(select(Device.audience)) == "staff"


def test_owner_changes_and_removes_a_device(client, commuter, other_commuter):
    created = client.post(URL, json=device(), headers=commuter.headers()).json
    assert client.patch(f"{URL}/{created['id']}", json={"radius_m": 200}, headers=other_commuter.headers()).status_code == 404
    changed = client.patch(f"{URL}/{created['id']}", json={"radius_m": 200, "categories": []}, headers=commuter.headers())
    assert changed.status_code == 200 and changed.json["radius_m"] == 200 and changed.json["categories"] == []
    moved = client.patch(f"{URL}/{created['id']}", json={"location": None}, headers=commuter.headers())
    assert moved.json["location"] is None
    assert client.delete(f"{URL}/{created['id']}", headers=commuter.headers()).status_code == 204
    assert client.delete(f"{URL}/{created['id']}", headers=commuter.headers()).status_code == 404


def test_erasing_a_person_removes_their_devices(client, commuter):
    client.post(URL, json=device(), headers=commuter.headers())
    assert client.delete("/api/v1/me", headers=commuter.headers()).status_code == 204
    assert db.session.scalar(select(func.count()).select_from(Device)) == 0


@pytest.mark.parametrize("body, field", [
    (device(token=None), "token"),
    (device(token="short"), "token"),
    (device(platform="symbian"), "platform"),
    (device(radius_m=50), "radius_m"),
    (device(radius_m=5001), "radius_m"),
    (device(radius_m="1000"), "radius_m"),
    (device(radius_m=1000.5), "radius_m"),
    (device(categories=["theft"]), "categories"),
    (device(categories=["spiking", "spiking"]), "categories"),
    (device(location={"type": "Point", "coordinates": [0, 99]}), "location"),
    (device(colour="blue"), "colour"),
])
def test_bad_devices_answer_422(client, commuter, body, field):
    response = client.post(URL, json=body, headers=commuter.headers())
    assert response.status_code == 422 and field in response.json["errors"]


def test_devices_need_sign_in_and_unknown_ids_are_404(client, commuter):
    assert client.post(URL, json=device()).status_code == 401
    assert client.patch(f"{URL}/{uuid.uuid4()}", json={"radius_m": 200}, headers=commuter.headers()).status_code == 404
    assert client.patch(f"{URL}/{uuid.uuid4()}", json={"token": TOKEN}, headers=commuter.headers()).status_code == 422
