"""Cluster detection: spiking or harassment reports from several people close in space and time make
exactly one alert, pushed to the safety team at once and, once a staff member confirms it, with the
nearest open safe hubs, to opted-in commuters inside it."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
import responses
from sqlalchemy import func, select, text

from backend.alerts import notifier as notifiers
from backend.alerts.models import Alert, Cluster
from backend.extensions import db
from tests.alerts.fcm import FakeFcm, firebase_test_app
from tests.alerts.test_alerts import add_device, run_outbox
from tests.heatmap.helpers import add_report

VENUE = (-0.1300, 51.5130)  # Soho
M_PER_DEG = 111_320.0
NIGHT = datetime(2026, 11, 20, 23, 0, tzinfo=timezone.utc)


def moved(metres_east: float, metres_north: float = 0) -> tuple[float, float]:
    return (VENUE[0] + metres_east / (M_PER_DEG * math.cos(math.radians(VENUE[1]))),
            VENUE[1] + metres_north / M_PER_DEG)


@pytest.fixture
def worker(app):
    """The worker's app context, with FCM intercepted."""
    from firebase_admin import _http_client

    _http_client.DEFAULT_RETRY_CONFIG.backoff_factor = 0
    notifiers.use(notifiers.FcmNotifier(firebase_test_app()))
    with app.app_context(), responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeFcm(rsps)
    notifiers.use(None)


def report(author: str, where: tuple[float, float], at: datetime, category: str = "spiking") -> None:
    add_report(author, where[0], where[1], at, category, count=False)


def alerts() -> list[Alert]:
    db.session.expire_all()
    return db.session.scalars(select(Alert).order_by(Alert.created_at)).all()


def test_five_reports_at_one_venue_make_exactly_one_alert(worker):
    for i in range(5):
        report(f"person-{i}", moved(20 * i, 10 * i), NIGHT + timedelta(minutes=20 * i))
        run_outbox()
    (alert,) = alerts()
    assert (alert.kind, alert.category, alert.severity, alert.radius_m) == ("cluster", "spiking", "urgent", 600)
    assert alert.body == "Several spiking reports within 600 m in the last 6 hours."
    assert alert.public_push == "awaiting_confirmation"
    (cluster,) = db.session.scalars(select(Cluster)).all()
    assert cluster.report_count == 5 and cluster.alert_id == alert.id


def test_two_reports_are_not_a_cluster(worker):
    report("a", VENUE, NIGHT)
    report("b", moved(50), NIGHT)
    run_outbox()
    assert alerts() == []


def test_reports_spread_out_in_space_make_no_alert(worker):
    for i in range(5):
        report(f"p{i}", moved(400 * i), NIGHT)
    run_outbox()
    assert alerts() == []


def test_reports_spread_out_in_time_make_no_alert(worker):
    for i in range(5):
        report(f"p{i}", VENUE, NIGHT + timedelta(hours=7 * i))
    run_outbox()
    assert alerts() == []


def test_categories_do_not_mix_and_unsafe_routes_are_not_checked(worker):
    report("a", VENUE, NIGHT, "spiking")
    report("b", VENUE, NIGHT, "spiking")
    report("c", VENUE, NIGHT, "harassment")
    report("d", VENUE, NIGHT, "harassment")
    add_report("e", VENUE[0], VENUE[1], NIGHT, "unsafe_route", route=[VENUE, moved(100)], count=False)
    run_outbox()
    assert alerts() == []
    assert db.session.scalar(text("SELECT count(*) FROM outbox WHERE task = 'alerts.check_cluster'")) == 4


def test_reports_from_one_account_make_no_cluster_however_many(worker):
    for i in range(5):
        report("one-account", moved(10 * i), NIGHT + timedelta(minutes=i))
    run_outbox()
    assert alerts() == []


