"""A lone UTF-16 surrogate ("\\ud800", half an emoji cut at a length limit) is valid JSON syntax that no
text encoding can store: every JSON body answers 422 naming the field, and the offline batch answers
it per item, keeping the good ones (it used to be a 500 that sank the whole batch)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from backend.extensions import db
from backend.reports.models import Report
from tests.alerts.test_alerts import alert_body
from tests.devices.test_api import device
from tests.factories import new_key, report_body
from tests.hubs.test_api import hub

LONE = "\ud83d"  # the first half of an emoji, with its second half cut off


def raw(body) -> str:
    # json.dumps escapes it as \\ud83d, as a phone's JSON encoder does.
    return json.dumps(body)


def post(client, url, body, caller):
    return client.post(url, data=raw(body), content_type="application/json", headers=caller.headers())


@pytest.mark.parametrize("url, body, field, who", [
    ("/api/v1/reports", lambda: report_body(description="Followed me" + LONE), "description", "commuter"),
    ("/api/v1/reports", lambda: report_body(transport={"mode": "tube", "line": "Victoria" + LONE}), "transport.line",
     "commuter"),
    ("/api/v1/devices", lambda: device(token="fcm-token-" + LONE), "token", "commuter"),
    ("/api/v1/safe-hubs", lambda: hub("Brixton" + LONE, -0.11, 51.46), "name", "staff"),
    ("/api/v1/alerts", lambda: {**alert_body(), "title": "Avoid" + LONE}, "title", "staff"),
    ("/api/v1/reports", lambda: {**report_body(), "note" + LONE: "x"}, "note\\ud83d", "commuter"),
])
def test_a_lone_surrogate_anywhere_answers_422_naming_the_field(client, request, url, body, field, who):
    response = post(client, url, body(), request.getfixturevalue(who))

    assert response.status_code == 422, response.json
    assert response.json["errors"] == {field: [response.json["errors"][field][0]]}
    assert "lone UTF-16 surrogate" in response.json["errors"][field][0]
    assert field in response.json["message"]


def test_a_whole_emoji_is_stored(client, commuter):
    response = post(client, "/api/v1/reports", report_body(description="Followed me \U0001F621"), commuter)
    assert response.status_code == 201
    assert response.json["description"] == "Followed me \U0001F621"


def test_the_batch_answers_a_lone_surrogate_per_item_and_keeps_the_good_items(client, commuter):
    good, cut, good_too = ({"client_id": new_key(), **report_body(description=text)}
                           for text in ("fine", "cut emoji " + LONE, "fine too"))
    response = post(client, "/api/v1/reports/batch", {"reports": [good, cut, good_too]}, commuter)

    assert response.status_code == 200, response.json
    results = response.json["results"]
    assert [r["status"] for r in results] == [201, 422, 201]
    assert list(results[1]["errors"]) == ["description"]
    assert results[1]["client_id"] == cut["client_id"]
    stored = [r["report"]["id"] for r in results if r["report"]]
    assert db.session.scalar(select(func.count()).select_from(Report).where(Report.id.in_(stored))) == 2
    assert len(stored) == 2
