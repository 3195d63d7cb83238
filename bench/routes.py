"""``make bench-routes``: the safer-route endpoint on 100 random walks of 0.5-3 km over the shipped
street network, next to a bare ``pgr_dijkstra`` by length on the same boxes, in the same run.

The endpoint runs as shipped (gunicorn, deploy/gunicorn.conf.py) on the local database, with whatever
reports it holds (``make demo`` seeds 25,000); each walk is asked at 22:00 on a November evening, so
that the unlit-street penalty and the after-dark figures are in play. The floor is one
``pgr_dijkstra`` over the edges in the box around the walk's two corners (``service._box``: what the
endpoint searched before it tried an ellipse first, and still searches when the ellipse cannot prove
its path the shortest), costs in metres, between the same two vertices: what any route at all costs. The endpoint does that twice or more
(shortest, then safer), plus the penalties and each route's figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import text

from backend import create_app
from backend.config import prepare_process_environment
from backend.devserver import free_port, start_api
from backend.devtokens import emulator_token
from backend.extensions import db
from backend.routes import service
from schemas.routes import metres_apart

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
AT = "2026-11-20T22:00:00Z"
WARM_UP = 5


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def pick_walks(count: int, rng: random.Random) -> list[tuple[tuple[float, float], tuple[float, float], float]]:
    """Pairs of graph vertices 0.5-3 km apart as the crow flies, drawn at random (seeded)."""
    vertices = [tuple(row) for row in db.session.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM street_vertices"))]
    walks = []
    while len(walks) < count:
        a, b = rng.sample(vertices, 2)
        apart = metres_apart(a, b)
        if 500 <= apart <= 3000:
            walks.append((a, b, apart))
    return walks


def bare(start: tuple[float, float], end: tuple[float, float], apart: float) -> float:
    """Seconds for one pgr_dijkstra by length over the box around this walk (the endpoint's box rule)."""
    source = service._nearest_vertex(start, "from").id
    target = service._nearest_vertex(end, "to").id
    box = service._box(start, end, apart)
    started = time.perf_counter()
    db.session.execute(text("SELECT count(*) FROM pgr_dijkstra(:edges, CAST(:s AS bigint), CAST(:t AS bigint), false)"),
                       {"edges": service.edges_sql(box), "s": source, "t": target}).scalar()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--walks", type=int, default=100)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    prepare_process_environment()
    rng = random.Random(args.seed)
    app = create_app()
    with app.app_context():
        segments = db.session.scalar(text("SELECT count(*) FROM street_segments"))
        if not segments:
            raise SystemExit("no street network loaded: run `make bench-routes` (it loads data/london_streets.gpkg)")
        reports = db.session.scalar(text("SELECT count(*) FROM reports"))
        walks = pick_walks(args.walks + WARM_UP, rng)
    port = free_port()
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/3"
    api = start_api(os.environ["DATABASE_URL"], redis_url, port)
    headers = {"Authorization": f"Bearer {emulator_token('bench-routes')}"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    endpoint, floor, lengths, same = [], [], [], 0
    try:
        with app.app_context():
            for i, (a, b, apart) in enumerate(walks):
                query = urlencode({"from": f"{a[0]},{a[1]}", "to": f"{b[0]},{b[1]}", "at": AT})
                started = time.perf_counter()
                conn.request("GET", f"/api/v1/routes/safer?{query}", headers=headers)
                response = conn.getresponse()
                body = json.loads(response.read())
                took = time.perf_counter() - started
                if response.status != 200:
                    raise RuntimeError(f"walk {i}: {response.status} {body}")
                floor_s = bare(a, b, apart)
                db.session.rollback()
                if i < WARM_UP:
                    continue
                endpoint.append(took)
                floor.append(floor_s)
                lengths.append(body["features"][0]["properties"]["length_m"])
                same += body["same_route"]
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        api.wait(timeout=30)
    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
        "segments": segments, "reports": reports, "walks": len(endpoint),
        "walk_m_median": round(statistics.median(lengths)),
        "endpoint_p50_ms": round(1000 * pct(endpoint, 50), 1), "endpoint_p95_ms": round(1000 * pct(endpoint, 95), 1),
        "bare_p50_ms": round(1000 * pct(floor, 50), 1), "bare_p95_ms": round(1000 * pct(floor, 95), 1),
        "safer_same_as_shortest": same,
    }
    result["p95_ratio"] = round(result["endpoint_p95_ms"] / result["bare_p95_ms"], 2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "routes.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(endpoint)} walks (median shortest {result['walk_m_median']} m) on {segments:,} street segments, "
          f"{reports:,} reports; the safer route was the shortest {same} times")
    print(f"  endpoint (HTTP, gunicorn):  p50 {result['endpoint_p50_ms']} ms  p95 {result['endpoint_p95_ms']} ms")
    print(f"  bare pgr_dijkstra, same box: p50 {result['bare_p50_ms']} ms  p95 {result['bare_p95_ms']} ms")
    print(f"  endpoint p95 / bare p95: {result['p95_ratio']}x   (target: p95 < 150 ms and <= 1.5x the bare query)")


if __name__ == "__main__":
    main()
