"""Fault tests (``make test-faults``; ``make test`` runs them too): the platform as it runs in production,
gunicorn and an RQ worker in processes of their own, on the test database and a Redis of the test's
own, while a client sends reports steadily. Real commits throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from backend.devserver import free_port, start_api
from backend.devtokens import emulator_token
from backend.extensions import db
from tests.conftest import DisposableRedis
from tests.factories import report_body

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


@dataclass
class Platform:
    url: str
    redis: DisposableRedis
    database_url: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start_worker(self, name: str = "worker", module: str = "worker", **extra_env: str) -> subprocess.Popen:
        env = {**os.environ, "DATABASE_URL": self.database_url, "REDIS_URL": self.redis.url, "APP_ENV": "development",
               **extra_env}
        self.log = open(Path(self.redis.dir) / "worker.log", "a")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        return self.processes[name]

    def start_scheduler(self) -> subprocess.Popen:
        env = {**os.environ, "DATABASE_URL": self.database_url, "REDIS_URL": self.redis.url, "APP_ENV": "development"}
        self.processes["scheduler"] = subprocess.Popen(
            [sys.executable, "-m", "worker.scheduler"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        return self.processes["scheduler"]

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # stuck (e.g. a drill that failed mid-way): never left running
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            raise


@pytest.fixture
def platform(settings, real_commits, monkeypatch, tmp_path) -> Iterator[Platform]:
    monkeypatch.setenv("EXPORT_DIR", str(tmp_path / "exports"))  # shared by the API and the workers
    redis = DisposableRedis(persistent=True)
    redis.start()
    port = free_port()
    platform = Platform(f"http://127.0.0.1:{port}", redis, settings.database_url)
    platform.processes["api"] = start_api(settings.database_url, redis.url, port, log=Path(redis.dir) / "api.log")
    platform.start_worker()
    platform.start_scheduler()
    try:
        yield platform
    finally:  # every process stopped, even when a drill failed or one of them will not stop
        stuck = []
        for name in list(platform.processes):
            try:
                platform.kill(name, signal.SIGTERM)
            except (subprocess.TimeoutExpired, ProcessLookupError) as error:
                stuck.append(f"{name}: {error!r}")
        redis.stop()
        db.session.remove()
        assert not stuck, f"processes that did not stop on SIGTERM (killed): {stuck}"


class Traffic(threading.Thread):
    """A phone app sending reports one after another; each is retried with its Idempotency-Key until
    it is answered 201 (as the app's offline queue does). Records every answer."""

    def __init__(self, url: str, pause_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.pause_s = pause_s
        self.headers = {"Authorization": f"Bearer {emulator_token('fault-commuter', lifetime_s=3600)}"}
        self.created: dict[str, str] = {}  # Idempotency-Key -> report id answered 201
        self.statuses: Counter = Counter()
        self.bad_bodies: list[str] = []
        self.running = True
        self.session = requests.Session()

    def run(self) -> None:
        while self.running:
            key = str(uuid.uuid4())
            body = report_body(location={"type": "Point", "coordinates": [-0.10, 51.50]})
            while self.running or key not in self.created:
                try:
                    response = self.session.post(f"{self.url}/api/v1/reports", json=body, timeout=10,
                                                 headers={**self.headers, "Idempotency-Key": key})
                except requests.RequestException:
                    self.statuses["connection error"] += 1
                    time.sleep(0.2)
                    continue
                self.statuses[response.status_code] += 1
                if response.status_code == 201:
                    self.created[key] = response.json()["id"]
                    break
                if response.status_code >= 500 and (
                        "Traceback" in response.text or response.headers.get("Content-Type") != "application/json"):
                    self.bad_bodies.append(response.text[:500])
                time.sleep(float(response.headers.get("Retry-After", "0.2")) / 10)  # hurried, for the test
            time.sleep(self.pause_s)

    def stop(self) -> None:
        self.running = False
        self.join(timeout=60)


def api_log(platform: Platform) -> str:
    return (Path(platform.redis.dir) / "api.log").read_text()[-6000:]


def worker_log(platform: Platform) -> str:
    return (Path(platform.redis.dir) / "worker.log").read_text()[-3000:]


def wait_until(condition, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def scalar(sql: str, **params):
    value = db.session.scalar(text(sql), params)
    db.session.rollback()
    return value
