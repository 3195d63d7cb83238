"""``make bench-export``: a lighting export of 1,000,000 reports, in each format, next to GDAL's
``ogr2ogr`` writing the same rows from PostGIS to the same format in the same run (the floor).

The export is the one the worker builds (``backend.exports.service.build_export``), run in a fresh
process per round so that its peak memory (``ru_maxrss``) is its own; the floor is ``ogr2ogr`` given
the very same ranking query (``backend.exports.lighting.ranking_sql``) with ``-sql``, so both make
PostGIS do the same work and differ only in how the rows reach the file. The area is a staff export of
all of Greater London (every report counts), over the three years the synthetic reports span.

Targets (issue 5): export time at most 1.5x ogr2ogr's; the worker's peak memory under 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pyogrio

from backend.config import prepare_process_environment
from backend.devserver import scratch_database
from backend.exports import lighting, service
from bench.data import ensure_reports

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
GREATER_LONDON = "ST_Multi(ST_MakeEnvelope(-0.52, 51.27, 0.34, 51.70, 4326))"
OGR = {  # format -> (GDAL driver, layer creation options)
    "geojson": ("GeoJSON", ["-lco", "RFC7946=YES", "-lco", "COORDINATE_PRECISION=7"]),
    "csv": ("CSV", ["-lco", "GEOMETRY=AS_WKT"]),
    "gpkg": ("GPKG", []),
}


def ensure_ogr2ogr() -> str:
    found = shutil.which("ogr2ogr")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing gdal-bin (ogr2ogr) for the floor ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "gdal-bin"], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        return shutil.which("ogr2ogr") or sys.exit("ogr2ogr is still missing after installing gdal-bin")
    sys.exit("ogr2ogr is missing: run `sudo apt-get install gdal-bin` and try again")


def new_export(dsn: str, fmt: str, period: tuple[str, str]) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return str(conn.execute(f"""
            INSERT INTO exports (kind, format, requested_by, requester_role, area, period_from, period_to)
            VALUES ('lighting', %s, 'bench', 'safety_team', {GREATER_LONDON}, %s, %s) RETURNING id
        """, (fmt, *period)).fetchone()[0])


def run_measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Run a process; returns (wall seconds, peak resident memory in MB, its stdout)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command[0]} failed: {stderr[-2000:]}")
    return seconds, usage.ru_maxrss // 1024, stdout


def ours(url: str, dsn: str, fmt: str, period: tuple[str, str], directory: Path) -> dict:
    export_id = new_export(dsn, fmt, period)
    env = {**os.environ, "DATABASE_URL": url, "EXPORT_DIR": str(directory)}
    wall, peak_mb, stdout = run_measured([sys.executable, "-m", "bench.export", "--build", export_id], env=env)
    built = json.loads(stdout.strip().splitlines()[-1])
    path = directory / f"{export_id}.{fmt}"
    return {"seconds": built["seconds"], "process_seconds": wall, "peak_mb": peak_mb,
            "baseline_mb": built["baseline_mb"], "rows": built["rows"], "features": feature_count(path),
            "bytes": path.stat().st_size}


def floor(ogr2ogr: str, dsn: str, fmt: str, period: tuple[str, str], directory: Path) -> dict:
    """ogr2ogr reading the same ranking query, as a view: given it with ``-sql`` instead, GDAL runs the
    whole query twice (once to learn the geometry's SRID), which would flatter the export 2:1."""
    export_id = new_export(dsn, fmt, period)
    view = f"bench_export_floor_{export_id.replace('-', '')}"
    columns = ", ".join(lighting.output_fields("cells") + (("lon", "lat") if fmt == "csv" else ()))
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.ClientCursor(conn) as cursor:
        query = cursor.mogrify(lighting.ranking_sql("cells", "geometry"), {"export_id": export_id, "tz": "Europe/London"})
        cursor.execute(f"CREATE VIEW {view} AS SELECT {columns}, geom::geometry(Polygon, 4326) AS geom "
                       f"FROM ({query}) AS ranked ORDER BY rank")
    driver, options = OGR[fmt]
    path = directory / f"ogr-{export_id}.{fmt}"
    try:
        # The same work_mem as the export's transaction (backend/exports/service.py).
        seconds, peak_mb, _ = run_measured([ogr2ogr, "-f", driver, str(path), f"PG:{dsn}", view,
                                            "-nln", "lighting_priorities", *options],
                                           env={**os.environ, "PGOPTIONS": f"-c work_mem={service.WORK_MEM}"})
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP VIEW {view}")
    return {"seconds": seconds, "peak_mb": peak_mb, "features": feature_count(path), "bytes": path.stat().st_size}


def feature_count(path: Path) -> int:
    return int(pyogrio.read_info(str(path))["features"])


def build_in_this_process(export_id: str) -> None:
    """The worker's side: build one export as the RQ job would, print its time and memory as JSON."""
    import resource

    from sqlalchemy import text

    from backend import create_app
    from backend.extensions import db

    app = create_app()
    with app.app_context():
        db.session.execute(text("SELECT 1"))  # connected: the idle worker's memory
        baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        started = time.perf_counter()
        result = service.build_export(export_id)
        db.session.commit()
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": result["rows"], "baseline_mb": baseline_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--formats", default="geojson,csv,gpkg")
    parser.add_argument("--build", metavar="EXPORT_ID", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build_in_this_process(args.build)
        return

    ogr2ogr = ensure_ogr2ogr()
    suffix = "bench_1m" if args.reports == 1_000_000 else f"bench_{args.reports}"
    url, dsn = scratch_database(os.environ["DATABASE_URL"], suffix)
    loaded_s = ensure_reports(dsn, args.reports)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE street_segments")  # grid cells: the fallback every deployment has
        conn.execute("DELETE FROM exports WHERE requested_by = 'bench'")
        conn.execute("ANALYZE reports")
        first, last = conn.execute("SELECT min(occurred_at)::date, max(occurred_at)::date FROM reports").fetchone()
    period = (first.isoformat(), last.isoformat())
    print(f"{args.reports:,} reports ({'loaded in %.0f s' % loaded_s if loaded_s else 'already loaded'}); "
          f"period {period[0]} to {period[1]}; all of Greater London", flush=True)

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="safetravel-bench-export-") as tmp:
        directory = Path(tmp)
        for fmt in args.formats.split(","):
            runs: dict[str, list[dict]] = {"ours": [], "ogr2ogr": []}
            for round_no in range(args.rounds):
                # Alternate which goes first, so that neither always meets a warmer cache.
                order = ("ours", "ogr2ogr") if round_no % 2 == 0 else ("ogr2ogr", "ours")
                for who in order:
                    run = ours(url, dsn, fmt, period, directory) if who == "ours" else floor(ogr2ogr, dsn, fmt, period, directory)
                    runs[who].append(run)
                    print(f"  {fmt:8} round {round_no + 1} {who:8} {run['seconds']:7.2f} s  peak {run['peak_mb']:4d} MB  "
                          f"{run['features']:,} features", flush=True)
                for leftover in directory.iterdir():
                    leftover.unlink()
            ours_s = statistics.median(r["seconds"] for r in runs["ours"])
            floor_s = statistics.median(r["seconds"] for r in runs["ogr2ogr"])
            results[fmt] = {
                "ours_s": round(ours_s, 2), "ogr2ogr_s": round(floor_s, 2), "ratio": round(ours_s / floor_s, 2),
                "ours_peak_mb": max(r["peak_mb"] for r in runs["ours"]),
                "ours_baseline_mb": max(r["baseline_mb"] for r in runs["ours"]),
                "ogr2ogr_peak_mb": max(r["peak_mb"] for r in runs["ogr2ogr"]),
                "features": runs["ours"][0]["features"],
                "same_features": all(r["features"] == runs["ours"][0]["features"] for r in runs["ours"] + runs["ogr2ogr"]),
                "ours_mb_file": round(runs["ours"][0]["bytes"] / 1e6, 1),
                "ogr2ogr_mb_file": round(runs["ogr2ogr"][0]["bytes"] / 1e6, 1),
            }

    print(f"\nlighting export of {args.reports:,} reports, medians of {args.rounds} rounds "
          f"(targets: ratio <= 1.5, worker peak < 300 MB)")
    print(f"{'format':8} {'features':>9} {'ours s':>8} {'ogr2ogr s':>10} {'ratio':>6} {'worker peak MB':>15} "
          f"{'(idle)':>7} {'ogr2ogr MB':>11}")
    for fmt, r in results.items():
        print(f"{fmt:8} {r['features']:>9,} {r['ours_s']:>8.2f} {r['ogr2ogr_s']:>10.2f} {r['ratio']:>6.2f} "
              f"{r['ours_peak_mb']:>15} {r['ours_baseline_mb']:>7} {r['ogr2ogr_peak_mb']:>11}"
              + ("" if r["same_features"] else "  FEATURE COUNTS DIFFER"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"export-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"reports": args.reports, "rounds": args.rounds, "period": period,
                               "results": results}, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    prepare_process_environment()
    main()
