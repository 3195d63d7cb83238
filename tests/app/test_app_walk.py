"""A safer way in the commuter's app: from the phone's place to a station or an open safe hub, both
routes drawn and told in words; the keyboard alone; offline; axe-core; the Content-Security-Policy.

The street network is a ladder of the routes tests' shape ending at Brixton station: two streets
north-south 50 m apart (column 0 the shortest, 400 m), joined by rungs every 100 m."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect

from backend.extensions import db
from backend.streets.service import load_street_segments
from tests import factories
from tests.app.test_app_screens import serious, tab_to
from tests.routes.test_safer_route import record_nearby_streets

STATION = (-0.114888, 51.462618)  # Brixton, as in data/london_stations.geojson
M_LAT = 1 / 111_320
M_LON = 1 / (111_320 * math.cos(math.radians(STATION[1])))
LAPTOP = {"width": 1280, "height": 800}
ANSWER_MS = 15_000  # a route's answer on a loaded machine: more than expect's 5 s default


def point(x_m: float, y_m: float) -> tuple[float, float]:
    """x metres east and y metres north of the ladder's start, 400 m south of the station."""
    return round(STATION[0] + x_m * M_LON, 7), round(STATION[1] + (y_m - 400) * M_LAT, 7)


START = point(0, 0)


@pytest.fixture
def ladder(app, tmp_path):
    def load(column_nought_lit: str = "no"):
        def street(coords, **properties):
            return {"type": "Feature", "properties": properties,
                    "geometry": {"type": "LineString", "coordinates": [list(point(*c)) for c in coords]}}
        features = [street([(0, 100 * i) for i in range(5)], name="Column Nought", highway="residential", lit=column_nought_lit),
                    street([(50, 100 * i) for i in range(5)], name="Column One", highway="residential", lit="yes")]
        features += [street([(0, 100 * i), (50, 100 * i)], name=f"Rung {i}", highway="footway", lit="yes") for i in range(5)]
        path = tmp_path / "ladder.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        with app.app_context():
            load_street_segments(path, class_field="highway", lit_field="lit")
            db.session.commit()
            db.session.remove()
    return load


def reports_on_column_nought(app, count: int = 3) -> None:
    """Reports half-way along the shortest way, a day ago at this hour (so they count fully), recorded."""
    with app.app_context():
        for _ in range(count):
            factories.add_report("commuter-alice", *point(0, 200), datetime.now(timezone.utc) - timedelta(days=1))
        record_nearby_streets()
        db.session.remove()


def ask_for_station(phone, name: str = "Brixton") -> None:
    if phone.page.locator("#screen-walk").is_hidden():
        phone.page.get_by_role("button", name="Walking somewhere? Find a safer way").click()
    phone.page.get_by_label("To a station").fill(name)
    phone.page.get_by_role("button", name="Find a safer way", exact=True).click()


def drawn(phone) -> None:
    phone.page.wait_for_function("() => document.getElementById('walk-map').dataset.drawn !== undefined",
                                 timeout=20000)


@pytest.mark.parametrize("viewport", [None, LAPTOP], ids=["phone", "laptop"])
def test_a_safer_way_to_a_station_is_drawn_and_told_in_plain_words(open_app, app, ladder, viewport):
    ladder()
    reports_on_column_nought(app)
    phone = open_app(where=START, viewport=viewport)
    ask_for_station(phone)
    routes = phone.page.locator("#walk-routes li")
    expect(routes).to_have_count(2, timeout=ANSWER_MS)
    expect(phone.page.locator("#walk-result-title")).to_have_text("To Brixton")
    safer, shortest = routes.nth(0).inner_text(), routes.nth(1).inner_text()
    assert safer.startswith("Safer way") and "500 m, about 6 minutes on foot" in safer
    assert "No reports nearby in the last 90 days" in safer
    assert shortest.startswith("Shortest way") and "400 m, about 5 minutes on foot" in shortest
    assert "3 reports nearby in the last 90 days (Harassment 3)" in shortest
    for text in (safer, shortest):  # after dark the unlit metres, in daylight a word on why they are not counted
        assert "In daylight" in text or "unlit" in text
    assert "0 open safe places within 200 m" in shortest
    expect(phone.page.locator("#walk-same")).to_be_hidden()
    drawn(phone)
    assert phone.page.get_attribute("#walk-map", "data-drawn") == "shortest safer"
    assert phone.problems == []


def test_when_the_shortest_is_the_safer_the_app_says_so(open_app, ladder):
    ladder(column_nought_lit="yes")  # no report and no unlit street: nothing to avoid, day or night
    phone = open_app(where=START)
    ask_for_station(phone, "brixton")  # the name in any case
    expect(phone.page.locator("#walk-routes li")).to_have_count(1, timeout=ANSWER_MS)
    assert phone.page.locator("#walk-routes li").inner_text().startswith("Shortest and safer way")
    expect(phone.page.locator("#walk-same")).to_have_text(
        "The shortest way is also the safer one: no way up to one and a half times as long avoids more reports or unlit streets.")
    drawn(phone)


