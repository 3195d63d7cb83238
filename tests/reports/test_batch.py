"""POST /api/v1/reports/batch: offline queues, per-item results, one bad item sinks no other."""

from __future__ import annotations

from sqlalchemy import func, select

from backend.extensions import db
from backend.reports.models import Report
from tests.factories import new_key, report_body

URL = "/api/v1/reports/batch"


def item(**overrides):
    return {"client_id": new_key(), **report_body(**overrides)}


def count_reports() -> int:
    return db.session.scalar(select(func.count()).select_from(Report))


def test_mixed_batch_stores_the_good_items_and_explains_the_bad(client, commuter):
    good, bad_category, good_too, no_client_id = item(), item(category="theft"), item(), report_body()
    response = client.post(URL, json={"reports": [good, bad_category, good_too, no_client_id]},
                           headers=commuter.headers())

    assert response.status_code == 200
    results = response.json["results"]
    assert [r["status"] for r in results] == [201, 422, 201, 422]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert results[0]["client_id"] == good["client_id"] and results[0]["report"]["status"] == "received"
    assert "category" in results[1]["errors"] and results[1]["report"] is None
    assert results[1]["client_id"] == bad_category["client_id"]
    assert "client_id" in results[3]["errors"]
    assert count_reports() == 2


def test_replayed_batch_returns_the_same_reports_and_creates_nothing(client, commuter):
    batch = {"reports": [item(), item(category="spiking", subcategory="needle")]}
    first = client.post(URL, json=batch, headers=commuter.headers())
    replay = client.post(URL, json=batch, headers=commuter.headers())

    assert [r["status"] for r in replay.json["results"]] == [201, 201]
    assert [r["report"]["id"] for r in replay.json["results"]] == [r["report"]["id"] for r in first.json["results"]]
    assert count_reports() == 2


def test_client_id_shares_the_idempotency_keys_of_single_posts(client, commuter):
    key, body = new_key(), report_body()
    single = client.post("/api/v1/reports", json=body, headers=commuter.headers(**{"Idempotency-Key": key}))
    batch = client.post(URL, json={"reports": [{"client_id": key, **body}]}, headers=commuter.headers())
    assert batch.json["results"][0]["report"]["id"] == single.json["id"]
    assert count_reports() == 1


def test_client_id_reused_for_a_different_report_answers_409_for_that_item(client, commuter):
    key, body = new_key(), report_body()
    client.post(URL, json={"reports": [{"client_id": key, **body}]}, headers=commuter.headers())
    response = client.post(URL, json={"reports": [
        {"client_id": key, **body, "description": "changed"}, item(),
    ]}, headers=commuter.headers())
    assert [r["status"] for r in response.json["results"]] == [409, 201]
    assert count_reports() == 2


def test_batch_of_100_is_accepted_and_101_refused(client, commuter, app, monkeypatch):
    from dataclasses import replace

    # A hundred fit the allowance here (by default, 60 a minute: test_limits.py's batch of 100).
    monkeypatch.setitem(app.config, "SETTINGS", replace(app.config["SETTINGS"], rate_limit_reports="200/minute"))
    ok = client.post(URL, json={"reports": [item() for _ in range(100)]}, headers=commuter.headers())
    assert ok.status_code == 200 and len(ok.json["results"]) == 100
    too_many = client.post(URL, json={"reports": [item() for _ in range(101)]}, headers=commuter.headers())
    assert too_many.status_code == 422 and "reports" in too_many.json["errors"]
    assert count_reports() == 100


def test_empty_batch_and_wrong_shapes_answer_422(client, commuter):
    for body in ({"reports": []}, {}, {"reports": "x"}, {"reports": [1, 2]}, {"reports": [item()], "extra": 1}):
        response = client.post(URL, json=body, headers=commuter.headers())
        assert response.status_code == 422, body
    assert count_reports() == 0


def test_batch_allows_a_larger_body_than_a_single_report(client, commuter):
    # 100 items with long descriptions: ~250 kB, beyond the single-report cap.
    batch = {"reports": [item(description="x" * 2000) for _ in range(100)]}
    response = client.post(URL, json=batch, headers=commuter.headers())
    assert response.status_code == 200
    huge = {"reports": [item(description="x" * 2000) for _ in range(100)], "padding": "x" * 5_000_000}
    assert client.post(URL, json=huge, headers=commuter.headers()).status_code == 413


def test_batch_needs_sign_in(client):
    assert client.post(URL, json={"reports": [item()]}).status_code == 401
