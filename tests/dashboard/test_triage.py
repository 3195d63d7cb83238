"""The dashboard's Triage tab, in Chromium, over the real API: the facts on each card, the filters (kept
in the address bar), paging past the first 50, a report shown on the map, and status changes from the
keyboard alone that the API then answers."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
from shapely.geometry import LineString, Point

from backend.extensions import db
from backend.reports import service as reports
from tests.dashboard.test_security import serious_accessibility_violations
from tests.factories import CAMDEN_TOWN, PECKHAM

LONDON = ZoneInfo("Europe/London")
NOW = datetime.now(timezone.utc)
ROUTE = [(-0.0700, 51.4740), (-0.0680, 51.4750), (-0.0660, 51.4760)]
OLD_DAY = (NOW - timedelta(days=40)).astimezone(LONDON).date()


def add(author: str, lon: float, lat: float, occurred_at: datetime, **fields) -> str:
    data = {"category": "harassment", "occurred_at": occurred_at, "location": Point(lon, lat), "route": None,
            "transport": None, "factors": [], "description": None, **fields}
    if isinstance(data["route"], list):
        data["route"] = LineString(data["route"])
    key = uuid.uuid4()
    return str(reports.create_report(author, data, hashlib.sha256(key.bytes).digest(), key).report.id)


@pytest.fixture
def reported(app):
    """Received in this order (the list shows the newest received first): a report of 40 days ago, 55
    plain reports in Peckham, an unsafe route, a spiking report on the tube in Camden, and a night-bus
    report with its facts."""
    with app.app_context():
        old = add("commuter-d", PECKHAM[0], PECKHAM[1], datetime.combine(OLD_DAY, datetime.min.time(), LONDON)
                  + timedelta(hours=23, minutes=30))
        for i in range(55):
            add(f"commuter-{i % 7}", PECKHAM[0] + 0.0001 * i, PECKHAM[1], NOW - timedelta(days=2, minutes=i))
        ids = {
            "old": old,
            "route": add("commuter-c", *ROUTE[0], NOW - timedelta(hours=3), category="unsafe_route", route=ROUTE),
            "spiking": add("commuter-b", *CAMDEN_TOWN, NOW - timedelta(hours=2), category="spiking",
                           transport={"mode": "tube", "line": "Northern", "station": "Camden Town"}),
            "night_bus": add("commuter-a", PECKHAM[0], PECKHAM[1] + 0.001, NOW - timedelta(hours=1), subcategory="verbal",
                             transport={"mode": "night_bus", "line": "N89", "station": "Peckham Rye"},
                             factors=["poor_lighting", "isolated"], description="Shouted at on the top deck."),
        }
        db.session.commit()
        db.session.remove()
    return ids


def card_ids(page) -> list[str]:
    return page.locator("#triage li.triage-card").evaluate_all("cards => cards.map(c => c.dataset.id)")


def wait_for_list(page, predicate: str) -> None:
    page.wait_for_function(f"() => {{ const ids = [...document.querySelectorAll('#triage li.triage-card')]"
                           f".map(c => c.dataset.id); return {predicate}; }}")


def triage_params(page) -> dict[str, list[str]]:
    return {k: v for k, v in parse_qs(urlparse(page.url).query).items() if k.startswith("triage_")}


@pytest.mark.parametrize("viewport", [(1400, 850), (390, 844)], ids=["laptop", "phone"])
def test_a_card_has_the_facts_and_a_click_shows_the_report_on_the_map(open_dashboard, reported, viewport):
    dashboard = open_dashboard("safety_team", viewport=viewport)
    page = dashboard.page
    dashboard.tab("Triage")
    card = page.locator(f"#triage li[data-id='{reported['night_bus']}']")
    card.wait_for()
    text = card.inner_text()
    for fact in ("Harassment · verbal", "Mode\nNight bus", "Line\nN89", "Station\nPeckham Rye",
                 "Factors\npoor lighting, isolated", "Shouted at on the top deck.", "received",
                 "Nothing told to the reporter yet."):
        assert fact in text, text
    assert page.locator("#triage-range").inner_text() == "Reports 1–50; older ones follow."
    assert "1–5 set its status (1 received, 2 reviewing, 3 actioned, 4 closed, 5 rejected)" in \
        page.locator("#triage-keys").inner_text()

    card.locator(".description").click()
    page.wait_for_function("""([lon, lat]) => { const c = state.map.getCenter(); return !state.map.isMoving()
        && Math.abs(c.lng - lon) < 1e-4 && Math.abs(c.lat - lat) < 1e-4 && state.map.loaded()
        && state.map.queryRenderedFeatures({layers: ['triage-report-point']}).length === 1; }""",
                           arg=[PECKHAM[0], PECKHAM[1] + 0.001], timeout=15000)
    assert card.get_attribute("aria-current") is not None

    route_card = page.locator(f"#triage li[data-id='{reported['route']}']")
    assert "Route\n3 points" in route_card.inner_text()
    route_card.get_by_role("button", name="Show on map").click()
    page.wait_for_function("() => !state.map.isMoving() && state.map.loaded() && "
                           "state.map.queryRenderedFeatures({layers: ['triage-report-route']}).length >= 1", timeout=15000)
    assert page.evaluate("() => state.map.getBounds().contains([-0.0700, 51.4740]) && "
                         "state.map.getBounds().contains([-0.0660, 51.4760])")

    # The tab's own elements (the top bar's "Sign out" on a phone is issue 19's item 7, elsewhere).
    overflow = page.evaluate("""() => [...document.querySelectorAll('#tab-triage, #tab-triage *')]
        .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
        .map(e => e.tagName + '#' + e.id + '.' + e.className)""")
    assert overflow == []
    assert serious_accessibility_violations(page, "#tab-triage") == []
    assert dashboard.problems == []


def test_filters_narrow_the_list_and_stay_in_the_address_bar(open_dashboard, reported):
    dashboard = open_dashboard("safety_team")
    page = dashboard.page
    dashboard.tab("Triage")
    wait_for_list(page, "ids.length === 50")
    tab = page.locator("#tab-triage")

    tab.get_by_label("Category").select_option("spiking")
    wait_for_list(page, f"ids.join() === '{reported['spiking']}'")
    assert triage_params(page) == {"triage_category": ["spiking"]}
    tab.get_by_label("Category").select_option("")
    tab.get_by_label("Mode").select_option("tube")
    wait_for_list(page, f"ids.join() === '{reported['spiking']}'")
    tab.get_by_label("Mode").select_option("night_bus")
    wait_for_list(page, f"ids.join() === '{reported['night_bus']}'")
    tab.get_by_label("Mode").select_option("")

    # Local days, both included: the old report's day, alone.
    tab.get_by_label("From").fill(str(OLD_DAY - timedelta(days=1)))
    tab.get_by_label("To (included)").fill(str(OLD_DAY))
    wait_for_list(page, f"ids.join() === '{reported['old']}'")
    tab.get_by_label("To (included)").fill(str(OLD_DAY - timedelta(days=1)))
    tab.get_by_text("No reports match these filters.").wait_for()
    tab.get_by_label("From").fill(str(OLD_DAY + timedelta(days=1)))
    page.get_by_role("alert").filter(has_text="“From” is after “To”.").wait_for()
    tab.get_by_label("From").fill("")
    tab.get_by_label("To (included)").fill("")

    # A status: the night-bus report once triaged, alone among the reviewing ones.
    card = page.locator(f"#triage li[data-id='{reported['night_bus']}']")
    card.get_by_label("Status").select_option("reviewing")
    card.get_by_text("Saved: reviewing").wait_for()
    page.locator("#triage-status").select_option("reviewing")
    wait_for_list(page, f"ids.join() === '{reported['night_bus']}'")
    page.locator("#triage-status").select_option("")

    # The map's view: Camden Town's surroundings hold the spiking report only.
    page.evaluate("([lon, lat]) => state.map.jumpTo({center: [lon, lat], zoom: 15})", CAMDEN_TOWN)
    tab.get_by_label("In the map's view").check()
    wait_for_list(page, f"ids.join() === '{reported['spiking']}'")
    tab.get_by_label("Category").select_option("harassment")
    tab.get_by_text("No reports match these filters.").wait_for()
    assert triage_params(page) == {"triage_category": ["harassment"], "triage_view": ["1"]}
    # Panning to Peckham (as a drag does: with the mouse's event) brings its harassment reports.
    page.evaluate("""([lon, lat]) => state.map.jumpTo({center: [lon, lat], zoom: 15},
        {originalEvent: new MouseEvent('mouseup')})""", PECKHAM)
    wait_for_list(page, f"ids.length > 40 && !ids.includes('{reported['spiking']}')")

    # The link opens on the same list; the Filters tab's own changes keep it.
    shared = open_dashboard("safety_team", query="?triage_category=spiking&triage_mode=tube")
    wait_for_list(shared.page, f"ids.join() === '{reported['spiking']}'")
    assert shared.page.locator("#tab-triage").is_visible()
    shared.tab("Filters")
    shared.page.get_by_label("Unsafe route").check()
    shared.page.wait_for_function("() => location.search.includes('category=unsafe_route')")
    assert triage_params(shared.page) == {"triage_category": ["spiking"], "triage_mode": ["tube"]}
    assert dashboard.problems == [] and shared.problems == []


def test_paging_reaches_the_51st_report_and_back(open_dashboard, reported):
    dashboard = open_dashboard("safety_team")
    page = dashboard.page
    dashboard.tab("Triage")
    wait_for_list(page, "ids.length === 50")
    first_page = card_ids(page)
    assert first_page[:3] == [reported["night_bus"], reported["spiking"], reported["route"]]
    assert page.get_by_role("button", name="Newer").is_disabled()

    page.get_by_role("button", name="Older").click()
    wait_for_list(page, "ids.length === 9")
    assert page.locator("#triage-range").inner_text() == "Reports 51–59."
    second_page = card_ids(page)
    assert second_page[-1] == reported["old"] and not set(second_page) & set(first_page)
    assert page.get_by_role("button", name="Older").is_disabled()

    page.get_by_role("button", name="Newer").click()
    wait_for_list(page, "ids.length === 50")
    assert card_ids(page) == first_page
    assert page.locator("#triage-range").inner_text() == "Reports 1–50; older ones follow."
    assert dashboard.problems == []


def test_a_status_and_a_note_set_from_the_keyboard_alone_persist(open_dashboard, reported, live_server, staff):
    dashboard = open_dashboard("safety_team", viewport=(390, 844))
    page = dashboard.page
    page.get_by_role("tab", name="Triage").focus()
    page.keyboard.press("Enter")
    wait_for_list(page, "ids.length === 50")

    page.keyboard.press("j")
    page.keyboard.press("j")  # the second card: the spiking report
    assert page.evaluate("() => document.activeElement.dataset.id") == reported["spiking"]
    page.keyboard.press("3")
    card = page.locator(f"#triage li[data-id='{reported['spiking']}']")
    card.get_by_text("Saved: actioned").wait_for()

    page.keyboard.press("n")
    page.keyboard.type("Thank you: officers will patrol on 2 nights.")  # a "2" typed is text, not a status
    page.keyboard.press("Enter")
    card.get_by_text("Told the reporter: Thank you: officers will patrol on 2 nights.").wait_for()

    answer = page.request.get(f"{live_server}/api/v1/reports/{reported['spiking']}", headers=staff.headers())
    assert answer.ok
    assert (answer.json()["status"], answer.json()["public_note"]) == \
        ("actioned", "Thank you: officers will patrol on 2 nights.")
    untouched = page.request.get(f"{live_server}/api/v1/reports/{reported['night_bus']}", headers=staff.headers())
    assert untouched.json()["status"] == "received"
    assert dashboard.problems == []
