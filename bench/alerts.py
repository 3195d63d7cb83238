"""``make bench-alerts``: alert targeting and fan-out, each figure next to its baseline in the same run.

1. Selection: with 1,000,000 devices spread over Greater London, the time to select the devices a
   1 km alert reaches (the API's own targeting query, as a SELECT), median and p95 over alerts at
   random places, with the plan showing the index in use. Target: under 200 ms.
2. Fan-out: a 100,000-device alert sent by the real fan-out (claims, firebase-admin ``send_each``
   in batches of 500, delivery records), FCM intercepted over HTTP (the `responses` library, as in the
   tests), in messages per second; next to the same firebase-admin ``send_each`` calls on the same
   messages with no app code around them (the floor).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import responses
from firebase_admin import _http_client, messaging
from sqlalchemy import text

from backend import create_app
from backend.alerts import notifier as notifiers
from backend.alerts import sending as alerts
from backend.alerts.models import Alert
from backend.config import prepare_process_environment
from backend.devserver import scratch_database
from backend.extensions import db
from tests.alerts.fcm import SEND_URL, TOKEN_URL, firebase_test_app

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
def ensure_devices(dsn: str, count: int) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT count(*) FROM devices").fetchone()[0] == count:
            return 0.0
        started = time.perf_counter()
        conn.execute("TRUNCATE devices, alert_deliveries, alerts CASCADE")
        conn.execute("INSERT INTO users (firebase_uid) VALUES ('bench-devices') ON CONFLICT DO NOTHING")
        # Spread over Greater London, denser towards the centre; coarse like the API stores them.
        conn.execute("""
            INSERT INTO devices (user_id, token, platform, audience, location, radius_m, categories)
            SELECT u.id, 'bench-token-' || n, 'android', CASE WHEN n %% 200 = 0 THEN 'staff' ELSE 'commuter' END,
                   ST_SnapToGrid(ST_SetSRID(ST_MakePoint(
                       least(0.33, greatest(-0.51, -0.12 + 0.1 * tan(pi() * (random() - 0.5)))),
                       least(51.69, greatest(51.28, 51.51 + 0.05 * tan(pi() * (random() - 0.5))))), 4326),
                       0.0009, 0.0014),
                   (ARRAY[250, 500, 1000, 1000, 2000, 5000])[1 + (n %% 6)], '{spiking}'
            FROM users u, generate_series(1, %s) AS n WHERE u.firebase_uid = 'bench-devices'
        """, (count,))
        conn.execute("VACUUM ANALYZE devices")
        return time.perf_counter() - started


def measure_selection(dsn: str, alerts_count: int, rng: random.Random) -> dict:
    """The API's own targeting query for 1 km alerts at random places in London, counted in the
    database (the fan-out inserts the selected ids there too, so no rows travel to the client)."""
    query = "SELECT count(*) FROM (" + alerts.TARGET_MANUAL_SELECT.replace(":alert_id", "%(alert_id)s") + ") AS t"
    timings, sizes = [], []
    with psycopg.connect(dsn) as conn:
        ids = []
        for _ in range(alerts_count):
            ids.append(conn.execute("""
                INSERT INTO alerts (title, body, severity, area, radius_m, expires_at, created_by)
                VALUES ('x', 'x', 'info', ST_SetSRID(ST_MakePoint(%s, %s), 4326), 1000, now() + interval '1 hour', 'bench')
                RETURNING id""", (rng.uniform(-0.25, 0.0), rng.uniform(51.45, 51.56))).fetchone()[0])
        conn.execute(query, {"alert_id": ids[0]}).fetchall()  # warm
        for alert_id in ids:
            started = time.perf_counter()
            sizes.append(conn.execute(query, {"alert_id": alert_id}).fetchone()[0])
            timings.append(time.perf_counter() - started)
        plan = [r[0] for r in conn.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + query,
                                           {"alert_id": ids[0]}).fetchall()]
        conn.rollback()
    ordered = sorted(timings)
    return {"alerts": alerts_count, "p50_ms": round(1000 * statistics.median(timings), 1),
            "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 1),
            "devices_selected_median": int(statistics.median(sizes)), "plan": plan}


def intercept_fcm(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.POST, TOKEN_URL, json={"access_token": "bench", "expires_in": 3600, "token_type": "Bearer"})
    rsps.add(responses.POST, SEND_URL, json={"name": "projects/demo-safetravel/messages/1"})


def measure_fanout(dsn: str, devices: int) -> dict:
    """The real fan-out to ``devices`` devices, next to bare firebase-admin on the same messages."""
    _http_client.DEFAULT_RETRY_CONFIG.backoff_factor = 0
    app = firebase_test_app()
    notifiers.use(notifiers.FcmNotifier(app))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        intercept_fcm(rsps)
        # The fan-out proper (targeting is timed above): the alert sits where no device is (0°, 0°), and
        # its deliveries are the `devices` devices nearest central London, so exactly that many are sent.
        alert = db.session.execute(text("""
            INSERT INTO alerts (title, body, severity, area, radius_m, expires_at, created_by)
            VALUES ('Bench', 'Fan-out benchmark', 'info', ST_SetSRID(ST_MakePoint(0, 0), 4326), 50, :exp, 'bench')
            RETURNING id"""), {"exp": datetime.now(timezone.utc) + timedelta(hours=1)}).scalar()
        db.session.execute(text("""
            INSERT INTO alert_deliveries (alert_id, device_id)
            SELECT :alert, id FROM devices ORDER BY location <-> ST_SetSRID(ST_MakePoint(-0.12, 51.51), 4326)
            LIMIT :n"""), {"alert": alert, "n": devices})
        db.session.commit()
        tokens = db.session.scalars(text(
            "SELECT d.token FROM alert_deliveries ad JOIN devices d ON d.id = ad.device_id WHERE ad.alert_id = :a"),
            {"a": alert}).all()
        started = time.perf_counter()
        figures = alerts.send_alert(str(alert))
        app_s = time.perf_counter() - started

        # The very messages the app sends (title, body, data, collapse ids on every platform).
        payload = alerts._payload(db.session.get(Alert, alert))
        started = time.perf_counter()
        for i in range(0, len(tokens), notifiers.MAX_BATCH):
            messaging.send_each([
                notifiers.message(notifiers.Push(t, "Bench", "Fan-out benchmark", payload, collapse_id=str(alert)))
                for t in tokens[i:i + notifiers.MAX_BATCH]], app=app)
        floor_s = time.perf_counter() - started
    notifiers.use(None)
    db.session.execute(text("DELETE FROM alerts WHERE id = :a"), {"a": alert})
    db.session.commit()
    return {"devices": devices, "sent": figures["sent"], "app_msgs_per_s": round(devices / app_s),
            "floor_msgs_per_s": round(devices / floor_s), "ratio": round(floor_s / app_s, 2),
            "app_s": round(app_s, 1), "floor_s": round(floor_s, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--alerts", type=int, default=30, help="alerts timed for the selection figure")
    parser.add_argument("--fanout", type=int, default=100_000, help="devices in the fan-out figure (0: skip it)")
    args = parser.parse_args()
    import warnings

    warnings.filterwarnings("ignore", message="Message.token is deprecated")
    url, dsn = scratch_database(os.environ["DATABASE_URL"], "bench_devices")
    loaded = ensure_devices(dsn, args.devices)
    if loaded:
        print(f"registered {args.devices:,} synthetic devices in {loaded:.0f} s")
    os.environ["DATABASE_URL"] = url
    rng = random.Random(5)
    print("selection...", flush=True)
    selection = measure_selection(dsn, args.alerts, rng)
    print(f"  1 km alert: p50 {selection['p50_ms']} ms, p95 {selection['p95_ms']} ms "
          f"({selection['devices_selected_median']:,} devices selected, median)")
    print("\n".join("    " + line for line in selection["plan"]))
    fanout = None
    if args.fanout:
        print("fan-out...", flush=True)
        with create_app().app_context():
            fanout = measure_fanout(dsn, args.fanout)
        print(f"  {fanout['devices']:,} devices: app {fanout['app_msgs_per_s']:,} msg/s ({fanout['app_s']} s), "
              f"bare firebase-admin {fanout['floor_msgs_per_s']:,} msg/s ({fanout['floor_s']} s), "
              f"app/floor = {fanout['ratio']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "alerts.json").write_text(json.dumps(
        {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "devices": args.devices,
         "selection": selection, "fanout": fanout}, indent=2) + "\n")
    print()
    print("| devices | 1 km alert selection p50 / p95 (target < 200 ms) | devices selected (median) |")
    print("| ---: | ---: | ---: |")
    print(f"| {args.devices:,} | {selection['p50_ms']} / {selection['p95_ms']} ms | "
          f"{selection['devices_selected_median']:,} |")
    if fanout:
        print()
        print("| fan-out devices | app (claims, send_each, records) | bare firebase-admin send_each | ratio |")
        print("| ---: | ---: | ---: | ---: |")
        print(f"| {fanout['devices']:,} | {fanout['app_msgs_per_s']:,} msg/s | {fanout['floor_msgs_per_s']:,} msg/s | "
              f"{fanout['ratio']} |")


if __name__ == "__main__":
    prepare_process_environment()
    main()
