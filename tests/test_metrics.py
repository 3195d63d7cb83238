"""/metrics: request rates and latencies per endpoint, queue depths, failed jobs, the outbox backlog."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import new_key, report_body


def scrape(client) -> dict[str, dict[tuple, float]]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def test_requests_are_counted_per_endpoint_pattern_not_per_id(client, commuter):
    before = scrape(client)
    created = client.post("/api/v1/reports", json=report_body(), headers=commuter.headers(**{"Idempotency-Key": new_key()}))
    client.get(f"/api/v1/reports/{created.json['id']}", headers=commuter.headers())
    client.get("/api/v1/reports/not-a-uuid", headers=commuter.headers())
    after = scrape(client)
    post = dict(method="POST", endpoint="/api/v1/reports", status="201")
    get = dict(method="GET", endpoint="/api/v1/reports/<uuid:report_id>", status="200")
    assert value(after, "safetravel_http_requests_total", **post) == value(before, "safetravel_http_requests_total", **post) + 1
    assert value(after, "safetravel_http_requests_total", **get) == value(before, "safetravel_http_requests_total", **get) + 1
    assert value(after, "safetravel_http_requests_total", method="GET", endpoint="unmatched", status="404") >= 1
    assert value(after, "safetravel_http_request_duration_seconds_count", method="POST", endpoint="/api/v1/reports") >= 1
    assert not any(created.json["id"] in str(labels) for samples in after.values() for labels in samples)


def test_queue_depths_failed_jobs_and_the_outbox_are_reported(client, commuter):
    client.post("/api/v1/reports", json=report_body(), headers=commuter.headers(**{"Idempotency-Key": new_key()}))
    samples = scrape(client)
    assert value(samples, "safetravel_redis_up") == 1
    for queue in ("alerts", "heatmap", "exports", "maintenance"):
        assert (("queue", queue),) in samples["safetravel_rq_queue_jobs"]
        assert (("queue", queue),) in samples["safetravel_rq_failed_jobs"]
    assert value(samples, "safetravel_outbox_pending_tasks") >= 1  # the report's heatmap task, not yet relayed
    assert value(samples, "safetravel_outbox_oldest_pending_seconds") >= 0


def test_metrics_say_when_redis_is_down(client, disposable_redis):
    disposable_redis.stop()
    samples = scrape(client)
    assert value(samples, "safetravel_redis_up") == 0


def test_metrics_need_no_token_in_development_and_are_not_in_the_api_document(client):
    assert client.get("/metrics").status_code == 200
    assert not re.search(r'"/metrics"', client.get("/api/openapi.json").get_data(as_text=True))


@pytest.fixture
def with_settings(app, settings, monkeypatch):
    def use(**changes):
        monkeypatch.setitem(app.config, "SETTINGS", replace(settings, **changes))
    return use


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic czNjcmV0", "s3cret-metrics-token",
                                           "Bearer ", "Bearer s3cret-metrics-token-and-more"])
def test_with_a_metrics_token_anything_else_is_401(client, with_settings, authorization):
    with_settings(metrics_token="s3cret-metrics-token")
    response = client.get("/metrics", headers={"Authorization": authorization} if authorization else {})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "METRICS_TOKEN" in response.json["message"] and "safetravel_" not in response.get_data(as_text=True)


def test_a_signed_in_user_is_not_let_in_by_their_firebase_token(client, with_settings, staff):
    with_settings(metrics_token="s3cret-metrics-token")
    assert client.get("/metrics", headers=staff.headers()).status_code == 401


def test_with_the_metrics_token_prometheus_reads_them(client, with_settings):
    with_settings(metrics_token="s3cret-metrics-token")
    response = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"})
    assert response.status_code == 200 and "safetravel_redis_up" in response.get_data(as_text=True)


def test_production_without_a_metrics_token_serves_them_to_no_one(client, with_settings):
    with_settings(app_env="production")
    response = client.get("/metrics", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 403 and "METRICS_TOKEN" in response.json["message"]
