"""Security headers on every page and on the API (backend/security.py): each page loaded in Chromium
runs with no Content-Security-Policy violation, cannot be framed, and keeps its token out of web
storage; a cluster alert is confirmed for commuters from the dashboard with one click."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.sync_api import Page
from sqlalchemy import text
from werkzeug.serving import make_server

from backend import create_app
from backend.devserver import free_port
from backend.extensions import db
from backend.security import area_for, areas
from tests.alerts.test_alerts import add_device
from tests.browser import wait_for_async
from tests.exports.helpers import run_outbox
from tests.factories import PECKHAM

COMMON = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
ATTACKER = "http://attacker.invalid/"

# Reports every violation to the page's own list, from before the page's first script runs.
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
    (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def directives(policy: str) -> dict[str, list[str]]:
    return {name: sources for name, *sources in (d.split() for d in policy.split(";") if d.strip())}


class Watched:
    """A page in Chromium whose console messages about Content Security Policy are collected."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.csp_messages: list[str] = []
        self.errors: list[str] = []
        page.add_init_script(WATCH_VIOLATIONS)
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.csp_messages.append(message.text)
        elif message.type == "error":
            self.errors.append(message.text)

    def violations(self) -> list[str]:
        return self.page.evaluate("() => window.__violations") + self.csp_messages


@pytest.fixture
def watched(browser) -> Iterator:
    contexts = []

    def open_page(viewport=(1400, 850)) -> Watched:
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        contexts.append(context)
        return Watched(context.new_page())

    yield open_page
    for context in contexts:
        context.close()


# -- the headers, over HTTP ---------------------------------------------------------------------------

@pytest.mark.parametrize("path, area", [
    ("/dashboard/", "dashboard"),
    ("/dashboard/static/dashboard.js", "dashboard"),
    ("/api/docs", "API docs"),
    ("/api/v1/meta", "API and the rest"),
    ("/api/v1/reports", "API and the rest"),  # a 401
    ("/healthz", "API and the rest"),
    ("/app/", "commuter app"),
    ("/app/report/new", "commuter app"),
])
def test_every_answer_carries_the_headers_of_its_area(client, path, area):
    response = client.get(path)
    for name, value in COMMON.items():
        assert response.headers[name] == value, name
    policy = directives(response.headers["Content-Security-Policy"])
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response.headers["Content-Security-Policy"]
    permissions = response.headers["Permissions-Policy"]
    if area == "commuter app":
        assert "geolocation=(self)" in permissions
    else:
        assert "geolocation=()" in permissions
    if area == "API and the rest":
        assert policy["default-src"] == ["'none'"]
    else:
        assert policy["default-src"] == ["'self'"] and policy["script-src"] == ["'self'"]
        assert policy["style-src"] == ["'self'"] and policy["object-src"] == ["'none'"]


def test_a_page_added_under_app_gets_the_apps_policy_by_its_path(settings):
    site = areas(settings)
    assert area_for("/app/", site).name == "commuter app"
    assert area_for("/app/any/page/added/later", site).name == "commuter app"
    assert area_for("/application", site).name == "API and the rest"
    assert area_for("/dashboard/", site).name == "dashboard"


def test_the_basemap_and_firebase_origins_are_the_only_others_allowed(settings):
    configured = replace(settings, basemap_style_url="https://tiles.example.org/styles/liberty.json",
                         basemap_origins=("https://glyphs.example.net",), firebase_web_api_key="AIza-test",
                         firebase_auth_domain="safetravel.firebaseapp.com")
    policy = directives(area_for("/dashboard/", areas(configured)).content_security_policy)
    assert policy["connect-src"] == ["'self'", "https://tiles.example.org", "https://glyphs.example.net",
                                     "https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com"]
    assert policy["img-src"] == ["'self'", "data:", "blob:", "https://tiles.example.org", "https://glyphs.example.net"]
    assert policy["frame-src"] == ["https://safetravel.firebaseapp.com"]
    assert policy["script-src"] == ["'self'"]
    plain = directives(area_for("/dashboard/", areas(settings)).content_security_policy)
    assert plain["connect-src"] == ["'self'"] and plain["frame-src"] == ["'none'"]


