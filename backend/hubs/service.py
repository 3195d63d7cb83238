"""Safe hubs: manage them, and find the nearest (open) ones."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from geoalchemy2.shape import from_shape
from sqlalchemy import func, select, text

from backend.extensions import db
from backend.hubs import opening_hours
from backend.hubs.models import SafeHub

# How many of the nearest hubs are looked at to find open ones.
OPEN_SEARCH_DEPTH = 200


def create_hub(data: dict[str, Any]) -> SafeHub:
    hub = SafeHub(**{**data, "location": from_shape(data["location"], srid=4326)})
    db.session.add(hub)
    db.session.flush()
    return hub


def update_hub(hub_id: uuid.UUID, changes: dict[str, Any]) -> SafeHub | None:
    hub = db.session.get(SafeHub, hub_id)
    if hub is None:
        return None
    for key, value in changes.items():
        setattr(hub, key, from_shape(value, srid=4326) if key == "location" else value)
    hub.updated_at = datetime.now(timezone.utc)
    db.session.flush()
    return hub


def delete_hub(hub_id: uuid.UUID) -> bool:
    hub = db.session.get(SafeHub, hub_id)
    if hub is None:
        return False
    db.session.delete(hub)
    db.session.flush()
    return True


def get_hub(hub_id: uuid.UUID) -> SafeHub | None:
    return db.session.get(SafeHub, hub_id)


def list_hubs(bbox: tuple[float, float, float, float] | None = None, kinds: list[str] | None = None,
              limit: int = 500) -> list[SafeHub]:
    query = select(SafeHub).order_by(SafeHub.name, SafeHub.id).limit(limit)
    if bbox:
        query = query.where(func.ST_Intersects(SafeHub.location, func.ST_MakeEnvelope(*bbox, 4326)))
    if kinds:
        query = query.where(SafeHub.kind.in_(kinds))
    return list(db.session.scalars(query))


@dataclass(frozen=True)
class NearbyHub:
    hub: SafeHub
    distance_m: float
    open_now: bool
    closes_at: datetime | None
    opens_at: datetime | None


_NEAREST = text("""
    SELECT h.id, ST_Distance(h.location::geography, p.g) AS distance_m
    FROM safe_hubs h, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography AS g) AS p
    ORDER BY h.location::geography <-> p.g
    LIMIT :depth
""")


def nearest_hubs(lon: float, lat: float, limit: int, open_now: bool, at: datetime, tz: ZoneInfo) -> list[NearbyHub]:
    """The hubs nearest a point, nearest first (a KNN scan of the geography index); with ``open_now``,
    only those open at ``at`` (among the nearest few hundred)."""
    depth = OPEN_SEARCH_DEPTH if open_now else limit
    reads = db.reads  # the standby when it is fit (backend/extensions.py)
    ranked = reads.execute(_NEAREST, {"lon": lon, "lat": lat, "depth": depth}).all()
    hubs = {h.id: h for h in reads.scalars(select(SafeHub).where(SafeHub.id.in_([r.id for r in ranked])))}
    found = []
    for row in ranked:
        hub = hubs[row.id]
        now = opening_hours.state(hub.opening_hours, at, tz)
        if open_now and not now.open_now:
            continue
        found.append(NearbyHub(hub, round(row.distance_m, 1), now.open_now,
                               now.changes_at if now.open_now else None,
                               None if now.open_now else now.changes_at))
        if len(found) == limit:
            break
    return found
