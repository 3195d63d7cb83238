"""Open311 GeoReport v2, read side (https://wiki.open311.org/GeoReport_v2): the three categories as
services, and a council's reports as service requests, coarse and without free text.

Statuses map onto the spec's two: received and reviewing are ``open``; actioned, closed and rejected
are ``closed``. ``status_notes`` is the public note staff wrote for the reporter (never the internal one).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from shapely.geometry import Point
from sqlalchemy import select, text, update

from backend import vocabulary as v
from backend.auth import Principal
from backend.councils.models import CouncilArea
from backend.extensions import db
from backend.geo import coarse
from backend.open311.models import CouncilApiKey

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-12-02T00:00:00Z"  # when services or this implementation last changed
MAX_WINDOW = timedelta(days=90)
MAX_REQUESTS = 1000
OPEN = ("received", "reviewing")
CLOSED = ("actioned", "closed", "rejected")
SERVICE_STATUS = {**{s: "open" for s in OPEN}, **{s: "closed" for s in CLOSED}}
GROUP = "Safe travel"

SERVICES = {
    "harassment": ("Harassment", "Harassment on public transport or on the way to it: verbal, physical, following, "
                                 "exposure, sexual, intimidation."),
    "spiking": ("Spiking", "Drink or needle spiking."),
    "unsafe_route": ("Unsafe route", "A route where someone felt unsafe: poor lighting, isolated, antisocial "
                                     "behaviour, overcrowded."),
}


class BadRequest(ValueError):
    """A filter the spec does not allow; the message is the error's description."""


def services() -> list[dict[str, Any]]:
    return [{"service_code": code, "service_name": name, "description": description, "metadata": False,
             "type": "realtime", "keywords": ", ".join(v.SUBCATEGORIES[code]), "group": GROUP}
            for code, (name, description) in SERVICES.items()]


def service_definition(code: str) -> dict[str, Any] | None:
    """No service asks extra questions (``metadata`` is false): the definition has no attributes."""
    return {"service_code": code, "attributes": []} if code in SERVICES else None


# ---- API keys ----------------------------------------------------------------------------------------

KEY_PREFIX = "st311_"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class UnknownCouncil(Exception):
    pass


def issue_key(staff: Principal, council: str, label: str | None) -> tuple[CouncilApiKey, str]:
    """A new api_key for a council (the caller commits): returned once, kept as its digest."""
    if db.session.get(CouncilArea, council) is None:
        raise UnknownCouncil(council)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = CouncilApiKey(id=uuid.uuid4(), council=council, label=label, key_sha256=_digest(key), created_by=staff.uid)
    db.session.add(row)
    db.session.flush()
    return row, key


def list_keys() -> list[CouncilApiKey]:
    return list(db.session.scalars(select(CouncilApiKey).order_by(CouncilApiKey.created_at.desc())))


def revoke_key(key_id: uuid.UUID) -> bool:
    """Stop a key working at once (the caller commits); False: no such key."""
    row = db.session.get(CouncilApiKey, key_id)
    if row is None:
        return False
    row.revoked_at = row.revoked_at or datetime.now(timezone.utc)
    db.session.flush()
    return True


def council_for_key(key: str) -> Principal | None:
    """The council an unrevoked api_key was issued to, as the caller (None: no such key)."""
    row = db.session.execute(
        update(CouncilApiKey).where(CouncilApiKey.key_sha256 == _digest(key), CouncilApiKey.revoked_at.is_(None))
        .values(last_used_at=datetime.now(timezone.utc)).returning(CouncilApiKey.id, CouncilApiKey.council)
    ).one_or_none()
    return None if row is None else Principal(uid=f"open311-key:{row.id}", role="council", council=row.council)


# ---- requests ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    ids: list[uuid.UUID] | None
    codes: list[str] | None
    start: datetime
    end: datetime
    statuses: list[str] | None


def _list(raw: str | None) -> list[str] | None:
    values = [part.strip() for part in (raw or "").split(",") if part.strip()]
    return values or None