@pytest.mark.parametrize("name, value", [
    ("BASEMAP_ORIGINS", "https://tiles.example.org/path"),
    ("BASEMAP_ORIGINS", "https://tiles.example.org; script-src *"),
    ("BASEMAP_ORIGINS", "javascript://x"),
    ("BASEMAP_STYLE_URL", "tiles.example.org/style.json"),
    ("BASEMAP_STYLE_URL", "https://x.org/s.json; script-src *"),
])
def test_origins_that_would_bend_the_policy_stop_the_process(name, value):
    from backend.config import ConfigError, Settings

    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


# -- each page in Chromium ----------------------------------------------------------------------------

def test_the_dashboard_runs_signed_in_with_no_policy_violation_and_no_token_in_web_storage(watched, live_server):
    watched_page = watched()
    page = watched_page.page
    answer = page.goto(f"{live_server}/dashboard/")
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["referrer-policy"] == "no-referrer"
    page.select_option("#dev-role", "safety_team")
    page.click("#sign-in-button")
    page.wait_for_selector("body[data-ready=true]", timeout=20000)
    page.wait_for_function("() => state.map.loaded()")
    page.get_by_role("tab", name="Alerts").click()
    page.locator("#clusters-waiting-none").wait_for()
    assert watched_page.violations() == [] and watched_page.errors == []
    stored = page.evaluate("() => [Object.keys(localStorage), Object.keys(sessionStorage)]")
    assert stored == [[], []]
    assert page.evaluate("() => state.token.split('.').length") == 3  # in memory


