"""Abuse limits: per user and per IP on reports, devices and exports; 429 with Retry-After; Redis
down never costs a report."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backend.config import ConfigError, Settings
from tests.exports.helpers import export_body
from tests.factories import Caller, new_key, report_body

DEVICE = {"platform": "android", "radius_m": 500}


@pytest.fixture
def limits(app):
    """Set limits for one test (they are read at request time, from the settings)."""
    original = app.config["SETTINGS"]

    def set_limits(**values: str) -> None:
        app.config["SETTINGS"] = replace(original, **values)

    yield set_limits
    app.config["SETTINGS"] = original


def post_report(client, caller: Caller, ip: str = "10.0.0.1"):
    return client.post("/api/v1/reports", json=report_body(), environ_base={"REMOTE_ADDR": ip},
                       headers=caller.headers(**{"Idempotency-Key": new_key()}))


def test_a_user_over_the_limit_gets_429_with_retry_after_and_others_do_not(client, commuter, other_commuter, limits):
    limits(rate_limit_reports="3/minute")
    assert [post_report(client, commuter).status_code for _ in range(3)] == [201, 201, 201]
    refused = post_report(client, commuter)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert refused.json["code"] == 429 and "account" in refused.json["message"]
    assert post_report(client, other_commuter).status_code == 201  # per user


def test_the_batch_counts_against_the_same_limit(client, commuter, limits):
    limits(rate_limit_reports="2/minute")
    batch = {"reports": [{**report_body(), "client_id": new_key()}]}
    assert post_report(client, commuter).status_code == 201
    assert client.post("/api/v1/reports/batch", json=batch, headers=commuter.headers()).status_code == 200
    assert client.post("/api/v1/reports/batch", json=batch_of(1), headers=commuter.headers()).status_code == 429


def batch_of(n: int) -> dict:
    return {"reports": [{**report_body(), "client_id": new_key()} for _ in range(n)]}


def count_reports() -> int:
    from sqlalchemy import text

    from backend.extensions import db

    return db.session.scalar(text("SELECT count(*) FROM reports"))


def test_a_batch_of_100_meets_the_limit_at_the_61st_item(client, commuter, limits):
    limits(rate_limit_reports="60/minute;1000/day")
    batch = batch_of(100)
    response = client.post("/api/v1/reports/batch", json=batch, headers=commuter.headers())
    assert response.status_code == 200
    statuses = [r["status"] for r in response.json["results"]]
    assert statuses == [201] * 60 + [429] * 40
    refused = response.json["results"][60]
    assert (refused["index"], refused["client_id"], refused["report"]) == (60, batch["reports"][60]["client_id"], None)
    assert "not stored" in refused["errors"]["_schema"][0]
    assert 1 <= int(response.headers["Retry-After"]) <= 61
    assert count_reports() == 60
    # The allowance is spent: a single report and the next batch are refused as a whole.
    assert post_report(client, commuter).status_code == 429
    again = client.post("/api/v1/reports/batch", json={"reports": batch["reports"][60:]}, headers=commuter.headers())
    assert again.status_code == 429 and 1 <= int(again.headers["Retry-After"]) <= 61
    assert count_reports() == 60


def test_single_reports_and_batch_items_draw_on_one_allowance(client, commuter, limits):
    limits(rate_limit_reports="5/minute")
    assert [post_report(client, commuter).status_code for _ in range(2)] == [201, 201]
    response = client.post("/api/v1/reports/batch", json=batch_of(4), headers=commuter.headers())
    assert [r["status"] for r in response.json["results"]] == [201, 201, 201, 429]


def test_batch_items_count_against_the_addresss_limit_too(client, limits):
    limits(rate_limit_reports="100/minute", rate_limit_reports_ip="10/minute")
    first = client.post("/api/v1/reports/batch", json=batch_of(8), headers=Caller("phone-a").headers(),
                        environ_base={"REMOTE_ADDR": "192.0.2.9"})
    second = client.post("/api/v1/reports/batch", json=batch_of(8), headers=Caller("phone-b").headers(),
                         environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert [r["status"] for r in first.json["results"]] == [201] * 8
    assert [r["status"] for r in second.json["results"]] == [201] * 2 + [429] * 6


def test_a_batch_is_accepted_while_the_limits_redis_is_down(client, commuter, disposable_redis, limits):
    limits(rate_limit_reports="100/minute")
    disposable_redis.stop()
    response = client.post("/api/v1/reports/batch", json=batch_of(3), headers=commuter.headers())
    assert [r["status"] for r in response.json["results"]] == [201] * 3


def test_one_address_over_its_limit_gets_429_whoever_signs_in(client, limits):
    limits(rate_limit_reports="100/minute", rate_limit_reports_ip="4/minute")
    callers = [Caller(f"phone-{i}") for i in range(5)]
    codes = [post_report(client, caller, ip="192.0.2.7").status_code for caller in callers]
    assert codes == [201, 201, 201, 201, 429]
    assert post_report(client, callers[4], ip="192.0.2.8").status_code == 201  # another address


def test_device_registration_is_limited(client, commuter, limits):
    limits(rate_limit_devices="2/hour")
    codes = [client.post("/api/v1/devices", json={**DEVICE, "token": f"fcm-token-{i}-" + "a" * 140}, headers=commuter.headers()).status_code
             for i in range(3)]
    assert codes == [201, 201, 429]


def test_exports_are_limited(client, southwark, limits):
    limits(rate_limit_exports="1/hour")
    assert client.post("/api/v1/exports", json=export_body(), headers=southwark.headers()).status_code == 202
    refused = client.post("/api/v1/exports", json=export_body(), headers=southwark.headers())
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 3000


def test_reads_are_not_limited(client, staff, limits):
    limits(rate_limit_reports="1/minute", rate_limit_reports_ip="1/minute")
    assert all(client.get("/api/v1/reports", headers=staff.headers()).status_code == 200 for _ in range(5))


def test_a_report_is_accepted_while_the_limits_redis_is_down(client, commuter, disposable_redis, limits):
    limits(rate_limit_reports="100/minute")
    disposable_redis.stop()
    assert post_report(client, commuter).status_code == 201


@pytest.mark.parametrize("name, value", [("RATE_LIMIT_REPORTS", "lots"), ("RATE_LIMIT_EXPORTS_IP", "5 per fortnight")])
def test_a_malformed_limit_stops_the_process_at_start_up(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_limits_come_from_the_environment():
    settings = Settings.from_env({"RATE_LIMIT_REPORTS": "10/minute;100/day", "RATE_LIMITS_ENABLED": "false"})
    assert settings.rate_limit_reports == "10/minute;100/day" and settings.rate_limits_enabled is False


def test_a_report_checks_and_counts_all_its_limits_in_one_redis_round_trip(client, commuter, limits):
    from backend.extensions import redis_conn

    limits(rate_limit_reports="60/minute;1000/day", rate_limit_reports_ip="600/minute")  # three windows
    assert post_report(client, commuter).status_code == 201  # the script is loaded once per Redis
    redis_conn.client.config_resetstat()
    assert post_report(client, commuter).status_code == 201
    stats = redis_conn.client.info("commandstats")
    sent = {name: stat["calls"] for name, stat in stats.items()
            if not name.startswith(("cmdstat_config", "cmdstat_info"))  # this test's own
            and name not in ("cmdstat_lindex", "cmdstat_lpush", "cmdstat_ltrim", "cmdstat_expire")}  # the script's
    assert sent == {"cmdstat_evalsha": 1}
    windows = sorted(k.decode() for k in redis_conn.client.keys("LIMITS:LIMITER/safetravel-limits/*"))
    assert [w.rsplit("/", 3)[1:] for w in windows] == [["600", "1", "minute"], ["1000", "1", "day"],
                                                       ["60", "1", "minute"]]
    assert all(redis_conn.client.llen(w) == 2 for w in windows)


def test_a_refused_request_counts_against_no_limit(client, limits):
    limits(rate_limit_reports="3/minute", rate_limit_reports_ip="2/minute")
    phone = Caller("phone-z")
    assert [post_report(client, phone, ip="192.0.2.20").status_code for _ in range(3)] == [201, 201, 429]
    refused = post_report(client, phone, ip="192.0.2.20")
    assert refused.status_code == 429 and "address" in refused.json["message"]
    # The account's window holds only the two reports that went through: one more fits from elsewhere.
    assert [post_report(client, phone, ip="192.0.2.21").status_code for _ in range(2)] == [201, 429]


def test_while_the_limits_redis_is_down_each_process_still_keeps_them(client, commuter, disposable_redis, limits):
    limits(rate_limit_reports="2/minute")
    disposable_redis.stop()
    codes = [post_report(client, commuter).status_code for _ in range(3)]
    assert codes == [201, 201, 429]
