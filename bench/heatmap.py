"""``make bench-heatmap``: heatmap aggregates on 1,000,000 synthetic reports, each figure next to its
baseline measured in the same run.

1. Full rebuild (``safetravel heatmap rebuild``, built aside and swapped in) next to its floor: the same
   cube by one ``INSERT ... SELECT`` into an unlogged table of ``heatmap_cells``' shape; medians of
   several runs. A reader thread pulls tiles throughout each rebuild (and for 5 s before, idle): its
   p50/p99/max and how many reads took over 200 ms.
2. Tile latency at zooms 10-14 from the aggregates, next to a naive tile built on the fly from the raw
   reports (``ST_SquareGrid`` over the tile joined to ``reports``), warm, p50/p95 over the same tiles.
3. Freshness: gunicorn and a worker (with its outbox relay) running; the time from ``POST /reports``
   to the report showing in ``/heatmap``, p50/p95.

The data (``<database>_bench_1m``, reports spread like the demo data over three years) is made once
and reused.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
from flask import current_app

from backend import create_app
from backend.config import libpq_dsn, prepare_process_environment
from backend.devserver import free_port, scratch_database, start_api
from backend.devtokens import emulator_token
from backend.extensions import db
from backend.heatmap import grid, queries
from backend.heatmap.rebuild import REBUILD_WORK_MEM, rebuild
from bench.data import ensure_reports

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
NAIVE_TILE_SQL = """
    SELECT ST_AsMVT(t, 'heatmap', 4096, 'geom') FROM (
        SELECT ST_AsMVTGeom(g.geom, ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 0, false) AS geom, count(*) AS count
        FROM ST_SquareGrid(%(size)s, ST_TileEnvelope(%(z)s, %(x)s, %(y)s)) AS g
        JOIN reports r ON ST_Intersects(r.location, ST_Transform(g.geom, 4326))
        GROUP BY g.geom
    ) AS t
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# The floor of the rebuild: the same cube (points in their fine cell, routes in each fine cell they
# cross, every level, plus the retained counts) by one INSERT ... SELECT into an unlogged table of
# heatmap_cells' shape. The routes' cells come from ST_SquareGrid on the fine grid (which lies on the
# tile grid: Web Mercator's origin is a whole number of fine cells from its edge).
FLOOR_TABLE = "bench_floor_cells"
FLOOR_CUBE_SQL = f"""
    INSERT INTO {FLOOR_TABLE} (level, q, day, hour, category, mode, count)
    SELECT level, q, day, hour, category, mode, sum(n)::integer FROM (
        SELECT l.level, p.q >> (2 * ({grid.FINE_LEVEL} - l.level)) AS q, p.day, p.hour, p.category, p.mode, p.n
        FROM (
            SELECT heatmap_morton(heatmap_fine_x(ST_X(pt)), heatmap_fine_y(ST_Y(pt))) AS q,
                   local_day(r.occurred_at, %(tz)s) AS day, local_hour(r.occurred_at, %(tz)s) AS hour,
                   r.category, coalesce(r.mode, '') AS mode, count(*) AS n
            FROM reports r, heatmap_point_3857(r.location) AS pt
            WHERE r.route IS NULL
            GROUP BY 1, 2, 3, 4, 5
        ) AS p CROSS JOIN unnest(%(levels)s::smallint[]) AS l (level)
        UNION ALL
        SELECT level, q, day, hour, category, mode, 1 FROM (
            SELECT DISTINCT r.id, l.level, c.q >> (2 * ({grid.FINE_LEVEL} - l.level)) AS q,
                   local_day(r.occurred_at, %(tz)s) AS day, local_hour(r.occurred_at, %(tz)s) AS hour,
                   r.category, coalesce(r.mode, '') AS mode
            FROM reports r
            CROSS JOIN LATERAL (
                SELECT heatmap_morton(heatmap_fine_x(ST_X(ST_Centroid(g.geom))),
                                      heatmap_fine_y(ST_Y(ST_Centroid(g.geom)))) AS q
                FROM ST_SquareGrid({grid.FINE_CELL_M}, heatmap_route_3857(r.route)) AS g
                WHERE ST_Intersects(g.geom, heatmap_route_3857(r.route))
            ) AS c
            CROSS JOIN unnest(%(levels)s::smallint[]) AS l (level)
            WHERE r.route IS NOT NULL
        ) AS routed
        UNION ALL
        SELECT level, q, day, hour, category, mode, count FROM heatmap_retained
    ) AS everything
    GROUP BY level, q, day, hour, category, mode
"""
READ_LIMIT_S = 0.2  # nothing may wait longer during a rebuild


