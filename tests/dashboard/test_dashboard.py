"""The dashboard, driven in Chromium: what a safety team or a council officer sees and does."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pyogrio
import pytest
import shapely
from sqlalchemy import text

from backend import vocabulary
from backend.alerts.models import SEVERITIES
from backend.alerts.sending import give_up_sending
from backend.extensions import db
from backend.geo import haversine_m
from backend.hubs.models import KINDS
from tests.alerts.test_alerts import add_device
from tests.browser import wait_for_async
from tests.exports.helpers import SECRET, run_outbox
from tests.exports.helpers import add_report as add_described_report
from tests.factories import CAMDEN_TOWN, PECKHAM
from tests.heatmap.helpers import add_report

ROOT = Path(__file__).resolve().parents[2]
BOROUGHS = {f["properties"]["code"]: shapely.geometry.shape(f["geometry"])
            for f in json.loads((ROOT / "data" / "london_boroughs.geojson").read_text())["features"]}
YESTERDAY = datetime.now(timezone.utc) - timedelta(days=1)


@pytest.fixture
def seeded(app):
    """Reports in Peckham (Southwark) and Camden Town, counted into the heatmap; one with a description."""
    with app.app_context():
        for i in range(6):
            add_report("commuter-a", PECKHAM[0] + 0.001 * i, PECKHAM[1], YESTERDAY - timedelta(hours=i))
        add_report("commuter-b", PECKHAM[0], PECKHAM[1] + 0.002, YESTERDAY, category="spiking")
        for i in range(4):
            add_report("commuter-c", CAMDEN_TOWN[0] + 0.001 * i, CAMDEN_TOWN[1], YESTERDAY)
        report_id = add_described_report("commuter-d", PECKHAM[0], PECKHAM[1], YESTERDAY)
        db.session.commit()
        db.session.remove()
    return {"described": report_id}


def centre(cell: dict) -> shapely.Point:
    return shapely.Polygon(cell["ring"]).centroid


def test_the_page_loads_without_console_errors_and_draws_the_heatmap(open_dashboard, seeded):
    dashboard = open_dashboard("safety_team")
    cells = dashboard.wait_for_cells()
    counts = {(round(centre(c).x, 2), round(centre(c).y, 2)): c["properties"]["count"] for c in cells}
    assert sum(c["properties"]["count"] for c in cells) >= 11
    assert all(set(c["properties"]) >= {"count", "harassment", "spiking", "unsafe_route"} for c in cells)
    assert any(BOROUGHS["E09000007"].contains(centre(c)) for c in cells), counts  # Camden drawn too
    assert dashboard.page.locator("#legend").is_visible()
    assert dashboard.page.locator("#dev-banner").is_visible()  # development sign-in, clearly marked
    assert dashboard.problems == []


def test_changing_a_filter_changes_the_tiles_requested_and_the_url(open_dashboard, seeded):
    dashboard = open_dashboard("safety_team")
    dashboard.wait_for_cells()
    assert dashboard.tile_requests and not any("category=" in url for url in dashboard.tile_requests)
    dashboard.page.get_by_label("Spiking").check()
    dashboard.page.wait_for_function("() => location.search.includes('category=spiking')")
    dashboard.page.wait_for_function("() => state.map.queryRenderedFeatures({layers: ['heatmap']}).length > 0 && "
                                     "state.map.queryRenderedFeatures({layers: ['heatmap']})"
                                     ".every(f => f.properties.harassment === 0)")
    assert any("category=spiking" in url for url in dashboard.tile_requests)
    cells = dashboard.rendered_cells()
    assert sum(c["properties"]["count"] for c in cells) == 1  # the one spiking report
    # The URL carries the view: opened again, the filter is set and the same tiles are asked for.
    again = open_dashboard("safety_team", query="?" + dashboard.page.url.split("?", 1)[1].split("#")[0])
    assert again.page.get_by_label("Spiking").is_checked()
    again.wait_for_cells()
    assert all("category=spiking" in url for url in again.tile_requests)
    assert dashboard.problems == [] and again.problems == []


def test_hotspots_list_the_top_cells_and_fly_the_map_to_one(open_dashboard, seeded):
    dashboard = open_dashboard("safety_team")
    dashboard.tab("Hotspots")
    dashboard.page.get_by_label("Grid").select_option(label="Cells of about 1.5 km")  # Peckham's 8 reports together
    first = dashboard.page.locator("#hotspots .hotspot").first
    first.wait_for()
    assert re.search(r"\d+\s+reports", first.inner_text())
    first.click()
    dashboard.page.wait_for_function("() => !state.map.isMoving() && state.map.getZoom() > 13")
    lon, lat = dashboard.page.evaluate("() => state.map.getCenter().toArray()")
    assert BOROUGHS["E09000028"].contains(shapely.Point(lon, lat)) or BOROUGHS["E09000007"].contains(shapely.Point(lon, lat))
    assert dashboard.problems == []


def test_triage_shows_the_description_and_changes_a_reports_status(open_dashboard, seeded, app):
    dashboard = open_dashboard("safety_team")
    dashboard.tab("Triage")
    report = dashboard.page.locator(f"#triage li[data-id='{seeded['described']}']")
    report.wait_for()
    assert SECRET in report.inner_text()  # staff see the description here, and nowhere public
    report.get_by_label("Status").select_option("reviewing")
    report.get_by_text("Saved: reviewing").wait_for()
    with app.app_context():
        status = db.session.scalar(text("SELECT status FROM reports WHERE id = :id"), {"id": seeded["described"]})
        changed_by = db.session.scalar(text("SELECT changed_by FROM report_status_changes WHERE report_id = :id"),
                                       {"id": seeded["described"]})
        db.session.remove()
    assert status == "reviewing" and changed_by == "dev-safety_team"
    assert dashboard.problems == []


def test_sending_an_alert_shows_its_delivery_figures(open_dashboard, seeded, app):
    with app.app_context():
        add_device("token-near-1", [PECKHAM[0], PECKHAM[1]], radius_m=1000)
        add_device("token-near-2", [PECKHAM[0] + 0.002, PECKHAM[1]], radius_m=1000)
        add_device("token-far", list(CAMDEN_TOWN), radius_m=1000)
        db.session.remove()
    dashboard = open_dashboard("safety_team")
    dashboard.tab("Alerts")
    page = dashboard.page
    page.evaluate(f"() => state.map.jumpTo({{center: [{PECKHAM[0]}, {PECKHAM[1]}], zoom: 14}})")
    page.locator("#map canvas").click(position={"x": 520, "y": 400})  # the centre of the map
    page.get_by_text(re.compile(r"^Centre -0\.06")).wait_for()
    page.get_by_label("Radius (m)").fill("400")
    page.get_by_label("Title").fill("Spiking reports near Rye Lane")
    page.get_by_label("Message").fill("Staff are on site at Peckham Rye station.")
    page.get_by_role("button", name="Send alert").click()
    page.locator("#alert-status .badge").wait_for()
    with app.app_context():  # the worker
        run_outbox(app)
        db.session.remove()
    page.locator("#alert-status .badge[data-status=sent]").wait_for(timeout=10000)
    figures = {name: page.locator(f"#alert-status [data-figure={name}]").inner_text()
               for name in ("targeted", "sent", "failed", "pruned")}
    assert figures == {"targeted": "2", "sent": "2", "failed": "0", "pruned": "0"}
    assert dashboard.problems == []


def test_an_alert_whose_fan_out_gave_up_shows_failed_and_why(open_dashboard, app):
    dashboard = open_dashboard("safety_team")
    dashboard.tab("Alerts")
    page = dashboard.page
    page.evaluate(f"() => state.map.jumpTo({{center: [{PECKHAM[0]}, {PECKHAM[1]}], zoom: 14}})")
    page.locator("#map canvas").click(position={"x": 520, "y": 400})
    page.get_by_text(re.compile(r"^Centre -0\.06")).wait_for()
    page.get_by_label("Title").fill("Lift out of order at Peckham Rye")
    page.get_by_label("Message").fill("Use the ramp on Rye Lane.")
    page.get_by_role("button", name="Send alert").click()
    page.locator("#alert-status .badge").wait_for()
    with app.app_context():  # the outbox gives up on its fan-out (backend/outbox/service.py)
        alert_id = db.session.scalar(text("SELECT id FROM alerts WHERE title = 'Lift out of order at Peckham Rye'"))
        give_up_sending(str(alert_id), "TransientFailures: alert: 3 device(s) to try again")
        db.session.commit()
        db.session.remove()
    page.locator("#alert-status .badge[data-status=failed]").wait_for(timeout=10000)
    assert page.locator("#alert-status [data-figure=last_error]").inner_text() == \
        "TransientFailures: alert: 3 device(s) to try again"
    assert dashboard.problems == []


def test_the_alert_circle_drawn_is_the_one_the_server_gives(open_dashboard):
    dashboard = open_dashboard("safety_team")
    dashboard.tab("Alerts")
    page = dashboard.page
    page.evaluate(f"() => state.map.jumpTo({{center: [{PECKHAM[0]}, {PECKHAM[1]}], zoom: 14}})")
    page.locator("#map canvas").click(position={"x": 520, "y": 400})
    page.get_by_text(re.compile(r"^Centre -0\.06")).wait_for()
    with page.expect_response(lambda r: "/api/v1/alerts/circle?" in r.url and "radius_m=1500" in r.url) as answer:
        page.get_by_label("Radius (m)").fill("1500")
    served = answer.value.json()
    wait_for_async(page, "async () => { const d = await state.map.getSource('alert-area').getData(); "
                           "return d.features.length === 1 && d.features[0].geometry.coordinates[0].length === 65; }")
    drawn = page.evaluate("async () => (await state.map.getSource('alert-area').getData()).features[0].geometry")
    assert drawn == served["outline"]
    centre = served["center"]["coordinates"]
    assert all(abs(haversine_m(centre, vertex) - 1500) < 0.1 for vertex in drawn["coordinates"][0])
    assert dashboard.problems == []


def test_the_choices_and_times_come_from_the_servers_vocabulary_and_time_zone(open_dashboard, seeded, app, settings,
                                                                                monkeypatch):
    monkeypatch.setitem(app.config, "SETTINGS", replace(settings, city_timezone="Asia/Tokyo"))
    dashboard = open_dashboard("safety_team")
    page = dashboard.page

    def values(selector: str) -> list[str]:
        return page.locator(selector).evaluate_all("elements => elements.map(e => e.value)")

    assert values("#filters input[name=category]") == list(vocabulary.CATEGORIES)
    assert page.get_by_label("Unsafe route").get_attribute("value") == "unsafe_route"
    assert values("#filters select[name=mode] option") == list(vocabulary.MODES)
    assert page.locator("#filters select[name=mode] option[value=dlr]").inner_text() == "DLR"
    assert values("#triage-status option") == ["", *vocabulary.STATUSES]
    assert values("#hub-form select[name=kind] option") == list(KINDS)
    assert values("#alert-form select[name=severity] option") == list(SEVERITIES)
    assert page.locator("#alert-form select[name=severity]").input_value() == "warning"

    dashboard.tab("Triage")
    report = page.locator(f"#triage li[data-id='{seeded['described']}']")
    report.wait_for()
    in_tokyo = YESTERDAY.astimezone(ZoneInfo("Asia/Tokyo"))
    assert f"{in_tokyo.day} {in_tokyo:%b %Y}, {in_tokyo:%H:%M}" in report.inner_text()
    assert dashboard.problems == []


def test_staff_add_edit_and_close_a_safe_hub(open_dashboard, app):
    dashboard = open_dashboard("safety_team")
    dashboard.tab("Hubs")
    page = dashboard.page
    form = page.locator("#hub-form")
    form.get_by_label("Name").fill("Rye Lane pharmacy")
    form.get_by_label("Kind").select_option("pharmacy")
    form.get_by_label("Longitude").fill(str(PECKHAM[0]))
    form.get_by_label("Latitude").fill(str(PECKHAM[1]))
    form.get_by_label("Open 24/7").uncheck()
    form.get_by_role("button", name="Fri: Add hours").click()
    form.get_by_label("Fri: opens").fill("18:00")
    form.get_by_label("Fri: closes").fill("04:00")
    page.get_by_role("button", name="Add hub").click()
    page.get_by_text("Saved Rye Lane pharmacy.").wait_for()
    form.get_by_label("Name").fill("Rye Lane late pharmacy")
    page.get_by_role("button", name="Save changes").click()
    page.get_by_text("Saved Rye Lane late pharmacy.").wait_for()
    with app.app_context():
        hub = db.session.execute(text("SELECT name, kind, opening_hours FROM safe_hubs")).one()
        db.session.remove()
    assert hub.name == "Rye Lane late pharmacy" and hub.kind == "pharmacy"
    assert hub.opening_hours == {"fri": [["18:00", "04:00"]]}
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Close hub").click()
    page.get_by_text("Closed Rye Lane late pharmacy.").wait_for()
    with app.app_context():
        assert db.session.scalar(text("SELECT count(*) FROM safe_hubs")) == 0
        db.session.remove()
    assert dashboard.problems == []


def test_a_council_sees_only_its_own_area_and_downloads_an_export(open_dashboard, seeded, app, tmp_path):
    dashboard = open_dashboard("council", council="E09000028")
    page = dashboard.page
    assert "Southwark" in page.locator("#who").inner_text()
    cells = dashboard.wait_for_cells()
    assert all(BOROUGHS["E09000028"].contains(centre(c)) for c in cells)
    assert sum(c["properties"]["count"] for c in cells) == 7  # Peckham's 7 counted; Camden's 4 never reach the page
    for staff_only in ("Triage", "Alerts"):
        assert not page.get_by_role("tab", name=staff_only).is_visible()

    dashboard.tab("Exports")
    form = page.locator("#export-form")
    assert form.get_by_label("Council").is_disabled()  # its own council, no other choice
    form.get_by_label("Format").select_option("csv")
    page.get_by_role("button", name="Request lighting export").click()
    page.locator("#exports li .export-status").first.wait_for()
    with app.app_context():  # the worker
        run_outbox(app)
        db.session.remove()
    download_button = page.locator("#exports li").first.get_by_role("button", name="Download")
    download_button.wait_for(timeout=10000)
    assert page.locator("#exports li progress").first.get_attribute("value") == "100"
    with page.expect_download() as event:
        download_button.click()
    download = event.value
    assert re.fullmatch(r"safetravel-lighting-E09000028-\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d\.csv", download.suggested_filename)
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    info = pyogrio.read_info(str(path))
    assert info["features"] >= 2 and "priority_score" in list(info["fields"])
    assert SECRET not in path.read_text()
    assert dashboard.problems == []


def test_works_on_a_tablet_and_from_the_keyboard(open_dashboard, seeded):
    dashboard = open_dashboard("safety_team", viewport=(820, 1180))
    page = dashboard.page
    map_box = page.locator("#map").bounding_box()
    panel_box = page.locator(".panel").bounding_box()
    assert panel_box["y"] >= map_box["y"] + map_box["height"] - 1  # the panel under the map
    assert panel_box["width"] >= 800
    # Reach the Hotspots tab with the keyboard alone.
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.textContent") == "Hotspots":
            break
    page.keyboard.press("Enter")
    page.locator("#tab-hotspots").wait_for()
    assert page.locator("#tab-hotspots").is_visible() and not page.locator("#tab-filters").is_visible()
    assert dashboard.problems == []


def test_development_sign_in_is_refused_in_production_configuration(app, client):
    settings = app.config["SETTINGS"]
    from dataclasses import replace

    app.config["SETTINGS"] = replace(settings, app_env="production", firebase_auth_emulator_host=None)
    try:
        assert client.post("/dashboard/dev-sign-in", json={"role": "admin"}).status_code == 404
        page = client.get("/dashboard/").get_data(as_text=True)
        assert '"devSignIn": false' in page
    finally:
        app.config["SETTINGS"] = settings


@pytest.mark.parametrize("body, field", [({"role": "mayor"}, "role"), ({"role": "council"}, "council"),
                                         ({"role": "council", "council": "Southwark"}, "council")])
def test_development_sign_in_validates_its_input(client, body, field):
    response = client.post("/dashboard/dev-sign-in", json=body)
    assert response.status_code == 422 and field in response.json["errors"]


def test_map_outline_data_is_served_and_nothing_else(client):
    assert client.get("/dashboard/data/boroughs.geojson").status_code == 200
    assert client.get("/dashboard/data/underground.geojson").status_code == 200
    stations = client.get("/dashboard/data/stations.geojson")
    assert stations.status_code == 200 and len(stations.json["features"]) == 420
    assert client.get("/dashboard/data/secrets.geojson").status_code == 404
    assert client.get("/dashboard").status_code == 308 or client.get("/dashboard").status_code == 302
