"""Reads on a hot standby (DATABASE_READ_URL): a real streaming replica of the test stack's PostgreSQL,
made with pg_basebackup on loopback. The heatmap reads there while it is fit, falls back to the primary
when it lags more than READ_MAX_LAG_S or stops, and a report written on the primary reaches it in
seconds; /metrics shows the lag."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from backend.config import libpq_dsn
from backend.devserver import free_port
from backend.extensions import db
from tests.heatmap.helpers import add_report
from tests.test_metrics import scrape, value

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "deploy" / "local" / "stack.sh"
NIGHT = datetime(2026, 11, 20, 22, tzinfo=timezone.utc)


def stack(*args: str, port: int) -> None:
    subprocess.run([str(STACK), *args], check=True, timeout=300, capture_output=True,
                   env={**os.environ, "SAFETRAVEL_PG_PORT": str(port)})


@pytest.fixture
def standby(app, settings, real_commits):
    """A hot standby of the test cluster; the app reads there (READ_MAX_LAG_S 60 s to begin with)."""
    primary = make_url(settings.database_url)
    if primary.host not in ("127.0.0.1", "localhost") or not shutil.which("bash"):
        pytest.skip("needs the local stack's PostgreSQL")
    port = free_port()
    stack("replica-start", str(port), port=primary.port)
    url = primary.set(port=port).render_as_string(hide_password=False)
    db.configure(dataclasses.replace(settings, database_read_url=url, read_max_lag_s=60.0))
    try:
        yield psycopg.connect(libpq_dsn(url), autocommit=True)
    finally:
        db.configure(settings)  # the replica engine disposed, its monitor stopped
        stack("replica-stop", port=primary.port)


def on_the_map(client, staff) -> int:
    response = client.get("/api/v1/heatmap", query_string={"zoom": 8}, headers=staff.headers())
    assert response.status_code == 200
    return sum(f["properties"]["count"] for f in response.json["features"])


def eventually(predicate, seconds: float = 10.0) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < seconds, "not within the time allowed"
        time.sleep(0.05)
    return time.monotonic() - started


def counted(app, author: str, lon: float) -> None:
    """A report written on the primary and counted into its heatmap, committed (real_commits)."""
    with app.app_context():
        add_report(author, lon, 51.4627, NIGHT)
        db.session.remove()


def test_the_heatmap_reads_on_the_standby_and_falls_back_to_the_primary(app, settings, client, staff, standby):
    def fit() -> bool:
        db.replica.check()
        return db.replica.fresh

    eventually(fit, 30)
    counted(app, "ann", -0.1145)
    # Written on the primary, on the standby's heatmap within seconds.
    assert eventually(lambda: on_the_map(client, staff) == 1, 5) < 5

    # Replay paused: what the primary has now is not on the standby, and the heatmap does not show it:
    # it is read there.
    standby.execute("SELECT pg_wal_replay_pause()")
    counted(app, "ben", -0.1150)
    db.replica.check()
    assert db.replica.fresh and db.replica.lag_s is not None and db.replica.lag_s < 60
    assert on_the_map(client, staff) == 1
    metrics = scrape(client)
    assert value(metrics, "safetravel_read_replica_in_use") == 1
    assert 0 <= value(metrics, "safetravel_read_replica_lag_seconds") < 60
    standby.execute("SELECT pg_wal_replay_resume()")
    assert eventually(lambda: on_the_map(client, staff) == 2, 5) < 5

    # More than READ_MAX_LAG_S behind: reads go to the primary.
    db.configure(dataclasses.replace(settings, database_read_url=db.replica.engine.url.render_as_string(hide_password=False),
                                     read_max_lag_s=0.5))
    standby.execute("SELECT pg_wal_replay_pause()")
    counted(app, "cat", -0.1160)
    time.sleep(1.0)
    db.replica.check()
    assert not db.replica.fresh and db.replica.lag_s > 0.5
    assert on_the_map(client, staff) == 3
    metrics = scrape(client)
    assert value(metrics, "safetravel_read_replica_in_use") == 0
    assert value(metrics, "safetravel_read_replica_lag_seconds") > 0.5
    standby.execute("SELECT pg_wal_replay_resume()")
    eventually(fit, 10)

    # The standby stops: reads go to the primary, answered all along.
    standby.close()
    stack("replica-stop", port=make_url(settings.database_url).port)
    db.replica.check()
    assert not db.replica.fresh and db.replica.lag_s is None
    assert on_the_map(client, staff) == 3
    assert math.isnan(scrape(client)["safetravel_read_replica_lag_seconds"][()])


def test_the_read_settings_are_checked_and_optional():
    from backend.config import ConfigError, Settings

    assert Settings.from_env({}).database_read_url is None
    settings = Settings.from_env({"DATABASE_READ_URL": "postgres://reader@standby:5432/safetravel", "READ_MAX_LAG_S": "2.5"})
    assert settings.database_read_url == "postgresql+psycopg://reader@standby:5432/safetravel"
    assert settings.read_max_lag_s == 2.5
    for bad in ("soon", "0", "-1"):
        with pytest.raises(ConfigError, match="READ_MAX_LAG_S"):
            Settings.from_env({"READ_MAX_LAG_S": bad})