def test_the_dashboard_with_firebase_sign_in_loads_its_sdk_with_no_policy_violation(watched, settings):
    configured = create_app(replace(settings, firebase_web_api_key="AIza-test-key",
                                    firebase_auth_domain="safetravel-test.firebaseapp.com"))
    server = make_server("127.0.0.1", free_port(), configured, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        watched_page = watched()
        page = watched_page.page
        page.route("https://**/*", lambda route: route.abort())  # nothing leaves the machine
        page.goto(f"http://127.0.0.1:{server.server_port}/dashboard/")
        page.get_by_label("Email").wait_for()
        page.wait_for_function("() => window.firebase && firebase.apps.length === 1")
        assert watched_page.violations() == []
        assert page.evaluate("() => [Object.keys(localStorage), Object.keys(sessionStorage)]") == [[], []]
    finally:
        server.shutdown()
        thread.join(5)


def test_the_api_docs_render_with_no_policy_violation(watched, live_server):
    watched_page = watched()
    page = watched_page.page
    answer = page.goto(f"{live_server}/api/docs")
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    page.locator(".opblock").first.wait_for(timeout=20000)
    assert page.locator(".opblock").count() > 30  # the operations, from /api/openapi.json
    assert watched_page.violations() == [] and watched_page.errors == []


@pytest.mark.parametrize("path", ["/dashboard/", "/app/", "/api/docs", "/api/v1/meta"])
def test_no_page_can_be_framed_by_another_site(watched, live_server, path):
    page = watched().page
    # Another site frames ours, next to a page without our headers (which it may frame: the control).
    page.route("http://harmless.invalid/", lambda route: route.fulfill(content_type="text/html", body="<p>fine</p>"))
    page.route(ATTACKER, lambda route: route.fulfill(content_type="text/html", body=(
        f'<p>Win a prize!</p><iframe id="ours" src="{live_server}{path}"></iframe>'
        '<iframe id="control" src="http://harmless.invalid/"></iframe>')))
    page.goto(ATTACKER)
    page.wait_for_load_state("load")
    frames = {frame.url.split(":")[0]: frame for frame in page.main_frame.child_frames}
    control = page.frame_locator("#control").locator("p")
    assert control.inner_text() == "fine"
    # Chromium refuses ours (frame-ancestors 'none') and shows its own error page in its place.
    assert "chrome-error" in frames, [f.url for f in page.main_frame.child_frames]
    assert not any(f.url.startswith(live_server) for f in page.main_frame.child_frames)


# -- one click confirms a cluster alert for commuters -------------------------------------------------

def test_staff_see_a_waiting_cluster_on_the_map_and_push_it_to_commuters_with_one_click(open_dashboard, app):
    with app.app_context():
        add_device("commuter-near", list(PECKHAM), radius_m=1000)
        db.session.execute(text("UPDATE devices SET categories = '{spiking}' WHERE token = 'commuter-near'"))
        alert_id = str(db.session.scalar(text("""
            INSERT INTO alerts (title, body, severity, area, radius_m, kind, category, created_by, expires_at,
                                public_push)
            VALUES ('Spiking reports nearby', '4 spiking reports from 3 people within 300 m in 6 hours.', 'urgent',
                    ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 300, 'cluster', 'spiking', 'cluster-detection',
                    now() + interval '6 hours', 'awaiting_confirmation')
            RETURNING id"""), {"lon": PECKHAM[0], "lat": PECKHAM[1]}))
        db.session.commit()
        db.session.remove()
    dashboard = open_dashboard("safety_team")
    dashboard.tab("Alerts")
    page = dashboard.page
    item = page.locator(f"#clusters-waiting li[data-id='{alert_id}']")
    item.get_by_text("4 spiking reports from 3 people").wait_for()
    item.get_by_role("button", name="Show cluster on the map").click()
    wait_for_async(page, "async () => (await state.map.getSource('alert-area').getData()).features.length === 1")
    item.get_by_role("button", name="Push to commuters").click()
    item.get_by_text("Confirmed: being pushed to commuters nearby.").wait_for()
    with app.app_context():  # the worker
        run_outbox(app)
        confirmed = db.session.execute(text("SELECT public_push, confirmed_by, sent FROM alerts WHERE id = :id"),
                                       {"id": alert_id}).one()
        db.session.remove()
    assert tuple(confirmed) == ("done", "dev-safety_team", 1)
    page.locator("#alert-status .badge[data-status=sent]").wait_for(timeout=10000)
    assert dashboard.problems == []


# -- accessibility of what this change added (axe-core, vendored for the tests) ----------------------

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"


def serious_accessibility_violations(page: Page, selector: str) -> list[str]:
    # Run through the browser's debugging protocol, which the page's policy does not govern (an
    # inline <script> would be refused, as it should be).
    page.evaluate(AXE.read_text() + "\n;true")
    results = page.evaluate("async (selector) => await axe.run({include: [selector]})", selector)
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in results["violations"]
            if v["impact"] in ("serious", "critical")]


def test_the_waiting_clusters_pass_an_accessibility_scan_and_work_from_the_keyboard(open_dashboard, app):
    with app.app_context():
        db.session.execute(text("""
            INSERT INTO alerts (title, body, severity, area, radius_m, kind, category, created_by, expires_at,
                                public_push)
            VALUES ('Harassment reports nearby', '3 harassment reports from 3 people within 300 m in 6 hours.',
                    'warning', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 300, 'cluster', 'harassment',
                    'cluster-detection', now() + interval '6 hours', 'awaiting_confirmation')"""),
            {"lon": PECKHAM[0], "lat": PECKHAM[1]})
        db.session.commit()
        db.session.remove()
    dashboard = open_dashboard("safety_team", viewport=(390, 844))  # a phone
    dashboard.tab("Alerts")
    page = dashboard.page
    page.get_by_text("3 harassment reports from 3 people").wait_for()
    assert serious_accessibility_violations(page, "#tab-alerts") == []
    confirm = page.get_by_role("button", name="Push to commuters")
    confirm.focus()
    page.keyboard.press("Enter")
    page.get_by_text("Confirmed: being pushed to commuters nearby.").wait_for()
    assert dashboard.problems == []
