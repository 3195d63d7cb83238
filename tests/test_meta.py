"""GET /api/v1/meta: what any client needs to know about the deployment, from the rules the server keeps."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backend import vocabulary as v
from backend.alerts.models import SEVERITIES
from backend.hubs.models import KINDS
from schemas.reports import ReportInSchema, TriageSchema
from tests.factories import report_body, route_body

META = "/api/v1/meta"


def test_anyone_gets_the_time_zone_vocabulary_and_report_limits_without_signing_in(client, settings):
    response = client.get(META)
    assert response.status_code == 200, response.json
    assert response.json == {
        "time_zone": settings.city_timezone,
        "vocabulary": {
            "categories": [{"name": c, "subcategories": list(v.SUBCATEGORIES[c])} for c in v.CATEGORIES],
            "modes": list(v.MODES),
            "factors": list(v.FACTORS),
            "statuses": list(v.STATUSES),
            "hub_kinds": list(KINDS),
            "alert_severities": list(SEVERITIES),
        },
        "report_limits": {
            "max_description_chars": v.MAX_DESCRIPTION_CHARS,
            "max_note_chars": v.MAX_NOTE_CHARS,
            "max_route_vertices": v.MAX_ROUTE_VERTICES,
            "max_route_length_m": v.MAX_ROUTE_LENGTH_M,
            "max_accuracy_m": v.MAX_ACCURACY_M,
            "future_skew_s": v.FUTURE_SKEW_S,
        },
        "push_notifications": "logged",  # the tests configure no FCM credentials
    }
    assert list(response.json) == ["time_zone", "vocabulary", "report_limits", "push_notifications"]  # documented order


def test_the_meta_says_whether_pushes_reach_phones_or_are_only_logged(app, client, settings, monkeypatch):
    monkeypatch.setitem(app.config, "SETTINGS", replace(settings, google_application_credentials="/etc/fcm.json"))
    assert client.get(META).json["push_notifications"] == "fcm"


def test_the_time_zone_is_the_configured_city_time_zone(app, client, settings, monkeypatch):
    monkeypatch.setitem(app.config, "SETTINGS", replace(settings, city_timezone="America/New_York"))
    assert client.get(META).json["time_zone"] == "America/New_York"


def test_it_is_cacheable_and_revalidated_with_its_etag(client):
    first = client.get(META)
    assert first.headers["Cache-Control"] == "public, max-age=3600"
    assert first.headers["ETag"]
    again = client.get(META, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["Cache-Control"] == "public, max-age=3600" and again.headers["ETag"] == first.headers["ETag"]


def test_a_different_time_zone_is_a_different_etag(app, client, settings, monkeypatch):
    london = client.get(META).headers["ETag"]
    monkeypatch.setitem(app.config, "SETTINGS", replace(settings, city_timezone="Europe/Paris"))
    paris = client.get(META, headers={"If-None-Match": london})
    assert paris.status_code == 200 and paris.headers["ETag"] != london


def test_errors_are_not_marked_cacheable(client):
    response = client.post(META, json={})
    assert response.status_code == 405 and "Cache-Control" not in response.headers


def test_the_openapi_document_describes_it_as_public(client):
    operation = client.get("/api/openapi.json").json["paths"]["/api/v1/meta"]["get"]
    assert "security" not in operation
    assert set(operation["responses"]) >= {"200", "304"}


# The document is only useful if it is the rules the API applies: every word it lists is accepted,
# and each limit is exactly where the API starts refusing.

@pytest.fixture
def meta(client) -> dict:
    return client.get(META).json


def test_every_category_and_subcategory_listed_is_accepted(meta):
    for category in meta["vocabulary"]["categories"]:
        for subcategory in category["subcategories"]:
            body = (route_body if category["name"] == "unsafe_route" else report_body)(
                category=category["name"], subcategory=subcategory)
            assert ReportInSchema().validate(body) == {}, (category["name"], subcategory)


def test_every_mode_factor_and_status_listed_is_accepted(meta):
    vocabulary = meta["vocabulary"]
    for mode in vocabulary["modes"]:
        assert ReportInSchema().validate(report_body(transport={"mode": mode})) == {}, mode
    assert ReportInSchema().validate(report_body(factors=vocabulary["factors"])) == {}
    for status in vocabulary["statuses"]:
        assert TriageSchema().validate({"status": status}) == {}, status


def test_the_description_and_note_limits_are_where_refusal_starts(meta):
    limits = meta["report_limits"]
    longest = limits["max_description_chars"]
    assert ReportInSchema().validate(report_body(description="x" * longest)) == {}
    assert "description" in ReportInSchema().validate(report_body(description="x" * (longest + 1)))
    assert TriageSchema().validate({"status": "closed", "note": "x" * limits["max_note_chars"]}) == {}
    assert "note" in TriageSchema().validate({"status": "closed", "note": "x" * (limits["max_note_chars"] + 1)})
    assert "accuracy_m" in ReportInSchema().validate(report_body(accuracy_m=limits["max_accuracy_m"] + 1))
