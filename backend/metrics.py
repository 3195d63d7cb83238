"""``/metrics`` for Prometheus (behind METRICS_TOKEN, a Bearer token, when set; docs/operations.md):
request rates and latencies per endpoint (a route's pattern, never its ids), and, read at scrape
time, RQ queue depths, failed jobs, the outbox backlog and the read standby's lag.

Under gunicorn's several processes the request metrics are kept in PROMETHEUS_MULTIPROC_DIR
(deploy/gunicorn.conf.py sets it up) and summed over processes at scrape time."""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from redis.exceptions import RedisError
from rq import Queue
from rq.registry import FailedJobRegistry
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from backend import queues
from backend.config import current_settings
from backend.extensions import db, redis_conn
from backend.outbox.service import MAX_ATTEMPTS

REQUESTS = Counter("safetravel_http_requests_total", "HTTP requests answered", ["method", "endpoint", "status"])
LATENCY = Histogram("safetravel_http_request_duration_seconds", "Time to answer an HTTP request", ["method", "endpoint"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


class QueueCollector(Collector):
    """Read when Prometheus scrapes: queue depths and failed jobs from Redis, the outbox from PostgreSQL."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        redis_up = GaugeMetricFamily("safetravel_redis_up", "1 when Redis answered this scrape")
        depth = GaugeMetricFamily("safetravel_rq_queue_jobs", "Jobs waiting in an RQ queue", labels=["queue"])
        failed = GaugeMetricFamily("safetravel_rq_failed_jobs", "Jobs in an RQ queue's failed registry", labels=["queue"])
        try:
            for name in queues.ALL:
                queue = Queue(name, connection=redis_conn.client)
                depth.add_metric([name], queue.count)
                failed.add_metric([name], FailedJobRegistry(queue=queue).count)
            redis_up.add_metric([], 1)
        except RedisError:
            redis_up.add_metric([], 0)
        yield redis_up
        yield depth
        yield failed

        pending = GaugeMetricFamily("safetravel_outbox_pending_tasks", "Outbox tasks not done yet")
        oldest = GaugeMetricFamily("safetravel_outbox_oldest_pending_seconds", "Age of the oldest task not done yet")
        stuck = GaugeMetricFamily("safetravel_outbox_given_up_tasks", "Tasks that failed MAX_ATTEMPTS times")
        try:
            row = db.session.execute(text("""
                SELECT count(*) FILTER (WHERE attempts < :most),
                       coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE attempts < :most)), 0),
                       count(*) FILTER (WHERE attempts >= :most)
                FROM outbox WHERE done_at IS NULL"""), {"most": MAX_ATTEMPTS}).one()
            db.session.rollback()
            pending.add_metric([], row[0])
            oldest.add_metric([], float(row[1]))
            stuck.add_metric([], row[2])
            yield pending
            yield oldest
            yield stuck
        except SQLAlchemyError:
            db.session.rollback()


class ReplicaCollector(Collector):
    """The read standby (DATABASE_READ_URL), measured at scrape time: how far behind, and whether reads go there."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        replica = db.replica
        if replica.engine is None:
            return
        replica.check()
        lag = GaugeMetricFamily("safetravel_read_replica_lag_seconds",
                                "How far the read standby is behind the primary (NaN: it does not answer)")
        lag.add_metric([], replica.lag_s if replica.lag_s is not None else float("nan"))
        yield lag
        in_use = GaugeMetricFamily("safetravel_read_replica_in_use",
                                   "1 when heatmap and nearest-hub reads go to the standby, 0 when to the primary")
        in_use.add_metric([], 1 if replica.fresh else 0)
        yield in_use
        limit = GaugeMetricFamily("safetravel_read_replica_max_lag_seconds", "READ_MAX_LAG_S")
        limit.add_metric([], replica.max_lag_s)
        yield limit


def init_app(app: Flask) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None and request.endpoint != "metrics":
            endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
            REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
            LATENCY.labels(request.method, endpoint).observe(time.perf_counter() - started)
        return response

    collectors = (QueueCollector(), ReplicaCollector())

    @app.get("/metrics", endpoint="metrics")
    def metrics() -> Response:
        refused = _refusal()
        if refused is not None:
            return refused
        registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            MultiProcessCollector(registry)
        else:
            registry = REGISTRY
        output = generate_latest(registry) + b"".join(generate_latest(_single(c)) for c in collectors)
        return Response(output, mimetype=CONTENT_TYPE_LATEST)


def _refusal() -> Response | None:
    """None when the caller may read the metrics: with METRICS_TOKEN set, only with it as a Bearer
    token; without it, in development and test only (production does not serve them to anyone)."""
    settings = current_settings()
    if settings.metrics_token is None:
        if not settings.is_production:
            return None
        response = jsonify(code=403, status="Forbidden",
                           message="Metrics are not served in production until METRICS_TOKEN is set.")
        response.status_code = 403
        return response
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), settings.metrics_token.encode()):
        return None
    response = jsonify(code=401, status="Unauthorized",
                       message="Metrics need the METRICS_TOKEN as a Bearer token (Authorization: Bearer ...).")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def _single(collector: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
