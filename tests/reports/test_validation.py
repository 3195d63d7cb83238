"""Every bad input gets a 4xx naming the problem, and stores nothing (docs/api.md, "Errors")."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from backend.extensions import db
from backend.reports.models import Report
from tests.factories import iso, report_body, route_body

URL = "/api/v1/reports"
NOW = datetime.now(timezone.utc)


def _line(n: int, step: float = 0.0001) -> dict:
    return {"type": "LineString", "coordinates": [[-0.1 + i * step, 51.5 + (i % 2) * step] for i in range(n)]}


# (what, body, field named in the errors)
BAD_BODIES = [
    ("missing category", report_body(category=None), "category"),
    ("unknown category", report_body(category="theft"), "category"),
    ("category not a string", report_body(category=3), "category"),
    ("subcategory of another category", report_body(subcategory="needle"), "subcategory"),
    ("unknown subcategory", report_body(subcategory="loud"), "subcategory"),
    ("missing occurred_at", report_body(occurred_at=None), "occurred_at"),
    ("occurred_at without a time zone", report_body(occurred_at="2026-11-20T22:15:00"), "occurred_at"),
    ("occurred_at not a date", report_body(occurred_at="last night"), "occurred_at"),
    ("occurred_at a number", report_body(occurred_at=1763676900), "occurred_at"),
    # Made when the test runs, not when the module is collected (the fault drills take minutes first).
    ("occurred_at 10 minutes ahead",
     lambda: report_body(occurred_at=iso(datetime.now(timezone.utc) + timedelta(minutes=10))), "occurred_at"),
    ("occurred_at in year 9999", report_body(occurred_at="9999-12-31T23:59:59Z"), "occurred_at"),
    ("missing location", report_body(location=None), "location"),
    ("location not a Point", report_body(location={"type": "Polygon", "coordinates": [[0, 0]]}), "location"),
    ("location as a bare list", report_body(location=[-0.1, 51.5]), "location"),
    ("longitude out of range", report_body(location={"type": "Point", "coordinates": [-181, 51.5]}), "location"),
    ("latitude out of range", report_body(location={"type": "Point", "coordinates": [-0.1, 91]}), "location"),
    ("lat/lon swapped beyond range", report_body(location={"type": "Point", "coordinates": [51.5, -100]}), "location"),
    ("one coordinate", report_body(location={"type": "Point", "coordinates": [-0.1]}), "location"),
    ("coordinate a string", report_body(location={"type": "Point", "coordinates": ["-0.1", 51.5]}), "location"),
    ("coordinate a boolean", report_body(location={"type": "Point", "coordinates": [True, 51.5]}), "location"),
    ("location with extra member", report_body(location={"type": "Point", "coordinates": [0, 51], "crs": 1}), "location"),
    ("negative accuracy", report_body(accuracy_m=-1), "accuracy_m"),
    ("huge accuracy", report_body(accuracy_m=1e9), "accuracy_m"),
    ("accuracy a string", report_body(accuracy_m="25"), "accuracy_m"),
    ("unsafe_route without route", route_body(route=None), "route"),
    ("route of one point", route_body(route=_line(1)), "route"),
    ("route of 501 points", route_body(route=_line(501)), "route"),
    ("route longer than 20 km", route_body(route={"type": "LineString", "coordinates": [[-0.5, 51.5], [-0.1, 51.5]]}),
     "route"),
    ("degenerate route", route_body(route={"type": "LineString", "coordinates": [[-0.1, 51.5], [-0.1, 51.5]]}), "route"),
    ("self-intersecting route", route_body(route={"type": "LineString", "coordinates": [
        [-0.100, 51.500], [-0.099, 51.501], [-0.099, 51.500], [-0.100, 51.501]]}), "route"),
    ("route as a Point", route_body(route={"type": "Point", "coordinates": [-0.1, 51.5]}), "route"),
    ("transport without mode", report_body(transport={"line": "Victoria"}), "transport"),
    ("unknown mode", report_body(transport={"mode": "hovercraft"}), "transport"),
    ("unknown transport field", report_body(transport={"mode": "bus", "seat": "12"}), "transport"),
    ("line too long", report_body(transport={"mode": "bus", "line": "x" * 101}), "transport"),
    ("unknown factor", report_body(factors=["spooky"]), "factors"),
    ("repeated factor", report_body(factors=["isolated", "isolated"]), "factors"),
    ("factors not a list", report_body(factors="isolated"), "factors"),
    ("description over 2,000 characters", report_body(description="x" * 2001), "description"),
    ("description with a NUL", report_body(description="a\x00b"), "description"),
    ("unknown field", report_body(author="me"), "author"),
    ("status set by the client", report_body(status="actioned"), "status"),
]


@pytest.mark.parametrize("what, body, field", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_body_answers_422_naming_the_field(client, commuter, what, body, field):
    response = client.post(URL, json=body() if callable(body) else body, headers=commuter.headers())

    assert response.status_code == 422, (what, response.json)
    payload = response.json
    assert payload["code"] == 422 and payload["status"] == "Unprocessable Entity"
    assert field in payload["errors"], payload
    assert field in payload["message"]
    assert db.session.scalar(select(func.count()).select_from(Report)) == 0


@pytest.mark.parametrize("raw, reason", [
    ('{"category": "harassment", "accuracy_m": NaN}', "NaN"),
    ('{"category": "harassment", "accuracy_m": Infinity}', "Infinity"),
    ('{"category": "harassment", "accuracy_m": -Infinity}', "-Infinity"),
    ('{"location": {"type": "Point", "coordinates": [1e400, 51.5]}}', "out of range"),
    ('{"category": "harassment", "category": "spiking"}', "duplicate key"),
    ('{"category": ', "Expecting"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_body_that_is_not_strict_json_answers_400(client, commuter, raw, reason):
    response = client.post(URL, data=raw, content_type="application/json", headers=commuter.headers())
    assert response.status_code == 400
    assert reason in response.json["message"]


def test_body_that_is_not_an_object_answers_422(client, commuter):
    response = client.post(URL, json=[report_body()], headers=commuter.headers())
    assert response.status_code == 422
    assert "_schema" in response.json["errors"]


def test_invalid_utf8_answers_400(client, commuter):
    response = client.post(URL, data=b'{"description": "\xff"}', content_type="application/json",
                           headers=commuter.headers())
    assert response.status_code == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_wrong_content_type_answers_415(client, commuter, content_type):
    response = client.post(URL, data=json.dumps(report_body()), content_type=content_type, headers=commuter.headers())
    assert response.status_code == 415
    assert "Content-Type" in response.json["errors"]


def test_missing_content_type_answers_415(client, commuter):
    response = client.post(URL, data=json.dumps(report_body()), headers=commuter.headers())
    assert response.status_code == 415


def test_oversized_body_answers_413(client, commuter):
    response = client.post(URL, json=report_body(description="x" * 300_000), headers=commuter.headers())
    assert response.status_code == 413
    assert response.json["code"] == 413


def test_empty_body_answers_422_listing_required_fields(client, commuter):
    response = client.post(URL, data="", content_type="application/json", headers=commuter.headers())
    assert response.status_code == 422
    assert {"category", "occurred_at", "location"} <= set(response.json["errors"])


def test_occurred_at_within_clock_skew_is_accepted(client, commuter):
    body = report_body(occurred_at=iso(datetime.now(timezone.utc) + timedelta(minutes=4)))
    assert client.post(URL, json=body, headers=commuter.headers()).status_code == 201


def test_occurred_at_with_an_offset_is_stored_in_utc(client, commuter):
    response = client.post(URL, json=report_body(occurred_at="2026-07-01T23:30:00+01:00"), headers=commuter.headers())
    assert response.status_code == 201
    assert response.json["occurred_at"] == "2026-07-01T22:30:00Z"


def test_route_with_500_points_is_accepted(client, commuter):
    assert client.post(URL, json=route_body(route=_line(500)), headers=commuter.headers()).status_code == 201


def test_minimal_report_is_accepted(client, commuter):
    body = {"category": "spiking", "occurred_at": iso(NOW - timedelta(hours=2)),
            "location": {"type": "Point", "coordinates": [-0.1, 51.5]}}
    response = client.post(URL, json=body, headers=commuter.headers())
    assert response.status_code == 201
    assert response.json["transport"] is None and response.json["factors"] == []
