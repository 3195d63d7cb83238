"""``make dashboard-screenshots``: the pictures of the dashboard in docs/images/ (README, docs/dashboard.md),
taken with Debian's Chromium against the API as shipped, on a scratch database holding the boroughs,
the shipped street network and the demo data (its hubs, devices and a few thousand reports), signed in
with the development sign-in. No basemap is configured: the map is the built-in base layer.

- dashboard.png: a laptop, the heatmap over central London with the hotspots;
- dashboard-alert.png: a laptop, zoomed in at King's Cross (streets and station names), an alert aimed
  at the station's hub with its circle drawn;
- dashboard-hours.png: the Hubs tab's opening-hours editor;
- dashboard-phone.png: a phone (390×844).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from bench import screenshots

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
LAPTOP = {"width": 1400, "height": 850}
PHONE = {"width": 390, "height": 844}


def prepare(url: str) -> None:
    cli = [str(Path(sys.executable).parent / "safetravel")]
    env = {**os.environ, "DATABASE_URL": url}
    for command in (["councils", "load", str(ROOT / "data" / "london_boroughs.geojson")], ["streets", "load"],
                    ["demo", "seed", "--reports", "6000"]):
        subprocess.run([*cli, *command], env=env, check=True, stdout=subprocess.DEVNULL)


def sign_in(page: Page, base: str, where: str) -> None:
    page.goto(f"{base}/dashboard/{where}")
    page.select_option("#dev-role", "safety_team")
    page.click("#sign-in-button")
    page.wait_for_selector("body[data-ready=true]")


def settle(page: Page) -> None:
    page.wait_for_function("() => state.map.loaded() && !state.map.isMoving()")
    page.wait_for_timeout(1500)


def shoot(base: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        context = browser.new_context(viewport=LAPTOP)
        page = context.new_page()
        sign_in(page, base, "#map=12.2/51.5120/-0.1150")
        page.get_by_role("tab", name="Hotspots").click()
        page.wait_for_selector("#hotspots li")
        settle(page)
        page.screenshot(path=IMAGES / "dashboard.png")

        page.get_by_role("tab", name="Alerts").click()
        page.get_by_label("Around a safe hub").check()
        page.locator("#alert-hub").select_option(label="King's Cross & St Pancras International station")
        page.get_by_label("Radius (m)").fill("400")
        page.wait_for_function("async () => (await state.map.getSource('alert-area').getData()).features.length === 1")
        page.evaluate("() => state.map.jumpTo({zoom: 15.2})")
        page.wait_for_function("() => document.querySelectorAll('.station-label').length > 0")
        settle(page)
        page.screenshot(path=IMAGES / "dashboard-alert.png")

        page.get_by_role("tab", name="Hubs").click()
        page.evaluate("() => editHub(state.hubs.find((h) => h.name.startsWith('Late-night venue 1 ')).id)")
        settle(page)
        page.locator(".panel").screenshot(path=IMAGES / "dashboard-hours.png")
        context.close()

        context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
        page = context.new_page()
        sign_in(page, base, "#map=11.5/51.5120/-0.1150")
        settle(page)
        page.screenshot(path=IMAGES / "dashboard-phone.png")
        context.close()
        browser.close()


def main() -> None:
    screenshots.take("dashboard_screenshots", prepare, shoot)
    print(f"screenshots written to {IMAGES.relative_to(ROOT)}/dashboard*.png")


if __name__ == "__main__":
    main()
