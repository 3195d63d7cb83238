"""Alerts: geofenced fan-out through the real firebase-admin code, FCM intercepted over HTTP."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from backend.alerts import notifier as notifiers
from backend.alerts import sending as service
from backend.alerts.models import Alert
from backend.devices.models import Device
from backend.extensions import db
from backend.outbox import service as outbox
from tests.factories import Caller

CENTRE = (-0.1145, 51.4627)
M_PER_DEG = 111_320.0


def east_of(metres: float) -> list[float]:
    return [CENTRE[0] + metres / (M_PER_DEG * math.cos(math.radians(CENTRE[1]))), CENTRE[1]]


def expires() -> str:
    return (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat().replace("+00:00", "Z")


def alert_body(**area) -> dict:
    return {"title": "Avoid Brixton Road", "body": "Police incident near the station.", "severity": "warning",
            "area": area or {"center": {"type": "Point", "coordinates": list(CENTRE)}, "radius_m": 500},
            "expires_at": expires()}


def add_device(token: str, where: list[float] | None = None, radius_m: int = 100, uid: str | None = None) -> None:
    """A device straight into the table, at an exact position (the API would snap it)."""
    db.session.execute(text("INSERT INTO users (firebase_uid) VALUES (:uid) ON CONFLICT DO NOTHING"),
                       {"uid": uid or f"owner-{token}"})
    db.session.execute(text("""
        INSERT INTO devices (user_id, token, platform, audience, location, radius_m)
        SELECT id, :token, 'android', 'commuter', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :radius
        FROM users WHERE firebase_uid = :uid
    """), {"uid": uid or f"owner-{token}", "token": token, "lon": (where or CENTRE)[0], "lat": (where or CENTRE)[1],
           "radius": radius_m})
    db.session.commit()


def run_outbox() -> None:
    """Run pending outbox tasks in-process, as the worker would, retrying transient failures."""
    for task_id in db.session.scalars(text("SELECT id FROM outbox WHERE done_at IS NULL ORDER BY id")).all():
        outbox.run(task_id)


def post_alert(client, staff, **area) -> dict:
    response = client.post("/api/v1/alerts", json=alert_body(**area), headers=staff.headers())
    assert response.status_code == 202, response.json
    return response.json


def test_alert_is_answered_202_queued_and_sent_by_the_worker(client, staff, fcm):
    add_device("token-a")
    add_device("token-b", east_of(300))
    created = post_alert(client, staff)
    assert created["status"] == "queued" and created["targeted"] == 0
    run_outbox()
    figures = client.get(f"/api/v1/alerts/{created['id']}", headers=staff.headers()).json
    assert (figures["status"], figures["targeted"], figures["sent"], figures["failed"], figures["pruned"]) == \
        ("sent", 2, 2, 0, 0)
    assert fcm.sends == {"token-a": 1, "token-b": 1}
    data = fcm.payloads[0]["data"]
    assert data["alert_id"] == created["id"] and data["deep_link"] == f"safetravel://alerts/{created['id']}"
    assert fcm.payloads[0]["notification"] == {"title": "Avoid Brixton Road", "body": "Police incident near the station."}


def test_geofence_is_exact_at_the_boundary(client, staff, fcm):
    # Area: 500 m around the centre; each device asks for alerts within 100 m of itself.
    add_device("inside-by-5m", east_of(595))
    add_device("outside-by-5m", east_of(605))
    add_device("far-but-wide", east_of(2400), radius_m=2000)
    add_device("no-location-" + "x" * 10, None)
    db.session.execute(text("UPDATE devices SET location = NULL WHERE token LIKE 'no-location-%'"))
    db.session.commit()
    created = post_alert(client, staff)
    run_outbox()
    assert set(fcm.sends) == {"inside-by-5m", "far-but-wide"}
    assert client.get(f"/api/v1/alerts/{created['id']}", headers=staff.headers()).json["targeted"] == 2


def test_dead_tokens_are_pruned_and_counted(client, staff, fcm):
    add_device("token-ok")
    add_device("token-dead")
    add_device("token-bad")
    created = post_alert(client, staff)
    run_outbox()
    figures = client.get(f"/api/v1/alerts/{created['id']}", headers=staff.headers()).json
    assert (figures["sent"], figures["pruned"], figures["failed"]) == (1, 2, 0)
    assert db.session.scalars(select(Device.token)).all() == ["token-ok"]


@pytest.mark.parametrize("token", ["token-quota", "token-busy"])
def test_transient_failures_are_retried_without_sending_twice(client, staff, fcm, token):
    for ok in ("token-1", "token-2"):
        add_device(ok)
    add_device(token)
    created = post_alert(client, staff)
    with pytest.raises(service.TransientFailures):
        run_outbox()  # the first attempt: two sent, one to try again
    mid = client.get(f"/api/v1/alerts/{created['id']}", headers=staff.headers()).json
    assert (mid["status"], mid["sent"]) == ("sending", 2)
    run_outbox()  # RQ's retry
    figures = client.get(f"/api/v1/alerts/{created['id']}", headers=staff.headers()).json
    assert (figures["status"], figures["sent"], figures["failed"]) == ("sent", 3, 0)
    assert fcm.sends == {"token-1": 1, "token-2": 1, token: 1}
    assert fcm.attempts[token] == {"token-quota": 2, "token-busy": 6}[token]


def test_a_fan_out_that_fails_past_its_retries_ends_failed_with_the_last_error(client, staff, fcm):
    fcm.failures["quota"] = 10_000  # FCM refuses this device every time
    add_device("token-1")
    add_device("token-quota")
    created = post_alert(client, staff)
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        with pytest.raises(service.TransientFailures):
            run_outbox()  # RQ's retries, then the sweep's
        got = client.get(f"/api/v1/alerts/{created['id']}", headers=staff.headers()).json
        assert got["status"] == ("failed" if attempt == outbox.MAX_ATTEMPTS else "sending"), attempt

    assert (got["targeted"], got["sent"], got["failed"], got["pruned"]) == (2, 1, 1, 0)
    assert got["last_error"] == f"TransientFailures: alert {created['id']}: 1 device(s) to try again"
    assert fcm.sends == {"token-1": 1}
    run_outbox()  # an operator's retry of a given-up task changes nothing: the alert is settled
    assert client.get(f"/api/v1/alerts/{created['id']}", headers=staff.headers()).json["status"] == "failed"


def test_more_than_500_devices_go_in_batches_of_500(client, staff, fcm, monkeypatch):
    db.session.execute(text("INSERT INTO users (firebase_uid) VALUES ('many')"))
    db.session.execute(text("""
        INSERT INTO devices (user_id, token, platform, audience, location, radius_m)
        SELECT u.id, 'bulk-token-' || n, 'android', 'commuter', ST_SetSRID(ST_MakePoint(-0.1145, 51.4627), 4326), 100
        FROM users u, generate_series(1, 1203) AS n WHERE u.firebase_uid = 'many'
    """))
    db.session.commit()
    batches = []
    original = notifiers.FcmNotifier.send

    def spy(self, pushes):
        batches.append(len(pushes))
        return original(self, pushes)

    monkeypatch.setattr(notifiers.FcmNotifier, "send", spy)
    created = post_alert(client, staff)
    run_outbox()
    assert batches == [500, 500, 203]
    assert len(fcm.sends) == 1203 and set(fcm.sends.values()) == {1}
    assert client.get(f"/api/v1/alerts/{created['id']}", headers=staff.headers()).json["sent"] == 1203


def test_a_rerun_after_completion_sends_nothing(client, staff, fcm):
    add_device("token-a")
    created = post_alert(client, staff)
    run_outbox()
    service.send_alert(created["id"])
    db.session.execute(text("UPDATE alerts SET status = 'sending'"))  # as if a duplicate job arrived mid-way
    db.session.commit()
    service.send_alert(created["id"])
    assert fcm.sends == {"token-a": 1}


def test_every_push_carries_the_alert_as_its_collapse_id_on_each_platform(client, staff, fcm):
    add_device("token-a")
    created = post_alert(client, staff)
    run_outbox()
    message = fcm.payloads[0]
    assert message["android"]["collapse_key"] == created["id"]
    assert message["android"]["notification"]["tag"] == created["id"]
    assert message["apns"]["headers"]["apns-collapse-id"] == created["id"]
    assert message["webpush"]["notification"]["tag"] == created["id"]


class WorkerKilled(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs, no handler sees it."""


