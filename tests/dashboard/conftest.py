"""The dashboard in Debian's Chromium (Playwright), against the app served for real on a free port,
with real commits (the browser's requests run in the server's own threads and sessions): the `browser`
and `live_server` fixtures are tests/browser.py's."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Browser, Page


@dataclass
class Dashboard:
    page: Page
    base: str
    problems: list[str] = field(default_factory=list)
    tile_requests: list[str] = field(default_factory=list)

    def rendered_cells(self) -> list[dict]:
        """The heatmap features MapLibre has drawn: their properties and outer ring."""
        return self.page.evaluate("""() => state.map.queryRenderedFeatures({layers: ['heatmap']})
            .map(f => ({properties: f.properties, ring: f.geometry.coordinates[0]}))""")

    def wait_for_cells(self, timeout_ms: int = 15000) -> list[dict]:
        self.page.wait_for_function("() => state.map && state.map.loaded() && "
                                    "state.map.queryRenderedFeatures({layers: ['heatmap']}).length > 0", timeout=timeout_ms)
        return self.rendered_cells()

    def tab(self, name: str) -> None:
        self.page.get_by_role("tab", name=name).click()


@pytest.fixture
def open_dashboard(browser: Browser, live_server: str):
    """Open the dashboard signed in (development sign-in) as a role; console errors are collected."""
    contexts = []

    def open_as(role: str, council: str | None = None, query: str = "", viewport=(1400, 850)) -> Dashboard:
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        dashboard = Dashboard(page, live_server)
        page.on("console", lambda m: dashboard.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: dashboard.problems.append(f"page error: {e}"))
        page.on("request", lambda r: dashboard.tile_requests.append(r.url) if "/heatmap/tiles/" in r.url else None)
        page.goto(f"{live_server}/dashboard/{query}")
        page.select_option("#dev-role", role)
        if council:
            page.wait_for_function(f"() => document.querySelector('#dev-council option[value={council}]')")
            page.select_option("#dev-council", council)
        page.click("#sign-in-button")
        page.wait_for_selector("body[data-ready=true]", timeout=20000)
        return dashboard

    yield open_as
    for context in contexts:
        context.close()
