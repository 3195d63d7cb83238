"""``make bench-load``: a mixed workload on loopback, bounded in time, with locust in headless mode.

The platform as it runs in production, on a benchmark database: gunicorn (deploy/gunicorn.conf.py),
one RQ worker (outbox relay included), London's boroughs, the demo's safe hubs and 20,000 demo
reports. Locust's users are commuters (reporting, finding the nearest open hubs, moving their
devices) and safety-team dashboards (pulling heatmap tiles): bench/locustfile.py.

It prints throughput, p50 and p99 per endpoint and the error count, then checks that nothing was
lost: every report answered 201 is in PostgreSQL exactly once and, once the worker caught up, counted
into the heatmap. Rate limits are set high (one address plays every user) but still checked.

Capacity (``--steps 10,20,40,80``, and ``--base <commit>``): the same load in steps of users, each for
``--seconds``, after 15 s of warm-up that is not counted; the capacity is the highest throughput of a
step whose p99 stays at or under 300 ms with no error. With ``--base``, the same steps run in the
same invocation against the code of that commit, checked out in a git worktree
(.local/base-<commit>), with its own API and worker on ports of their own, its own database
(``<database>_base_load``, migrated by its own migrations) and its own Redis database, on the same
PostgreSQL and Redis servers; this checkout's run comes first, then the base's, and the two
capacities are printed with their ratio. About (steps x seconds + 3 min) per tree.
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
from urllib.request import urlopen

import psycopg
from sqlalchemy.engine import make_url

from backend.config import libpq_dsn, prepare_process_environment
from backend.devserver import ensure_database, free_port, scratch_database, start_api

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent


P99_LIMIT_MS = 300.0  # capacity: the most requests/s with a p99 at or under this
WARM_UP_S = 15  # the first step's load, before the steps, not counted (processes and caches warm up)


def in_tree(tree: Path) -> dict[str, str]:
    """The environment that runs a checkout's own code with this virtualenv (its packages first)."""
    return {**os.environ, "PYTHONPATH": str(tree)} if tree != ROOT else dict(os.environ)


