"""``make bench-load``: a mixed workload on loopback, bounded in time, with locust in headless mode.

The platform as it runs in production, on a benchmark database: gunicorn (deploy/gunicorn.conf.py),
one RQ worker (outbox relay included), London's boroughs, the demo's safe hubs and 20,000 demo
reports. Locust's users are commuters (reporting, finding the nearest open hubs, moving their
devices) and safety-team dashboards (pulling heatmap tiles): bench/locustfile.py.

It prints throughput, p50 and p99 per endpoint and the error count, then checks that nothing was
lost: every report answered 201 is in PostgreSQL exactly once and, once the worker caught up, counted
into the heatmap. Rate limits are set high (one address plays every user) but still checked.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from backend.config import prepare_process_environment
from backend.devserver import free_port, scratch_database, start_api

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent


def prepare(url: str, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE reports, users, outbox, devices, alerts, alert_deliveries, clusters, cluster_reports, "
                     "heatmap_cells, heatmap_totals, heatmap_reporters, heatmap_retained, safe_hubs CASCADE")
    env = {**os.environ, "DATABASE_URL": url}
    for command in (["councils", "load"], ["demo", "seed", "--reports", "20000"]):
        subprocess.run([str(VENV_BIN / "safetravel"), *command], env=env, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_worker(url: str, redis_url: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "APP_ENV": "development"}
    return subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def run_locust(host: str, users: int, seconds: int, workdir: Path) -> Path:
    env = {**os.environ, "LOAD_ANSWERED_FILE": str(workdir / "answered.txt"),
           "LOAD_IN_FLIGHT_FILE": str(workdir / "in_flight.json")}
    subprocess.run([str(VENV_BIN / "locust"), "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
                    "--users", str(users), "--spawn-rate", str(max(1, users // 5)), "--run-time", f"{seconds}s",
                    "--host", host, "--csv", str(workdir / "load"), "--only-summary", "--loglevel", "WARNING"],
                   cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return workdir / "answered.txt"


def read_stats(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def wait_for_worker(dsn: str, timeout_s: int = 300) -> float:
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.perf_counter() - started < timeout_s:
            if conn.execute("SELECT count(*) FROM outbox WHERE done_at IS NULL").fetchone()[0] == 0:
                return time.perf_counter() - started
            time.sleep(0.5)
    return -1


def retry_cut_off(host: str, in_flight: dict[str, dict]) -> dict:
    """Send the reports the run's end cut off again, with their own Idempotency-Key, as the app's queue
    does: one that had been stored is answered with it (a replay); one that had not is created now."""
    import requests

    from backend.devtokens import emulator_token

    outcome = {"cut_off": len(in_flight), "replayed": 0, "created_on_retry": 0, "other": 0}
    for key, request in in_flight.items():
        response = requests.post(f"{host}/api/v1/reports", json=request["body"], timeout=30, headers={
            "Authorization": f"Bearer {emulator_token(request['uid'])}", "Idempotency-Key": key})
        if response.status_code == 201:
            outcome["replayed" if response.headers.get("Idempotent-Replayed") == "true" else "created_on_retry"] += 1
        else:
            outcome["other"] += 1
    return outcome


def check_reports(dsn: str, answered: list[str]) -> dict:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("""
            SELECT r.id::text, r.heatmap_counted_at IS NOT NULL FROM reports r
            JOIN users u ON u.id = r.author_id WHERE u.firebase_uid LIKE 'load-%%'
        """).fetchall()
    stored = {report_id: counted for report_id, counted in rows}
    return {
        "answered_201": len(answered),
        "distinct_answered": len(set(answered)),
        "in_database": len(set(answered) & stored.keys()),
        "lost": len(set(answered) - stored.keys()),
        "unanswered_in_database": len(stored.keys() - set(answered)),
        "in_heatmap": sum(1 for report_id in set(answered) if stored.get(report_id)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50, help="simulated users (4 commuters : 1 dashboard)")
    parser.add_argument("--seconds", type=int, default=60, help="how long the load runs")
    args = parser.parse_args()

    url, dsn = scratch_database(os.environ["DATABASE_URL"], "bench_load")
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/3"  # a Redis database of its own
    print("preparing: boroughs, demo hubs and 20,000 demo reports ...", flush=True)
    prepare(url, dsn)
    subprocess.run(["redis-cli", "-u", redis_url, "FLUSHDB"], check=False, stdout=subprocess.DEVNULL)
    port = free_port()
    api = start_api(url, redis_url, port)
    worker = start_worker(url, redis_url)
    try:
        print(f"load: {args.users} users for {args.seconds} s on http://127.0.0.1:{port} ...", flush=True)
        with tempfile.TemporaryDirectory(prefix="safetravel-load-") as tmp:
            answered_file = run_locust(f"http://127.0.0.1:{port}", args.users, args.seconds, Path(tmp))
            stats = read_stats(Path(tmp) / "load_stats.csv")
            answered = [line for line in answered_file.read_text().splitlines() if line] if answered_file.exists() else []
            in_flight_file = Path(tmp) / "in_flight.json"
            in_flight = json.loads(in_flight_file.read_text()) if in_flight_file.exists() else {}
        before_retry = check_reports(dsn, answered)
        retried = retry_cut_off(f"http://127.0.0.1:{port}", in_flight)
        drained_s = wait_for_worker(dsn)
        reports = {**check_reports(dsn, answered), "unanswered_before_retry": before_retry["unanswered_in_database"],
                   **retried}
    finally:
        for process in (api, worker):
            os.killpg(process.pid, 15)
            process.wait(timeout=30)

    rows = []
    print(f"\n{'endpoint':28} {'requests':>9} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>7}")
    for row in stats:
        name = row["Name"] if row["Name"] != "Aggregated" else "all"
        entry = {"endpoint": name, "requests": int(row["Request Count"]), "per_s": round(float(row["Requests/s"]), 1),
                 "p50_ms": float(row["50%"]), "p99_ms": float(row["99%"]), "errors": int(row["Failure Count"])}
        rows.append(entry)
        print(f"{name:28} {entry['requests']:>9,} {entry['per_s']:>7} {entry['p50_ms']:>7.0f} {entry['p99_ms']:>7.0f} "
              f"{entry['errors']:>7}")
    print(f"\nreports answered 201: {reports['answered_201']:,}; in PostgreSQL: {reports['in_database']:,}; "
          f"lost: {reports['lost']}; counted into the heatmap: {reports['in_heatmap']:,} "
          f"(worker caught up {drained_s:.1f} s after the load)")
    print(f"cut off in flight by the end of the run: {reports['cut_off']} ({reports['unanswered_before_retry']} of them "
          f"already stored); sent again with their keys: {reports['replayed']} answered with the stored report, "
          f"{reports['created_on_retry']} created now, {reports['other']} otherwise; stored but never answered "
          f"after that: {reports['unanswered_in_database'] - reports['replayed'] - reports['created_on_retry']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"load-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"users": args.users, "seconds": args.seconds, "endpoints": rows, "reports": reports,
                               "worker_drained_s": drained_s}, indent=2))
    print(f"written to {out.relative_to(ROOT)}")
    if reports["lost"] or reports["answered_201"] != reports["distinct_answered"] or reports["other"] \
            or reports["unanswered_before_retry"] > reports["replayed"]:
        sys.exit("REPORTS LOST OR DUPLICATED")


if __name__ == "__main__":
    prepare_process_environment()
    main()
