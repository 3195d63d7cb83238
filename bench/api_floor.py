"""The API stack's floor (issue 18): CPU per ``POST /api/v1/reports`` of the contract's own stack
(Flask + flask-smorest + marshmallow, the platform's real report schemas, no database), next to ours.

In one run, the variants alternating for several rounds (the machine is shared and noisy; medians):

- **minimal, <server>**: a Flask + flask-smorest app with one POST endpoint that loads the body with
  ``schemas.reports.ReportInSchema`` and answers the report dumped by ``ReportSchema`` (201, as ours
  does), no database, no token, no limits, no hooks; under gunicorn as shipped
  (deploy/gunicorn.conf.py: gthread) and under granian in the same shape (workers × threads);
- **minimal, in-process**: the same app through Flask's test client, in this process;
- **minimal+insert**: the minimal app storing each report with one prepared ``INSERT ... RETURNING``
  and a commit through psycopg (a connection per thread): the least database work a report needs;
- **ours, <server>**: the platform's API (``backend.wsgi``, real PostgreSQL and Redis, abuse limits on
  by default as in production, generous enough never to refuse) under each server;
- **ours, in-process**: ``create_app()`` through the test client.

Servers: C client threads on loopback with keep-alive connections (bench/ingest.py's client), CPU from
the server's process tree in /proc (user + system, reaped children included) over the phase.
In-process: ``time.process_time()`` of this process over N sequential requests (the test client's
own cost included: it builds the WSGI environ that a server would).

    .venv/bin/python -m bench.api_floor --rounds 3 --requests 1500   # inside deploy/local/with-stack
    make bench-floor BENCH_ARGS="--limits off"
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SERVERS = ("gunicorn", "granian")
APPS = ("minimal", "minimal+insert", "ours")


INSERT_SQL = (
    "INSERT INTO reports (author_id, category, subcategory, occurred_at, location, accuracy_m, route, mode, line, "
    "station, factors, description, idempotency_key, request_hash) VALUES (%s, %s, %s, %s, "
    "ST_GeomFromWKB(%s, 4326), %s, ST_GeomFromWKB(%s, 4326), %s, %s, %s, %s, %s, %s, %s) RETURNING id, status, "
    "created_at, updated_at")


def minimal_app_with_insert():
    """The minimal app storing each report with one prepared INSERT ... RETURNING and a commit through
    psycopg (a connection per thread), the least database work a report needs (FLOOR_DSN)."""
    return minimal_app(insert=True)


def minimal_app(insert: bool = False):
    """Flask + flask-smorest + the platform's report schemas, and nothing of ours besides."""
    import threading

    import flask_smorest
    import psycopg
    from flask import Flask
    from flask.views import MethodView

    from schemas.reports import ReportInSchema, ReportSchema

    app = Flask(__name__)
    app.json.sort_keys = False
    app.config.update(API_TITLE="floor", API_VERSION="1", OPENAPI_VERSION="3.0.3")
    api = flask_smorest.Api(app)
    blp = flask_smorest.Blueprint("floor", __name__, url_prefix="/api/v1")
    local = threading.local()
    author_id = None
    if insert:
        with psycopg.connect(os.environ["FLOOR_DSN"]) as conn:
            author_id = conn.execute(
                "INSERT INTO users (firebase_uid) VALUES ('floor-minimal') ON CONFLICT (firebase_uid) "
                "DO UPDATE SET firebase_uid = EXCLUDED.firebase_uid RETURNING id").fetchone()[0]

    def stored(data: dict[str, Any], transport: dict[str, Any]) -> tuple:
        if not hasattr(local, "conn"):
            local.conn = psycopg.connect(os.environ["FLOOR_DSN"])
        route = data.get("route")
        row = local.conn.execute(INSERT_SQL, (
            author_id, data["category"], data.get("subcategory"), data["occurred_at"], data["location"].wkb,
            data.get("accuracy_m"), route.wkb if route is not None else None, transport.get("mode"),
            transport.get("line"), transport.get("station"), data.get("factors") or [], data.get("description"),
            uuid.uuid4(), b"\x00" * 32), prepare=True).fetchone()
        local.conn.commit()
        return row

    @blp.route("/reports")
    class Reports(MethodView):
        @blp.arguments(ReportInSchema())
        @blp.response(201, ReportSchema)
        def post(self, data: dict[str, Any]):
            now = datetime.now(timezone.utc)
            transport = data.get("transport") or {}
            report_id, status, created_at, updated_at = (stored(data, transport) if insert
                                                         else (uuid.uuid4(), "received", now, now))
            report = SimpleNamespace(
                id=report_id, category=data["category"], subcategory=data.get("subcategory"),
                occurred_at=data["occurred_at"], location=data["location"], accuracy_m=data.get("accuracy_m"),
                route=data.get("route"), mode=transport.get("mode"), line=transport.get("line"),
                station=transport.get("station"), factors=data.get("factors") or [],
                description=data.get("description"), status=status, public_note=None, created_at=created_at,
                updated_at=updated_at)
            return report, 201, {"Location": f"/api/v1/reports/{report.id}"}

    api.register_blueprint(blp)
    app.add_url_rule("/healthz", "healthz", lambda: {"status": "ok"})
    return app


def in_process(app, n: int, bodies: list[str], tokens: list[str]) -> tuple[float, int]:
    """CPU ms per request (this process) over ``n`` sequential POSTs through the test client; errors."""
    client = app.test_client()
    errors = 0
    t0 = time.process_time()
    for i in range(n):
        response = client.post("/api/v1/reports", data=bodies[i % len(bodies)], headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {tokens[i % len(tokens)]}",
            "Idempotency-Key": str(uuid.uuid4())})
        errors += response.status_code != 201
    return (time.process_time() - t0) * 1000 / n, errors


