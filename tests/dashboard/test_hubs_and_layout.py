"""The dashboard in Chromium: aiming an alert at a hub or a station, the opening-hours editor, hidden
fields staying hidden, the phone layout, a commuter pointed to the app, and the built-in base layer."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from backend.extensions import db
from backend.geo import haversine_m
from tests.alerts.test_alerts import add_device
from tests.browser import wait_for_async
from tests.dashboard.test_security import serious_accessibility_violations
from tests.exports.helpers import run_outbox
from tests.factories import PECKHAM
from tests.routes.test_safer_route import LAT0, LON0, load_grid

PAST_MIDNIGHT = {"fri": [["18:00", "04:00"]], "sat": [["10:00", "12:00"], ["18:00", "24:00"]]}
PHONE = (390, 844)


def add_hub(app, name: str, where: list[float], hours=PAST_MIDNIGHT, kind: str = "staffed_station") -> str:
    with app.app_context():
        hub_id = db.session.scalar(text("""
            INSERT INTO safe_hubs (name, kind, location, opening_hours)
            VALUES (:name, :kind, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), CAST(:hours AS jsonb)) RETURNING id
        """), {"name": name, "kind": kind, "lon": where[0], "lat": where[1], "hours": json.dumps(hours)})
        db.session.commit()
        db.session.remove()
    return str(hub_id)


def on_screen(page, lonlat: list[float]) -> dict:
    """Where a place is drawn, in page coordinates."""
    box = page.locator("#map").bounding_box()
    x, y = page.evaluate(f"() => {{ const p = state.map.project({json.dumps(lonlat)}); return [p.x, p.y]; }}")
    return {"x": box["x"] + x, "y": box["y"] + y}


def drawn_circle(page) -> dict | None:
    return page.evaluate("async () => { const d = await state.map.getSource('alert-area').getData(); "
                         "return d.features.length ? d.features[0].geometry : null; }")


def test_hidden_fields_stay_hidden(browser, live_server, open_dashboard):
    context = browser.new_context(viewport={"width": 1400, "height": 850})
    page = context.new_page()
    page.goto(f"{live_server}/dashboard/")
    page.wait_for_selector("#dev-role")
    assert page.locator("#dev-role").input_value() == "safety_team"
    assert not page.locator("#dev-council-label").is_visible()  # not for the safety team
    page.select_option("#dev-role", "council")
    assert page.locator("#dev-council-label").is_visible()
    page.select_option("#dev-role", "safety_team")
    assert not page.locator("#dev-council-label").is_visible()
    assert serious_accessibility_violations(page, "#sign-in") == []
    context.close()

    dashboard = open_dashboard("safety_team")
    dashboard.tab("Alerts")
    page = dashboard.page
    assert not page.locator("#alert-hub-label").is_visible()  # a circle alert has no hub
    assert not page.locator("#alert-station-fields").is_visible()
    page.get_by_label("Around a safe hub").check()
    assert page.locator("#alert-hub-label").is_visible()
    page.get_by_label("A circle: click the map for its centre").check()
    assert not page.locator("#alert-hub-label").is_visible()
    # The rule itself: nothing marked hidden shows, whatever its own display.
    assert page.evaluate("""() => Array.from(document.querySelectorAll('[hidden]'))
        .every(e => getComputedStyle(e).display === 'none')""")
    assert dashboard.problems == []


def test_a_hub_picked_on_the_map_centres_the_map_and_draws_the_radius_before_sending(open_dashboard, app):
    hub_id = add_hub(app, "Peckham Rye station", PECKHAM)
    add_hub(app, "Brixton station", [-0.1145, 51.4627])
    with app.app_context():
        add_device("token-at-the-hub", [PECKHAM[0] + 0.001, PECKHAM[1]], radius_m=500)
    dashboard = open_dashboard("safety_team")
    page = dashboard.page
    dashboard.tab("Alerts")
    page.get_by_label("Around a safe hub").check()
    page.evaluate(f"() => state.map.jumpTo({{center: [{PECKHAM[0] + 0.004}, {PECKHAM[1]}], zoom: 14}})")
    page.wait_for_function("() => state.map.loaded() && state.map.queryRenderedFeatures({layers: ['hubs']}).length >= 1")
    page.mouse.click(**on_screen(page, PECKHAM))
    page.wait_for_function(f"() => document.querySelector('#alert-hub').value === '{hub_id}'")
    page.wait_for_function("() => !state.map.isMoving()")
    centre = page.evaluate("() => state.map.getCenter().toArray()")
    assert haversine_m(centre, PECKHAM) < 5  # the map centred on the hub
    page.get_by_label("Radius (m)").fill("300")
    # The hub's pick drew a circle of the default radius first: wait for the one of 300 m (its first
    # vertex about 300 m from the hub, by an equirectangular estimate; asserted exactly below).
    wait_for_async(page, "async ([lon, lat]) => { const d = await state.map.getSource('alert-area').getData(); "
                           "if (d.features.length !== 1) return false; "
                           "const [x, y] = d.features[0].geometry.coordinates[0][0]; "
                           "const k = 111320, dx = (x - lon) * k * Math.cos(lat * Math.PI / 180), dy = (y - lat) * k; "
                           "return Math.abs(Math.hypot(dx, dy) - 300) < 5; }", PECKHAM)
    outline = drawn_circle(page)
    assert all(abs(haversine_m(PECKHAM, vertex) - 300) < 1 for vertex in outline["coordinates"][0]), \
        sorted(round(haversine_m(PECKHAM, vertex), 1) for vertex in outline["coordinates"][0])
    assert page.locator("#alert-centre").inner_text().startswith("Centre: Peckham Rye station")

    page.get_by_label("Title").fill("Staff at Peckham Rye")
    page.get_by_label("Message").fill("Ask the staff at the gate line.")
    page.get_by_role("button", name="Send alert").click()
    page.locator("#alert-status .badge").wait_for()
    with app.app_context():
        run_outbox(app)
        area = db.session.execute(text("SELECT safe_hub_id, radius_m FROM alerts")).one()
        db.session.remove()
    assert str(area.safe_hub_id) == hub_id and area.radius_m == 300
    page.locator("#alert-status .badge[data-status=sent]").wait_for(timeout=10000)
    assert page.locator("#alert-status [data-figure=targeted]").inner_text() == "1"
    # No FCM credentials in the tests: the card says the push was only logged.
    assert "only written to the worker's log" in page.locator("#alert-status [data-note=pushes-logged]").inner_text()

    # Picked from the list instead, the map flies there too.
    page.locator("#alert-hub").select_option(label="Brixton station")
    page.wait_for_function("() => !state.map.isMoving() && "
                           "Math.abs(state.map.getCenter().lng - -0.1145) < 0.0005")
    assert dashboard.problems == []


def test_an_alert_aimed_at_a_station_from_the_line_and_station_pickers(open_dashboard):
    dashboard = open_dashboard("safety_team")
    page = dashboard.page
    dashboard.tab("Alerts")
    page.get_by_label("Around a station").check()
    lines = page.locator("#alert-line option").all_inner_texts()
    assert {"Victoria", "Northern", "DLR", "Elizabeth line", "Windrush"} <= set(lines)
    page.locator("#alert-line").select_option("Victoria")
    stations = page.locator("#alert-station option").all_inner_texts()
    assert len(stations) == 16 and "Brixton" in stations and "Bank" not in stations
    page.locator("#alert-station").select_option(label="Brixton")
    page.wait_for_function("() => !state.map.isMoving() && Math.abs(state.map.getCenter().lat - 51.4626) < 0.0003 && "
                           "Math.abs(state.map.getCenter().lng - -0.1148) < 0.0005")
    wait_for_async(page, "async () => (await state.map.getSource('alert-area').getData()).features.length === 1 && "
                           "document.querySelector('#alert-centre').textContent.startsWith('Centre: Brixton')")
    outline = drawn_circle(page)
    assert all(abs(haversine_m([-0.114829, 51.462618], vertex) - 500) < 50 for vertex in outline["coordinates"][0])
    assert serious_accessibility_violations(page, "#tab-alerts") == []
    assert dashboard.problems == []


def test_the_opening_hours_editor_round_trips_a_past_midnight_range(open_dashboard, app):
    hub_id = add_hub(app, "Rye Lane late pharmacy", PECKHAM, kind="pharmacy")
    dashboard = open_dashboard("safety_team")
    page = dashboard.page
    page.evaluate(f"() => editHub('{hub_id}')")
    form = page.locator("#hub-form")
    assert not form.get_by_label("Open 24/7").is_checked()
    assert form.get_by_label("Fri: opens").input_value() == "18:00"
    assert form.get_by_label("Fri: closes").input_value() == "04:00"  # runs past midnight
    assert form.get_by_label("Sat: closes").nth(1).input_value() == "24:00"
    assert page.locator(".hours-day[data-day=mon] .closed").is_visible()
    assert serious_accessibility_violations(page, "#tab-hubs") == []

    # Validated on the page: a time that is no time, and a range that opens and closes at once.
    form.get_by_label("Fri: closes").fill("25:00")
    page.get_by_role("button", name="Save changes").click()
    assert page.locator("#hours-error").inner_text() == "Fri: give both times of each range."
    form.get_by_label("Fri: closes").fill("18:00")
    page.get_by_role("button", name="Save changes").click()
    assert page.locator("#hours-error").inner_text() == "Fri: a range must not open and close at the same time."
    with app.app_context():
        assert db.session.scalar(text("SELECT opening_hours FROM safe_hubs")) == PAST_MIDNIGHT  # nothing sent
        db.session.remove()

    form.get_by_label("Fri: closes").fill("04:00")
    page.get_by_role("button", name="Thu: Add hours").click()
    form.get_by_label("Thu: opens").fill("22:00")
    form.get_by_label("Thu: closes").fill("02:30")
    page.get_by_role("button", name="Save changes").click()
    page.get_by_text("Saved Rye Lane late pharmacy.").wait_for()
    with app.app_context():
        stored = db.session.scalar(text("SELECT opening_hours FROM safe_hubs"))
        db.session.remove()
    assert stored == {"thu": [["22:00", "02:30"]], **PAST_MIDNIGHT}
    # And back: the editor shows what the API stored; 24/7 replaces the week.
    page.evaluate(f"() => editHub('{hub_id}')")
    assert form.get_by_label("Thu: closes").input_value() == "02:30"
    form.get_by_label("Open 24/7").check()
    assert not page.locator("#hours-days").is_visible()
    page.get_by_role("button", name="Save changes").click()
    page.get_by_text("Saved Rye Lane late pharmacy.").wait_for()
    with app.app_context():
        assert db.session.scalar(text("SELECT opening_hours FROM safe_hubs")) == "24/7"
        db.session.remove()
    assert dashboard.problems == []


def test_hovering_a_hub_over_a_heatmap_cell_shows_the_hub(open_dashboard, app):
    from datetime import datetime, timedelta, timezone

    from tests.heatmap.helpers import add_report

    with app.app_context():
        for i in range(3):
            add_report("commuter-a", PECKHAM[0], PECKHAM[1], datetime.now(timezone.utc) - timedelta(days=1, hours=i))
        db.session.commit()
        db.session.remove()
    add_hub(app, "Peckham Rye station", PECKHAM)
    dashboard = open_dashboard("safety_team", query=f"#map=15/{PECKHAM[1]}/{PECKHAM[0]}")
    page = dashboard.page
    dashboard.wait_for_cells()
    page.wait_for_function("() => state.map.queryRenderedFeatures({layers: ['hubs']}).length >= 1")
    page.mouse.move(**on_screen(page, PECKHAM))
    popup = page.locator(".maplibregl-popup")
    popup.wait_for()
    assert "Peckham Rye station" in popup.inner_text() and "Fri 18:00–04:00" in popup.inner_text()
    assert "reports" not in popup.inner_text()
    assert dashboard.problems == []


@pytest.fixture
def grid(app, tmp_path):
    """The routes tests' street grid in Peckham (tests/routes/test_safer_route.py), committed."""
    load_grid(app, tmp_path)
    with app.app_context():
        db.session.remove()