def prepare(url: str, dsn: str, tree: Path = ROOT) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE reports, users, outbox, devices, alerts, alert_deliveries, clusters, cluster_reports, "
                     "heatmap_cells, heatmap_totals, heatmap_reporters, heatmap_retained, safe_hubs CASCADE")
    env = {**in_tree(tree), "DATABASE_URL": url}
    for command in (["councils", "load"], ["demo", "seed", "--reports", "20000"]):
        subprocess.run([str(VENV_BIN / "safetravel"), *command], env=env, cwd=tree, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_worker(url: str, redis_url: str, tree: Path = ROOT) -> subprocess.Popen:
    env = {**in_tree(tree), "DATABASE_URL": url, "REDIS_URL": redis_url, "APP_ENV": "development"}
    return subprocess.Popen([sys.executable, "-m", "worker"], cwd=tree, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def start_base_api(tree: Path, url: str, redis_url: str, port: int) -> subprocess.Popen:
    """The base commit's API as it shipped then (gunicorn with its deploy/gunicorn.conf.py)."""
    from backend.config import RATE_LIMIT_SETTINGS

    generous = {name.upper(): "1000000/minute" for name in RATE_LIMIT_SETTINGS}
    env = {**in_tree(tree), "DATABASE_URL": url, "REDIS_URL": redis_url, "PORT": str(port), "APP_ENV": "development",
           **generous}
    process = subprocess.Popen([str(VENV_BIN / "gunicorn"), "--config", "deploy/gunicorn.conf.py", "backend.wsgi:app"],
                               cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    for _ in range(300):
        try:
            with urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except OSError:
            time.sleep(0.1)
    os.killpg(process.pid, 9)
    raise RuntimeError("the base's gunicorn did not start")


def base_worktree(commit: str) -> Path:
    """The base commit checked out in a git worktree of this repository (made once, reused)."""
    sha = subprocess.run(["git", "rev-parse", "--verify", f"{commit}^{{commit}}"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    tree = ROOT / ".local" / f"base-{sha[:12]}"
    if not (tree / "backend").is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return tree


def capacity(label: str, tree: Path, steps: list[int], seconds: int) -> dict:
    """The same load in steps of users against one checkout's API and worker; the capacity is the
    highest requests/s of a step with p99 <= P99_LIMIT_MS and no error."""
    base = tree != ROOT
    if base:
        target = make_url(os.environ["DATABASE_URL"])
        url = target.set(database=f"{target.database}_base_load").render_as_string(hide_password=False)
        ensure_database(url)
        subprocess.run([str(VENV_BIN / "safetravel"), "migrate"], env={**in_tree(tree), "DATABASE_URL": url},
                       cwd=tree, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dsn = libpq_dsn(url)
    else:
        url, dsn = scratch_database(os.environ["DATABASE_URL"], "bench_load")
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + ("/4" if base else "/3")
    print(f"{label}: preparing boroughs, demo hubs and 20,000 demo reports ...", flush=True)
    prepare(url, dsn, tree)
    subprocess.run(["redis-cli", "-u", redis_url, "FLUSHDB"], check=False, stdout=subprocess.DEVNULL)
    port = free_port()
    api = start_base_api(tree, url, redis_url, port) if base else start_api(url, redis_url, port)
    worker = start_worker(url, redis_url, tree)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="safetravel-load-") as tmp:  # warm-up, not counted
            run_locust(f"http://127.0.0.1:{port}", steps[0], WARM_UP_S, Path(tmp))
        wait_for_worker(dsn, 120)
        for users in steps:
            with tempfile.TemporaryDirectory(prefix="safetravel-load-") as tmp:
                run_locust(f"http://127.0.0.1:{port}", users, seconds, Path(tmp))
                stats = read_stats(Path(tmp) / "load_stats.csv")
            total = next(row for row in stats if row["Name"] == "Aggregated")
            results.append({"users": users, "per_s": round(float(total["Requests/s"]), 1),
                            "p50_ms": float(total["50%"]), "p99_ms": float(total["99%"]),
                            "errors": int(total["Failure Count"])})
            print(f"  {label}: {users} users: {results[-1]['per_s']} requests/s, p50 {results[-1]['p50_ms']:.0f} ms, "
                  f"p99 {results[-1]['p99_ms']:.0f} ms, {results[-1]['errors']} errors", flush=True)
            wait_for_worker(dsn, 120)  # each step starts without the last one's backlog
    finally:
        for process in (api, worker):
            os.killpg(process.pid, 15)
            process.wait(timeout=30)
    within = [r["per_s"] for r in results if r["p99_ms"] <= P99_LIMIT_MS and not r["errors"]]
    return {"label": label, "steps": results, "capacity_per_s": max(within, default=0.0)}


def compare(args: argparse.Namespace) -> None:
    steps = [int(n) for n in args.steps.split(",")]
    runs = [capacity("this checkout", ROOT, steps, args.seconds)]
    if args.base:
        runs.append(capacity(f"base {args.base}", base_worktree(args.base), steps, args.seconds))
    print(f"\ncapacity at p99 <= {P99_LIMIT_MS:.0f} ms ({args.seconds} s per step, users {args.steps}):")
    for run in runs:
        print(f"  {run['label']}: {run['capacity_per_s']} requests/s")
    result = {"seconds": args.seconds, "runs": runs}
    if len(runs) == 2:
        ratio = runs[0]["capacity_per_s"] / runs[1]["capacity_per_s"] if runs[1]["capacity_per_s"] else None
        result["ratio"] = round(ratio, 2) if ratio is not None else None
        print(f"  ratio: {result['ratio']} (target >= 2)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"load-capacity-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written to {out.relative_to(ROOT)}")


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
    parser.add_argument("--seconds", type=int, default=60, help="how long the load (or each step of it) runs")
    parser.add_argument("--steps", help="user counts, e.g. 10,20,40,80: the capacity at p99 <= 300 ms")
    parser.add_argument("--base", help="a commit to measure the same steps against, in the same run")
    args = parser.parse_args()
    if args.steps or args.base:
        args.steps = args.steps or "10,20,40,80"
        compare(args)
        return

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