def profile(app, n: int, bodies: list[str], tokens: list[str]) -> None:
    import cProfile
    import pstats

    in_process(app, 300, bodies, tokens)  # warm-up
    profiler = cProfile.Profile(time.process_time)  # CPU, not the waits on PostgreSQL and Redis
    profiler.enable()
    ms, errors = in_process(app, n, bodies, tokens)
    profiler.disable()
    print(f"{n} requests, {ms:.3f} CPU ms each under the profiler, {errors} errors")
    RESULTS.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(RESULTS / "api-floor.prof")  # python -m pstats bench/results/api-floor.prof
    stats = pstats.Stats(profiler)
    for key in ("tottime", "cumulative"):
        stats.sort_stats(key).print_stats(int(os.environ.get("PROFILE_LINES", "45")))


def main() -> None:
    from backend.config import RATE_LIMIT_SETTINGS
    from backend.devserver import free_port, scratch_database, serve
    from backend.devtokens import emulator_token
    from bench.ingest import api_phase, report_body, tree_cpu_ms, truncate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1500, help="per variant and round")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads against a server")
    parser.add_argument("--limits", choices=("on", "off"), default="on", help="our app's abuse limits (on in production)")
    parser.add_argument("--only", default="", help="comma-separated variant names to run (default: all)")
    parser.add_argument("--profile", choices=APPS, default=None,
                        help="instead: cProfile that app in-process over --requests POSTs, top by own and cumulative time")
    args = parser.parse_args()

    database_url, dsn = scratch_database(os.environ["DATABASE_URL"], "floor")
    truncate(dsn)
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/3"
    ours_env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "APP_ENV": "development",
                "RATE_LIMITS_ENABLED": "true" if args.limits == "on" else "false",
                # Generous enough never to refuse the bench's users on one address, yet checked in Redis.
                **{name.upper(): "1000000/minute" for name in RATE_LIMIT_SETTINGS}}
    os.environ.update(ours_env, FLOOR_DSN=dsn)  # the in-process apps read the same settings
    tokens = [emulator_token(f"floor-user-{n}") for n in range(50)]
    bodies = [json.dumps(report_body(i)) for i in range(1000)]

    from backend import create_app

    apps = {"minimal in-process": minimal_app(), "minimal+insert in-process": minimal_app_with_insert(),
            "ours in-process": create_app()}
    if args.profile:
        profile(apps[f"{args.profile} in-process"], args.requests, bodies, tokens)
        return
    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    variants = [f"{app} {where}" for where in (*SERVERS, "in-process") for app in APPS]
    if args.only:
        variants = [v for v in variants if v in args.only.split(",")]
    try:
        for server in SERVERS:
            for name, factory in (("minimal", "minimal_app"), ("minimal+insert", "minimal_app_with_insert")):
                if f"{name} {server}" in variants:
                    port = free_port()
                    servers[f"{name} {server}"] = (
                        serve(server, f"bench.api_floor:{factory}", port, {"FLOOR_DSN": dsn}, factory=True, attempts=300), port)
            if f"ours {server}" in variants:
                port = free_port()
                servers[f"ours {server}"] = (serve(server, "backend.wsgi:app", port, ours_env, attempts=300), port)
        # Warm-up: connections, caches, the users our app creates on their first report.
        for name in variants:
            if name in servers:
                api_phase(servers[name][1], args.concurrency, 300, tokens)
            else:
                in_process(apps[name], 300, bodies, tokens)
        figures: dict[str, list[float]] = {name: [] for name in variants}
        errors = dict.fromkeys(variants, 0)
        for round_no in range(1, args.rounds + 1):
            line = []
            for name in variants:
                if name in servers:
                    process, port = servers[name]
                    cpu0 = tree_cpu_ms(process.pid)
                    phase = api_phase(port, args.concurrency, args.requests, tokens)
                    ms = (tree_cpu_ms(process.pid) - cpu0) / args.requests
                    errors[name] += phase.errors
                else:
                    ms, failed = in_process(apps[name], args.requests, bodies, tokens)
                    errors[name] += failed
                figures[name].append(ms)
                line.append(f"{name} {ms:.3f}")
            print(f"round {round_no}: CPU ms/request: " + ", ".join(line), flush=True)
    finally:
        for process, _ in servers.values():
            os.killpg(process.pid, signal.SIGTERM)
        for process, _ in servers.values():
            process.wait(timeout=30)

    load = os.getloadavg()
    result = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rounds": args.rounds,
              "requests": args.requests, "concurrency": args.concurrency, "limits": args.limits,
              "loadavg": [round(x, 2) for x in load],
              "cpu_ms_per_request": {name: {"median": round(statistics.median(v), 3), "rounds": [round(x, 3) for x in v]}
                                     for name, v in figures.items()},
              "errors": errors}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"api-floor-limits-{args.limits}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n| CPU ms per POST /api/v1/reports (median of {args.rounds} × {args.requests}; limits {args.limits}) "
          f"| {' | '.join(('gunicorn', 'granian', 'in-process'))} |")
    print("| --- | ---: | ---: | ---: |")
    for app_name in APPS:
        cells = []
        for where in (*SERVERS, "in-process"):
            name = f"{app_name} {where}"
            cells.append(f"{statistics.median(figures[name]):.2f}" if figures.get(name) else "")
        print(f"| {app_name} | " + " | ".join(cells) + " |")
    print(f"errors: {errors}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    from backend.config import prepare_process_environment

    prepare_process_environment()
    main()
