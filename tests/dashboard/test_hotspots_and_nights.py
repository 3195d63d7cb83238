"""The dashboard's hotspots and nights, in Chromium: a hotspot is named and outlined on the map, one
report is not a hotspot, the grid can be chosen, and Friday and Saturday nights can be asked for."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.factories import CAMDEN_TOWN, PECKHAM
from tests.heatmap.helpers import add_report

BRIXTON = (-0.114888, 51.462618)  # Brixton station
YESTERDAY = datetime.now(timezone.utc) - timedelta(days=1)
SUNDAY_0130 = datetime(2026, 11, 22, 1, 30, tzinfo=timezone.utc)  # Saturday night (GMT: UTC is local)
FRIDAY_0130 = datetime(2026, 11, 20, 1, 30, tzinfo=timezone.utc)  # Thursday night


@pytest.fixture
def brixton(app):
    with app.app_context():
        for i in range(6):
            add_report(f"commuter-{i}", BRIXTON[0] + 0.0002 * i, BRIXTON[1], YESTERDAY - timedelta(hours=i))
        add_report("commuter-lone", *CAMDEN_TOWN, YESTERDAY)  # one report: noise, not a hotspot


def serious(page, selector: str) -> list[str]:
    results = Axe().run(page, context=selector)
    return [f"{v['id']}: {v['help']}" for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("viewport", [(1400, 850), (390, 844)])
def test_a_hotspot_is_named_and_choosing_it_outlines_its_cell(open_dashboard, brixton, viewport):
    dashboard = open_dashboard("safety_team", viewport=viewport)
    page = dashboard.page
    dashboard.tab("Hotspots")
    cards = page.locator("#hotspots .hotspot")
    cards.first.wait_for()
    assert cards.count() == 1  # Camden Town's one report is left out
    card = cards.first
    assert card.locator(".hotspot-name").inner_text() == "Near Brixton"
    text = card.inner_text()
    assert "Lambeth" in text and "6 reports" in text and "previously 0 (new)" in text
    assert "▲ Rising: likely more than chance (p = 0.016)" in text
    assert "Places with at least 5 reports" in page.locator("#hotspots-period").inner_text()
    assert serious(page, "#tab-hotspots") == []
    card.focus()
    page.keyboard.press("Enter")
    assert card.get_attribute("aria-pressed") == "true"
    page.wait_for_function("() => state.map.getSource('hotspot-cell') && !state.map.isMoving()")
    page.wait_for_function("() => state.map.queryRenderedFeatures({layers: ['hotspot-cell']}).length > 0")
    ring = page.evaluate("() => state.map.getSource('hotspot-cell').serialize().data.geometry.coordinates[0]")
    west, east = min(p[0] for p in ring), max(p[0] for p in ring)
    south, north = min(p[1] for p in ring), max(p[1] for p in ring)
    assert west < BRIXTON[0] < east and south < BRIXTON[1] < north
    lon, lat = page.evaluate("() => state.map.getCenter().toArray()")
    assert west < lon < east and south < lat < north  # the map is on the cell
    assert page.evaluate("() => state.map.getLayer('hotspot-cell').type") == "line"
    assert dashboard.problems == []


def test_the_grid_choice_is_sent_and_changes_the_cells(open_dashboard, brixton):
    dashboard = open_dashboard("safety_team")
    page = dashboard.page
    dashboard.tab("Hotspots")
    page.locator("#hotspots .hotspot").first.wait_for()
    small = page.evaluate("() => document.querySelector('#hotspots .hotspot').dataset.cell")
    assert small.startswith("16/")
    with page.expect_request(lambda r: "/hotspots?" in r.url and "zoom=8" in r.url):
        page.get_by_label("Grid").select_option(label="Cells of about 6 km")
    page.wait_for_function("() => document.querySelector('#hotspots .hotspot')?.dataset.cell.startsWith('12/')")
    # Coarser cells gather Camden Town's lone report? No: it is kilometres away, in a cell of its own.
    assert page.locator("#hotspots .hotspot").count() == 1
    assert dashboard.problems == []


@pytest.fixture
def nights(app):
    with app.app_context():
        add_report("night-owl", *PECKHAM, SUNDAY_0130)
        add_report("early-bird", *CAMDEN_TOWN, FRIDAY_0130)


def test_friday_and_saturday_nights_through_the_filter(open_dashboard, nights):
    dashboard = open_dashboard("safety_team")
    page = dashboard.page
    assert "counts with the day it starts on" in page.locator("#nights-hint").inner_text()
    form = page.locator("#filters")
    form.get_by_label("From").fill("2026-11-16")
    form.get_by_label("To").fill("2026-11-29")
    form.get_by_label("Hours of the day").fill("22-4")
    form.get_by_label("Hours of the day").press("Tab")
    form.get_by_label("Fri", exact=True).check()
    form.get_by_label("Sat", exact=True).check()
    page.wait_for_function("() => location.search.includes('days=fri%2Csat') && location.search.includes('hours=22-4')")
    # Only Sunday 01:30 (Saturday night) is drawn: the one cell, in Peckham; Friday 01:30 is Thursday night.
    page.wait_for_function("""() => {
        const cells = state.map.queryRenderedFeatures({layers: ['heatmap']});
        return cells.length === 1 && cells[0].properties.count === 1 && !state.map.isMoving();
    }""", timeout=15000)
    ring = page.evaluate("() => state.map.queryRenderedFeatures({layers: ['heatmap']})[0].geometry.coordinates[0]")
    assert min(p[0] for p in ring) <= PECKHAM[0] <= max(p[0] for p in ring)
    assert min(p[1] for p in ring) <= PECKHAM[1] <= max(p[1] for p in ring)
    assert all("days=fri%2Csat" in url and "hours=22-4" in url for url in dashboard.tile_requests[-3:])
    assert dashboard.problems == []