def test_two_accounts_with_many_reports_are_not_three_people(worker):
    for i in range(4):
        report("mallory-1", moved(10 * i), NIGHT)
        report("mallory-2", moved(10 * i), NIGHT)
    run_outbox()
    assert alerts() == []
    report("someone-else", VENUE, NIGHT)
    run_outbox()
    (alert,) = alerts()
    assert alert.body.startswith("Several spiking reports")  # in words (docs/privacy.md)
    (cluster,) = db.session.scalars(select(Cluster)).all()
    assert cluster.report_count == 9


def cluster_with_phones(client, staff):
    """Three people report spiking near a venue with a safe hub; a staff phone far away, an opted-in
    commuter inside, one outside, one not opted in. Returns the cluster alert, after its first fan-out."""
    client.post("/api/v1/safe-hubs", headers=staff.headers(), json={
        "name": "Soho safe haven", "kind": "safe_haven", "opening_hours": "24/7",
        "location": {"type": "Point", "coordinates": list(moved(150))}})
    add_device("staff-phone", moved(20_000))
    db.session.execute(text("UPDATE devices SET audience = 'staff' WHERE token = 'staff-phone'"))
    add_device("opted-in-inside", moved(100))
    db.session.execute(text("UPDATE devices SET categories = '{spiking}' WHERE token = 'opted-in-inside'"))
    add_device("opted-in-outside", moved(900))
    db.session.execute(text("UPDATE devices SET categories = '{spiking}' WHERE token = 'opted-in-outside'"))
    add_device("not-opted-in-inside", moved(50))
    db.session.commit()
    for i in range(3):
        report(f"p{i}", moved(10 * i), NIGHT)
    run_outbox()  # the checks: the third makes the alert, and its fan-out task
    run_outbox()  # the fan-out
    (alert,) = alerts()
    return alert


def test_a_cluster_alert_reaches_staff_at_once_and_commuters_only_after_a_staff_confirmation(worker, client, staff,
                                                                                              commuter):
    alert = cluster_with_phones(client, staff)
    assert set(worker.sends) == {"staff-phone"}
    assert (alert.status, alert.targeted, alert.sent, alert.public_push) == ("sent", 1, 1, "awaiting_confirmation")
    # Not public yet: commuters nearby do not see it, staff see it waiting.
    where = f"?lon={VENUE[0]}&lat={VENUE[1]}"
    assert client.get(f"/api/v1/alerts/nearby{where}", headers=commuter.headers()).json == []
    waiting = client.get("/api/v1/alerts/awaiting-confirmation", headers=staff.headers()).json
    assert [(a["id"], a["kind"], a["category"], a["area"]["radius_m"]) for a in waiting] == \
        [(str(alert.id), "cluster", "spiking", 600)]  # the coarse cell's reach (docs/privacy.md)

    confirmed = client.post(f"/api/v1/alerts/{alert.id}/confirm", headers=staff.headers())
    assert confirmed.status_code == 202, confirmed.json
    assert (confirmed.json["public_push"], confirmed.json["confirmed_by"], confirmed.json["status"]) == \
        ("due", staff.uid, "queued")
    run_outbox()  # the second fan-out, for commuters
    assert set(worker.sends) == {"staff-phone", "opted-in-inside"}
    assert set(worker.sends.values()) == {1}  # the staff phone is not sent it again
    bodies = {m["token"]: m["notification"]["body"] for m in worker.payloads}
    assert "Soho safe haven" in bodies["opted-in-inside"] and "Soho safe haven" not in bodies["staff-phone"]
    (alert,) = alerts()
    assert (alert.status, alert.targeted, alert.sent, alert.public_push) == ("sent", 2, 2, "done")
    assert [a["id"] for a in client.get(f"/api/v1/alerts/nearby{where}", headers=commuter.headers()).json] == \
        [str(alert.id)]
    assert client.get("/api/v1/alerts/awaiting-confirmation", headers=staff.headers()).json == []
    (entry,) = db.session.execute(text(
        "SELECT actor_uid, action, subject_id FROM audit_log WHERE action = 'alert.confirmed'")).all()
    assert tuple(entry) == (staff.uid, "alert.confirmed", str(alert.id))

    # Confirming again sends nothing more; a later report in the cluster updates it and pushes nothing.
    again = client.post(f"/api/v1/alerts/{alert.id}/confirm", headers=staff.headers())
    assert again.status_code == 200 and again.json["public_push"] == "done"
    report("p9", moved(30), NIGHT + timedelta(hours=1))
    run_outbox()
    run_outbox()
    assert len(alerts()) == 1 and alerts()[0].body.startswith("Several spiking")
    assert set(worker.sends.values()) == {1}
    assert db.session.scalar(select(func.count()).select_from(Cluster)) == 1


