"""Cluster detection: several spiking or harassment reports close in space and time make exactly one
alert, pushed to the safety team and, with the nearest open safe hubs, to opted-in commuters inside it."""

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


def test_cluster_alert_reaches_staff_and_opted_in_commuters_inside_with_open_hubs(worker, client, staff):
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

    assert set(worker.sends) == {"staff-phone", "opted-in-inside"}
    bodies = {m["token"]: m["notification"]["body"] for m in worker.payloads}
    assert "Soho safe haven" in bodies["opted-in-inside"] and "Soho safe haven" not in bodies["staff-phone"]
    (alert,) = alerts()
    assert (alert.status, alert.targeted, alert.sent) == ("sent", 2, 2)
    # A later report in the same cluster updates it and pushes nothing.
    report("p9", moved(30), NIGHT + timedelta(hours=1))
    run_outbox()
    run_outbox()
    assert len(alerts()) == 1 and alerts()[0].body.startswith("Several spiking")
    assert set(worker.sends.values()) == {1}
    assert db.session.scalar(select(func.count()).select_from(Cluster)) == 1


def around(centre: tuple[float, float], metres_east: float, metres_north: float) -> tuple[float, float]:
    return (centre[0] + metres_east / (M_PER_DEG * math.cos(math.radians(centre[1]))),
            centre[1] + metres_north / M_PER_DEG)


def test_two_reports_of_ones_own_reveal_neither_the_place_nor_the_time_of_a_strangers(worker, client, commuter):
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
        for i, spot in enumerate(mine):
            report("me", spot, NIGHT + timedelta(minutes=i))
        report("stranger", place, at)
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
