"""Device registration. Locations are stored coarse: snapped to a grid of about 100 m.

Re-registering a known FCM token moves the device to the caller (the token is the phone's secret:
whoever holds it is on that phone). A move between accounts is returned for the audit log; the
previous account's app is told on its next PATCH or DELETE (``moved_away``); a staff device never
moves to an account that is not staff, so that nobody takes a phone out of the safety team's alerts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from geoalchemy2.shape import from_shape
from sqlalchemy import delete, text

from backend.auth import Principal
from backend.devices.models import Device
from backend.extensions import db
from backend.geo import coarse  # a device's exact position is never kept
from backend.users.service import IDENTITY_CTE, find_user_id


class StaffDevice(Exception):
    """The token is a staff device's, and the caller's account is not staff."""


def _location(value: Any) -> Any:
    return None if value is None else from_shape(coarse(value), srid=4326)


_UPSERT = text(f"""
    WITH {IDENTITY_CTE}
    INSERT INTO devices (user_id, token, platform, audience, location, radius_m, categories, locale, updates)
    SELECT identity.id, :token, :platform, :audience, ST_GeomFromWKB(:location, 4326), :radius_m, :categories,
           :locale, :updates
    FROM identity
    ON CONFLICT (token) DO UPDATE SET
        previous_user_id = CASE WHEN devices.user_id <> EXCLUDED.user_id THEN devices.user_id
                                ELSE devices.previous_user_id END,
        user_id = EXCLUDED.user_id, platform = EXCLUDED.platform, audience = EXCLUDED.audience,
        location = EXCLUDED.location, radius_m = EXCLUDED.radius_m, categories = EXCLUDED.categories,
        locale = EXCLUDED.locale, updates = EXCLUDED.updates, updated_at = clock_timestamp()
    RETURNING id, (xmax = 0) AS created
""")


# The token's current owner, locked until the caller commits: a move is decided on what it replaces.
_OWNER = text("""
    SELECT d.user_id, d.audience, u.firebase_uid FROM devices d JOIN users u ON u.id = d.user_id
    WHERE d.token = :token FOR UPDATE OF d
""")


@dataclass(frozen=True)
class Registration:
    device: Device
    created: bool
    moved_from_uid: str | None  # the account the token was taken from, if it moved between accounts


def register(principal: Principal, data: dict[str, Any]) -> Registration:
    """Register a token for the caller, or update it (and move it to the caller) if it is known.
    Raises StaffDevice when a staff device's token is re-registered by an account that is not staff."""
    owner = db.session.execute(_OWNER, {"token": data["token"]}).one_or_none()
    moved_from_uid = owner.firebase_uid if owner is not None and owner.firebase_uid != principal.uid else None
    if moved_from_uid is not None and owner.audience == "staff" and not principal.is_staff:
        raise StaffDevice()
    params = {
        "uid": principal.uid, "token": data["token"], "platform": data["platform"],
        "audience": "staff" if principal.is_staff else "commuter",
        "location": coarse(data["location"]).wkb if data.get("location") is not None else None,
        "radius_m": data.get("radius_m", 1000), "categories": data.get("categories") or [],
        "locale": data.get("locale", "en"), "updates": data.get("updates", True),
    }
    for _ in range(2):  # a brand-new user's first requests may race for the identity link
        row = db.session.execute(_UPSERT, params).one_or_none()
        if row is not None:
            break
    db.session.flush()
    return Registration(db.session.get(Device, row.id, populate_existing=True), row.created, moved_from_uid)


def own_device(principal: Principal, device_id: uuid.UUID) -> Device | None:
    user_id = find_user_id(principal.uid)
    device = db.session.get(Device, device_id)
    return device if device is not None and device.user_id == user_id else None


def moved_away(principal: Principal, device_id: uuid.UUID) -> bool:
    """Was this device the caller's until its token was registered on another account?"""
    user_id = find_user_id(principal.uid)
    device = db.session.get(Device, device_id)
    return user_id is not None and device is not None and device.previous_user_id == user_id \
        and device.user_id != user_id


def update(device: Device, changes: dict[str, Any]) -> Device:
    for key, value in changes.items():
        setattr(device, key, _location(value) if key == "location" else value)
    device.updated_at = datetime.now(timezone.utc)
    db.session.flush()
    return device


def remove(device: Device) -> None:
    db.session.execute(delete(Device).where(Device.id == device.id))
    db.session.flush()


def prune_tokens(tokens: list[str]) -> int:
    """Forget tokens FCM says are dead (UNREGISTERED, invalid)."""
    if not tokens:
        return 0
    result = db.session.execute(delete(Device).where(Device.token.in_(tokens)))
    return result.rowcount

