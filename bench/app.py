"""``make bench-app``: the commuter's app shell, its size compressed and how soon it is ready to report on
a slow mobile network, first visit and repeat visit.

The API runs as shipped (gunicorn, deploy/gunicorn.conf.py) on a scratch database; Debian's Chromium
(Playwright) opens ``/app/`` in a phone-sized context with Chromium's network emulation (CDP
``Network.emulateNetworkConditions``: 1.6 Mbit/s down, 750 kbit/s up, 150 ms round trip, the
"slow 4G"/"fast 3G" profile). "Ready to report" is the page's ``safetravel-ready`` performance mark:
the three category buttons enabled with the catalogue and ``GET /meta`` loaded, measured from the
navigation's start. The repeat visit is a new page in the same browser profile, the service worker in
control.

The shell's size is every file the service worker caches as the app's own (its ``SHELL`` list: page,
code, catalogues, styles, icons, idb), each compressed with gzip -9 as a proxy or CDN would send it;
MapLibre (loaded only when a map is drawn) is shown apart. Targets (issue 12): shell ≤ 150 KB
compressed; ready within 2 s, first and repeat visit.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import statistics
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from backend.config import prepare_process_environment
from backend.devserver import free_port, scratch_database, start_api

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
SLOW = {"offline": False, "latency": 150, "downloadThroughput": 1_600_000 / 8, "uploadThroughput": 750_000 / 8}
PHONE = {"width": 390, "height": 844}
MAP_LIBRARY = [f"/dashboard/static/vendor/maplibre-gl/{name}"
               for name in ("maplibre-gl-csp.js", "maplibre-gl-csp-worker.js", "maplibre-gl.css")]


def shell_paths(base: str) -> list[str]:
    source = urllib.request.urlopen(f"{base}/app/sw.js").read().decode()
    listed = source.split("const SHELL = [", 1)[1].split("];", 1)[0]
    return json.loads("[" + listed.strip().rstrip(",") + "]")


def compressed_sizes(base: str, paths: list[str]) -> tuple[int, int]:
    raw = packed = 0
    for path in paths:
        body = urllib.request.urlopen(f"{base}{path}").read()
        raw += len(body)
        packed += len(gzip.compress(body, compresslevel=9))
    return raw, packed


def ready_ms(page) -> float:
    page.wait_for_selector("body[data-ready=true]", timeout=60000)
    return page.evaluate("performance.getEntriesByName('safetravel-ready')[0].startTime")


def visit_times(browser, base: str) -> tuple[float, float]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, permissions=["geolocation"],
                                  geolocation={"longitude": -0.1145, "latitude": 51.4627, "accuracy": 20})
    try:
        page = context.new_page()
        context.new_cdp_session(page).send("Network.emulateNetworkConditions", SLOW)
        page.goto(f"{base}/app/")
        first = ready_ms(page)
        page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=60000)
        page.wait_for_timeout(500)  # the service worker's install finished caching
        page.close()
        again = context.new_page()
        context.new_cdp_session(again).send("Network.emulateNetworkConditions", SLOW)
        again.goto(f"{base}/app/")
        return first, ready_ms(again)
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="fresh browser profiles to time (median shown)")
    args = parser.parse_args()
    prepare_process_environment()
    url, _ = scratch_database(os.environ["DATABASE_URL"], "bench_app")
    port = free_port()
    server = start_api(url, os.environ["REDIS_URL"], port)
    base = f"http://127.0.0.1:{port}"
    try:
        shell = shell_paths(base)
        raw, packed = compressed_sizes(base, shell)
        map_raw, map_packed = compressed_sizes(base, MAP_LIBRARY)
        firsts, repeats = [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            for _ in range(args.rounds):
                first, repeat = visit_times(browser, base)
                firsts.append(first)
                repeats.append(repeat)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
    print(f"app shell: {len(shell)} files, {raw / 1024:.1f} KB, {packed / 1024:.1f} KB gzip -9 (target <= 150 KB)")
    print(f"map library (apart, loaded with the first map): {map_raw / 1024:.0f} KB, {map_packed / 1024:.0f} KB gzip -9")
    print("network: 1.6 Mbit/s down, 750 kbit/s up, 150 ms RTT (CDP Network.emulateNetworkConditions)")
    print(f"ready to report, first visit:  median {statistics.median(firsts):.0f} ms "
          f"(min {min(firsts):.0f}, max {max(firsts):.0f}; {args.rounds} rounds; target <= 2000)")
    print(f"ready to report, repeat visit: median {statistics.median(repeats):.0f} ms "
          f"(min {min(repeats):.0f}, max {max(repeats):.0f})")


if __name__ == "__main__":
    main()
