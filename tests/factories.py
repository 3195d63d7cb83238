"""Test data: callers with emulator tokens, valid report bodies to vary one field at a time, and reports
stored straight through the reports service (no HTTP request)."""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from shapely.geometry import LineString, Point

from backend.devtokens import emulator_token
from backend.reports import service as reports

BRIXTON = [-0.1145, 51.4627]
# Inside Southwark (E09000028) and Camden (E09000007), for council scoping.
PECKHAM = [-0.0692, 51.4740]
CAMDEN_TOWN = [-0.1426, 51.5392]


@dataclass(frozen=True)
class Caller:
    uid: str
    role: str | None = None
    council: str | None = None

    def token(self, **claims: Any) -> str:
        return emulator_token(self.uid, role=self.role, council=self.council, **claims)

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}", **extra}


# The suite's callers, each a fixture of the same name (tests/conftest.py).
CALLERS = {
    "commuter": Caller("commuter-alice"),
    "other_commuter": Caller("commuter-bob"),
    "staff": Caller("staff-sam", role="safety_team"),
    "admin": Caller("admin-ada", role="admin"),
    "southwark": Caller("council-southwark", role="council", council="E09000028"),
    "camden": Caller("council-camden", role="council", council="E09000007"),
}


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def report_body(**overrides: Any) -> dict[str, Any]:
    """A valid harassment report; pass a field to override it, or ``field=None`` to drop it."""
    body: dict[str, Any] = {
        "category": "harassment",
        "subcategory": "verbal",
        "occurred_at": iso(datetime.now(timezone.utc) - timedelta(hours=1)),
        "location": {"type": "Point", "coordinates": list(BRIXTON)},
        "accuracy_m": 25,
        "transport": {"mode": "tube", "line": "Victoria", "station": "Brixton"},
        "factors": ["poor_lighting", "no_staff"],
        "description": "A man followed me from the platform to the exit.",
    }
    for key, value in overrides.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = copy.deepcopy(value)
    return body


def route_body(**overrides: Any) -> dict[str, Any]:
    return report_body(**{
        "category": "unsafe_route",
        "subcategory": "poor_lighting",
        "route": {"type": "LineString", "coordinates": [[-0.1145, 51.4627], [-0.1120, 51.4641], [-0.1100, 51.4650]]},
        **overrides,
    })


def new_key() -> str:
    return str(uuid.uuid4())


def add_report(author: str, lon: float, lat: float, occurred_at: datetime, *, category: str = "harassment",
               route: list[tuple[float, float]] | None = None, mode: str | None = None, factors: Sequence[str] = (),
               description: str | None = None) -> str:
    """A report by ``author`` (a Firebase uid) stored and committed by the reports service, with its
    follow-up tasks in the outbox, not yet run; returns its id."""
    data = {
        "category": category,
        "occurred_at": occurred_at,
        "location": Point(lon, lat),
        "route": LineString(route) if route else None,
        "transport": {"mode": mode} if mode else None,
        "factors": list(factors),
        "description": description,
    }
    key = uuid.uuid4()
    return str(reports.create_report(author, data, hashlib.sha256(key.bytes).digest(), key).report.id)
