"""Reporter updates: a report's new status and public note reach its author's own devices, in each
device's language, and nobody else's; FCM intercepted at the HTTP boundary (tests/alerts/fcm.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import text

from backend.config import ConfigError, Settings
from backend.extensions import db
from backend.outbox import service as outbox
from tests.appctx import app_context
from tests.factories import new_key, report_body

TOKEN = "fcm-update-{}-" + "u" * 120


def register(client, caller, name: str, **extra) -> None:
    body = {"token": TOKEN.format(name), "platform": "android", **extra}
    response = client.post("/api/v1/devices", json=body, headers=caller.headers())
    assert response.status_code in (200, 201), response.json


def report(client, caller, **overrides) -> str:
    response = client.post("/api/v1/reports", json=report_body(occurred_at="2026-11-20T22:15:00Z", **overrides),
                           headers=caller.headers(**{"Idempotency-Key": new_key()}))
    assert response.status_code == 201, response.json
    return response.json["id"]


def triage(client, staff, report_id: str, status: str, **notes) -> None:
    response = client.patch(f"/api/v1/reports/{report_id}", json={"status": status, **notes}, headers=staff.headers())
    assert response.status_code == 200, response.json


def work() -> None:
    """Run the outbox as a worker would, in the app's context."""
    with app_context():
        while ids := db.session.scalars(text("SELECT id FROM outbox WHERE done_at IS NULL ORDER BY id")).all():
            for task_id in ids:
                outbox.run(task_id)


def pushed(fcm) -> dict[str, dict]:
    return {m["token"].split("-")[2]: m for m in fcm.payloads}


def test_the_reporters_devices_hear_in_their_own_language_and_nobody_else(client, commuter, other_commuter, staff, fcm):
    register(client, commuter, "welsh", locale="cy-GB")
    register(client, commuter, "polish", locale="pl")
    register(client, commuter, "english", locale="en-GB")
    register(client, commuter, "portuguese", locale="pt-BR")
    register(client, other_commuter, "bystander", locale="en")
    register(client, staff, "staffphone")
    report_id = report(client, commuter)
    work()
    triage(client, staff, report_id, "actioned", note="Suspect known to BTP, ref 4471", public_note="Officers now patrol the exit.")
    work()

    got = pushed(fcm)
    assert set(got) == {"welsh", "polish", "english", "portuguese"}  # the reporter's, and only theirs
    assert got["welsh"]["notification"] == {
        "title": "Diweddariad ar eich adroddiad",
        "body": "Mae'r tîm diogelwch wedi gweithredu ar eich adroddiad am aflonyddu ar 2026-11-20. "
                "Officers now patrol the exit."}
    assert got["polish"]["notification"]["title"] == "Aktualizacja Twojego zgłoszenia"
    assert "nękanie" in got["polish"]["notification"]["body"]
    assert got["english"]["notification"]["body"] == (
        "The safety team has acted on your harassment report of 2026-11-20. Officers now patrol the exit.")
    assert got["portuguese"]["notification"] == got["english"]["notification"]  # English, the fallback
    assert all("4471" not in str(m) for m in fcm.payloads)  # the internal note never leaves staff
    assert got["english"]["data"] == {"type": "report_update", "report_id": report_id, "status": "actioned",
                                      "deep_link": f"safetravel://reports/{report_id}"}
    assert got["english"]["android"]["collapse_key"].startswith(f"report-{report_id}-")


def test_reviewing_is_not_pushed_and_a_device_can_opt_out(client, commuter, staff, fcm):
    register(client, commuter, "keen")
    register(client, commuter, "quiet", updates=False)
    report_id = report(client, commuter)
    triage(client, staff, report_id, "reviewing", public_note="We are looking at CCTV.")
    work()
    assert fcm.payloads == []
    triage(client, staff, report_id, "closed")
    work()
    assert set(pushed(fcm)) == {"keen"}
    assert pushed(fcm)["keen"]["notification"]["body"] == "Your harassment report of 2026-11-20 is closed."


def test_opting_out_later_and_the_statuses_are_configurable(client, app, settings, commuter, staff, fcm):
    register(client, commuter, "phone")
    device_id = db.session.scalar(text("SELECT id FROM devices WHERE token = :t"), {"t": TOKEN.format("phone")})
    report_id = report(client, commuter)
    app.config["SETTINGS"] = replace(settings, reporter_update_statuses=("reviewing",))
    try:
        triage(client, staff, report_id, "reviewing")
        work()
        assert len(fcm.payloads) == 1
        off = client.patch(f"/api/v1/devices/{device_id}", json={"updates": False}, headers=commuter.headers())
        assert off.status_code == 200 and off.json["updates"] is False and off.json["locale"] == "en"
        triage(client, staff, report_id, "received")
        triage(client, staff, report_id, "reviewing")
        work()
        assert len(fcm.payloads) == 1
    finally:
        app.config["SETTINGS"] = settings


def test_my_reports_show_the_history_with_public_notes_and_never_the_internal_note(client, commuter, staff):
    report_id = report(client, commuter)
    triage(client, staff, report_id, "reviewing", note="internal: caller sounded drunk", public_note="Looking into it.")
    triage(client, staff, report_id, "actioned", public_note="Lighting fixed on the exit stairs.")
    mine = client.get("/api/v1/me/reports", headers=commuter.headers())
    assert mine.status_code == 200
    [item] = mine.json["items"]
    assert [(h["status"], h["public_note"]) for h in item["status_history"]] == [
        ("received", None), ("reviewing", "Looking into it."), ("actioned", "Lighting fixed on the exit stairs.")]
    assert item["public_note"] == "Lighting fixed on the exit stairs."
    one = client.get(f"/api/v1/reports/{report_id}", headers=commuter.headers()).json
    assert one["status_history"] == item["status_history"]
    for body in (mine.get_data(as_text=True), str(one)):
        assert "drunk" not in body and "status_note" not in body
    seen_by_staff = client.get(f"/api/v1/reports/{report_id}", headers=staff.headers()).json
    assert seen_by_staff["status_note"] is None and seen_by_staff["public_note"] == "Lighting fixed on the exit stairs."


@pytest.mark.parametrize("locale", ["", "english", "en_GB", "x" * 40, "cy--GB"])
def test_a_locale_that_is_not_a_language_tag_is_refused(client, commuter, locale):
    response = client.post("/api/v1/devices", json={"token": TOKEN.format("bad"), "platform": "ios", "locale": locale},
                           headers=commuter.headers())
    assert response.status_code == 422 and "locale" in response.json["errors"]


def test_reporter_update_statuses_setting_is_checked():
    assert Settings.from_env({"REPORTER_UPDATE_STATUSES": "closed, rejected"}).reporter_update_statuses == (
        "closed", "rejected")
    with pytest.raises(ConfigError, match="REPORTER_UPDATE_STATUSES"):
        Settings.from_env({"REPORTER_UPDATE_STATUSES": "done"})
