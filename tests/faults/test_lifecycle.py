"""A worker's and the scheduler's life through Redis outages and signals, and `make run`'s supervision:
- a worker holding a job when Redis stops lives on, and the job's effects appear once;
- SIGTERM ends a worker and the scheduler within 10 s whatever state they are in (idle, waiting
  for Redis, mid-job: after the job);
- deploy/local/serve.sh restarts a worker killed with SIGKILL, and the API never stops answering."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests
from sqlalchemy import text

from backend.devserver import RATE_LIMIT_SETTINGS, free_port
from backend.extensions import db
from tests.conftest import DisposableRedis
from tests.factories import Caller, new_key, route_body
from tests.faults.conftest import ROOT, scalar, wait_until, worker_log

STOP_WITHIN_S = 10
STAFF = Caller("lifecycle-staff", role="safety_team")


def post_report(url: str) -> int:
    # An unsafe-route report: its only job is the heatmap's count, which a lock can hold.
    return requests.post(f"{url}/api/v1/reports", json=route_body(), timeout=10,
                         headers=STAFF.headers(**{"Idempotency-Key": new_key()})).status_code


def pending() -> int:
    return scalar("SELECT count(*) FROM outbox WHERE done_at IS NULL")


def counted() -> tuple[int, int]:
    return (scalar("SELECT count(*) FROM reports WHERE heatmap_counted_at IS NOT NULL"),
            scalar("SELECT coalesce(sum(count), 0) FROM heatmap_totals WHERE level = 12"))


def waiting_on_locks() -> int:
    return scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")


class HeldJob:
    """Holds the heatmap's counting (a lock on its totals) so that a worker is caught mid-job."""

    def __init__(self) -> None:
        self.conn = db.engine.connect()
        self.conn.begin()
        self.conn.execute(text("SELECT * FROM heatmap_totals WHERE level = 12 FOR UPDATE"))

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


def serving(platform) -> None:
    """Wait until the platform's worker has run a job (so it was serving when the fault comes)."""
    assert post_report(platform.url) == 201
    wait_until(lambda: pending() == 0, 60, "the worker to serve")


def caught_mid_job(platform) -> HeldJob:
    held = HeldJob()
    assert post_report(platform.url) == 201
    try:
        wait_until(lambda: waiting_on_locks() == 1, 30, "the worker to be caught mid-job")
    except AssertionError:
        held.release()
        print(worker_log(platform))
        raise
    return held


def terminate(platform, name: str) -> float:
    """SIGTERM to the process itself (as Kubernetes sends it to a container's first process)."""
    platform.processes[name].send_signal(signal.SIGTERM)
    return time.monotonic()


def exited_within(platform, name: str, since: float, seconds: float = STOP_WITHIN_S) -> float:
    process = platform.processes[name]
    try:
        process.wait(timeout=max(0.1, seconds - (time.monotonic() - since)))
    except subprocess.TimeoutExpired:
        print(worker_log(platform))
        raise AssertionError(f"{name} still running {seconds} s after SIGTERM") from None
    platform.processes.pop(name)
    return time.monotonic() - since


def test_a_worker_holding_a_job_when_redis_stops_lives_serves_again_and_the_job_counts_once(platform):
    serving(platform)
    held = caught_mid_job(platform)
    platform.redis.stop()
    try:
        during = [post_report(platform.url) for _ in range(5)]  # the API does not need Redis
    finally:
        held.release()  # the job finishes with Redis away: RQ cannot record it, and its loop ends
    time.sleep(6)
    assert platform.processes["worker"].poll() is None, worker_log(platform)
    assert platform.processes["scheduler"].poll() is None, worker_log(platform)
    returned = time.monotonic()
    platform.redis.start()
    wait_until(lambda: pending() == 0, 60, "every report counted")
    caught_up_s = time.monotonic() - returned
    print(f"\nworker caught mid-job by a Redis outage: alive throughout; every report counted {caught_up_s:.1f} s "
          f"after Redis returned")
    assert during == [201] * 5
    assert counted() == (7, 7)  # each report counted once, the held one included
    assert platform.processes["worker"].poll() is None
    assert post_report(platform.url) == 201  # and it serves the new Redis
    wait_until(lambda: counted() == (8, 8), 30, "the worker to serve again")