def around(centre: tuple[float, float], metres_east: float, metres_north: float) -> tuple[float, float]:
    return (centre[0] + metres_east / (M_PER_DEG * math.cos(math.radians(centre[1]))),
            centre[1] + metres_north / M_PER_DEG)


def test_two_reports_of_ones_own_reveal_neither_the_place_nor_the_time_of_a_strangers(worker, client, commuter,
                                                                                     staff):
    """Someone files two reports, a stranger a third nearby: what /alerts/nearby shows them is the same
    wherever in the neighbourhood and whenever in the window the stranger's report was, and does not
    change when more reports arrive."""
    from backend.alerts.clusters import ALERT_CELL_LEVEL, alert_circle

    (cell_centre, _radius) = alert_circle(*VENUE, 300)
    mine = [around(cell_centre, -30, 0), around(cell_centre, 30, 0)]
    strangers = [(around(cell_centre, 0, 120), NIGHT + timedelta(minutes=7)),
                 (around(cell_centre, -90, -60), NIGHT + timedelta(hours=2, minutes=41))]
    seen = []
    for place, at in strangers:
        for i, spot in enumerate(mine):  # two accounts of one person: a cluster needs three people
            report(f"me-{i}", spot, NIGHT + timedelta(minutes=i))
        report("stranger", place, at)
        run_outbox()
        for waiting in alerts():  # commuters see a cluster alert once staff confirm it
            assert client.post(f"/api/v1/alerts/{waiting.id}/confirm", headers=staff.headers()).status_code == 202
        run_outbox()
        where = {"lon": mine[0][0], "lat": mine[0][1]}
        (alert,) = client.get("/api/v1/alerts/nearby", query_string=where, headers=commuter.headers()).json
        report("another", around(cell_centre, 60, 20), NIGHT + timedelta(hours=1, minutes=13))
        run_outbox()
        assert client.get("/api/v1/alerts/nearby", query_string=where, headers=commuter.headers()).json == [alert]
        seen.append(alert)
        db.session.execute(text("DELETE FROM alerts; DELETE FROM clusters; DELETE FROM reports; DELETE FROM outbox"))
        db.session.commit()

    first, second = seen
    created, expires = (datetime.fromisoformat(first[k].replace("Z", "+00:00")) for k in ("created_at", "expires_at"))
    assert (created.minute, created.second, expires - created) == (0, 0, timedelta(hours=7))  # whole hours
    same = {k: v for k, v in first.items() if k not in ("id", "created_at", "expires_at")}
    assert same == {k: v for k, v in second.items() if k not in ("id", "created_at", "expires_at")}
    # The area is the grid cell's centre, not the reports' mean, from which the stranger's place would follow.
    assert first["area"]["center"]["coordinates"] == list(cell_centre) and first["area"]["radius_m"] == 600
    assert first["body"] == "Several spiking reports within 600 m in the last 6 hours."  # never how many
    assert ALERT_CELL_LEVEL == 16


