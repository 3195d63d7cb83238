"""The commuter's app, driven in Chromium as a phone: reporting online and offline, exactly once."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from tests.app.conftest import BRIXTON


def test_a_report_in_three_taps_reaches_postgis_with_its_gps_accuracy(open_app, reports_in_db):
    phone = open_app(accuracy=23.0)
    phone.page.get_by_role("button", name="Harassment", exact=True).click()
    phone.page.locator("#report-map .pin").wait_for()  # the GPS position, on the map, movable
    phone.page.wait_for_function("""() => { const m = document.getElementById('report-map').getBoundingClientRect();
        const p = document.querySelector('#report-map .pin').getBoundingClientRect();
        return Math.abs((p.left + p.right) / 2 - (m.left + m.right) / 2) < 20; }""")  # in the middle of the map
    assert phone.page.locator("#location-status").inner_text() == "Your location, to within about 23 m. Drag the pin if it is wrong."
    phone.page.get_by_role("button", name="Send report", exact=True).click()
    phone.page.wait_for_function("() => document.body.dataset.sentOnce === 'true'")
    expect(phone.page.locator("#queue-status")).to_have_text("All your reports are sent.")
    [stored] = reports_in_db()
    assert stored["category"] == "harassment"
    assert stored["accuracy_m"] == pytest.approx(23.0)
    assert (stored["lon"], stored["lat"]) == pytest.approx(BRIXTON)
    assert stored["firebase_uid"].startswith("anon-")
    phone.goto("My reports")
    item = phone.page.locator(f"#mine-list li[data-report-id='{stored['id']}']")
    item.wait_for()
    assert "Harassment" in item.inner_text() and "Received" in item.inner_text()
    assert phone.problems == []


def test_three_reports_offline_survive_a_reload_and_are_stored_exactly_once(open_app, reports_in_db):
    phone = open_app()
    phone.wait_until_offline_ready()
    phone.context.set_offline(True)
    for category in ("Harassment", "Spiking", "Harassment"):
        phone.report(category)
    phone.page.wait_for_function("() => document.body.dataset.queued === '3'")
    assert "3 reports waiting to be sent" in phone.page.locator("#queue-status").inner_text()

    phone.page.reload()  # still offline: the service worker opens the app, IndexedDB still has the reports
    phone.page.wait_for_selector("body[data-ready=true]", timeout=20000)
    assert phone.queued() == 3
    phone.goto("My reports")
    phone.page.wait_for_function("() => document.querySelectorAll('#queue-list li.queued').length === 3")
    assert reports_in_db() == []

    phone.context.set_offline(False)  # the browser's online event sends them
    phone.page.wait_for_function("() => document.body.dataset.queued === '0'", timeout=20000)
    stored = reports_in_db()
    assert sorted(r["category"] for r in stored) == ["harassment", "harassment", "spiking"]
    assert len({r["idempotency_key"] for r in stored}) == 3
    assert phone.page.evaluate("""async () => {
        const db = await new Promise((ok) => { const r = indexedDB.open('safetravel'); r.onsuccess = () => ok(r.result); });
        const count = (store) => new Promise((ok) => {
            const r = db.transaction(store).objectStore(store).count();
            r.onsuccess = () => ok(r.result);
        });
        return [await count('queue'), await count('sent')];
    }""") == [0, 3]  # sent reports leave the phone; only their ids stay
    cached = phone.page.evaluate("""async () => {
        const urls = [];
        for (const name of await caches.keys()) for (const r of await (await caches.open(name)).keys()) urls.push(r.url);
        return urls;
    }""")
    assert any(url.endswith("/app/") for url in cached)
    assert not [url for url in cached if "/api/" in url]  # the service worker keeps no API answer, no report


def test_an_answer_lost_after_the_server_stored_the_batch_is_resent_without_a_duplicate(open_app, reports_in_db):
    phone = open_app()
    lost = []

    def lose_the_first_answer(route):
        if lost:
            route.continue_()
            return
        request = route.request  # the server stores the batch...
        answer = requests.post(request.url, data=request.post_data_buffer, timeout=10,
                               headers={k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")})
        lost.append(answer.json())
        route.abort("connectionreset")  # ...and the phone never hears back

    phone.context.route("**/api/v1/reports/batch", lose_the_first_answer)
    phone.report("Spiking")
    for _ in range(200):
        if lost:
            break
        phone.page.wait_for_timeout(50)
    assert lost[0]["results"][0]["status"] == 201
    assert len(reports_in_db()) == 1

    phone.page.reload()  # the next start (or Background Sync, where it fired first) sends the queue again
    phone.page.wait_for_selector("body[data-ready=true]")
    phone.page.wait_for_function("() => document.body.dataset.queued === '0'", timeout=20000)
    [stored] = reports_in_db()
    assert str(stored["id"]) == lost[0]["results"][0]["report"]["id"]


def test_a_report_the_server_rejects_stays_on_the_phone_with_its_error_to_fix(open_app, reports_in_db):
    phone = open_app()
    real_now = phone.page.evaluate("Date.now()")
    phone.page.clock.install(time=real_now / 1000 + 3 * 3600)  # the phone's clock is three hours fast
    phone.report("Harassment")
    phone.page.wait_for_function("() => document.body.dataset.rejected === '1'", timeout=20000)
    assert "1 report was not accepted" in phone.page.locator("#queue-status").inner_text()
    assert reports_in_db() == []

    phone.goto("My reports")
    rejected = phone.page.locator("#queue-list li.rejected")
    assert "Not accepted" in rejected.inner_text()
    assert "When: " in rejected.inner_text() and "future" in rejected.inner_text()

    phone.page.clock.set_system_time(real_now / 1000 + 60)  # the clock put right, the report fixed
    rejected.get_by_role("button", name="Fix").click()
    phone.page.get_by_label("An hour ago").check()
    phone.page.get_by_role("button", name="Send report", exact=True).click()
    phone.page.wait_for_function("() => document.body.dataset.queued === '0' && document.body.dataset.rejected === '0'")
    [stored] = reports_in_db()
    assert stored["category"] == "harassment"


def test_a_rejected_report_can_be_discarded(open_app, reports_in_db):
    phone = open_app()
    phone.page.clock.install(time=phone.page.evaluate("Date.now()") / 1000 + 3 * 3600)
    phone.report("Spiking")
    phone.page.wait_for_function("() => document.body.dataset.rejected === '1'", timeout=20000)
    phone.goto("My reports")
    phone.page.locator("#queue-list li.rejected").get_by_role("button", name="Discard").click()
    phone.page.wait_for_selector("#queue-list li", state="detached")
    assert phone.page.locator("#queue-empty").is_visible()
    assert reports_in_db() == []


def test_an_unsafe_route_walked_with_the_gps_is_stored_with_its_track(open_app, reports_in_db):
    phone = open_app()
    phone.page.get_by_role("button", name="Unsafe route", exact=True).click()
    phone.page.get_by_role("button", name="Start walking").click()
    for step in range(1, 4):
        phone.context.set_geolocation({"longitude": BRIXTON[0] + 0.0004 * step, "latitude": BRIXTON[1] + 0.0002 * step,
                                       "accuracy": 10})
        phone.page.wait_for_function(f"() => /\\b{step + 1} points/.test(document.getElementById('route-status').textContent)")
    phone.page.get_by_role("button", name="Stop walking").click()
    phone.page.get_by_role("button", name="Send report", exact=True).click()
    phone.page.wait_for_function("() => document.body.dataset.sentOnce === 'true'")
    [stored] = reports_in_db()
    assert stored["category"] == "unsafe_route" and stored["route_points"] == 4


def test_an_unsafe_route_without_a_route_is_refused_on_the_phone(open_app, reports_in_db):
    phone = open_app()
    phone.page.get_by_role("button", name="Unsafe route", exact=True).click()
    phone.page.get_by_role("button", name="Send report", exact=True).click()
    assert "needs a route" in phone.page.get_by_role("alert").first.inner_text()
    assert reports_in_db() == []


def test_optional_details_are_sent_with_the_report(open_app, reports_in_db):
    phone = open_app()
    phone.page.get_by_role("button", name="Harassment", exact=True).click()
    phone.page.get_by_text("Add details (optional)").click()
    phone.page.get_by_label("What kind").select_option("following")
    phone.page.get_by_label("How you were travelling").select_option("tube")
    phone.page.get_by_label("Line").fill("Victoria")
    phone.page.get_by_label("Station or stop").fill("Brixton")
    phone.page.get_by_label("Poor lighting").check()
    phone.page.get_by_label("What happened, in your words").fill("He followed me off the train.")
    assert phone.page.locator("#description-count").inner_text() == "29 of 2000 characters"
    phone.page.get_by_role("button", name="Send report", exact=True).click()
    phone.page.wait_for_function("() => document.body.dataset.sentOnce === 'true'")
    [stored] = reports_in_db()
    assert (stored["mode"], stored["line"], stored["station"]) == ("tube", "Victoria", "Brixton")
    assert stored["factors"] == ["poor_lighting"] and stored["description"] == "He followed me off the train."


def test_a_pin_moved_by_hand_is_the_place_sent_without_the_gps_accuracy(open_app, reports_in_db):
    phone = open_app()
    phone.page.get_by_role("button", name="Harassment", exact=True).click()
    pin = phone.page.locator("#report-map .pin")
    pin.wait_for()
    phone.page.wait_for_function("() => /\\d/.test(document.getElementById('location-status').textContent)")
    phone.page.wait_for_timeout(300)  # the map settled on the GPS position
    box = pin.bounding_box()
    phone.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    phone.page.mouse.down()
    phone.page.mouse.move(box["x"] + 80, box["y"] + 40, steps=8)
    phone.page.mouse.up()
    assert phone.page.locator("#location-status").inner_text() == "You placed the pin."
    phone.page.get_by_role("button", name="Send report", exact=True).click()
    phone.page.wait_for_function("() => document.body.dataset.sentOnce === 'true'")
    [stored] = reports_in_db()
    assert stored["accuracy_m"] is None
    assert stored["lon"] > BRIXTON[0] and stored["lat"] < BRIXTON[1]  # moved east and south
