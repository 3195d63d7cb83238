"""Staff reads of reports are written to the audit log; an author reading their own report is not."""

from __future__ import annotations

from sqlalchemy import select

from backend.audit.models import AuditEntry
from backend.extensions import db
from tests.factories import PECKHAM, new_key, report_body


def entries() -> list[AuditEntry]:
    return db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()


def create(client, caller, **overrides) -> str:
    response = client.post("/api/v1/reports", json=report_body(**overrides),
                           headers=caller.headers(**{"Idempotency-Key": new_key()}))
    assert response.status_code == 201
    return response.json["id"]


def test_a_staff_read_of_a_report_is_audited(client, commuter, staff):
    report_id = create(client, commuter)
    assert client.get(f"/api/v1/reports/{report_id}", headers=commuter.headers()).status_code == 200
    assert entries() == []  # the author reading their own report
    assert client.get(f"/api/v1/reports/{report_id}", headers=staff.headers()).status_code == 200
    [entry] = entries()
    assert (entry.action, entry.actor_uid, entry.actor_role, entry.subject_type, entry.subject_id) == (
        "report.read", staff.uid, "safety_team", "report", report_id)


def test_a_staff_or_council_listing_is_audited_with_what_it_returned(client, commuter, staff, southwark):
    first = create(client, commuter, location={"type": "Point", "coordinates": PECKHAM})
    second = create(client, commuter)
    assert client.get("/api/v1/reports?category=harassment&limit=10", headers=staff.headers()).status_code == 200
    assert client.get("/api/v1/reports", headers=southwark.headers()).status_code == 200
    staff_entry, council_entry = entries()
    assert staff_entry.action == "reports.listed" and staff_entry.actor_role == "safety_team"
    assert set(staff_entry.details["ids"]) == {first, second} and staff_entry.details["count"] == 2
    assert staff_entry.details["filters"]["category"] == ["harassment"]
    assert council_entry.actor_uid == southwark.uid and council_entry.details["ids"] == [first]  # its own area
    assert all("description" not in str(e.details) and "followed" not in str(e.details) for e in entries())
