"""Open311 GeoReport v2, read side, over real HTTP: the `georeport` package from PyPI (a client this
project did not write) reads services and requests from the app served on loopback; the XML is
checked against the spec's element names; councils see their own area only."""

from __future__ import annotations

import threading
import types
from datetime import datetime, timedelta, timezone
from functools import partial
from xml.etree import ElementTree

import pytest
import requests
from georeport import GeoReport
from sqlalchemy import text
from werkzeug.serving import make_server

from backend.devserver import free_port
from backend.extensions import db
from backend.geo import haversine_m
from tests.factories import CAMDEN_TOWN, PECKHAM, new_key, report_body

SOUTHWARK, CAMDEN = "E09000028", "E09000007"
EXACT = [-0.069234, 51.474087]
# The spec's element names (https://wiki.open311.org/GeoReport_v2).
REQUEST_ELEMENTS = {"service_request_id", "status", "status_notes", "service_name", "service_code",
                    "agency_responsible", "requested_datetime", "updated_datetime", "lat", "long"}
SERVICE_ELEMENTS = {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}


@pytest.fixture
def server(app, real_commits):
    """The app on loopback, as a council's system would reach it (data committed for real)."""
    port = free_port()
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/open311/v2"
    httpd.shutdown()
    thread.join(5)


@pytest.fixture
def reports(client, commuter, staff) -> dict[str, str]:
    """One report in Southwark, triaged to actioned with both notes; one in Camden."""
    made = {}
    for name, where in (("southwark", EXACT), ("camden", CAMDEN_TOWN)):
        response = client.post("/api/v1/reports", json=report_body(location={"type": "Point", "coordinates": where}),
                               headers=commuter.headers(**{"Idempotency-Key": new_key()}))
        assert response.status_code == 201
        made[name] = response.json["id"]
    triaged = client.patch(f"/api/v1/reports/{made['southwark']}", headers=staff.headers(),
                           json={"status": "actioned", "note": "Suspect known, ref 4471",
                                 "public_note": "Extra patrols at Peckham Rye."})
    assert triaged.status_code == 200
    return made


def as_council(monkeypatch, caller) -> None:
    """georeport sends no credentials when it reads (its api_key is for creating requests): give its
    HTTP calls the council officer's bearer token, as a council's integration would."""
    import georeport.georeport as module

    monkeypatch.setattr(module, "requests", types.SimpleNamespace(
        get=partial(requests.get, headers={"Authorization": f"Bearer {caller.token()}"})))


def issue_key(client, staff, council: str) -> str:
    response = client.post("/api/v1/open311/keys", json={"council": council, "label": "CRM"}, headers=staff.headers())
    assert response.status_code == 201, response.json
    assert response.json["key"].startswith("st311_")
    return response.json["key"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_georeport_reads_the_services_and_a_definition(server, fmt):
    client = GeoReport(server, output_format=fmt)
    services = client.get_service_list()
    assert [s["service_code"] for s in services] == ["harassment", "spiking", "unsafe_route"]
    assert all(set(s) == SERVICE_ELEMENTS for s in services)
    assert services[0]["metadata"] in (False, "false") and services[1]["type"] == "realtime"
    definition = client.get_service_definition("spiking")
    assert definition["service_code"] == "spiking"


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_georeport_reads_a_councils_requests_coarse_without_text(server, reports, monkeypatch, southwark, fmt):
    as_council(monkeypatch, southwark)
    client = GeoReport(server, output_format=fmt)
    found = client.get_service_requests()
    found = [found] if isinstance(found, dict) else found  # xmltodict gives a lone request as a dict
    assert [r["service_request_id"] for r in found] == [reports["southwark"]]
    got = found[0]
    assert set(got) == REQUEST_ELEMENTS
    assert (got["status"], got["status_notes"], got["service_code"]) == ("closed", "Extra patrols at Peckham Rye.",
                                                                          "harassment")
    assert got["agency_responsible"] == "Southwark"
    where = [float(got["long"]), float(got["lat"])]
    assert where != EXACT and haversine_m(where, EXACT) < 100
    one = client.get_service_request(reports["southwark"])
    assert one["service_request_id"] == reports["southwark"]


def test_no_description_internal_note_or_author_in_any_format(server, reports, southwark, commuter):
    for fmt in ("json", "xml"):
        body = requests.get(f"{server}/requests.{fmt}", headers={"Authorization": f"Bearer {southwark.token()}"}).text
        assert reports["southwark"] in body
        assert "followed me" not in body and "4471" not in body and commuter.uid not in body


def test_another_councils_key_sees_nothing_of_southwark(server, client, reports, staff):
    camden_key = issue_key(client, staff, CAMDEN)
    listed = requests.get(f"{server}/requests.json", params={"api_key": camden_key})
    assert listed.status_code == 200
    assert [r["service_request_id"] for r in listed.json()] == [reports["camden"]]
    one = requests.get(f"{server}/requests/{reports['southwark']}.json", params={"api_key": camden_key})
    assert one.status_code == 404 and one.json()[0]["code"] == 404
    southwark_key = issue_key(client, staff, SOUTHWARK)
    mine = requests.get(f"{server}/requests/{reports['southwark']}.json", params={"api_key": southwark_key})
    assert mine.status_code == 200 and mine.json()[0]["service_request_id"] == reports["southwark"]


def test_a_revoked_or_unknown_key_gets_the_specs_error_list(server, client, staff):
    key = issue_key(client, staff, SOUTHWARK)
    [issued] = client.get("/api/v1/open311/keys", headers=staff.headers()).json
    assert "key" not in issued and issued["council"] == SOUTHWARK and issued["last_used_at"] is None
    assert requests.get(f"{server}/requests.json", params={"api_key": key}).status_code == 200
    assert client.get("/api/v1/open311/keys", headers=staff.headers()).json[0]["last_used_at"] is not None
    assert client.delete(f"/api/v1/open311/keys/{issued['id']}", headers=staff.headers()).status_code == 204
    refused = requests.get(f"{server}/requests.json", params={"api_key": key})
    assert refused.status_code == 401 and refused.headers["Content-Type"] == "application/json"
    assert refused.json() == [{"code": 401, "description": "This api_key is not valid (unknown or revoked)."}]
    xml = requests.get(f"{server}/requests.xml", params={"api_key": "st311_nonsense"})
    assert xml.status_code == 401 and xml.headers["Content-Type"] == "text/xml"
    root = ElementTree.fromstring(xml.content)
    assert root.tag == "errors" and [(e.find("code").text, bool(e.find("description").text)) for e in root] == [
        ("401", True)]


@pytest.mark.parametrize("caller, code", [("commuter", 403), ("staff", 403), (None, 401)])
def test_only_councils_read_requests(server, request, caller, code):
    headers = {"Authorization": f"Bearer {request.getfixturevalue(caller).token()}"} if caller else {}
    response = requests.get(f"{server}/requests.json", headers=headers)
    assert response.status_code == code and response.json()[0]["code"] == code


def test_filters_and_their_errors(server, reports, southwark):
    def get(**params):
        return requests.get(f"{server}/requests.json", params=params,
                            headers={"Authorization": f"Bearer {southwark.token()}"})

    assert [r["service_request_id"] for r in get(status="closed").json()] == [reports["southwark"]]
    assert get(status="open").json() == []
    assert get(service_code="spiking").json() == []
    assert len(get(service_code="harassment,spiking").json()) == 1
    now = datetime.now(timezone.utc)
    assert get(start_date=(now - timedelta(days=1)).isoformat()).json() != []
    assert get(end_date=(now - timedelta(days=1)).isoformat()).json() == []
    for params, says in [
        ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, "at most 90 days"),
        ({"start_date": "yesterday"}, "W3C"),
        ({"status": "pending"}, "open or closed"),
        ({"service_code": "noise"}, "unknown service_code"),
        ({"service_request_id": "42"}, "service_request_id"),
    ]:
        response = get(**params)
        assert response.status_code == 400 and says in response.json()[0]["description"], (params, response.text)
    # The default window is the last 90 days.
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE reports SET created_at = now() - interval '91 days' WHERE id = :id"),
                     {"id": reports["southwark"]})
    assert get().json() == []
    assert len(get(service_request_id=reports["southwark"]).json()) == 1  # an id overrides the dates