def measure_floor(dsn: str) -> tuple[float, int]:
    with psycopg.connect(dsn) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
        conn.execute(f"CREATE UNLOGGED TABLE {FLOOR_TABLE} (LIKE heatmap_cells INCLUDING ALL)")
        conn.execute(f"SET LOCAL work_mem = '{REBUILD_WORK_MEM}'")
        started = time.perf_counter()
        conn.execute(FLOOR_CUBE_SQL, {"tz": "Europe/London", "levels": list(grid.LEVELS)})
        seconds = time.perf_counter() - started
        rows = conn.execute(f"SELECT count(*) FROM {FLOOR_TABLE}").fetchone()[0]
        conn.execute(f"DROP TABLE {FLOOR_TABLE}")
    return seconds, rows


class TileReader(threading.Thread):
    """Reads tiles one after another, as a dashboard does, timing each, until stopped."""

    def __init__(self, app, tiles: list[tuple[int, int, int]]) -> None:
        super().__init__(daemon=True)
        self.app, self.tiles, self.times, self.slow = app, tiles, [], []
        self.started = time.monotonic()
        self.stopping = threading.Event()

    def run(self) -> None:
        with self.app.app_context():
            while not self.stopping.is_set():
                for z, x, y in self.tiles:
                    at = time.monotonic()
                    self.times.append(timed(lambda: queries.tile(queries.Filters(), z, x, y, grid.level_for_zoom(z))))
                    if self.times[-1] > READ_LIMIT_S:
                        self.slow.append((round(at - self.started, 1), round(self.times[-1], 2)))
                    db.session.commit()
                    if self.stopping.is_set():
                        break
            db.session.remove()

    def stop(self) -> list[float]:
        self.stopping.set()
        self.join()
        return self.times


def measure_rebuild(dsn: str, runs: int, rng: random.Random) -> dict:
    app = current_app._get_current_object()
    tiles = [(z, x, y) for z in (11, 12, 13, 14) for x, y in sample_tiles(z, 10, rng)]
    floors = [measure_floor(dsn) for _ in range(runs)]
    with psycopg.connect(dsn) as conn:
        reports = conn.execute("SELECT count(*) FROM reports").fetchone()[0]
    idle = TileReader(app, tiles)
    idle.start()
    time.sleep(5)
    idle_times = idle.stop()
    rebuilds, during = [], []
    for _ in range(runs):
        db.session.remove()
        reader = TileReader(app, tiles)
        reader.start()
        rebuilds.append(rebuild())
        during += reader.stop()
        if reader.slow:
            print(f"  reads over 200 ms (seconds into the rebuild, seconds waited): {reader.slow[:20]}; "
                  f"rebuild phases {rebuilds[-1]}", flush=True)
    with psycopg.connect(dsn) as conn:
        rows = dict(conn.execute("SELECT 'cells', count(*) FROM heatmap_cells UNION ALL "
                                 "SELECT 'totals', count(*) FROM heatmap_totals UNION ALL "
                                 "SELECT 'council_cells', count(*) FROM heatmap_council_cells UNION ALL "
                                 "SELECT 'public_units', count(*) FROM heatmap_public_units").fetchall())
    rebuild_s = statistics.median(r["seconds"] for r in rebuilds)
    floor_s = statistics.median(f for f, _ in floors)
    return {
        "reports": reports, "floor_s": round(floor_s, 2), "floor_rows": floors[0][1], "rebuild_s": round(rebuild_s, 2),
        "ratio": round(rebuild_s / floor_s, 2), "aggregate_rows": rows,
        "phases_s": {k: round(statistics.median(r[k] for r in rebuilds), 2) for k in rebuilds[0] if k.endswith("_s")},
        "swap_attempts": [r["swap_attempts"] for r in rebuilds],
        "tiles_idle": {"reads": len(idle_times), "p50_ms": round(1000 * pct(idle_times, 50), 1),
                       "p99_ms": round(1000 * pct(idle_times, 99), 1), "max_ms": round(1000 * max(idle_times), 1)},
        "tiles_during": {"reads": len(during), "p50_ms": round(1000 * pct(during, 50), 1),
                         "p99_ms": round(1000 * pct(during, 99), 1), "max_ms": round(1000 * max(during), 1),
                         "over_200_ms": sum(t > READ_LIMIT_S for t in during)},
    }