def test_the_built_in_base_layer_draws_streets_and_station_names_offline(open_dashboard, grid):
    dashboard = open_dashboard("safety_team", query=f"#map=15/{LAT0 - 0.001}/{LON0}")
    page = dashboard.page
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(dashboard.base) else None)
    page.wait_for_function("() => Array.from(document.querySelectorAll('.station-label'))"
                           ".some(e => e.textContent === 'Peckham Rye')", timeout=15000)
    page.wait_for_function("() => state.map.loaded() && "
                           "state.map.queryRenderedFeatures({layers: ['base-streets']}).length > 0")
    # Pan to King's Cross: its names come from the shipped stations, with nothing fetched from elsewhere.
    page.evaluate("() => state.map.jumpTo({center: [-0.1240, 51.5308], zoom: 15})")
    page.wait_for_function("() => Array.from(document.querySelectorAll('.station-label'))"
                           ".some(e => e.textContent === \"King's Cross & St Pancras International\")")
    page.evaluate("() => state.map.jumpTo({zoom: 11})")  # zoomed out: no names crowding the map
    page.wait_for_function("() => document.querySelectorAll('.station-label').length === 0")
    assert outside == []
    assert dashboard.problems == []


def legend_overlaps(page) -> list[str]:
    """The map's corners (attribution, scale) that the legend overlaps."""
    page.wait_for_selector("body[data-attribution-folded=true]")
    legend = page.locator("#legend").bounding_box()
    overlapping = []
    for corner in (".maplibregl-ctrl-bottom-right", ".maplibregl-ctrl-bottom-left"):
        other = page.locator(corner).bounding_box()
        if not (legend["x"] + legend["width"] <= other["x"] or other["x"] + other["width"] <= legend["x"]
                or legend["y"] + legend["height"] <= other["y"] or other["y"] + other["height"] <= legend["y"]):
            overlapping.append(corner)
    return overlapping


