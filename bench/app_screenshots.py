"""``make app-screenshots``: the phone-sized pictures of the commuter's app in docs/images/ (docs/app.md,
README), taken with Debian's Chromium against the API as shipped, on a scratch database holding the
demo's safe hubs and a few hundred demo reports, with an alert near the phone."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

from backend.devtokens import emulator_token
from bench import screenshots

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
KINGS_CROSS = (-0.1240, 51.5308)
PHONE = {"width": 390, "height": 760}


def prepare(url: str) -> None:
    cli = [str(Path(sys.executable).parent / "safetravel")]
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([*cli, "councils", "load", str(ROOT / "data" / "london_boroughs.geojson")], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([*cli, "demo", "seed", "--reports", "300"], env=env, check=True, stdout=subprocess.DEVNULL)


def add_alert(base: str) -> None:
    token = emulator_token("screenshots-staff", role="safety_team")
    answer = requests.post(f"{base}/api/v1/alerts", headers={"Authorization": f"Bearer {token}"}, timeout=10, json={
        "title": "Incident at King's Cross St Pancras", "severity": "warning",
        "body": "Police are dealing with an incident in the ticket hall. Staff are on hand at the Euston Road exits.",
        "area": {"center": {"type": "Point", "coordinates": list(KINGS_CROSS)}, "radius_m": 800},
        "expires_at": (datetime.now(timezone.utc) + timedelta(hours=3)).isoformat()})
    answer.raise_for_status()


def shoot(base: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for locale, prefix in (("en-GB", "app"), ("cy-GB", "app-cy")):
            context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                          locale=locale, permissions=["geolocation"],
                                          geolocation={"longitude": KINGS_CROSS[0], "latitude": KINGS_CROSS[1], "accuracy": 15})
            page = context.new_page()
            page.goto(f"{base}/app/")
            page.wait_for_selector("body[data-ready=true]")
            page.screenshot(path=IMAGES / f"{prefix}-home.png")
            if prefix == "app-cy":
                context.close()
                continue
            page.get_by_role("button", name="Harassment", exact=True).click()
            page.wait_for_function("() => /\\d/.test(document.getElementById('location-status').textContent)")
            page.wait_for_timeout(1500)  # the map drawn
            page.screenshot(path=IMAGES / "app-report.png")
            page.get_by_role("button", name="Send report", exact=True).click()
            page.wait_for_function("() => document.body.dataset.sentOnce === 'true'")
            context.set_offline(True)
            page.get_by_role("button", name="Spiking", exact=True).click()
            page.wait_for_function("() => /\\d/.test(document.getElementById('location-status').textContent)")
            page.get_by_role("button", name="Send report", exact=True).click()
            page.wait_for_function("() => document.body.dataset.queued === '1'")
            page.screenshot(path=IMAGES / "app-offline.png")
            context.set_offline(False)
            page.wait_for_function("() => document.body.dataset.queued === '0'")
            page.locator("nav.tabs").get_by_role("button", name="Help").click()
            page.wait_for_selector("#hub-list li")
            page.wait_for_timeout(1500)
            page.screenshot(path=IMAGES / "app-help.png")
            page.locator("nav.tabs").get_by_role("button", name="Alerts").click()
            page.wait_for_selector("#alert-list li")
            page.screenshot(path=IMAGES / "app-alerts.png")
            page.locator("nav.tabs").get_by_role("button", name="My reports").click()
            page.wait_for_selector("#mine-list li")
            page.screenshot(path=IMAGES / "app-mine.png")
            page.locator("nav.tabs").get_by_role("button", name="Settings").click()
            page.get_by_role("button", name="Delete my data").click()
            page.screenshot(path=IMAGES / "app-delete.png")
            context.close()
        browser.close()


def main() -> None:
    def shoot_with_alert(base: str) -> None:
        add_alert(base)
        shoot(base)

    screenshots.take("app_screenshots", prepare, shoot_with_alert)
    print(f"screenshots written to {IMAGES.relative_to(ROOT)}/app-*.png")


if __name__ == "__main__":
    main()