def sample_tiles(z: int, count: int, rng: random.Random) -> list[tuple[int, int]]:
    """Up to ``count`` distinct tiles over Greater London (fewer at low zooms, where London spans few)."""
    tiles = set()
    for _ in range(count * 50):
        tiles.add(grid.lonlat_to_cell(rng.uniform(-0.45, 0.2), rng.uniform(51.35, 51.65), z))
        if len(tiles) == count:
            break
    return sorted(tiles)


def measure_tiles(dsn: str, tiles_per_zoom: int, rng: random.Random) -> list[dict]:
    results = []
    window = queries.Filters(categories=("harassment", "spiking"), from_day=datetime.now().date() - timedelta(days=89),
                             to_day=datetime.now().date())
    with psycopg.connect(dsn) as conn:
        for z in range(10, 15):
            level = grid.level_for_zoom(z)
            tiles = sample_tiles(z, tiles_per_zoom, rng)
            agg, agg_window, naive = [], [], []
            for x, y in tiles:
                queries.tile(queries.Filters(), z, x, y, level)  # warm
                agg.append(timed(lambda: queries.tile(queries.Filters(), z, x, y, level)))
                agg_window.append(timed(lambda: queries.tile(window, z, x, y, level)))
                params = {"z": z, "x": x, "y": y, "size": grid.EARTH_CIRCUMFERENCE_M / 2**level}
                conn.execute(NAIVE_TILE_SQL, params).fetchone()  # warm
                naive.append(timed(lambda: conn.execute(NAIVE_TILE_SQL, params).fetchone()))
            results.append({
                "zoom": z, "level": level, "tiles": len(tiles),
                "agg_p50_ms": round(1000 * pct(agg, 50), 2), "agg_p95_ms": round(1000 * pct(agg, 95), 2),
                "agg_90d_p50_ms": round(1000 * pct(agg_window, 50), 2),
                "agg_90d_p95_ms": round(1000 * pct(agg_window, 95), 2),
                "naive_p50_ms": round(1000 * pct(naive, 50), 1), "naive_p95_ms": round(1000 * pct(naive, 95), 1),
                "speedup_p95": round(pct(naive, 95) / pct(agg, 95), 1),
            })
            print(f"  z{z}: aggregates p50 {results[-1]['agg_p50_ms']} ms p95 {results[-1]['agg_p95_ms']} ms; "
                  f"naive p50 {results[-1]['naive_p50_ms']} ms p95 {results[-1]['naive_p95_ms']} ms; "
                  f"p95 speed-up {results[-1]['speedup_p95']}x", flush=True)
    return results


LAMBETH = "E09000022"
# The way a council's cells were chosen before issue 17 (a cell whose centre lies in the area, counting
# every report in it): the baseline for the council-scoped aggregates.
CENTRE_TILE_SQL = """
    SELECT count(*) FROM (
        SELECT c.q, sum(c.count) FROM heatmap_cells c
        WHERE c.level = %(level)s AND c.q BETWEEN %(lo)s AND %(hi)s
          AND ST_Intersects((SELECT geom FROM council_areas WHERE code = %(council)s),
                            ST_Transform(ST_Centroid(ST_TileEnvelope(c.level, heatmap_cell_x(c.q), heatmap_cell_y(c.q))), 4326))
        GROUP BY c.q
    ) AS t
"""