def test_the_attribution_is_clear_of_the_legend_on_a_laptop(open_dashboard):
    dashboard = open_dashboard("safety_team")
    assert legend_overlaps(dashboard.page) == []
    dashboard.page.locator(".maplibregl-ctrl-attrib-button").click()  # opened, it still says whose data it is
    assert "Powered by TfL Open Data" in dashboard.page.locator(".maplibregl-ctrl-attrib").inner_text()


@pytest.mark.parametrize("tab", ["Filters", "Hotspots", "Triage", "Hubs", "Alerts", "Exports", "Streets"])
def test_nothing_overflows_a_phone(open_dashboard, tab):
    dashboard = open_dashboard("safety_team", viewport=PHONE)
    page = dashboard.page
    dashboard.tab(tab)
    if tab == "Hubs":  # the opening-hours editor with a range open
        page.get_by_label("Open 24/7").uncheck()
        page.get_by_role("button", name="Fri: Add hours").click()
        page.get_by_role("button", name="Fri: Add hours").click()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE[0]
    sign_out = page.get_by_role("button", name="Sign out").bounding_box()
    assert sign_out["x"] >= 0 and sign_out["x"] + sign_out["width"] <= PHONE[0]
    banner = page.locator("#dev-banner").bounding_box()
    assert banner["height"] <= 24 and page.locator("#dev-banner").inner_text() == "Development sign-in"
    assert page.locator("header").bounding_box()["height"] <= 80
    assert legend_overlaps(page) == []
    if tab == "Hubs":
        remove = page.get_by_role("button", name="Remove Fri").last.bounding_box()
        assert remove["x"] + remove["width"] <= PHONE[0]
    if tab in ("Hubs", "Alerts", "Exports"):
        assert serious_accessibility_violations(page, f"#tab-{tab.lower()}") == []
    assert serious_accessibility_violations(page, "header") == []
    assert dashboard.problems == []


def test_a_commuter_is_told_the_dashboard_is_for_staff_and_pointed_to_the_app(browser, live_server):
    for viewport in ((1400, 850), PHONE):
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        page = context.new_page()
        page.goto(f"{live_server}/dashboard/")
        page.select_option("#dev-role", "commuter")
        page.click("#sign-in-button")
        page.wait_for_selector("body[data-ready=staff-only]")
        assert page.get_by_role("heading", name="This dashboard is for staff").is_visible()
        link = page.get_by_role("link", name="Open the SafeTravel app")
        assert link.is_visible() and link.get_attribute("href") == "/app/"
        assert not page.locator("#map").is_visible() and not page.get_by_role("tab").first.is_visible()
        assert page.get_by_role("button", name="Sign out").is_visible()
        assert serious_accessibility_violations(page, "#staff-only") == []
        assert page.evaluate("() => document.documentElement.scrollWidth") <= viewport[0]
        context.close()