def test_a_safer_way_to_an_open_safe_hub_nearby(open_app, app, client, staff, ladder):
    ladder()
    reports_on_column_nought(app)
    for name, hours in (("Ladder Cafe", "24/7"), ("Shut Bar", {})):
        answer = client.post("/api/v1/safe-hubs", headers=staff.headers(), json={
            "name": name, "kind": "venue", "opening_hours": hours,
            "location": {"type": "Point", "coordinates": list(point(10, 400))}})
        assert answer.status_code == 201, answer.json
    phone = open_app(where=START)
    phone.page.get_by_role("button", name="Walking somewhere? Find a safer way").click()
    hubs = phone.page.locator("#walk-hubs li")
    expect(hubs).to_have_count(1)  # the closed one is not offered
    assert "Ladder Cafe" in hubs.inner_text()
    phone.page.get_by_role("button", name="A safer way to Ladder Cafe").click()
    expect(phone.page.locator("#walk-result-title")).to_have_text("To Ladder Cafe")
    expect(phone.page.locator("#walk-routes li")).to_have_count(2, timeout=ANSWER_MS)
    assert "1 open safe place within 200 m" in phone.page.locator("#walk-routes li").nth(0).inner_text()


def test_an_unknown_station_and_a_place_off_the_network_are_said_plainly(open_app, ladder):
    ladder()
    phone = open_app(where=START)
    ask_for_station(phone, "Atlantis Central")
    expect(phone.page.locator("#walk-error")).to_have_text("No station is called “Atlantis Central”: pick one from the list.")
    assert phone.page.evaluate("document.activeElement.id") == "walk-station"
    phone.page.get_by_label("To a station").fill("Stockwell")  # a real station, 1.2 km off this network
    phone.page.get_by_role("button", name="Find a safer way", exact=True).click()
    expect(phone.page.locator("#walk-error")).to_contain_text("No walking route goes there from where you are")
    expect(phone.page.locator("#walk-result")).to_be_hidden()


def test_a_safer_way_with_the_keyboard_alone(open_app, app, ladder):
    ladder()
    reports_on_column_nought(app)
    phone = open_app(where=START)
    tab_to(phone.page, "Walking somewhere? Find a safer way")
    phone.page.keyboard.press("Enter")
    assert phone.page.evaluate("document.activeElement.id") == "walk-title"
    tab_to(phone.page, "To a station")
    phone.page.keyboard.type("Brixton")
    phone.page.keyboard.press("Enter")  # submits the form
    expect(phone.page.locator("#walk-routes li")).to_have_count(2, timeout=ANSWER_MS)
    assert phone.page.evaluate("document.activeElement.id") == "walk-result-title"  # the answer is announced


def test_offline_the_app_says_routes_need_a_connection_and_recovers(open_app, app, ladder):
    ladder(column_nought_lit="yes")  # one way, day or night
    phone = open_app(where=START)
    phone.wait_until_offline_ready()
    phone.page.get_by_role("button", name="Walking somewhere? Find a safer way").click()
    phone.page.locator("#walk-stations option").first.wait_for(state="attached")  # the names are kept offline too
    phone.context.set_offline(True)
    notice = "Routes need a connection. Try again when you are online. In an emergency call 999."
    expect(phone.page.locator("#walk-offline")).to_have_text(notice)
    phone.page.get_by_label("To a station").fill("Brixton")
    phone.page.get_by_role("button", name="Find a safer way", exact=True).click()
    expect(phone.page.locator("#walk-error")).to_have_text(notice)
    expect(phone.page.locator("#walk-result")).to_be_hidden()
    expect(phone.page.locator("#walk-status")).to_have_text("")
    phone.context.set_offline(False)
    expect(phone.page.locator("#walk-offline")).to_be_hidden()
    phone.page.get_by_role("button", name="Find a safer way", exact=True).click()
    expect(phone.page.locator("#walk-routes li")).to_have_count(1, timeout=ANSWER_MS)
    expect(phone.page.locator("#walk-error")).to_have_text("")


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}, LAPTOP], ids=["phone", "laptop"])
def test_the_safer_way_screen_passes_axe_without_serious_violations(open_app, app, ladder, viewport):
    ladder()
    reports_on_column_nought(app)
    phone = open_app(where=START, viewport=viewport)
    phone.page.get_by_role("button", name="Walking somewhere? Find a safer way").click()
    found = {"empty": serious(phone.page)}
    ask_for_station(phone)
    expect(phone.page.locator("#walk-routes li")).to_have_count(2, timeout=ANSWER_MS)
    drawn(phone)
    found["answered"] = serious(phone.page)
    assert {state: problems for state, problems in found.items() if problems} == {}


def test_the_safer_way_runs_under_the_content_security_policy_with_no_violation(open_app, app, ladder):
    ladder()
    reports_on_column_nought(app)
    phone = open_app(where=START)
    phone.page.add_init_script("""
        window.__violations = [];
        document.addEventListener('securitypolicyviolation',
            (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
    """)
    phone.open()
    ask_for_station(phone)
    drawn(phone)
    assert phone.page.evaluate("() => window.__violations") == []
    assert [p for p in phone.problems if "Content Security Policy" in p or "Content-Security-Policy" in p] == []


def test_the_stations_offered_are_the_repositorys_own(client):
    answer = client.get("/app/data/stations.json")
    assert answer.status_code == 200 and "max-age" in answer.headers["Cache-Control"]
    stations = answer.json["stations"]
    names = [s["name"] for s in stations]
    assert names == sorted(set(names)) and len(names) > 250
    brixton = next(s for s in stations if s["name"] == "Brixton")
    assert (brixton["lon"], brixton["lat"]) == pytest.approx(STATION)
