"""The dashboard's Streets tab, in Chromium: streets known to be unlit, and both walking routes drawn."""

from __future__ import annotations

import re

import pytest

from backend.extensions import db
from tests.dashboard.test_security import serious_accessibility_violations
from tests.routes.test_safer_route import LAT0, LON0, load_grid, lonlat


@pytest.fixture
def grid(app, tmp_path):
    """The routes tests' grid (tests/routes/test_safer_route.py), committed: column 0 unlit."""
    load_grid(app, tmp_path)
    with app.app_context():
        db.session.remove()


@pytest.mark.parametrize("viewport", [(1400, 850), (390, 844)], ids=["laptop", "phone"])
def test_unlit_streets_and_both_routes_from_the_keyboard(open_dashboard, grid, viewport):
    dashboard = open_dashboard("safety_team", query=f"#map=16/{LAT0 + 0.0018}/{LON0}", viewport=viewport)
    page = dashboard.page
    page.wait_for_selector("body[data-streets-ready=true]")
    dashboard.tab("Streets")
    page.get_by_label("Show streets known to be unlit").focus()
    page.keyboard.press("Space")
    page.wait_for_function("() => document.querySelector('#unlit-status').textContent.includes('unlit in view')")
    assert page.locator("#unlit-status").text_content() == "1 street known to be unlit in view."

    page.get_by_label("From (lon,lat)").fill(lonlat(0, 0))
    page.get_by_label("To (lon,lat)").fill(lonlat(0, 400))
    page.get_by_label("When (your time; empty: now)").fill("2026-11-20T22:15")  # dark in London
    page.get_by_label("To (lon,lat)").press("Enter")
    page.wait_for_function("() => document.querySelectorAll('#routes li').length === 2")
    shortest, safer = page.locator("#routes li").all_text_contents()
    assert re.match(r"Shortest: (399|40\d) m, 5 min; no reports nearby; (399|40\d) m unlit; 0 open safe hubs within 200 m", shortest)
    assert re.match(r"Safer: (499|50\d) m, 6 min; no reports nearby; 0 m unlit", safer)
    page.wait_for_function("() => state.map.loaded() && "
                           "state.map.queryRenderedFeatures({layers: ['route-safer', 'route-shortest']}).length >= 2")
    assert serious_accessibility_violations(page, "#tab-streets") == []
    assert dashboard.problems == []


def test_a_place_off_the_network_is_explained(open_dashboard, grid):
    dashboard = open_dashboard("council", council="E09000028")
    page = dashboard.page
    page.wait_for_selector("body[data-streets-ready=true]")
    dashboard.tab("Streets")
    page.get_by_label("From (lon,lat)").fill(lonlat(-2000, 0))
    page.get_by_label("To (lon,lat)").fill(lonlat(0, 400))
    page.get_by_role("button", name="Find the shortest and a safer route").click()
    page.wait_for_function("() => document.querySelector('#route-error').textContent.includes('from')")
    assert "more than 200 m from any street" in page.locator("#route-error").text_content()
    assert page.locator("#routes li").count() == 0
