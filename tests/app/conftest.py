"""The commuter's app in Debian's Chromium (Playwright), phone-sized, with geolocation granted, against the
app served for real on a free port (the browser's requests commit for real)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Browser, BrowserContext, Page
from sqlalchemy import text

from backend.extensions import db

PHONE = {"width": 390, "height": 844}
BRIXTON = (-0.1145, 51.4627)  # (lon, lat)
NEUTRAL = "https://www.bbc.co.uk/weather"


@dataclass
class PhoneApp:
    context: BrowserContext
    page: Page
    base: str
    problems: list[str] = field(default_factory=list)

    def open(self) -> None:
        self.page.goto(f"{self.base}/app/")
        self.page.wait_for_selector("body[data-ready=true]", timeout=20000)

    def wait_until_offline_ready(self) -> None:
        """The service worker installed (the shell cached) and in control of the page."""
        self.page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=20000)

    def report(self, category: str = "Harassment", details: dict | None = None, send: str = "Send report") -> None:
        self.page.get_by_role("button", name=category, exact=True).click()
        self.page.wait_for_function("() => /\\d/.test(document.getElementById('location-status').textContent)")
        for label, value in (details or {}).items():
            self.page.get_by_label(label).fill(value)
        self.page.get_by_role("button", name=send, exact=True).click()
        self.page.wait_for_selector("#screen-home:not([hidden])")

    def queued(self) -> int:
        return int(self.page.get_attribute("body", "data-queued") or 0)

    def goto(self, tab: str) -> None:
        self.page.locator("nav.tabs").get_by_role("button", name=tab, exact=True).click()


@pytest.fixture
def open_app(browser: Browser, live_server: str):
    contexts: list[BrowserContext] = []

    def open_phone(locale: str = "en-GB", where: tuple[float, float] = BRIXTON, accuracy: float = 18.0,
                   viewport: dict | None = None) -> PhoneApp:
        context = browser.new_context(viewport=viewport or PHONE, locale=locale, permissions=["geolocation"],
                                      geolocation={"longitude": where[0], "latitude": where[1], "accuracy": accuracy},
                                      has_touch=True, is_mobile=True, service_workers="allow")
        contexts.append(context)
        context.route(f"{NEUTRAL}**", lambda route: route.fulfill(status=200, content_type="text/html",
                                                                  body="<title>Weather</title><h1>Weather</h1>"))
        page = context.new_page()
        phone = PhoneApp(context, page, live_server)
        page.on("console", lambda m: phone.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: phone.problems.append(f"page error: {e}"))
        phone.open()
        return phone

    yield open_phone
    for context in contexts:
        context.close()


def stored_reports(app) -> list[dict]:
    with app.app_context():
        rows = db.session.execute(text(
            "SELECT r.id, r.category, r.accuracy_m, ST_X(r.location) AS lon, ST_Y(r.location) AS lat, "
            "r.idempotency_key, u.firebase_uid, r.description, r.mode, r.line, r.station, r.factors, "
            "ST_NPoints(r.route) AS route_points FROM reports r JOIN users u ON u.id = r.author_id ORDER BY r.created_at"
        )).mappings().all()
        db.session.remove()
    return [dict(row) for row in rows]


@pytest.fixture
def reports_in_db(app) -> Iterator:
    yield lambda: stored_reports(app)
