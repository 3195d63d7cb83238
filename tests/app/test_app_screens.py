"""The commuter's app beyond reporting: Quick exit, help and alerts nearby, delete my data, languages,
the keyboard alone, accessibility on every screen; and how the server serves it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from backend.geo import haversine_m
from tests.app.conftest import BRIXTON, NEUTRAL

STATIC = Path(__file__).resolve().parents[2] / "backend" / "app" / "static"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def east_of_brixton(metres: float) -> list[float]:
    return [BRIXTON[0] + metres / 69_400, BRIXTON[1]]  # about 69.4 km per degree of longitude at 51.46°N


def add_hub(client, staff, name: str, metres: float, hours, phone: str | None = "+44 20 7946 0000") -> dict:
    answer = client.post("/api/v1/safe-hubs", headers=staff.headers(), json={
        "name": name, "kind": "venue", "location": {"type": "Point", "coordinates": east_of_brixton(metres)},
        "address": f"{int(metres)} Brixton Road", "phone": phone, "opening_hours": hours})
    assert answer.status_code == 201, answer.json
    return answer.json


def test_quick_exit_replaces_the_app_and_leaves_no_way_back(open_app):
    phone = open_app()
    phone.goto("Help")
    phone.goto("My reports")  # moving between screens adds nothing to the history
    phone.page.get_by_role("button", name="Quick exit").click()
    phone.page.wait_for_url(NEUTRAL)
    phone.page.go_back()
    assert "/app/" not in phone.page.url
    assert phone.page.evaluate("history.length") == 2  # the blank start page and the neutral site


def test_escape_twice_is_a_quick_exit_from_any_screen(open_app):
    phone = open_app()
    phone.page.get_by_role("button", name="Spiking", exact=True).click()
    phone.page.keyboard.press("Escape")
    phone.page.keyboard.press("Escape")
    phone.page.wait_for_url(NEUTRAL)
    phone.page.go_back()
    assert "/app/" not in phone.page.url


def test_help_nearby_lists_the_open_hubs_nearest_first_and_leaves_a_closed_one_out(open_app, client, staff):
    always = {day: [["00:00", "24:00"]] for day in DAYS}
    add_hub(client, staff, "Closed Cafe", 80, {})  # the nearest, but never open
    add_hub(client, staff, "Far Pharmacy", 900, always)
    add_hub(client, staff, "Near Bar", 250, "24/7", phone="020 7946 0001")
    phone = open_app()
    phone.goto("Help")
    phone.page.wait_for_function("() => document.querySelectorAll('#hub-list li').length === 2")
    cards = phone.page.locator("#hub-list li")
    assert cards.locator("h3").all_inner_texts() == ["Near Bar", "Far Pharmacy"]
    first = cards.nth(0)
    assert "250 m away" in first.inner_text() and "Open now" in first.inner_text()
    assert first.get_by_role("link", name="Call Near Bar").get_attribute("href") == "tel:02079460001"
    lon, lat = east_of_brixton(250)
    geo = first.get_by_role("link", name="Directions to Near Bar").get_attribute("href")
    assert [float(x) for x in geo.removeprefix("geo:").split("?")[0].split(",")] == pytest.approx([lat, lon])
    assert "Closed Cafe" not in phone.page.locator("#screen-help").inner_text()
    assert round(haversine_m(BRIXTON, east_of_brixton(250))) in range(245, 256)


def test_help_nearby_says_when_a_hub_closes_in_the_city_time(open_app, client, staff, app):
    add_hub(client, staff, "Late Venue", 300, {day: [["06:00", "05:59"]] for day in DAYS})
    phone = open_app()
    phone.goto("Help")
    phone.page.wait_for_selector("#hub-list li")
    assert "Open now, closes 05:59" in phone.page.locator("#hub-list li").inner_text()


def test_alerts_nearby_show_the_active_alerts_here(open_app, client, staff):
    expires = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
    posted = client.post("/api/v1/alerts", headers=staff.headers(), json={
        "title": "Avoid Coldharbour Lane", "body": "Police incident near the station.", "severity": "warning",
        "area": {"center": {"type": "Point", "coordinates": list(BRIXTON)}, "radius_m": 500}, "expires_at": expires})
    assert posted.status_code == 202, posted.json
    client.post("/api/v1/alerts", headers=staff.headers(), json={
        "title": "Far away", "body": "Elsewhere.", "severity": "info",
        "area": {"center": {"type": "Point", "coordinates": [-0.3, 51.6]}, "radius_m": 500}, "expires_at": expires})
    phone = open_app()
    phone.goto("Alerts")
    alert = phone.page.locator(f"#alert-{posted.json['id']}")
    alert.wait_for()
    assert "Avoid Coldharbour Lane" in alert.inner_text() and "Warning" in alert.inner_text()
    assert phone.page.locator("#alert-list li").count() == 1


def test_delete_my_data_says_what_goes_and_what_stays_then_erases_it(open_app, reports_in_db):
    phone = open_app()
    phone.report("Harassment")
    phone.page.wait_for_function("() => document.body.dataset.sentOnce === 'true'")
    assert len(reports_in_db()) == 1
    phone.goto("Settings")
    phone.page.get_by_role("button", name="Delete my data").click()
    dialog = phone.page.get_by_role("dialog", name="Delete my data?")
    assert "every report you sent" in dialog.inner_text() and "the heatmap's counts" in dialog.inner_text()
    dialog.get_by_role("button", name="Keep my data").click()
    assert len(reports_in_db()) == 1
    phone.page.get_by_role("button", name="Delete my data").click()
    dialog.get_by_role("button", name="Delete everything").click()
    phone.page.wait_for_function("() => document.getElementById('settings-status').textContent.includes('deleted')")
    assert reports_in_db() == []
    phone.goto("My reports")
    phone.page.wait_for_function("() => document.getElementById('mine-status').textContent === 'No reports sent yet.'")


def test_welsh_from_the_browser_and_a_report_still_valid_then_switched_to_english(open_app, reports_in_db):
    phone = open_app(locale="cy-GB")
    assert phone.page.get_attribute("html", "lang") == "cy"
    for name in ("Aflonyddu", "Sbeicio", "Llwybr anniogel"):
        assert phone.page.get_by_role("button", name=name, exact=True).is_visible()
    assert phone.page.get_by_role("button", name="Gadael yn gyflym").is_visible()
    phone.report("Sbeicio", send="Anfon adroddiad")
    phone.page.wait_for_function("() => document.body.dataset.sentOnce === 'true'")
    expect(phone.page.locator("#queue-status")).to_have_text("Mae eich holl adroddiadau wedi'u hanfon.")
    [stored] = reports_in_db()
    assert stored["category"] == "spiking"
    phone.goto("Gosodiadau")
    phone.page.get_by_label("Iaith").select_option("en")
    assert phone.page.get_by_role("button", name="Quick exit").is_visible()
    phone.page.reload()
    phone.page.wait_for_selector("body[data-ready=true]")
    assert phone.page.get_by_role("button", name="Harassment", exact=True).is_visible()  # the choice is kept


def test_polish_catalogue_has_every_key_of_the_english_one(open_app):
    phone = open_app(locale="pl-PL")
    keys = phone.page.evaluate("""async () => {
        const [en, cy, pl] = await Promise.all(['en', 'cy', 'pl'].map((c) => import(`/app/static/js/catalogues/${c}.js`)));
        return [Object.keys(en.default).sort(), Object.keys(cy.default).sort(), Object.keys(pl.default).sort()];
    }""")
    assert keys[0] == keys[1] == keys[2]
    assert phone.page.get_by_role("button", name="Nękanie", exact=True).is_visible()


def test_the_words_offered_come_from_the_servers_vocabulary(open_app, client):
    meta = client.get("/api/v1/meta").json
    phone = open_app()
    phone.page.get_by_role("button", name="Spiking", exact=True).click()
    values = phone.page.eval_on_selector_all("#subcategory option", "os => os.map((o) => o.value)")
    assert values == ["", *next(c["subcategories"] for c in meta["vocabulary"]["categories"] if c["name"] == "spiking")]
    assert phone.page.eval_on_selector_all("#factors input", "is => is.map((i) => i.value)") == meta["vocabulary"]["factors"]
    assert phone.page.get_attribute("#description", "maxlength") == str(meta["report_limits"]["max_description_chars"])


def tab_to(page, name: str, limit: int = 80) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate("""() => { const e = document.activeElement;
            return (e.getAttribute('aria-label') || (e.labels && e.labels[0] ? e.labels[0].textContent : e.textContent) || '').trim(); }""")
        if focused == name:
            return
    raise AssertionError(f"{name!r} not reached with Tab")


def test_a_report_made_with_the_keyboard_alone(open_app, reports_in_db):
    phone = open_app()
    tab_to(phone.page, "Harassment")
    phone.page.keyboard.press("Enter")
    phone.page.wait_for_function("() => /\\d/.test(document.getElementById('location-status').textContent)")
    assert phone.page.evaluate("document.activeElement.id") == "report-title"  # focus moved to the new screen
    tab_to(phone.page, "Now")  # the time's quick picks are one radio group: arrows move within it
    phone.page.keyboard.press("ArrowRight")
    assert phone.page.get_by_label("15 minutes ago").is_checked()
    tab_to(phone.page, "Send report")
    phone.page.keyboard.press("Enter")
    phone.page.wait_for_function("() => document.body.dataset.sentOnce === 'true'")
    [stored] = reports_in_db()
    assert stored["category"] == "harassment"


def serious(page) -> list[str]:
    results = Axe().run(page)
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("viewport", [{"width": 360, "height": 640}, {"width": 1280, "height": 800}])
def test_every_screen_passes_axe_without_serious_violations(open_app, client, staff, viewport):
    add_hub(client, staff, "Near Bar", 250, "24/7")
    phone = open_app(viewport=viewport)
    found = {"home": serious(phone.page)}
    phone.page.get_by_role("button", name="Unsafe route", exact=True).click()
    phone.page.get_by_text("Add details (optional)").click()
    found["report"] = serious(phone.page)
    for tab, ready in (("Help", "#hub-list li"), ("Alerts", "#alerts-status:not(:empty)"), ("My reports", "#mine-status:not(:empty)"),
                       ("Settings", "#language")):
        phone.goto(tab)
        phone.page.wait_for_selector(ready)
        found[tab] = serious(phone.page)
    phone.page.get_by_role("button", name="Delete my data").click()
    found["delete dialog"] = serious(phone.page)
    assert {screen: problems for screen, problems in found.items() if problems} == {}


def test_right_to_left_layout_mirrors_without_overflow(open_app):
    phone = open_app(viewport={"width": 360, "height": 640})
    phone.page.evaluate("document.documentElement.dir = 'rtl'")  # as a right-to-left catalogue sets it
    exit_box = phone.page.get_by_role("button", name="Quick exit").bounding_box()
    assert exit_box["x"] < 100  # the top bar's end is now on the left
    for tab in ("Report", "Help", "Settings"):
        phone.goto(tab)
        assert phone.page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_touch_targets_are_at_least_44_pixels(open_app):
    phone = open_app(viewport={"width": 360, "height": 640})
    small = phone.page.evaluate("""() => [...document.querySelectorAll('button, a, select, input, summary')]
        .filter((e) => e.offsetParent !== null)
        .map((e) => [e.textContent.trim() || e.id, e.getBoundingClientRect().height])
        .filter(([, h]) => h < 44)""")
    assert small == []


# -- how the server serves it -------------------------------------------------------------------------

def test_the_manifest_makes_it_installable(client):
    answer = client.get("/app/manifest.webmanifest")
    manifest = answer.json
    assert answer.headers["Content-Type"].startswith("application/manifest+json")
    assert manifest["display"] == "standalone" and manifest["start_url"] == "/app/"
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in manifest["icons"]:
        assert client.get(icon["src"]).status_code == 200


def test_the_service_worker_caches_the_whole_shell_and_nothing_of_the_api(client):
    answer = client.get("/app/sw.js")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-cache"
    source = answer.get_data(as_text=True)
    shell = json.loads("[" + source.split("const SHELL = [", 1)[1].split("];", 1)[0].rstrip().rstrip(",") + "]")
    own_files = {f"/app/static/{p.relative_to(STATIC)}" for p in STATIC.rglob("*")
                 if p.is_file() and p.suffix in (".js", ".css", ".png", ".svg") and p.name != "sw.js"}
    assert own_files == {path for path in shell if path.startswith("/app/static/")}
    assert not any(path.startswith("/api/") for path in shell)
    for path in shell:
        assert client.get(path).status_code == 200, path


def test_pages_need_no_inline_script_or_style(client):
    page = client.get("/app/").get_data(as_text=True)
    assert "style=" not in page and "<style" not in page and "onclick" not in page
    scripts = [chunk.split(">", 1)[0] for chunk in page.split("<script")[1:]]
    assert all("src=" in s or 'type="application/json"' in s for s in scripts)
    for js in STATIC.rglob("*.js"):
        if "vendor" not in js.parts:
            text = js.read_text()
            assert "eval(" not in text and "innerHTML" not in text and "new Function" not in text, js


def test_development_sign_in_gives_an_anonymous_uid_and_keeps_it(client):
    first = client.post("/app/dev-sign-in", json={})
    assert first.status_code == 200 and first.json["uid"].startswith("anon-")
    again = client.post("/app/dev-sign-in", json={"uid": first.json["uid"]})
    assert again.json["uid"] == first.json["uid"]
    me = client.get("/api/v1/me/reports", headers={"Authorization": f"Bearer {again.json['token']}"})
    assert me.status_code == 200 and me.json["items"] == []


@pytest.mark.parametrize("uid", ["dev-admin", "anon-xyz", 7, ""])
def test_development_sign_in_gives_only_anonymous_uids(client, uid):
    answer = client.post("/app/dev-sign-in", json={"uid": uid})
    assert answer.status_code == 422 and "uid" in answer.json["errors"]


def test_development_sign_in_is_refused_in_production_configuration(app, client):
    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = replace(settings, app_env="production", firebase_auth_emulator_host=None)
    try:
        assert client.post("/app/dev-sign-in", json={}).status_code == 404
        assert '"devSignIn": false' in client.get("/app/").get_data(as_text=True)
    finally:
        app.config["SETTINGS"] = settings


def test_the_lines_offered_are_the_repositorys_own(client):
    lines = client.get("/app/data/lines.json").json["lines"]
    assert "Victoria" in lines and "DLR" in lines and len(lines) == 12


def post_alert(client, staff, title: str = "Avoid Coldharbour Lane") -> dict:
    answer = client.post("/api/v1/alerts", headers=staff.headers(), json={
        "title": title, "body": "Police incident near the station.", "severity": "urgent",
        "area": {"center": {"type": "Point", "coordinates": list(BRIXTON)}, "radius_m": 500},
        "expires_at": (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()})
    assert answer.status_code == 202, answer.json
    return answer.json


def test_push_is_offered_only_when_firebase_messaging_is_configured(app, client):
    assert '"vapidKey": null' in client.get("/app/").get_data(as_text=True)
    settings = app.config["SETTINGS"]
    web = {"firebase_web_api_key": "web-key", "firebase_web_app_id": "1:123:web:abc", "firebase_messaging_sender_id": "123"}
    try:
        app.config["SETTINGS"] = replace(settings, **web)
        assert '"vapidKey": null' in client.get("/app/").get_data(as_text=True)  # no VAPID key: no push
        app.config["SETTINGS"] = replace(settings, **web, firebase_vapid_key="BPublicKey")
        page = client.get("/app/").get_data(as_text=True)
        assert '"vapidKey": "BPublicKey"' in page and '"messagingSenderId": "123"' in page
    finally:
        app.config["SETTINGS"] = settings


def test_a_tapped_notification_opens_its_alert_without_a_history_entry(open_app, client, staff, live_server):
    alert = post_alert(client, staff)
    phone = open_app()
    phone.page.goto(f"{live_server}/app/?alert={alert['id']}")
    card = phone.page.locator(f"#alert-{alert['id']}.linked")
    card.wait_for()
    assert phone.page.evaluate("document.activeElement.id") == f"alert-{alert['id']}"
    assert phone.page.url == f"{live_server}/app/"  # the alert's id does not stay in the address


def test_a_push_shows_the_alert_as_a_notification_tagged_with_its_id(open_app, live_server):
    phone = open_app()
    phone.context.grant_permissions(["geolocation", "notifications"], origin=live_server)
    phone.wait_until_offline_ready()
    cdp = phone.context.new_cdp_session(phone.page)
    registrations = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    cdp.send("ServiceWorker.enable")
    phone.page.wait_for_timeout(200)
    [registration] = [r for r in registrations if r["scopeURL"].endswith("/app/")][:1]
    payload = {"notification": {"title": "Avoid Coldharbour Lane", "body": "Police incident near the station."},
               "data": {"type": "alert", "alert_id": "a1b2", "severity": "urgent", "deep_link": "safetravel://alerts/a1b2"}}
    for _ in range(2):  # a repeat replaces the first: one notification per alert
        cdp.send("ServiceWorker.deliverPushMessage", {"origin": live_server, "registrationId": registration["registrationId"],
                                                       "data": json.dumps(payload)})
    # A tagged notification is replaced by closing the first and showing the second: read them when shown,
    # again once the second push has surely been handled (a duplicate would be there by then).
    showing = """async () => { const n = await (await navigator.serviceWorker.ready).getNotifications();
        return n.length ? n.map((x) => [x.title, x.body, x.tag]) : null; }"""
    phone.page.wait_for_function(showing)
    phone.page.wait_for_timeout(500)
    shown = phone.page.wait_for_function(showing).json_value()
    assert shown == [["Avoid Coldharbour Lane", "Police incident near the station.", "a1b2"]]


def test_the_app_runs_under_its_content_security_policy_with_no_violation(open_app):
    """The app's headers (backend/security.py: the /app/ area) hold, and every screen, the maps and the
    service worker included, runs under them with nothing refused."""
    phone = open_app()
    page = phone.page
    page.add_init_script("""
        window.__violations = [];
        document.addEventListener('securitypolicyviolation',
            (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
    """)
    answer = page.goto(f"{phone.base}/app/")
    headers = answer.headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "geolocation=(self)" in headers["permissions-policy"] and "camera=()" in headers["permissions-policy"]
    page.wait_for_selector("body[data-ready=true]", timeout=20000)
    phone.wait_until_offline_ready()
    page.get_by_role("button", name="Spiking", exact=True).click()
    page.wait_for_function("() => /\\d/.test(document.getElementById('location-status').textContent)")
    page.wait_for_function("() => document.querySelector('#screen-report .maplibregl-canvas') !== null",
                           timeout=20000)
    page.get_by_role("button", name="Send report", exact=True).click()
    page.wait_for_selector("#screen-home:not([hidden])")
    phone.goto("Help")
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.__violations") == []
    assert [p for p in phone.problems if "Content Security Policy" in p or "Content-Security-Policy" in p] == []