def test_sigterm_ends_a_worker_and_the_scheduler_waiting_for_redis_within_10_s(platform):
    serving(platform)
    platform.redis.stop()
    time.sleep(4)  # both in their reconnect loops
    assert platform.processes["worker"].poll() is None
    since = terminate(platform, "worker"), terminate(platform, "scheduler")
    took = exited_within(platform, "worker", since[0]), exited_within(platform, "scheduler", since[1])
    print(f"\nSIGTERM while waiting for Redis: worker gone in {took[0]:.1f} s, scheduler in {took[1]:.1f} s")


def test_sigterm_ends_an_idle_worker_and_scheduler_within_10_s(platform):
    serving(platform)
    since = terminate(platform, "worker"), terminate(platform, "scheduler")
    took = exited_within(platform, "worker", since[0]), exited_within(platform, "scheduler", since[1])
    print(f"\nSIGTERM while idle: worker gone in {took[0]:.1f} s, scheduler in {took[1]:.1f} s")


def test_sigterm_mid_job_lets_the_job_finish_then_ends_the_worker_within_10_s(platform):
    serving(platform)
    held = caught_mid_job(platform)
    try:
        since = terminate(platform, "worker")
        time.sleep(2)
        assert platform.processes["worker"].poll() is None  # a warm stop: the job is not abandoned
    finally:
        held.release()
    took = exited_within(platform, "worker", time.monotonic())
    print(f"\nSIGTERM mid-job: the job finished, the worker gone {took:.1f} s after ({time.monotonic() - since:.1f} s "
          f"after the signal)")
    # The held job was finished, not abandoned; tasks the worker had not started yet (the partners'
    # webhooks, on a queue it serves after the heatmap's) wait for the next worker.
    assert scalar("SELECT count(*) FROM outbox WHERE done_at IS NULL AND task = 'heatmap.apply_report'") == 0
    assert counted() == (2, 2)


def test_sigterm_mid_job_with_redis_gone_lets_the_job_finish_then_ends_the_worker(platform):
    serving(platform)
    held = caught_mid_job(platform)
    platform.redis.stop()
    try:
        terminate(platform, "worker")
        time.sleep(1)
        assert platform.processes["worker"].poll() is None
    finally:
        held.release()
    exited_within(platform, "worker", time.monotonic())
    assert counted() == (2, 2)


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process under ``pid``, parents before their children."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        try:
            found.append((child, (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except OSError:
            continue
        todo.extend(children.get(child, []))
    return found


def python_worker(serve: subprocess.Popen) -> int | None:
    """The worker's process (the first: RQ forks a scheduler process under it, with the same command line)."""
    return next((pid for pid, cmd in descendants(serve.pid) if cmd.rstrip().endswith("-m worker")), None)


def test_make_run_restarts_a_worker_killed_with_sigkill_and_the_api_keeps_answering(settings, real_commits, tmp_path):
    redis = DisposableRedis()
    redis.start()
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": redis.url, "PORT": str(port),
           "APP_ENV": "development", "EXPORT_DIR": str(tmp_path / "exports"),
           **{name.upper(): "1000000/minute" for name in RATE_LIMIT_SETTINGS}}
    serve = subprocess.Popen([str(ROOT / "deploy/local/serve.sh")], cwd=ROOT, env=env, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: "SafeTravel is running" in (tmp_path / "serve.log").read_text(), 60, "make run to start")
        first = python_worker(serve)
        assert first is not None
        os.kill(first, signal.SIGKILL)
        answers = []
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            answers.append(post_report(url))
            time.sleep(0.1)
        wait_until(lambda: python_worker(serve) not in (None, first), 30, "the worker to be restarted")
        try:
            wait_until(lambda: pending() == 0, 60, "the restarted worker to count the reports")
        except AssertionError:
            print(db.session.execute(text("SELECT id, task, enqueued_at, attempts, last_error FROM outbox "
                                          "WHERE done_at IS NULL")).all())
            print("\n".join(line for line in (tmp_path / "serve.log").read_text().splitlines()
                             if "maintenance" not in line and "sweep_outbox" not in line)[-8000:])
            raise
        assert set(answers) == {201}
        assert serve.poll() is None
        assert "worker exited (status" in (tmp_path / "serve.log").read_text()
        assert counted() == (len(answers), len(answers))

        children = [pid for pid, _ in descendants(serve.pid)]
        serve.send_signal(signal.SIGTERM)  # the only way it ends
        serve.wait(timeout=30)
        assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []
        assert "stopped" in (tmp_path / "serve.log").read_text()
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
        redis.stop()
        log.close()
