"""Test data: callers with emulator tokens, valid report bodies to vary one field at a time."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from backend.devtokens import emulator_token

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