def measure_councils(dsn: str, tiles_per_zoom: int, rng: random.Random) -> dict:
    """Lambeth's tiles and whole-area cells from its own aggregates, next to the staff's tiles and the
    old centre-in-area test; and the public heatmap (published units with noise) for all time."""
    from backend.config import current_settings
    from backend.heatmap import publishing

    council = queries.Filters(council=LAMBETH)
    tiles, whole = [], {}
    with psycopg.connect(dsn) as conn:
        for z in range(10, 15):
            level = grid.level_for_zoom(z)
            sample = set()
            for _ in range(tiles_per_zoom * 50):
                sample.add(grid.lonlat_to_cell(rng.uniform(-0.14, -0.09), rng.uniform(51.43, 51.50), z))
                if len(sample) == tiles_per_zoom:
                    break
            own, staff, centre = [], [], []
            for x, y in sorted(sample):
                queries.tile(council, z, x, y, level)  # warm
                own.append(timed(lambda: queries.tile(council, z, x, y, level)))
                staff.append(timed(lambda: queries.tile(queries.Filters(), z, x, y, level)))
                lo, hi = grid.tile_key_range(level, z, x, y)
                params = {"level": level, "lo": lo, "hi": hi, "council": LAMBETH}
                centre.append(timed(lambda: conn.execute(CENTRE_TILE_SQL, params).fetchone()))
            tiles.append({"zoom": z, "tiles": len(sample), "council_p50_ms": round(1000 * pct(own, 50), 2),
                          "council_p95_ms": round(1000 * pct(own, 95), 2), "staff_p95_ms": round(1000 * pct(staff, 95), 2),
                          "centre_test_p95_ms": round(1000 * pct(centre, 95), 2)})
            print(f"  Lambeth z{z}: own aggregates p50 {tiles[-1]['council_p50_ms']} ms p95 {tiles[-1]['council_p95_ms']} ms;"
                  f" staff p95 {tiles[-1]['staff_p95_ms']} ms; old centre test p95 {tiles[-1]['centre_test_p95_ms']} ms",
                  flush=True)
        for level in (12, 14):
            whole[level] = round(1000 * statistics.median(
                timed(lambda: queries.cells(council, queries.Area(level), 20_000)) for _ in range(5)), 1)
        rows = conn.execute("SELECT count(*) FROM heatmap_council_cells").fetchone()[0]
    settings = current_settings()
    today = datetime.now(settings.tz).date()
    public = statistics.median(timed(lambda: queries.public_cells(
        publishing.Window.snapped(None, None, today), None, queries.Area(grid.PUBLIC_LEVEL), settings.public_min_reporters,
        settings.public_epsilon, settings.public_noise_secret.encode())) for _ in range(5))
    print(f"  Lambeth whole-area cells: level 12 {whole[12]} ms, level 14 {whole[14]} ms; "
          f"public heatmap, all time: {1000 * public:.0f} ms; council rows {rows:,}", flush=True)
    return {"tiles": tiles, "whole_area_ms": whole, "public_all_time_ms": round(1000 * public, 1), "council_rows": rows}


