"""The landing page at /: where someone typing the bare address is sent on to (the app, the dashboard,
the API reference), in words from its catalogue, under a policy with no script at all."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from backend.landing.views import catalogue


def test_the_bare_address_answers_a_page_not_a_json_404(client):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    strings = catalogue("en")
    for key in ("title", "lead", "app.link", "dashboard.link", "api.link"):
        assert strings[key].replace("'", "&#39;") in page
    for href in ('href="/app/"', 'href="/dashboard/"', 'href="/api/docs"'):
        assert href in page


def test_its_policy_allows_its_stylesheet_and_no_script(client):
    response = client.get("/")
    policy = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["style-src"] == "'self'"
    assert "script-src" not in policy and "<script" not in response.get_data(as_text=True)
    assert client.get("/landing/static/landing.css").status_code == 200
    # Everything else keeps the API's policy: the page's is for / alone.
    assert client.get("/healthz").headers["Content-Security-Policy"].startswith("default-src 'none'; base-uri")


def test_an_unknown_path_is_still_a_json_404(client):
    response = client.get("/nothing-here")
    assert response.status_code == 404 and response.is_json


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}, {"width": 1280, "height": 800}])
def test_the_page_passes_axe_and_its_links_lead_on(browser, live_server, viewport):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text) if message.type == "error" else None)
    try:
        page.goto(f"{live_server}/")
        results = Axe().run(page)
        assert [v["id"] for v in results.response["violations"] if v["impact"] in ("serious", "critical")] == []
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        assert violations == []
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")  # the dashboard's link
        page.keyboard.press("Enter")
        page.wait_for_url(f"{live_server}/dashboard/")
    finally:
        context.close()
