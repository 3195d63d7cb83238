"""Structured logs: a request id on every line, echoed to the caller, following a report into its jobs."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import text

from backend.config import ConfigError, Settings
from backend.extensions import db
from backend.logs import JSON_FIELDS, RequestIdFilter, request_id_var
from backend.outbox import service as outbox
from tests.appctx import app_context
from tests.factories import new_key, report_body


def test_the_request_id_is_echoed_or_made_up(client, commuter):
    given = client.get("/api/v1/councils", headers=commuter.headers(**{"X-Request-Id": "lb-7f3a.42"}))
    assert given.headers["X-Request-Id"] == "lb-7f3a.42"
    made = client.get("/api/v1/councils", headers=commuter.headers())
    assert len(made.headers["X-Request-Id"]) == 32
    odd = client.get("/api/v1/councils", headers=commuter.headers(**{"X-Request-Id": "x" * 65}))
    assert odd.headers["X-Request-Id"] != "x" * 65  # not trusted: too long


def test_a_reports_jobs_log_under_the_request_that_created_it(client, commuter, caplog):
    response = client.post("/api/v1/reports", json=report_body(category="spiking", subcategory="drink"),
                           headers=commuter.headers(**{"Idempotency-Key": new_key(), "X-Request-Id": "req-report-1"}))
    assert response.status_code == 201
    tasks = db.session.execute(text("SELECT id, task, request_id FROM outbox ORDER BY id")).all()
    assert [(t.task, t.request_id) for t in tasks] == [("heatmap.apply_report", "req-report-1"),
                                                       ("alerts.check_cluster", "req-report-1"),
                                                       ("streets.report_edges", "req-report-1")]
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="backend.outbox.service"):
        for task in tasks:
            with app_context():  # as in a worker
                outbox.run(task.id)
    done = [r for r in caplog.records if "done" in r.getMessage()]
    assert len(done) == 3 and {r.request_id for r in done} == {"req-report-1"}
    assert request_id_var.get() is None  # not left behind for the next job


def test_json_lines_carry_time_level_logger_message_and_request_id():
    from pythonjsonlogger.json import JsonFormatter

    formatter = JsonFormatter(JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
    record = logging.LogRecord("backend.reports", logging.INFO, __file__, 1, "report %s stored", ("r-1",), None)
    token = request_id_var.set("req-9")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    line = json.loads(formatter.format(record))
    assert line["level"] == "INFO" and line["logger"] == "backend.reports" and line["request_id"] == "req-9"
    assert line["message"] == "report r-1 stored" and "time" in line


def test_production_logs_json_by_default_and_a_bad_format_is_refused():
    assert Settings.from_env({"APP_ENV": "production", "FIREBASE_PROJECT_ID": "safetravel-prod",
                              "PUBLIC_NOISE_SECRET": "x" * 64}).log_format == "json"
    assert Settings.from_env({}).log_format == "text"
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        Settings.from_env({"LOG_FORMAT": "xml"})