def measure_freshness(url: str, posts: int, rng: random.Random) -> dict:
    """Post reports through the API with a worker running; time until each shows in /heatmap."""
    port = free_port()
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/3"
    api = start_api(url, redis_url, port)
    worker = subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, start_new_session=True,
                              env={**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staff = {"Authorization": f"Bearer {emulator_token('bench-staff', role='safety_team')}"}
    commuter = emulator_token("bench-freshness")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        time.sleep(2)  # the worker and its relay are up
        delays = []
        for _ in range(posts):
            lon, lat = rng.uniform(-0.2, -0.05), rng.uniform(51.48, 51.54)
            box = f"{lon - 0.0005},{lat - 0.0005},{lon + 0.0005},{lat + 0.0005}"
            query = f"/api/v1/heatmap?zoom=14&category=spiking&bbox={box}"

            def count() -> int:
                conn.request("GET", query, headers=staff)
                return sum(f["properties"]["count"] for f in json.loads(conn.getresponse().read())["features"])

            before = count()
            body = json.dumps({"category": "spiking", "subcategory": "drink",
                               "occurred_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                               "location": {"type": "Point", "coordinates": [lon, lat]}})
            started = time.perf_counter()
            conn.request("POST", "/api/v1/reports", body=body, headers={
                "Authorization": f"Bearer {commuter}", "Content-Type": "application/json",
                "Idempotency-Key": str(uuid.uuid4())})
            response = conn.getresponse()
            response.read()
            assert response.status == 201, response.status
            while count() == before:
                if time.perf_counter() - started > 30:
                    raise RuntimeError("a report did not reach the heatmap within 30 s")
                time.sleep(0.005)
            delays.append(time.perf_counter() - started)
        return {"posts": posts, "p50_ms": round(1000 * pct(delays, 50), 1), "p95_ms": round(1000 * pct(delays, 95), 1),
                "max_ms": round(1000 * max(delays), 1)}
    finally:
        for process in (api, worker):
            os.killpg(process.pid, signal.SIGTERM)
        for process in (api, worker):
            process.wait(timeout=30)
        # Leave the data set as it was (the next run reuses it).
        with psycopg.connect(libpq_dsn(url), autocommit=True) as pg:
            pg.execute("DELETE FROM users WHERE firebase_uid = 'bench-freshness'")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=1_000_000)
    parser.add_argument("--rebuilds", type=int, default=2)
    parser.add_argument("--tiles", type=int, default=20, help="tiles per zoom")
    parser.add_argument("--posts", type=int, default=40, help="reports posted for the freshness figure")
    parser.add_argument("--parts", default="rebuild,tiles,councils,freshness", help="which measurements to run")
    args = parser.parse_args()
    rng = random.Random(11)

    url, dsn = scratch_database(os.environ["DATABASE_URL"], "bench_1m" if args.reports == 1_000_000 else
                                f"bench_{args.reports}")
    loaded = ensure_reports(dsn, args.reports)
    if loaded:
        print(f"loaded {args.reports:,} synthetic reports in {loaded:.0f} s")
    os.environ["DATABASE_URL"] = url
    app = create_app()
    parts = set(args.parts.split(","))
    result: dict = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpus": os.cpu_count()}
    with app.app_context():
        with psycopg.connect(dsn) as conn:
            if not conn.execute("SELECT count(*) FROM council_areas").fetchone()[0]:
                from backend.councils.service import load_council_areas

                load_council_areas(Path(__file__).resolve().parent.parent / "data" / "london_boroughs.geojson")
                db.session.commit()
                parts.add("rebuild")  # the councils' aggregates need them
            if not conn.execute("SELECT count(*) FROM heatmap_cells").fetchone()[0]:
                parts.add("rebuild")  # the tiles need aggregates
        if "rebuild" in parts:
            print("rebuild...", flush=True)
            result["rebuild"] = measure_rebuild(dsn, args.rebuilds, rng)
            r = result["rebuild"]
            print(f"  floor (the cube by one INSERT ... SELECT, unlogged) {r['floor_s']} s; rebuild {r['rebuild_s']} s; "
                  f"ratio {r['ratio']}x; rows {r['aggregate_rows']}; phases {r['phases_s']}", flush=True)
            print(f"  tiles idle: {r['tiles_idle']}; during the rebuild: {r['tiles_during']}", flush=True)
        if "tiles" in parts:
            print("tiles...", flush=True)
            result["tiles"] = measure_tiles(dsn, args.tiles, rng)
        if "councils" in parts:
            print("councils and the public heatmap...", flush=True)
            result["councils"] = measure_councils(dsn, args.tiles, rng)
        db.session.remove()
    if "freshness" in parts:
        print("freshness...", flush=True)
        result["freshness"] = measure_freshness(url, args.posts, rng)
        f = result["freshness"]
        print(f"  POST -> visible in /heatmap: p50 {f['p50_ms']} ms, p95 {f['p95_ms']} ms", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "heatmap.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    report(result)


def report(result: dict) -> None:
    rebuild, tiles, freshness = result.get("rebuild"), result.get("tiles"), result.get("freshness")

    print()
    if rebuild:
        print("| reports | floor: the cube by one INSERT ... SELECT, unlogged | full rebuild, swapped in | ratio "
              "(target <= 1.5) | tile p50 / p99 / max idle | tile p50 / p99 / max during the rebuild | reads over 200 ms |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        idle, during = rebuild["tiles_idle"], rebuild["tiles_during"]
        print(f"| {rebuild['reports']:,} | {rebuild['floor_s']} s | {rebuild['rebuild_s']} s | {rebuild['ratio']} | "
              f"{idle['p50_ms']} / {idle['p99_ms']} / {idle['max_ms']} ms | "
              f"{during['p50_ms']} / {during['p99_ms']} / {during['max_ms']} ms | "
              f"{during['over_200_ms']} of {during['reads']} |")
        print()
    if tiles:
        print("| zoom | level | tiles | aggregates p50 / p95 ms | naive p50 / p95 ms | p95 speed-up (target >= 50) "
              "| aggregates, 90-day window, p50 / p95 ms |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for t in tiles:
            print(f"| {t['zoom']} | {t['level']} | {t['tiles']} | {t['agg_p50_ms']} / {t['agg_p95_ms']} | "
                  f"{t['naive_p50_ms']} / {t['naive_p95_ms']} | {t['speedup_p95']} | "
                  f"{t['agg_90d_p50_ms']} / {t['agg_90d_p95_ms']} |")
        print()
    if freshness:
        print(f"freshness over {freshness['posts']} reports: p50 {freshness['p50_ms']} ms, p95 {freshness['p95_ms']} ms "
              f"(target p95 < 5000 ms, aim < 1000 ms)")


if __name__ == "__main__":
    prepare_process_environment()
    main()
