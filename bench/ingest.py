"""``make bench-ingest``: reports per second through the API next to raw single-row INSERTs.

In one run, on a database of its own (``<DATABASE_URL's database>_bench``) and a Redis database
of its own:

- **raw**: C threads, each doing ``INSERT INTO reports ... ; COMMIT`` through psycopg, one row at a
  time: the floor an API cannot beat on this machine;
- **api**: gunicorn as shipped (deploy/gunicorn.conf.py), C client threads on loopback, each
  POSTing a report with its own Idempotency-Key and a Firebase emulator token, keep-alive.

The phases alternate for several rounds (the machine is shared and noisy) and the medians are
reported, with the API/raw ratio and p50/p99 latency. The RQ worker is not running, so the
figures are the ingestion path alone (each report still enqueues its follow-up jobs in Redis).

Targets (issue 2): API throughput at least half the raw figure; p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
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
        conn.execute("TRUNCATE report_status_changes, reports, users, outbox RESTART IDENTITY CASCADE")
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
            state["conn"] = psycopg.connect(dsn, autocommit=False)
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
    args = parser.parse_args()

    database_url = os.environ["DATABASE_URL"]
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/2"  # a Redis database of its own
    bench_sqlalchemy_url, dsn = scratch_database(database_url, "bench")
    truncate(dsn)
    users = [f"bench-user-{n}" for n in range(50)]
    tokens = [emulator_token(u) for u in users]

    port = free_port()
    api = start_api(bench_sqlalchemy_url, redis_url, port)
    raw_phases, api_phases = [], []
    try:
        # Warm up both paths (connections, caches, users created by the API).
        api_phase(port, args.concurrency, 400, tokens)
        with psycopg.connect(dsn) as conn:
            author_ids = [str(r[0]) for r in conn.execute("SELECT id FROM users")]
        raw_insert_phase(dsn, args.concurrency, 400, author_ids)
        for round_no in range(1, args.rounds + 1):
            raw = raw_insert_phase(dsn, args.concurrency, args.requests, author_ids)
            via_api = api_phase(port, args.concurrency, args.requests, tokens)
            raw_phases.append(raw)
            api_phases.append(via_api)
            print(f"round {round_no}: raw {raw.throughput:7.0f}/s  api {via_api.throughput:7.0f}/s  "
                  f"ratio {via_api.throughput / raw.throughput:.2f}  api p50 {via_api.percentile(50):.1f} ms "
                  f"p99 {via_api.percentile(99):.1f} ms  errors {via_api.errors}", flush=True)
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        api.wait(timeout=30)
        Redis.from_url(redis_url).flushdb()

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
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(f"| path | reports/s (median of {args.rounds}) | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| raw INSERT + COMMIT (psycopg, {args.concurrency} threads) | {result['raw_inserts_per_s']} | "
          f"{result['raw_p50_ms']} | {result['raw_p99_ms']} |")
    print(f"| POST /api/v1/reports (gunicorn, {args.concurrency} clients) | {result['api_reports_per_s']} | "
          f"{result['api_p50_ms']} | {result['api_p99_ms']} |")
    print()
    print(f"API / raw = {result['ratio_median']:.2f} (target >= 0.50): "
          f"{'met' if result['ratio_median'] >= 0.5 else 'NOT met'}")
    print(f"API p99 = {result['api_p99_ms']} ms (target < 50 ms): {'met' if result['api_p99_ms'] < 50 else 'NOT met'}")
    print(f"API errors: {result['api_errors']}")


if __name__ == "__main__":
    prepare_process_environment()
    main()
