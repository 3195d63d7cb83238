"""``make bench-ingest``: reports per second through the API next to raw single-row INSERTs.

In one run, on a database of its own (``<DATABASE_URL's database>_bench``) and a Redis database
of its own:

- **raw**: C threads, each doing ``INSERT INTO reports ... ; COMMIT`` through psycopg, one row at a
  time: the floor an API cannot beat on this machine;
- **api**: gunicorn as shipped (deploy/gunicorn.conf.py; ``--server granian``: granian in its shape), C client threads on loopback, each
  POSTing a report with its own Idempotency-Key and a Firebase emulator token, keep-alive.

The phases alternate for several rounds (the machine is shared and noisy) and the medians are
reported, with the API/raw ratio and p50/p99 latency. By default the RQ worker is not running, so the
figures are the ingestion path alone (each report still records its follow-up tasks in the outbox).

``--with-worker`` runs the platform as ``make run`` does (the API, an RQ worker with its outbox relay,
the scheduler), abuse limits off (RATE_LIMITS_ENABLED=false); each API phase posts its reports, then
waits until the heatmap is no more than 2 s behind (the oldest uncounted report's task is under 2 s old).
"Sustained" is reports / (posting + that wait). Then a backlog round: the worker is paused (SIGSTOP)
while ``--requests`` reports are posted, resumed, and its CPU per report measured until every outbox
task is done (the worker's cost under a backlog, when its batches are full).

Both modes print CPU milliseconds per report, from the processes' own accounting (/proc/<pid>/stat:
user + system time of the process tree, reaped children included, over the phase): the API's
(gunicorn master and workers), the worker's (worker, relay thread, scheduler; with ``--with-worker``)
and PostgreSQL's (the postmaster's whole tree), beside PostgreSQL's CPU per raw insert.

Targets (issue 2): API throughput at least half the raw figure; p99 under 50 ms. Issue 18: API CPU at
most 0.8 ms per report, worker CPU at most 1 ms per report, sustained with the worker at least 0.3x raw.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
from redis import Redis

from backend.config import prepare_process_environment
from backend.devserver import free_port, scratch_database, start_api
from backend.devtokens import emulator_token
from bench.pgprofile import PgProfile

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@dataclass
class Phase:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LAG_TARGET_S = 2.0


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks: user + system, its own and its reaped children's)."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        # After the command: state, ppid, ..., utime (14th field of the line), stime, cutime, cstime.
        table[int(entry.name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    return table


def tree_cpu_ms(*roots: int) -> float:
    """CPU milliseconds used so far by the processes under ``roots`` (themselves included)."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, seen = 0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        total += table[pid][1]
        todo.extend(children.get(pid, ()))
    return total * 1000 / CLOCK_TICKS