def test_pushes_in_doubt_after_a_worker_died_are_sent_again_once_under_the_same_collapse_id(client, staff, fcm):
    for n in range(3):
        add_device(f"token-{n}")
    created = post_alert(client, staff)
    real = notifiers.notifier()

    class DiesAfterFcmTookTheBatch:
        def send(self, pushes):
            real.send(pushes)  # FCM accepted them; the worker dies before it records the answers
            raise WorkerKilled

    notifiers.use(DiesAfterFcmTookTheBatch())
    with pytest.raises(WorkerKilled):
        service.send_alert(created["id"])
    db.session.rollback()
    left = db.session.execute(text("SELECT status, count(*) FROM alert_deliveries GROUP BY status")).all()
    assert left == [("sending", 3)]
    notifiers.use(real)
    run_outbox()  # the retried job, at once: the dead worker's lock went with its connection
    figures = client.get(f"/api/v1/alerts/{created['id']}", headers=staff.headers()).json
    assert (figures["status"], figures["targeted"], figures["sent"], figures["failed"]) == ("sent", 3, 3, 0)
    assert fcm.sends == {"token-0": 2, "token-1": 2, "token-2": 2}  # FCM cannot be asked; the phone collapses them
    assert {m["android"]["notification"]["tag"] for m in fcm.payloads} == {created["id"]}
    assert db.session.scalar(text("SELECT max(attempts) FROM alert_deliveries")) == 2


