"""POST /api/v1/reports: storing a report, idempotent replays, follow-up work."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import func, select, text

from backend.extensions import db
from backend.outbox.models import OutboxTask
from backend.reports.models import Report
from tests.factories import new_key, report_body, route_body
from worker import relay as outbox_relay

URL = "/api/v1/reports"


def count_reports() -> int:
    return db.session.scalar(select(func.count()).select_from(Report))


def test_created_report_is_stored_in_postgis_and_answered_201(client, commuter):
    body = report_body()
    response = client.post(URL, json=body, headers=commuter.headers(**{"Idempotency-Key": new_key()}))

    assert response.status_code == 201, response.json
    report = response.json
    assert report["status"] == "received"
    assert report["category"] == "harassment"
    assert report["location"] == {"type": "Point", "coordinates": [-0.1145, 51.4627]}
    assert report["transport"] == {"mode": "tube", "line": "Victoria", "station": "Brixton"}
    assert report["occurred_at"].endswith("Z") and report["created_at"].endswith("Z")
    assert response.headers["Location"] == f"/api/v1/reports/{report['id']}"
    assert "author_id" not in report
    row = db.session.execute(
        text("SELECT ST_AsText(location), ST_SRID(location), GeometryType(location) FROM reports WHERE id = :id"),
        {"id": report["id"]},
    ).one()
    assert row == ("POINT(-0.1145 51.4627)", 4326, "POINT")


def test_route_is_stored_as_a_linestring(client, commuter):
    response = client.post(URL, json=route_body(), headers=commuter.headers())
    assert response.status_code == 201, response.json
    stored = db.session.execute(
        text("SELECT GeometryType(route), ST_NPoints(route) FROM reports WHERE id = :id"), {"id": response.json["id"]}
    ).one()
    assert stored == ("LINESTRING", 3)
    assert response.json["route"]["coordinates"][0] == [-0.1145, 51.4627]


def test_replayed_idempotency_key_returns_first_report_and_creates_nothing(client, commuter):
    headers = commuter.headers(**{"Idempotency-Key": new_key()})
    body = report_body()
    first = client.post(URL, json=body, headers=headers)
    replay = client.post(URL, json=body, headers=headers)

    assert first.status_code == replay.status_code == 201
    assert replay.json == first.json
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert count_reports() == 1
    # heatmap, cluster, nearby streets (no partner subscribes: no webhooks task): once
    assert db.session.scalar(select(func.count()).select_from(OutboxTask)) == 3


def test_replay_with_reordered_keys_is_the_same_body(client, commuter):
    headers = commuter.headers(**{"Idempotency-Key": new_key()})
    body = report_body()
    client.post(URL, json=body, headers=headers)
    replay = client.post(URL, json=dict(reversed(list(body.items()))), headers=headers)
    assert replay.status_code == 201
    assert count_reports() == 1


def test_same_key_with_a_different_body_answers_409(client, commuter):
    headers = commuter.headers(**{"Idempotency-Key": new_key()})
    client.post(URL, json=report_body(), headers=headers)
    response = client.post(URL, json=report_body(description="something else"), headers=headers)

    assert response.status_code == 409
    assert response.json["code"] == 409
    assert "Idempotency-Key" in response.json["errors"]
    assert count_reports() == 1


def test_same_key_from_another_user_is_a_different_report(client, commuter, other_commuter):
    key = new_key()
    first = client.post(URL, json=report_body(), headers=commuter.headers(**{"Idempotency-Key": key}))
    second = client.post(URL, json=report_body(), headers=other_commuter.headers(**{"Idempotency-Key": key}))
    assert first.status_code == second.status_code == 201
    assert first.json["id"] != second.json["id"]
    assert count_reports() == 2


def test_without_a_key_each_post_creates_a_report(client, commuter):
    for _ in range(2):
        assert client.post(URL, json=report_body(), headers=commuter.headers()).status_code == 201
    assert count_reports() == 2


def test_malformed_idempotency_key_answers_422_naming_the_header(client, commuter):
    response = client.post(URL, json=report_body(), headers=commuter.headers(**{"Idempotency-Key": "not-a-uuid"}))
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json["errors"]
    assert count_reports() == 0


def test_concurrent_replays_create_exactly_one_report(app, real_commits, commuter):
    key = new_key()
    body = report_body()
    barrier = threading.Barrier(8)
    results: list[tuple[int, str]] = []

    def post() -> None:
        with app.test_client() as c:
            barrier.wait()
            r = c.post(URL, json=body, headers=commuter.headers(**{"Idempotency-Key": key}))
            results.append((r.status_code, r.json.get("id", r.json)))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert [status for status, _ in results] == [201] * 8
    assert len({report_id for _, report_id in results}) == 1
    with app.app_context():
        assert db.session.scalar(
            select(func.count()).select_from(Report).where(Report.idempotency_key == uuid.UUID(key))
        ) == 1
        db.session.remove()


def test_new_report_records_its_follow_up_work_for_the_relay(client, commuter, redis_client):
    response = client.post(URL, json=report_body(category="spiking", subcategory="drink"), headers=commuter.headers())
    tasks = db.session.scalars(select(OutboxTask).order_by(OutboxTask.id)).all()

    assert [(t.task, t.queue, t.payload, t.enqueued_at) for t in tasks] == [
        ("heatmap.apply_report", "heatmap", {"report_id": response.json["id"]}, None),
        ("alerts.check_cluster", "alerts", {"report_id": response.json["id"]}, None),
        ("streets.report_edges", "heatmap", {"report_id": response.json["id"]}, None),
    ]  # and no webhooks task: no partner subscribes to report.created (tests/webhooks)
    assert outbox_relay.relay() == 3
    assert redis_client.lrange("rq:queue:heatmap", 0, -1) == [f"outbox-{tasks[0].id}".encode(), f"outbox-{tasks[2].id}".encode()]
    assert redis_client.lrange("rq:queue:alerts", 0, -1) == [f"outbox-{tasks[1].id}".encode()]


def test_unsafe_route_report_gets_no_cluster_check(client, commuter):
    client.post(URL, json=route_body(), headers=commuter.headers())
    assert db.session.scalars(select(OutboxTask.task)).all() == ["heatmap.apply_report", "streets.report_edges"]


def test_a_connection_lost_under_the_ingest_statement_is_a_503_and_the_retry_stores_the_report_once(
        app, client, commuter, real_commits):
    """PostgreSQL drops the connection between its checkout and the ingest statement (a restart's
    moment): the answer is a 503 to retry, not a 500; the broken connection leaves the pool, and the
    retry with the same Idempotency-Key stores the report once."""
    from sqlalchemy import event

    with app.app_context():
        engine = db.engine
    doomed = [True]  # the first checkout only

    def terminate_once(dbapi_connection, _record, _proxy) -> None:
        if not doomed:
            return
        doomed.clear()
        pid = dbapi_connection.info.backend_pid
        with engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})

    event.listen(engine, "checkout", terminate_once)
    try:
        key = new_key()
        headers = commuter.headers(**{"Idempotency-Key": key})
        lost = client.post("/api/v1/reports", json=report_body(), headers=headers)
        assert lost.status_code == 503, lost.json
        assert lost.headers["Retry-After"]
        assert "database" in lost.json["message"]
    finally:
        event.remove(engine, "checkout", terminate_once)
    again = client.post("/api/v1/reports", json=report_body(), headers=headers)
    assert again.status_code == 201, again.json
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Report).where(Report.idempotency_key == key)) == 1
