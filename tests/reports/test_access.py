"""Who may read, list and triage reports (docs/api.md, "Signing in")."""

from __future__ import annotations

import uuid

import pytest

from tests.factories import CAMDEN_TOWN, PECKHAM, Caller, report_body

URL = "/api/v1/reports"


@pytest.fixture
def report_id(client, commuter) -> str:
    return client.post(URL, json=report_body(), headers=commuter.headers()).json["id"]


def test_author_sees_own_report_with_its_description(client, commuter, report_id):
    response = client.get(f"{URL}/{report_id}", headers=commuter.headers())
    assert response.status_code == 200
    assert response.json["description"] == "A man followed me from the platform to the exit."


@pytest.mark.parametrize("caller", ["staff", "admin"])
def test_staff_see_any_report(client, report_id, caller, request):
    response = client.get(f"{URL}/{report_id}", headers=request.getfixturevalue(caller).headers())
    assert response.status_code == 200 and response.json["id"] == report_id


@pytest.mark.parametrize("caller", ["other_commuter", "southwark"])
def test_anyone_else_gets_404_not_403(client, report_id, caller, request):
    response = client.get(f"{URL}/{report_id}", headers=request.getfixturevalue(caller).headers())
    assert response.status_code == 404


def test_unknown_report_is_404_and_a_malformed_id_too(client, staff):
    assert client.get(f"{URL}/{uuid.uuid4()}", headers=staff.headers()).status_code == 404
    assert client.get(f"{URL}/not-a-uuid", headers=staff.headers()).status_code == 404


@pytest.mark.parametrize("headers, status", [
    ({}, 401),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
    ({"Authorization": "Bearer "}, 401),
    ({"Authorization": "Bearer not.a.jwt"}, 401),
])
def test_requests_without_a_valid_token_get_401(client, headers, status):
    response = client.post(URL, json=report_body(), headers=headers)
    assert response.status_code == status
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json["code"] == 401