def postmaster_pid(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        return _process_table()[backend][0]  # while the backend lives


class Poller:
    """The bench's own look at the outbox, on one connection (a new connection per look cost PostgreSQL
    a backend's start-up each time, counted in its CPU per report)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: psycopg.Connection | None = None

    def execute(self, sql: str) -> tuple:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.dsn, autocommit=True, application_name="bench-poll")
        return self.conn.execute(sql).fetchone()


_pollers: dict[str, Poller] = {}


def _poll(dsn: str, sql: str) -> tuple:
    return _pollers.setdefault(dsn, Poller(dsn)).execute(sql)


def heatmap_lag(dsn: str) -> tuple[int, float]:
    """(uncounted reports' tasks, age in seconds of the oldest of them)."""
    pending, age = _poll(dsn, "SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0) "
                              "FROM outbox WHERE done_at IS NULL AND task = 'heatmap.apply_report'")
    return pending, float(age)


def wait_for_heatmap(dsn: str, timeout_s: float = 600) -> float:
    """Seconds until the heatmap is no more than LAG_TARGET_S behind."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        pending, age = heatmap_lag(dsn)
        if pending == 0 or age <= LAG_TARGET_S:
            return time.perf_counter() - t0
        time.sleep(0.1)
    raise RuntimeError(f"the heatmap was still {age:.0f} s behind after {timeout_s:.0f} s ({pending} tasks)")


def start_platform_process(module: str, database_url: str, redis_url: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "APP_ENV": "development"}
    log = open(os.environ["BENCH_WORKER_LOG"], "a") if os.environ.get("BENCH_WORKER_LOG") else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def outbox_pending(dsn: str) -> int:
    return _poll(dsn, "SELECT count(*) FROM outbox WHERE done_at IS NULL")[0]


def wait_for_outbox(dsn: str, timeout_s: float = 120) -> None:
    t0 = time.perf_counter()
    while outbox_pending(dsn) and time.perf_counter() - t0 < timeout_s:
        time.sleep(0.1)


def backlog_round(port: int, args, tokens: list[str], dsn: str, workers: list[subprocess.Popen],
                  postgres: int, profile: PgProfile | None = None) -> dict:
    """The worker paused while reports pile up, then its CPU per report until every task is done."""
    while outbox_pending(dsn):
        time.sleep(0.2)
    worker = workers[0]
    idle0, t_idle = tree_cpu_ms(*(w.pid for w in workers)), time.perf_counter()
    time.sleep(5)
    idle_ms_per_s = (tree_cpu_ms(*(w.pid for w in workers)) - idle0) / (time.perf_counter() - t_idle)
    os.killpg(worker.pid, signal.SIGSTOP)
    profiles = {}
    try:
        if profile:
            profile.start()
        pg_posting0 = tree_cpu_ms(postgres)
        api_phase(port, args.concurrency, args.requests, tokens)
        pg_posting = tree_cpu_ms(postgres) - pg_posting0
        if profile:
            profile.stop()
            profiles["posting"] = profile.report(args.requests, "posting, the worker paused (the ingest alone)")
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    if profile:
        profile.start()
    cpu0, pg0, t0 = tree_cpu_ms(worker.pid), tree_cpu_ms(postgres), time.perf_counter()
    while outbox_pending(dsn):
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    cpu_ms, pg_ms = tree_cpu_ms(worker.pid) - cpu0, tree_cpu_ms(postgres) - pg0
    if profile:
        profile.stop()
        profiles["draining"] = profile.report(args.requests, "the worker draining the backlog")
    print(f"backlog: {args.requests} reports' tasks done in {seconds:.1f} s after the worker resumed "
          f"({args.requests / seconds:.0f} reports/s); CPU ms per report: worker {cpu_ms / args.requests:.2f}, "
          f"PostgreSQL {pg_ms / args.requests:.2f} (while posting with the worker paused: "
          f"{pg_posting / args.requests:.2f}); idle, the worker and scheduler use {idle_ms_per_s:.0f} ms/s",
          flush=True)
    return {"reports": args.requests, "seconds": round(seconds, 2),
            "postgres_cpu_ms_per_report_posting": round(pg_posting / args.requests, 3),
            **({"pg_profile": profiles} if profiles else {}),
            "worker_cpu_ms_per_report": round(cpu_ms / args.requests, 3),
            "postgres_cpu_ms_per_report": round(pg_ms / args.requests, 3),
            "idle_worker_cpu_ms_per_s": round(idle_ms_per_s, 1)}


def report_body(i: int) -> dict:
    occurred = datetime.now(timezone.utc) - timedelta(minutes=30 + i % 600)
    return {
        "category": ("harassment", "spiking", "unsafe_route")[i % 3],
        "occurred_at": occurred.isoformat().replace("+00:00", "Z"),
        "location": {"type": "Point", "coordinates": [-0.1145 + (i % 97) * 1e-4, 51.4627 + (i % 89) * 1e-4]},
        "accuracy_m": 20,
        "transport": {"mode": "tube", "line": "Victoria", "station": "Brixton"},
        "factors": ["poor_lighting"],
        "description": "Someone followed me from the platform to the exit.",
        **({"route": {"type": "LineString", "coordinates": [[-0.1145, 51.4627], [-0.1120, 51.4641]]}}
           if i % 3 == 2 else {}),
    }


def truncate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        # The worker's results too: a run's heatmap and clusters start empty, as its reports do.
        conn.execute("TRUNCATE report_status_changes, reports, users, outbox, heatmap_cells, heatmap_totals, "
                     "heatmap_reporters, heatmap_public_units, heatmap_council_cells, heatmap_retained, "
                     "heatmap_council_retained, clusters, cluster_reports, alerts RESTART IDENTITY CASCADE")
        conn.execute("VACUUM ANALYZE reports")


def run_threads(concurrency: int, total: int, work) -> Phase:
    """Run ``work(i)`` ``total`` times over ``concurrency`` threads; time each call."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(total))
    start_gate = threading.Barrier(concurrency + 1)

    def loop(worker_state: dict) -> None:
        nonlocal errors
        local_lat, local_err = [], 0
        start_gate.wait()
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            t0 = time.perf_counter()
            ok = work(i, worker_state)
            local_lat.append((time.perf_counter() - t0) * 1000)
            local_err += 0 if ok else 1
        with lock:
            latencies.extend(local_lat)
            errors += local_err

    states = [{} for _ in range(concurrency)]
    threads = [threading.Thread(target=loop, args=(s,)) for s in states]
    for t in threads:
        t.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for state in states:
        if "close" in state:
            state["close"]()
    return Phase("", total, elapsed, latencies, errors)


def raw_insert_phase(dsn: str, concurrency: int, total: int, author_ids: list[str]) -> Phase:
    sql = (
        "INSERT INTO reports (author_id, category, occurred_at, location, accuracy_m, route, mode, line, station, "
        "factors, description, idempotency_key, request_hash) VALUES (%s, %s, %s, "
        "ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s, ST_GeomFromText(%s, 4326), %s, %s, %s, %s, %s, %s, %s)"
    )

    def work(i: int, state: dict) -> bool:
        if "conn" not in state:
            state["conn"] = psycopg.connect(dsn, autocommit=False, application_name="bench-raw")
            state["close"] = state["conn"].close
        body = report_body(i)
        route = body.get("route")
        conn = state["conn"]
        conn.execute(sql, (
            author_ids[i % len(author_ids)], body["category"], body["occurred_at"],
            *body["location"]["coordinates"], body["accuracy_m"],
            ("LINESTRING(" + ", ".join(f"{x} {y}" for x, y in route["coordinates"]) + ")") if route else None,
            "tube", "Victoria", "Brixton", body["factors"], body["description"], uuid.uuid4(), b"\x00" * 32,
        ))
        conn.commit()
        return True

    return run_threads(concurrency, total, work)


def api_phase(port: int, concurrency: int, total: int, tokens: list[str]) -> Phase:
    bodies = [json.dumps(report_body(i)) for i in range(1000)]

    def work(i: int, state: dict) -> bool:
        if "conn" not in state:
            state["conn"] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            state["close"] = state["conn"].close
        conn = state["conn"]
        conn.request("POST", "/api/v1/reports", body=bodies[i % len(bodies)], headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {tokens[i % len(tokens)]}",
            "Idempotency-Key": str(uuid.uuid4()),
        })
        response = conn.getresponse()
        response.read()
        return response.status == 201

    return run_threads(concurrency, total, work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=4000, help="per phase and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", choices=("gunicorn", "granian"), default="gunicorn",
                        help="the API's WSGI server (gunicorn as shipped, or granian in the same shape)")
    parser.add_argument("--with-worker", action="store_true",
                        help="run the worker, relay and scheduler too (abuse limits off); wait for the heatmap")
    parser.add_argument("--pg-profile", action="store_true",
                        help="where PostgreSQL's CPU goes: by process, by statement (pg_stat_statements), by table, "
                             "for the last round's API phase and the backlog round's halves (bench/pgprofile.py)")
    args = parser.parse_args()

    database_url = os.environ["DATABASE_URL"]
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/2"  # a Redis database of its own
    bench_sqlalchemy_url, dsn = scratch_database(database_url, "bench")
    truncate(dsn)
    users = [f"bench-user-{n}" for n in range(50)]
    tokens = [emulator_token(u) for u in users]

    postgres = postmaster_pid(dsn)
    port = free_port()
    extra = {"RATE_LIMITS_ENABLED": "false"} if args.with_worker else {}
    if args.pg_profile:  # planning time too, for every connection the bench and the platform open
        os.environ["PGOPTIONS"] = (os.environ.get("PGOPTIONS", "") + " -c pg_stat_statements.track_planning=on").strip()
    profile = PgProfile(dsn, postgres) if args.pg_profile else None
    if profile and not profile.statements:
        print("pg_stat_statements is not in shared_preload_libraries: no per-statement table", flush=True)
    api = start_api(bench_sqlalchemy_url, redis_url, port, server=args.server, **extra)
    workers = ([start_platform_process(m, bench_sqlalchemy_url, redis_url) for m in ("worker", "worker.scheduler")]
               if args.with_worker else [])
    if profile:
        profile.clients = {"API": api.pid, **({"worker (jobs, relay)": workers[0].pid, "scheduler": workers[1].pid}
                                             if workers else {})}
    raw_phases, api_phases, cpu = [], [], []
    backlog = None
    try:
        # Warm up both paths (connections, caches, users created by the API).
        api_phase(port, args.concurrency, 400, tokens)
        if args.with_worker:
            wait_for_heatmap(dsn)
        with psycopg.connect(dsn) as conn:
            author_ids = [str(r[0]) for r in conn.execute("SELECT id FROM users")]
        raw_insert_phase(dsn, args.concurrency, 400, author_ids)
        for round_no in range(1, args.rounds + 1):
            if args.with_worker:  # the raw floor on a quiet database: the last round's other tasks done too
                wait_for_outbox(dsn)
            pg0 = tree_cpu_ms(postgres)
            raw = raw_insert_phase(dsn, args.concurrency, args.requests, author_ids)
            pg_raw = tree_cpu_ms(postgres) - pg0
            if profile:
                profile.start()
            before = (tree_cpu_ms(api.pid), tree_cpu_ms(*(w.pid for w in workers)), tree_cpu_ms(postgres))
            via_api = api_phase(port, args.concurrency, args.requests, tokens)
            catch_up_s = wait_for_heatmap(dsn) if args.with_worker else 0.0
            after = (tree_cpu_ms(api.pid), tree_cpu_ms(*(w.pid for w in workers)), tree_cpu_ms(postgres))
            if profile:
                profile.stop()
            n = args.requests
            round_cpu = {"pg_per_raw_insert": pg_raw / n, "api": (after[0] - before[0]) / n,
                         "worker": (after[1] - before[1]) / n, "pg_per_report": (after[2] - before[2]) / n,
                         "catch_up_s": catch_up_s, "sustained": n / (via_api.seconds + catch_up_s)}
            raw_phases.append(raw)
            api_phases.append(via_api)
            cpu.append(round_cpu)
            print(f"round {round_no}: raw {raw.throughput:7.0f}/s  api {via_api.throughput:7.0f}/s  "
                  f"ratio {via_api.throughput / raw.throughput:.2f}  api p50 {via_api.percentile(50):.1f} ms "
                  f"p99 {via_api.percentile(99):.1f} ms  errors {via_api.errors}  | CPU ms/report: "
                  f"api {round_cpu['api']:.2f} worker {round_cpu['worker']:.2f} "
                  f"postgres {round_cpu['pg_per_report']:.2f} (raw insert {round_cpu['pg_per_raw_insert']:.2f})"
                  + (f"  | heatmap caught up {catch_up_s:.1f} s after, sustained {round_cpu['sustained']:.0f}/s "
                     f"= {round_cpu['sustained'] / raw.throughput:.2f} x raw" if args.with_worker else ""),
                  flush=True)
        stream_profile = (profile.report(args.requests, f"round {args.rounds}'s API phase"
                                         + (" and catch-up (the stream)" if args.with_worker else ""))
                          if profile else None)
        backlog = backlog_round(port, args, tokens, dsn, workers, postgres, profile) if args.with_worker else None
    finally:
        for process in workers:
            os.killpg(process.pid, signal.SIGCONT)
        for process in (api, *workers):
            os.killpg(process.pid, signal.SIGTERM)
        for process in (api, *workers):
            process.wait(timeout=30)
        Redis.from_url(redis_url).flushdb()
        if profile:
            profile.close()

    def med(values):
        return statistics.median(values)

    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "concurrency": args.concurrency,
        "requests_per_phase": args.requests,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "raw_inserts_per_s": round(med([p.throughput for p in raw_phases])),
        "raw_p50_ms": round(med([p.percentile(50) for p in raw_phases]), 2),
        "raw_p99_ms": round(med([p.percentile(99) for p in raw_phases]), 2),
        "api_reports_per_s": round(med([p.throughput for p in api_phases])),
        "api_p50_ms": round(med([p.percentile(50) for p in api_phases]), 2),
        "api_p99_ms": round(med([p.percentile(99) for p in api_phases]), 2),
        "api_errors": sum(p.errors for p in api_phases),
        "ratio_median": round(med([a.throughput / r.throughput for a, r in zip(api_phases, raw_phases)]), 3),
        "with_worker": args.with_worker,
        "api_cpu_ms_per_report": round(med([c["api"] for c in cpu]), 3),
        "worker_cpu_ms_per_report": round(med([c["worker"] for c in cpu]), 3) if args.with_worker else None,
        "postgres_cpu_ms_per_report": round(med([c["pg_per_report"] for c in cpu]), 3),
        "postgres_cpu_ms_per_raw_insert": round(med([c["pg_per_raw_insert"] for c in cpu]), 3),
        "heatmap_catch_up_s": round(med([c["catch_up_s"] for c in cpu]), 2) if args.with_worker else None,
        "sustained_reports_per_s": round(med([c["sustained"] for c in cpu])) if args.with_worker else None,
        "backlog": backlog,
        "pg_profile_stream": stream_profile,
        "sustained_ratio_median": (round(med([c["sustained"] / r.throughput for c, r in zip(cpu, raw_phases)]), 3)
                                   if args.with_worker else None),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / ("ingest-with-worker.json" if args.with_worker else "ingest.json")).write_text(
        json.dumps(result, indent=2) + "\n")
    print()
    print(f"| path | reports/s (median of {args.rounds}) | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| raw INSERT + COMMIT (psycopg, {args.concurrency} threads) | {result['raw_inserts_per_s']} | "
          f"{result['raw_p50_ms']} | {result['raw_p99_ms']} |")
    print(f"| POST /api/v1/reports ({args.server}, {args.concurrency} clients) | {result['api_reports_per_s']} | "
          f"{result['api_p50_ms']} | {result['api_p99_ms']} |")
    print()
    print(f"API / raw = {result['ratio_median']:.2f} (target >= 0.50): "
          f"{'met' if result['ratio_median'] >= 0.5 else 'NOT met'}")
    print(f"API p99 = {result['api_p99_ms']} ms (target < 50 ms): {'met' if result['api_p99_ms'] < 50 else 'NOT met'}")
    print(f"API errors: {result['api_errors']}")
    print()
    print(f"CPU ms per report (median of {args.rounds}): API {result['api_cpu_ms_per_report']} (target <= 0.8: "
          f"{'met' if result['api_cpu_ms_per_report'] <= 0.8 else 'NOT met'}), PostgreSQL "
          f"{result['postgres_cpu_ms_per_report']}; PostgreSQL per raw insert {result['postgres_cpu_ms_per_raw_insert']}")
    if args.with_worker:
        print(f"worker CPU ms per report, keeping up with the stream: {result['worker_cpu_ms_per_report']}")
        print(f"heatmap caught up to within {LAG_TARGET_S:.0f} s {result['heatmap_catch_up_s']} s after the last post; "
              f"sustained {result['sustained_reports_per_s']}/s = {result['sustained_ratio_median']:.2f} x raw "
              f"(target >= 0.30: {'met' if result['sustained_ratio_median'] >= 0.3 else 'NOT met'})")
        print(f"worker CPU ms per report under a backlog of {backlog['reports']}: {backlog['worker_cpu_ms_per_report']} "
              f"(target <= 1: {'met' if backlog['worker_cpu_ms_per_report'] <= 1 else 'NOT met'}), PostgreSQL "
              f"{backlog['postgres_cpu_ms_per_report']}; {backlog['reports'] / backlog['seconds']:.0f} reports/s caught up; "
              f"idle worker and scheduler {backlog['idle_worker_cpu_ms_per_s']} ms of CPU per second")


if __name__ == "__main__":
    prepare_process_environment()
    main()
