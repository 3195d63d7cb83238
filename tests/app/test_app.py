"""The commuter's app, driven in Chromium as a phone: reporting online and offline, exactly once."""

from __future__ import annotations

import pytest

from tests.app.conftest import BRIXTON


def test_a_report_in_three_taps_reaches_postgis_with_its_gps_accuracy(open_app, reports_in_db):
    phone = open_app(accuracy=23.0)
    phone.report("Harassment")
    phone.page.wait_for_function("() => document.body.dataset.sentOnce === 'true'")
    assert phone.page.locator("#queue-status").inner_text() == "All your reports are sent."
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
