"""Realistic demo devices, so that a first alert sent from the dashboard reaches someone: commuters'
phones registered for alerts near home or near where they work, stored coarse as every device is
(snapped to about 100 m, backend.geo.coarse), each with its own radius of interest.

Where: half near home, around any of TfL's stations (data/london_stations.geojson) with a wide
scatter (people live within a walk or a bus ride of a station); half near work, around central
London's stations (within about 4 km of Charing Cross) with a narrower one. Radii as the app offers
them, most people choosing the default kilometre. Tokens are not real FCM tokens: without FCM
credentials the demo only logs pushes (GET /api/v1/meta `push_notifications`). Idempotent: each
device's token and owner are derived from its number, so seeding again adds nothing.
"""

from __future__ import annotations

import random

from shapely.geometry import Point
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from backend.demo.hubs import stations
from backend.demo.seed import _ensure_users, _offset
from backend.devices.models import Device
from backend.extensions import db
from backend.geo import coarse, haversine_m

CHARING_CROSS = (-0.1246, 51.5080)
CENTRAL_M = 4000
RADII_M = {250: 1, 500: 3, 1000: 6, 2000: 3, 3000: 1}  # relative likelihood of each radius


def demo_devices(count: int = 2000, seed: int = 2026) -> list[dict]:
    rng = random.Random(seed)
    everywhere = stations()
    central = [s for s in everywhere if haversine_m(CHARING_CROSS, (s["lon"], s["lat"])) <= CENTRAL_M]
    devices = []
    for n in range(count):
        near_work = n % 2 == 1
        station = rng.choice(central if near_work else everywhere)
        lon, lat = _offset(rng, station["lon"], station["lat"], 400 if near_work else 900)
        where = coarse(Point(lon, lat))
        devices.append({
            "owner": f"demo-device-owner-{n:05d}", "token": f"demo-device-{seed}-{n:05d}",
            "platform": rng.choice(("android", "android", "ios", "web")), "audience": "commuter",
            "location": f"SRID=4326;POINT({where.x} {where.y})",
            "radius_m": rng.choices(list(RADII_M), weights=list(RADII_M.values()))[0],
        })
    return devices


def seed_devices(count: int = 2000, seed: int = 2026) -> int:
    """Insert the demo devices that are not there yet; returns how many were new."""
    rows = demo_devices(count, seed)
    owners = _ensure_users({r["owner"] for r in rows})
    before = db.session.scalar(select(func.count()).select_from(Device))
    db.session.execute(insert(Device).on_conflict_do_nothing(index_elements=[Device.token]), [
        {"user_id": owners[r.pop("owner")], **r} for r in rows])
    db.session.flush()
    return db.session.scalar(select(func.count()).select_from(Device)) - before