def test_a_confirmation_before_the_first_fan_out_sends_each_phone_once(worker, client, staff):
    add_device("staff-phone", moved(20_000))
    db.session.execute(text("UPDATE devices SET audience = 'staff' WHERE token = 'staff-phone'"))
    add_device("opted-in-inside", moved(100))
    db.session.execute(text("UPDATE devices SET categories = '{spiking}' WHERE token = 'opted-in-inside'"))
    db.session.commit()
    for i in range(3):
        report(f"p{i}", moved(10 * i), NIGHT)
    run_outbox()  # the checks: the alert, its fan-out not yet run
    (alert,) = alerts()
    assert client.post(f"/api/v1/alerts/{alert.id}/confirm", headers=staff.headers()).status_code == 202
    run_outbox()  # both fan-outs
    assert worker.sends == {"staff-phone": 1, "opted-in-inside": 1}
    assert alerts()[0].public_push == "done"


def test_a_confirmation_racing_the_first_fan_outs_end_still_reaches_commuters(worker, client, staff):
    alert = cluster_with_phones(client, staff)
    assert client.post(f"/api/v1/alerts/{alert.id}/confirm", headers=staff.headers()).status_code == 202
    # The first fan-out, still running when the confirmation committed, records its figures last.
    db.session.execute(text("UPDATE alerts SET status = 'sent' WHERE id = :id"), {"id": alert.id})
    db.session.commit()
    run_outbox()
    assert worker.sends == {"staff-phone": 1, "opted-in-inside": 1}
    assert alerts()[0].public_push == "done"


def test_a_confirmed_fan_out_waits_while_another_worker_sends_the_alert(worker, client, staff):
    from sqlalchemy import create_engine

    from backend.alerts.sending import AlertBeingSent, send_alert

    alert = cluster_with_phones(client, staff)
    client.post(f"/api/v1/alerts/{alert.id}/confirm", headers=staff.headers())
    other_worker = create_engine(db.engine.url)
    with other_worker.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(hashtextextended(:key, 0))"),
                           {"key": f"alerts.send:{alert.id}"})
        with pytest.raises(AlertBeingSent):
            send_alert(str(alert.id))
    other_worker.dispose()
    assert set(worker.sends) == {"staff-phone"}
    send_alert(str(alert.id))  # the retry, once the other worker is gone
    assert worker.sends == {"staff-phone": 1, "opted-in-inside": 1}


def test_automatic_public_pushes_when_the_deployment_turns_them_on(worker, client, staff, app):
    from dataclasses import replace

    original = app.config["SETTINGS"]
    app.config["SETTINGS"] = replace(original, cluster_auto_public_push=True)
    try:
        alert = cluster_with_phones(client, staff)
    finally:
        app.config["SETTINGS"] = original
    assert set(worker.sends) == {"staff-phone", "opted-in-inside"}
    assert alert.public_push == "done" and alert.confirmed_by is None


def test_only_a_cluster_alert_waiting_can_be_confirmed(worker, client, staff):
    manual = client.post("/api/v1/alerts", headers=staff.headers(), json={
        "title": "Station closed", "body": "Use the buses.", "severity": "info",
        "area": {"center": {"type": "Point", "coordinates": list(VENUE)}, "radius_m": 500},
        "expires_at": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()}).json
    refused = client.post(f"/api/v1/alerts/{manual['id']}/confirm", headers=staff.headers())
    assert refused.status_code == 409 and "nothing to confirm" in refused.json["message"]
    missing = client.post("/api/v1/alerts/00000000-0000-4000-8000-000000000000/confirm", headers=staff.headers())
    assert missing.status_code == 404
    for i in range(3):
        report(f"p{i}", moved(10 * i), NIGHT)
    run_outbox()
    (cluster_alert,) = [a for a in alerts() if a.kind == "cluster"]
    db.session.execute(text("UPDATE alerts SET expires_at = now() - interval '1 minute' WHERE id = :id"),
                       {"id": cluster_alert.id})
    db.session.commit()
    expired = client.post(f"/api/v1/alerts/{cluster_alert.id}/confirm", headers=staff.headers())
    assert expired.status_code == 409 and expired.json["errors"] == {"expires_at": ["is past"]}