def test_expired_token_gets_401(client):
    token = Caller("late").token(exp=1_000_000_000, iat=999_996_400)
    response = client.post(URL, json=report_body(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and "expired" in response.json["message"]


@pytest.mark.parametrize("claims, reason", [
    ({"aud": "another-project"}, "aud"),
    ({"iss": "https://securetoken.google.com/another-project"}, "iss"),
    ({"sub": ""}, "sub"),
])
def test_token_for_another_project_or_without_subject_gets_401(client, claims, reason):
    token = Caller("mallory").token(**claims)
    response = client.post(URL, json=report_body(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and reason in response.json["message"]


def test_council_token_without_a_council_claim_gets_403(client):
    token = Caller("council-nobody", role="council").token()
    response = client.get(URL, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


def test_unknown_role_claim_is_treated_as_a_commuter(client):
    caller = Caller("curious", role="superuser")
    assert client.get(URL, headers=caller.headers()).status_code == 403
    assert client.post(URL, json=report_body(), headers=caller.headers()).status_code == 201


def test_commuter_cannot_list_or_triage(client, commuter, report_id):
    assert client.get(URL, headers=commuter.headers()).status_code == 403
    response = client.patch(f"{URL}/{report_id}", json={"status": "closed"}, headers=commuter.headers())
    assert response.status_code == 403


def test_council_cannot_triage(client, southwark, report_id):
    response = client.patch(f"{URL}/{report_id}", json={"status": "closed"}, headers=southwark.headers())
    assert response.status_code == 403


def test_staff_triage_records_status_and_note(client, staff, commuter, report_id):
    response = client.patch(f"{URL}/{report_id}", json={"status": "reviewing", "note": "CCTV requested"},
                            headers=staff.headers())
    assert response.status_code == 200
    assert response.json["status"] == "reviewing" and response.json["status_note"] == "CCTV requested"
    # The author sees the new status.
    assert client.get(f"{URL}/{report_id}", headers=commuter.headers()).json["status"] == "reviewing"


@pytest.mark.parametrize("body, field", [
    ({"status": "done"}, "status"),
    ({}, "status"),
    ({"status": "closed", "note": "x" * 1001}, "note"),
    ({"status": "closed", "priority": 1}, "priority"),
])
def test_bad_triage_answers_422(client, staff, report_id, body, field):
    response = client.patch(f"{URL}/{report_id}", json=body, headers=staff.headers())
    assert response.status_code == 422 and field in response.json["errors"]


def test_triage_of_unknown_report_is_404(client, staff):
    response = client.patch(f"{URL}/{uuid.uuid4()}", json={"status": "closed"}, headers=staff.headers())
    assert response.status_code == 404


def test_staff_list_is_newest_first_and_paginates_without_gaps(client, staff, commuter):
    ids = [client.post(URL, json=report_body(), headers=commuter.headers()).json["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(URL, query_string=params, headers=staff.headers()).json
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


def test_staff_list_filters(client, staff, commuter):
    client.post(URL, json=report_body(category="spiking", subcategory="drink", transport={"mode": "night_bus"}),
                headers=commuter.headers())
    client.post(URL, json=report_body(location={"type": "Point", "coordinates": CAMDEN_TOWN}),
                headers=commuter.headers())
    old = client.post(URL, json=report_body(occurred_at="2026-01-01T12:00:00Z"), headers=commuter.headers()).json

    def ids(**params):
        return [r["id"] for r in client.get(URL, query_string=params, headers=staff.headers()).json["items"]]

    assert len(ids(category="spiking")) == 1
    assert len(ids(category=["spiking", "harassment"])) == 3
    assert len(ids(mode="night_bus")) == 1
    assert len(ids(bbox="-0.16,51.53,-0.13,51.55")) == 1
    assert ids(to="2026-02-01T00:00:00Z") == [old["id"]]
    assert len(ids(**{"from": "2026-02-01T00:00:00Z"})) == 2
    assert len(ids(status="received")) == 3 and ids(status="closed") == []


def test_from_and_to_are_local_days_both_included(client, staff, commuter):
    """One rule with heatmaps and exports: `to` is the last local day counted, not an exclusive instant."""
    def filed(at):
        return client.post(URL, json=report_body(occurred_at=at), headers=commuter.headers()).json["id"]

    late = filed("2026-07-10T22:30:00Z")  # 23:30 in London (summer time): 10 July
    after_midnight = filed("2026-07-10T23:30:00Z")  # 00:30 on 11 July in London, still 10 July in UTC

    def ids(**params):
        return [r["id"] for r in client.get(URL, query_string=params, headers=staff.headers()).json["items"]]

    assert ids(**{"from": "2026-07-10", "to": "2026-07-10"}) == [late]
    assert ids(**{"from": "2026-07-11", "to": "2026-07-11"}) == [after_midnight]
    assert set(ids(**{"from": "2026-07-10", "to": "2026-07-11"})) == {late, after_midnight}
    # A timestamp with an offset stands for its local day, whole.
    assert ids(**{"from": "2026-07-11T09:00:00+01:00", "to": "2026-07-11T09:00:00+01:00"}) == [after_midnight]


@pytest.mark.parametrize("params, field", [
    ({"from": "2026-07-12", "to": "2026-07-11"}, "from"),
    ({"to": "2026-07-11T09:00:00"}, "to"),
    ({"from": "yesterday"}, "from"),
])
def test_bad_report_windows_are_422(client, staff, params, field):
    response = client.get(URL, query_string=params, headers=staff.headers())
    assert response.status_code == 422 and field in response.json["errors"], response.json


@pytest.mark.parametrize("params, field", [
    ({"bbox": "1,2,3"}, "bbox"),
    ({"bbox": "0,0,-1,1"}, "bbox"),
    ({"bbox": "0,0,nan,1"}, "bbox"),
    ({"bbox": "-50,0,50,1"}, "bbox"),
    ({"category": "theft"}, "category"),
    ({"limit": 0}, "limit"),
    ({"limit": 1000}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"from": "yesterday"}, "from"),
    ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
    ({"cursor": "garbage"}, "cursor"),
    ({"catgory": "spiking"}, "catgory"),
])
def test_bad_list_parameters_answer_422(client, staff, params, field):
    response = client.get(URL, query_string=params, headers=staff.headers())
    assert response.status_code == 422, response.json
    assert field in response.json["errors"]


def test_council_lists_only_its_area_and_never_free_text(client, southwark, camden, commuter):
    in_southwark = client.post(URL, json=report_body(location={"type": "Point", "coordinates": PECKHAM}),
                               headers=commuter.headers()).json
    in_camden = client.post(URL, json=report_body(location={"type": "Point", "coordinates": CAMDEN_TOWN}),
                            headers=commuter.headers()).json

    southwark_items = client.get(URL, headers=southwark.headers()).json["items"]
    camden_items = client.get(URL, headers=camden.headers()).json["items"]

    assert [r["id"] for r in southwark_items] == [in_southwark["id"]]
    assert [r["id"] for r in camden_items] == [in_camden["id"]]
    assert all("description" not in r and "status_note" not in r for r in southwark_items + camden_items)


def test_me_reports_lists_only_the_callers_reports(client, commuter, other_commuter):
    mine = client.post(URL, json=report_body(), headers=commuter.headers()).json
    client.post(URL, json=report_body(), headers=other_commuter.headers())
    response = client.get("/api/v1/me/reports", headers=commuter.headers())
    assert [r["id"] for r in response.json["items"]] == [mine["id"]]
    assert client.get("/api/v1/me/reports", headers=Caller("new-person").headers()).json["items"] == []


def test_delete_me_erases_reports_and_identity(client, commuter, staff):
    report = client.post(URL, json=report_body(), headers=commuter.headers()).json
    assert client.delete("/api/v1/me", headers=commuter.headers()).status_code == 204
    assert client.get(f"{URL}/{report['id']}", headers=staff.headers()).status_code == 404
    assert client.get("/api/v1/me/reports", headers=commuter.headers()).json["items"] == []
    from sqlalchemy import text

    from backend.extensions import db
    links = db.session.execute(text("SELECT count(*) FROM users WHERE firebase_uid = :uid"), {"uid": commuter.uid})
    assert links.scalar() == 0  # the identity link is gone (GET /me/reports made none: reads link nobody)
    assert client.delete("/api/v1/me", headers=commuter.headers()).status_code == 204


def test_council_lists_carry_no_line_or_station_times_to_the_hour_and_routes_clipped_to_the_area(
        client, southwark, commuter):
    # From Peckham (Southwark) west to Brixton (Lambeth): Southwark sees only its own part of the route.
    route = {"type": "LineString", "coordinates": [PECKHAM, [-0.0900, 51.4700], [-0.1145, 51.4627]]}
    sent = client.post(URL, json=report_body(
        location={"type": "Point", "coordinates": PECKHAM}, category="unsafe_route", subcategory=None, route=route,
        occurred_at="2026-11-20T22:47:13Z",
        transport={"mode": "bus", "line": "call Dave 07700 900123", "station": "12 Acacia Avenue"}),
        headers=commuter.headers())
    assert sent.status_code == 201, sent.json
    (item,) = client.get(URL, headers=southwark.headers()).json["items"]
    assert item["transport"] == {"mode": "bus"}
    assert item["occurred_at"] == "2026-11-20T22:00:00Z"
    assert all(item[k].endswith(":00:00Z") for k in ("created_at", "updated_at"))
    from shapely.geometry import shape

    clipped = shape(item["route"])
    assert 0 < clipped.length < shape(route).length
    assert max(x for x, _ in clipped.coords) == pytest.approx(PECKHAM[0])  # it starts in Peckham ...
    assert min(x for x, _ in clipped.coords) > -0.1145  # ... and stops at the border, before Brixton


def test_a_council_cursor_holds_no_time(client, southwark, commuter):
    import base64

    for _ in range(3):
        client.post(URL, json=report_body(location={"type": "Point", "coordinates": PECKHAM}), headers=commuter.headers())
    first = client.get(URL, query_string={"limit": 2}, headers=southwark.headers()).json
    raw = base64.urlsafe_b64decode(first["next_cursor"] + "==")
    assert len(raw) == 16  # a report id's 16 bytes, no time
    rest = client.get(URL, query_string={"limit": 2, "cursor": first["next_cursor"]}, headers=southwark.headers()).json
    assert len(first["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert {i["id"] for i in first["items"]}.isdisjoint(i["id"] for i in rest["items"])
    assert client.get(URL, query_string={"cursor": "bm9wZQ"}, headers=southwark.headers()).status_code == 422