def test_content_types_are_exact_and_xml_uses_the_specs_names(server, reports, southwark):
    auth = {"Authorization": f"Bearer {southwark.token()}"}
    for path in ("discovery", "services", "services/harassment", "requests", f"requests/{reports['southwark']}"):
        for fmt, mime in (("json", "application/json"), ("xml", "text/xml")):
            response = requests.get(f"{server}/{path}.{fmt}", headers=auth)
            assert response.status_code == 200 and response.headers["Content-Type"] == mime, (path, fmt)
    discovery = ElementTree.fromstring(requests.get(f"{server}/discovery.xml").content)
    assert [c.tag for c in discovery] == ["changeset", "contact", "key_service", "endpoints"]
    endpoint = discovery.find("endpoints/endpoint")
    assert [c.tag for c in endpoint] == ["specification", "url", "changeset", "type", "formats"]
    assert [f.text for f in endpoint.find("formats")] == ["application/json", "text/xml"]
    services = ElementTree.fromstring(requests.get(f"{server}/services.xml").content)
    assert services.tag == "services" and {c.tag for s in services for c in s} == SERVICE_ELEMENTS
    definition = ElementTree.fromstring(requests.get(f"{server}/services/spiking.xml").content)
    assert definition.tag == "service_definition" and [c.tag for c in definition] == ["service_code", "attributes"]
    found = ElementTree.fromstring(requests.get(f"{server}/requests.xml", headers=auth).content)
    assert found.tag == "service_requests" and [r.tag for r in found] == ["request"]
    assert {c.tag for c in found[0]} == REQUEST_ELEMENTS
    unknown = requests.get(f"{server}/services/noise.xml")
    assert unknown.status_code == 404 and ElementTree.fromstring(unknown.content).tag == "errors"
    csv = requests.get(f"{server}/services.csv")
    assert csv.status_code == 404 and csv.headers["Content-Type"] == "application/json"


def test_issuing_a_key_checks_the_council(client, staff, southwark):
    assert client.post("/api/v1/open311/keys", json={"council": "E09999999"}, headers=staff.headers()).status_code == 422
    assert client.post("/api/v1/open311/keys", json={"council": "Southwark"}, headers=staff.headers()).status_code == 422
    assert client.post("/api/v1/open311/keys", json={"council": SOUTHWARK}, headers=southwark.headers()).status_code == 403


def test_places_are_still_found_when_coarse(server, client, commuter, southwark):
    """A report on Peckham's high street stays Southwark's: the area is decided on the exact location."""
    response = client.post("/api/v1/reports", json=report_body(location={"type": "Point", "coordinates": PECKHAM}),
                           headers=commuter.headers(**{"Idempotency-Key": new_key()}))
    found = requests.get(f"{server}/requests.json", headers={"Authorization": f"Bearer {southwark.token()}"}).json()
    assert [r["service_request_id"] for r in found] == [response.json["id"]] and found[0]["status"] == "open"