def test_a_second_run_while_a_live_worker_sends_the_alert_sends_nothing_and_is_retried(client, staff, fcm):
    add_device("token-a")
    created = post_alert(client, staff)
    with service._send_lock(uuid.UUID(created["id"])) as held:  # another worker, alive, mid-send
        assert held
        with pytest.raises(service.AlertBeingSent):
            run_outbox()
        assert fcm.sends == {}
    run_outbox()  # RQ's retry, after the other worker let go
    assert fcm.sends == {"token-a": 1}
    assert client.get(f"/api/v1/alerts/{created['id']}", headers=staff.headers()).json["status"] == "sent"


def test_alert_around_a_safe_hub_and_in_a_polygon(client, staff, fcm):
    hub = client.post("/api/v1/safe-hubs", json={
        "name": "Brixton station", "kind": "staffed_station", "opening_hours": "24/7",
        "location": {"type": "Point", "coordinates": list(CENTRE)}}, headers=staff.headers()).json
    add_device("near-hub", east_of(250))
    add_device("far-from-hub", east_of(900))
    post_alert(client, staff, safe_hub_id=hub["id"], radius_m=300)
    run_outbox()
    assert set(fcm.sends) == {"near-hub"}
    square = [[CENTRE[0] + dx, CENTRE[1] + dy] for dx, dy in ((0, 0), (0.02, 0), (0.02, 0.01), (0, 0.01), (0, 0))]
    created = post_alert(client, staff, polygon={"type": "Polygon", "coordinates": [square]})
    assert "polygon" in created["area"]


def test_nearby_lists_active_alerts_covering_a_point(client, staff, commuter):
    live = post_alert(client, staff)
    db.session.execute(text("""
        INSERT INTO alerts (title, body, severity, area, radius_m, expires_at, created_by)
        VALUES ('old', 'gone', 'info', ST_SetSRID(ST_MakePoint(-0.1145, 51.4627), 4326), 500, now() - interval '1 hour', 'x')
    """))
    db.session.commit()
    here = client.get("/api/v1/alerts/nearby", query_string={"lon": CENTRE[0], "lat": CENTRE[1]}, headers=commuter.headers())
    assert [a["id"] for a in here.json] == [live["id"]]
    assert "targeted" not in here.json[0]
    away = east_of(700)
    assert client.get("/api/v1/alerts/nearby", query_string={"lon": away[0], "lat": away[1]},
                      headers=commuter.headers()).json == []


def test_without_credentials_the_log_notifier_stands_in(app, client, staff, caplog):
    add_device("token-a")
    notifiers.use(None)
    created = post_alert(client, staff)
    with caplog.at_level("INFO"), app.app_context():  # as in the worker, whose app context is pushed
        run_outbox()
    assert "pushes are logged, not sent" in caplog.text
    assert client.get(f"/api/v1/alerts/{created['id']}", headers=staff.headers()).json["sent"] == 1
    notifiers.use(None)


@pytest.mark.parametrize("change, field", [
    ({"severity": "apocalyptic"}, "severity"),
    ({"title": ""}, "title"),
    ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
    ({"expires_at": "2099-01-01T00:00:00Z"}, "expires_at"),
    ({"area": {"center": {"type": "Point", "coordinates": [0, 51]}}}, "area"),
    ({"area": {"radius_m": 100}}, "area"),
    ({"area": {"center": {"type": "Point", "coordinates": [0, 51]}, "radius_m": 10}}, "area"),
    ({"area": {"safe_hub_id": str(uuid.uuid4()), "radius_m": 300}}, "area"),
    ({"area": {"polygon": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}}}, "area"),
    ({"colour": "red"}, "colour"),
])
def test_bad_alerts_answer_422_and_create_nothing(client, staff, change, field):
    response = client.post("/api/v1/alerts", json={**alert_body(), **change}, headers=staff.headers())
    assert response.status_code == 422, response.json
    assert field in response.json["errors"]
    assert db.session.scalar(select(func.count()).select_from(Alert)) == 0


def test_only_staff_send_and_read_alerts(client, commuter, southwark):
    for caller in (commuter, southwark, Caller("x", role="superuser")):
        assert client.post("/api/v1/alerts", json=alert_body(), headers=caller.headers()).status_code == 403
        assert client.get(f"/api/v1/alerts/{uuid.uuid4()}", headers=caller.headers()).status_code == 403
    assert client.post("/api/v1/alerts", json=alert_body()).status_code == 401
