"""Partner webhooks end to end: subscriptions over HTTP, events through the outbox, deliveries POSTed to
a real receiver on loopback that checks each signature with `standardwebhooks`."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import text

from backend.extensions import db
from backend.geo import haversine_m
from backend.outbox import service as outbox
from backend.webhooks import delivery
from tests.factories import CAMDEN_TOWN, PECKHAM, Caller, new_key, report_body
from tests.webhooks.receiver import Receiver

SOUTHWARK = "E09000028"
# The receiver stays down this long while reports keep coming (the minute; shorten it locally
# with WEBHOOK_TEST_DOWN_S=5 while developing).
DOWN_S = float(os.environ.get("WEBHOOK_TEST_DOWN_S", "60"))
# Around Peckham only: Camden Town is far outside.
PECKHAM_BOX = {"type": "Polygon", "coordinates": [[[-0.08, 51.465], [-0.06, 51.465], [-0.06, 51.485],
                                                   [-0.08, 51.485], [-0.08, 51.465]]]}
EXACT = [-0.069234, 51.474087]


@pytest.fixture
def receiver():
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fast_retries(app, settings):
    """Retries after 1 s, then at most every 2 s (production: 30 s doubling to an hour, for 24 hours)."""
    app.config["SETTINGS"] = replace(settings, webhook_retry_base_s=1, webhook_retry_max_s=2, webhook_timeout_s=2)
    yield app.config["SETTINGS"]
    app.config["SETTINGS"] = settings


def subscribe(client, admin, receiver: Receiver, **overrides: Any) -> dict[str, Any]:
    body = {"url": receiver.url, "events": ["report.created"], "council": SOUTHWARK, **overrides}
    body = {k: v for k, v in body.items() if v is not None}
    response = client.post("/api/v1/webhooks", json=body, headers=admin.headers())
    assert response.status_code == 201, response.json
    receiver.secret = response.json["secret"]
    return response.json


def report(client, commuter, where=PECKHAM, **overrides: Any) -> str:
    response = client.post("/api/v1/reports", json=report_body(location={"type": "Point", "coordinates": where}, **overrides),
                           headers=commuter.headers(**{"Idempotency-Key": new_key()}))
    assert response.status_code == 201, response.json
    return response.json["id"]


def work(app) -> None:
    """Run the outbox as the workers would, until nothing is left (deliveries publish more work)."""
    with app.app_context():
        while ids := db.session.scalars(text("SELECT id FROM outbox WHERE done_at IS NULL ORDER BY id")).all():
            for task_id in ids:
                outbox.run(task_id)


def retry_due(app) -> dict[str, int]:
    """What the periodic job does every 5 s."""
    with app.app_context():
        return delivery.deliver()


def deliveries(client, admin, subscription: dict[str, Any], **query: Any) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/webhooks/{subscription['id']}/deliveries", query_string=query, headers=admin.headers())
    assert response.status_code == 200, response.json
    return response.json


def test_a_report_inside_the_area_is_delivered_signed_without_text_ids_or_exact_location(client, app, admin, commuter,
                                                                                          receiver):
    subscription = subscribe(client, admin, receiver)
    inside = report(client, commuter, where=EXACT)
    report(client, commuter, where=CAMDEN_TOWN)  # another council's: not for this partner
    work(app)

    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.verified and got.answered == 204
    payload = got.payload
    assert payload["type"] == "report.created"
    data = payload["data"]["report"]
    assert data["id"] == inside and data["category"] == "harassment" and data["status"] == "received"
    assert "A man followed me" not in got.body and "description" not in got.body
    assert commuter.uid not in got.body and "author" not in got.body and "user" not in got.body
    coords = data["location"]["coordinates"]
    assert coords != EXACT and haversine_m(coords, EXACT) < 100  # snapped to the ~100 m grid
    log = deliveries(client, admin, subscription)
    assert [(d["status"], d["attempts"], d["webhook_id"]) for d in log] == [("delivered", 1, got.webhook_id)]
    assert log[0]["last_status_code"] == 204


def webhook_tasks() -> list[dict[str, Any]]:
    return db.session.scalars(text("SELECT payload FROM outbox WHERE task = 'webhooks.report_created' ORDER BY id")).all()


def test_report_created_is_a_task_only_while_a_partner_subscribes_to_it(client, app, admin, commuter, receiver):
    before = report(client, commuter, where=EXACT)
    assert webhook_tasks() == []  # nobody subscribes: the ingest statement writes no webhooks task
    other = subscribe(client, admin, receiver, events=["report.status_changed"])
    assert report(client, commuter, where=EXACT) and webhook_tasks() == []  # nor for another event's partner

    subscribe(client, admin, receiver)
    first, second = report(client, commuter, where=EXACT), report(client, commuter, where=EXACT)
    assert webhook_tasks() == [{"report_id": first}, {"report_id": second}]
    work(app)

    # Delivered once each, in the order stored; the report from before the subscription is not sent.
    assert [(r.payload["data"]["report"]["id"], r.verified, r.answered) for r in receiver.received] == [
        (first, True, 204), (second, True, 204)]
    assert before not in {r.payload["data"]["report"]["id"] for r in receiver.received}
    work(app)
    assert len(receiver.received) == 2  # exactly once: the tasks are done

    assert client.delete(f"/api/v1/webhooks/{other['id']}", headers=admin.headers()).status_code == 204
    for subscription in client.get("/api/v1/webhooks", headers=admin.headers()).json:
        client.patch(f"/api/v1/webhooks/{subscription['id']}", json={"active": False}, headers=admin.headers())
    report(client, commuter, where=EXACT)
    assert len(webhook_tasks()) == 2  # switched off: none again


def test_a_forged_or_old_secret_does_not_verify(client, app, admin, commuter, receiver):
    subscription = subscribe(client, admin, receiver)
    old_secret = receiver.secret
    rotated = client.post(f"/api/v1/webhooks/{subscription['id']}/secret", headers=admin.headers())
    assert rotated.status_code == 200 and rotated.json["secret"].startswith("whsec_")
    assert rotated.json["secret"] != old_secret
    receiver.secret = old_secret  # a receiver not told of the rotation
    report(client, commuter)
    work(app)
    assert [r.verified for r in receiver.received] == [False]
    receiver.secret = rotated.json["secret"]
    shown = client.get(f"/api/v1/webhooks/{subscription['id']}", headers=admin.headers()).json
    assert "secret" not in shown and shown["secret_rotated_at"]
    assert all("secret" not in s for s in client.get("/api/v1/webhooks", headers=admin.headers()).json)


def test_receiver_down_then_back_gets_every_delivery_once_late(client, app, admin, commuter, receiver, fast_retries):
    subscription = subscribe(client, admin, receiver, council=None, area=PECKHAM_BOX)
    receiver.stop()
    went_down = time.monotonic()
    reports = [report(client, commuter) for _ in range(3)]
    work(app)  # first attempts: connection refused
    while time.monotonic() - went_down < DOWN_S:
        if len(reports) < 5:  # more reports while it is down
            reports.append(report(client, commuter))
            work(app)
        retry_due(app)
        time.sleep(0.5)
    assert receiver.received == []
    receiver.start()
    back = time.monotonic()
    deadline = back + 15
    while len(receiver.accepted()) < len(reports) and time.monotonic() < deadline:
        retry_due(app)
        time.sleep(0.2)
    retry_due(app)

    got = receiver.accepted()
    assert sorted(r.payload["data"]["report"]["id"] for r in got) == sorted(reports)
    assert len({r.webhook_id for r in got}) == len(got) == len(reports)  # each once
    assert all(r.verified and r.at >= back for r in got)  # late, and still signed right
    log = deliveries(client, admin, subscription)
    assert {d["status"] for d in log} == {"delivered"}
    assert all(d["attempts"] > 1 for d in log)


def test_a_retry_keeps_its_webhook_id_with_a_fresh_signature(client, app, admin, commuter, receiver, fast_retries):
    subscription = subscribe(client, admin, receiver)
    receiver.mode = "fail_first"
    report(client, commuter)
    work(app)
    assert [r.answered for r in receiver.received] == [500]
    assert deliveries(client, admin, subscription)[0]["status"] == "pending"
    time.sleep(1.1)
    retry_due(app)
    first, second = receiver.received
    assert second.answered == 204 and first.webhook_id == second.webhook_id
    assert first.verified and second.verified
    log = deliveries(client, admin, subscription)
    assert (log[0]["status"], log[0]["attempts"], log[0]["last_status_code"]) == ("delivered", 2, 204)


def test_410_gone_disables_the_subscription(client, app, admin, commuter, receiver):
    subscription = subscribe(client, admin, receiver)
    receiver.mode = "gone"
    report(client, commuter)
    work(app)
    shown = client.get(f"/api/v1/webhooks/{subscription['id']}", headers=admin.headers()).json
    assert shown["active"] is False and "410" in shown["disabled_reason"]
    assert [(d["status"], d["last_status_code"]) for d in deliveries(client, admin, subscription)] == [("failed", 410)]
    report(client, commuter)
    work(app)
    assert len(receiver.received) == 1  # nothing more for a receiver that said it is gone
    assert len(deliveries(client, admin, subscription)) == 1


def test_a_delivery_failing_for_the_whole_window_fails_and_can_be_replayed(client, app, admin, commuter, receiver,
                                                                            fast_retries):
    app.config["SETTINGS"] = replace(fast_retries, webhook_retry_for_s=2)
    subscription = subscribe(client, admin, receiver)
    receiver.mode = "fail"
    report(client, commuter)
    work(app)
    deadline = time.monotonic() + 10
    while deliveries(client, admin, subscription)[0]["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.5)
        retry_due(app)
    [failed] = deliveries(client, admin, subscription, status="failed")
    assert failed["attempts"] >= 2 and failed["last_error"] == "HTTP 500"

    receiver.mode = "ok"
    url = f"/api/v1/webhooks/{subscription['id']}/deliveries/{failed['id']}/replay"
    replayed = client.post(url, headers=admin.headers())
    assert replayed.status_code == 202 and replayed.json["status"] == "pending"
    work(app)
    assert receiver.received[-1].answered == 204 and receiver.received[-1].webhook_id == failed["webhook_id"]
    assert receiver.received[-1].body == receiver.received[0].body  # the same message
    assert deliveries(client, admin, subscription)[0]["status"] == "delivered"
    again = client.post(url, headers=admin.headers())
    assert again.status_code == 409 and "delivered" in again.json["message"]


def test_exact_precision_is_exact_and_every_delivery_is_audited(client, app, admin, commuter, receiver):
    subscription = subscribe(client, admin, receiver, precision="exact")
    report(client, commuter, where=EXACT)
    report(client, commuter, where=EXACT)
    work(app)
    assert [r.payload["data"]["report"]["location"]["coordinates"] for r in receiver.accepted()] == [EXACT, EXACT]
    with app.app_context():
        audited = db.session.execute(text(
            "SELECT subject_id, details->>'subscription' FROM audit_log WHERE action = 'webhook.exact_location'")).all()
    assert sorted(a.subject_id for a in audited) == sorted(d["id"] for d in deliveries(client, admin, subscription))
    assert {a[1] for a in audited} == {subscription["id"]}


def test_status_changes_for_the_chosen_categories_only(client, app, admin, commuter, staff, receiver):
    subscribe(client, admin, receiver, events=["report.status_changed"], categories=["spiking"])
    harassment = report(client, commuter)
    spiking = report(client, commuter, category="spiking", subcategory="drink")
    for report_id in (harassment, spiking):
        response = client.patch(f"/api/v1/reports/{report_id}", json={"status": "actioned", "note": "Officer sent"},
                                headers=staff.headers())
        assert response.status_code == 200
    work(app)
    [got] = receiver.accepted()
    assert got.payload["type"] == "report.status_changed"
    assert got.payload["data"]["report"]["id"] == spiking and got.payload["data"]["report"]["status"] == "actioned"
    assert "Officer sent" not in got.body  # the staff note stays with staff


def test_clusters_and_alerts_reach_partners_who_asked(client, app, admin, commuter, receiver):
    subscribe(client, admin, receiver, events=["cluster.detected", "alert.sent"])
    for i in range(3):  # three people: a cluster needs as many (CLUSTER_MIN_REPORTERS)
        report(client, Caller(f"witness-{i}"), category="spiking", subcategory="drink")
    work(app)
    kinds = sorted(r.payload["type"] for r in receiver.accepted())
    assert kinds == ["alert.sent", "cluster.detected"]
    cluster = next(r.payload["data"]["cluster"] for r in receiver.accepted() if r.payload["type"] == "cluster.detected")
    alert = next(r.payload["data"]["alert"] for r in receiver.accepted() if r.payload["type"] == "alert.sent")
    assert cluster["report_count"] == 3 and cluster["alert_id"] == alert["id"] and alert["kind"] == "cluster"


@pytest.mark.parametrize("body, field", [
    ({"events": ["report.created"], "council": SOUTHWARK}, "url"),
    ({"url": "ftp://example.org/x", "events": ["report.created"], "council": SOUTHWARK}, "url"),
    ({"url": "https://example.org/x", "events": ["report.deleted"], "council": SOUTHWARK}, "events"),
    ({"url": "https://example.org/x", "events": [], "council": SOUTHWARK}, "events"),
    ({"url": "https://example.org/x", "events": ["report.created"]}, "_schema"),
    ({"url": "https://example.org/x", "events": ["report.created"], "council": SOUTHWARK, "area": PECKHAM_BOX}, "_schema"),
    ({"url": "https://example.org/x", "events": ["report.created"], "council": "E09999999"}, "council"),
    ({"url": "https://example.org/x", "events": ["report.created"], "council": SOUTHWARK, "precision": "fine"}, "precision"),
    ({"url": "https://example.org/x", "events": ["report.created"], "council": SOUTHWARK, "categories": ["noise"]},
     "categories"),
])
def test_bad_subscriptions_are_refused_naming_the_field(client, admin, body, field):
    response = client.post("/api/v1/webhooks", json=body, headers=admin.headers())
    assert response.status_code == 422, response.json
    assert field in response.json["errors"]
    assert client.get("/api/v1/webhooks", headers=admin.headers()).json == []


def test_production_sends_to_https_only(client, app, admin, settings):
    app.config["SETTINGS"] = replace(settings, app_env="production")
    try:
        refused = client.post("/api/v1/webhooks", json={"url": "http://partner.example.org/hook",
                                                        "events": ["report.created"], "council": SOUTHWARK},
                              headers=admin.headers())
        accepted = client.post("/api/v1/webhooks", json={"url": "https://partner.example.org/hook",
                                                         "events": ["report.created"], "council": SOUTHWARK},
                               headers=admin.headers())
    finally:
        app.config["SETTINGS"] = settings
    assert refused.status_code == 422 and refused.json["errors"] == {"url": ["must be an https:// URL in production"]}
    assert accepted.status_code == 201


def test_switching_off_and_on(client, app, admin, commuter, receiver):
    subscription = subscribe(client, admin, receiver)
    url = f"/api/v1/webhooks/{subscription['id']}"
    off = client.patch(url, json={"active": False}, headers=admin.headers())
    assert off.status_code == 200 and off.json["active"] is False
    report(client, commuter)
    work(app)
    assert receiver.received == []
    on = client.patch(url, json={"active": True, "area": PECKHAM_BOX}, headers=admin.headers())
    assert on.status_code == 200 and on.json["active"] is True and on.json["council"] is None
    assert on.json["area"]["type"] == "Polygon"
    report(client, commuter)
    work(app)
    assert len(receiver.accepted()) == 1
    assert client.delete(url, headers=admin.headers()).status_code == 204
    assert client.get(url, headers=admin.headers()).status_code == 404


def test_a_run_out_of_time_hands_back_what_it_did_not_send(client, app, admin, commuter, receiver):
    subscription = subscribe(client, admin, receiver)
    report(client, commuter)
    report(client, commuter)
    with app.app_context():
        db.session.execute(text("UPDATE outbox SET done_at = now() WHERE task = 'webhooks.deliver'"))
        for task_id in db.session.scalars(text("SELECT id FROM outbox WHERE done_at IS NULL ORDER BY id")).all():
            outbox.run(task_id)  # the deliveries are written; nobody has sent them yet
        assert delivery.deliver(budget_s=0) == {"delivered": 0, "retry": 0, "failed": 0}
    log = deliveries(client, admin, subscription)
    assert [(d["status"], d["attempts"]) for d in log] == [("pending", 0), ("pending", 0)]  # due again, untried
    assert retry_due(app) == {"delivered": 2, "retry": 0, "failed": 0}
    assert len(receiver.accepted()) == 2