def _when(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw.strip().replace(" ", "+"))  # a '+' in a query string arrives as a space
    except ValueError:
        raise BadRequest(f"{name} must be a W3C date and time, such as 2026-11-01T00:00:00Z") from None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def parse_filters(args: dict[str, str], now: datetime | None = None) -> Filters:
    """The spec's filters: service_request_id (comma-separated; overrides the others), service_code,
    start_date and end_date (at most 90 days apart; default the last 90 days), status (open, closed)."""
    now = now or datetime.now(timezone.utc)
    ids = None
    if raw_ids := _list(args.get("service_request_id")):
        try:
            ids = [uuid.UUID(i) for i in raw_ids]
        except ValueError:
            raise BadRequest("service_request_id must be one or more request ids, comma-separated") from None
        if len(ids) > MAX_REQUESTS:
            raise BadRequest(f"at most {MAX_REQUESTS} service_request_id values")
    codes = _list(args.get("service_code"))
    if codes and (unknown := [c for c in codes if c not in SERVICES]):
        raise BadRequest(f"unknown service_code: {', '.join(unknown)} (see services.json)")
    statuses = _list(args.get("status"))
    if statuses and (unknown := [s for s in statuses if s not in ("open", "closed")]):
        raise BadRequest(f"status must be open or closed, not {', '.join(unknown)}")
    start, end = _when(args.get("start_date"), "start_date"), _when(args.get("end_date"), "end_date")
    if start and end and end < start:
        raise BadRequest("end_date must not be before start_date")
    if start and end and end - start > MAX_WINDOW:
        raise BadRequest("start_date and end_date may be at most 90 days apart")
    if start is None:
        start = (end or now) - MAX_WINDOW
    if end is None:
        end = min(now, start + MAX_WINDOW) if args.get("start_date") else now
    local_statuses = None
    if statuses:
        local_statuses = [s for s, mapped in SERVICE_STATUS.items() if mapped in statuses]
    return Filters(ids, codes, start, end, local_statuses)


_REQUESTS = text("""
    SELECT r.id, r.category, r.status, r.public_note, r.created_at, r.updated_at,
           ST_X(r.location) AS lon, ST_Y(r.location) AS lat, a.name AS council_name
    FROM reports r JOIN council_areas a ON a.code = :council AND ST_Intersects(r.location, a.geom)
    WHERE (CAST(:ids AS uuid[]) IS NULL OR r.id = ANY(CAST(:ids AS uuid[])))
      AND (CAST(:ids AS uuid[]) IS NOT NULL OR (
            r.created_at >= :start AND r.created_at <= :end
            AND (CAST(:codes AS text[]) IS NULL OR r.category = ANY(CAST(:codes AS text[])))
            AND (CAST(:statuses AS text[]) IS NULL OR r.status = ANY(CAST(:statuses AS text[])))))
    ORDER BY r.created_at DESC, r.id DESC
    LIMIT :limit
""")


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def service_requests(council: str, filters: Filters) -> list[dict[str, Any]]:
    """A council's reports as service requests: newest first, at most 1,000; located to about 100 m,
    without description, author or internal note."""
    rows = db.session.execute(_REQUESTS, {
        "council": council, "ids": filters.ids, "codes": filters.codes, "statuses": filters.statuses,
        "start": filters.start, "end": filters.end, "limit": MAX_REQUESTS,
    }).all()
    requests = []
    for row in rows:
        where = coarse(Point(row.lon, row.lat))
        requests.append({
            "service_request_id": str(row.id),
            "status": SERVICE_STATUS[row.status],
            "status_notes": row.public_note,
            "service_name": SERVICES[row.category][0],
            "service_code": row.category,
            "agency_responsible": row.council_name,
            "requested_datetime": _iso(row.created_at),
            "updated_datetime": _iso(row.updated_at),
            "lat": round(where.y, 6),
            "long": round(where.x, 6),
        })
    return requests
