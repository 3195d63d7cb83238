"""Realistic demo reports for London, from the real Underground and DLR track, streets, bus stops and
stations in data/ (backend/demo/places.py).

Where: around stations (the segment ends of the track data), along the lines between them, and in
the streets nearby. Where the street network covers (central London), reports in the street lie on
or beside a street and unsafe-route reports walk along real streets; bus and night-bus reports sit at
the nearest real bus stop, tube and DLR reports at a station at the nearest real station (named).
When: the last year, skewed to evenings, nights and weekends (in London time).
What: all three categories, with subcategories, transport modes and factors that fit the place and
the hour; unsafe-route reports carry a walked route. Who: a few thousand demo commuters, some of
whom report often. The same seed gives the same reports, and seeding twice adds nothing (each
report has a deterministic idempotency key).

``generate_reports()`` is also what benchmarks use to make data "spread like the demo data".
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from shapely.geometry import LineString
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from backend.demo import places
from backend.extensions import db
from backend.geo import METRES_PER_DEGREE_LAT
from backend.reports.models import Report
from backend.users.models import User

DATA_DIR = Path(__file__).resolve().parent.parent.parent / "data"
LONDON = ZoneInfo("Europe/London")
DEMO_NAMESPACE = uuid.UUID("5afe7a7e-0000-4000-8000-000000000000")

# Relative likelihood of a report by local hour (0-23) and by weekday (Mon-Sun).
HOUR_WEIGHT = (1.6, 1.5, 1.2, 0.8, 0.4, 0.3, 0.5, 0.9, 1.1, 0.7, 0.5, 0.5,
               0.6, 0.6, 0.6, 0.7, 0.9, 1.2, 1.2, 1.2, 1.4, 1.6, 1.9, 1.9)
DAY_WEIGHT = (0.8, 0.85, 0.9, 1.0, 1.5, 1.7, 1.0)
NIGHT_HOURS = {21, 22, 23, 0, 1, 2, 3}

SUBCATEGORY_WEIGHTS = {
    "harassment": {"verbal": 35, "following": 20, "physical": 12, "sexual": 12, "exposure": 6,
                   "intimidation": 10, "other": 5},
    "spiking": {"drink": 75, "needle": 20, "other": 5},
    "unsafe_route": {"poor_lighting": 40, "isolated": 30, "antisocial_behaviour": 15, "overcrowded": 5, "other": 10},
}
DESCRIPTIONS = {
    "harassment": [
        "A man kept making comments about me for several stops.",
        "Someone followed me from the platform to the exit.",
        "A group shouted at me and blocked the doors.",
        "I was touched on a crowded carriage and could not move away.",
        "A man stared and filmed me on his phone.",
        "Someone sat next to me and would not stop talking even when I moved.",
    ],
    "spiking": [
        "My drink tasted odd and I felt dizzy soon after.",
        "I felt a sharp scratch on my arm in a crowded bar nearby.",
        "A friend became very unwell after one drink.",
        "I lost track of time after a drink someone bought me.",
    ],
    "unsafe_route": [
        "Street lights were out along most of this path.",
        "Very isolated underpass, nobody around after dark.",
        "Groups drinking on the corner, I crossed the road to avoid them.",
        "No staff at the station exit and the car park was dark.",
        "Overgrown path with no way to see ahead.",
    ],
}


@dataclass(frozen=True)
class Station:
    lon: float
    lat: float
    lines: tuple[str, ...]
    weight: float


def _load_track() -> tuple[list[Station], list[tuple[str, list[tuple[float, float]]]]]:
    features = json.loads((DATA_DIR / "london_tube_lines.geojson").read_text())["features"]
    ends: dict[tuple[float, float], set[str]] = {}
    segments = []
    for feature in features:
        coords = [tuple(c) for c in feature["geometry"]["coordinates"]]
        line = feature["properties"]["line"]
        segments.append((line, coords))
        for end in (coords[0], coords[-1]):
            ends.setdefault((round(end[0], 4), round(end[1], 4)), set()).add(line)
    stations = [Station(lon, lat, tuple(sorted(lines)), 1.0 + len(lines)) for (lon, lat), lines in sorted(ends.items())]
    return stations, segments


def _offset(rng: random.Random, lon: float, lat: float, sigma_m: float) -> tuple[float, float]:
    dx, dy = rng.gauss(0, sigma_m), rng.gauss(0, sigma_m)
    return (lon + dx / (METRES_PER_DEGREE_LAT * math.cos(math.radians(lat))), lat + dy / METRES_PER_DEGREE_LAT)


def _along(rng: random.Random, coords: list[tuple[float, float]]) -> tuple[float, float]:
    point = LineString(coords).interpolate(rng.random(), normalized=True)
    return point.x, point.y


def _walk(rng: random.Random, lon: float, lat: float) -> list[tuple[float, float]]:
    """A plausible walked route from a point: a few streets, gently turning, never crossing itself."""
    while True:
        heading = rng.uniform(0, 2 * math.pi)
        points = [(lon, lat)]
        for _ in range(rng.randint(2, 9)):
            heading += rng.uniform(-0.6, 0.6)
            step = rng.uniform(60, 220)
            last = points[-1]
            points.append((
                last[0] + step * math.sin(heading) / (METRES_PER_DEGREE_LAT * math.cos(math.radians(last[1]))),
                last[1] + step * math.cos(heading) / METRES_PER_DEGREE_LAT,
            ))
        if LineString(points).is_simple:
            return [(round(x, 6), round(y, 6)) for x, y in points]


def _place(rng: random.Random, kind: str, mode: str, category: str, lon: float,
           lat: float) -> tuple[float, float, list[tuple[float, float]] | None, str | None]:
    """Where a report lies on real places: (lon, lat, its walked route if any, its station's name)."""
    if mode in ("bus", "night_bus"):
        stop_lon, stop_lat, _ = places.bus_stops().nearest(lon, lat)
        return (*_offset(rng, stop_lon, stop_lat, 8), None, None)
    if mode in ("tube", "dlr") and kind == "station":
        station_lon, station_lat, name = places.stations(mode).nearest(lon, lat)
        return (*_offset(rng, station_lon, station_lat, 30), None, name)
    if kind == "line":
        return lon, lat, None, None
    street = places.streets().nearest(lon, lat)
    if street is None:  # beyond the network: as before
        return lon, lat, _walk(rng, lon, lat) if category == "unsafe_route" else None, None
    if category == "unsafe_route":
        route = places.streets().walk(rng, street, rng.uniform(250, 1200))
        if len(route) >= 2:
            return (*route[0], [(round(x, 6), round(y, 6)) for x, y in route], None)
        return lon, lat, _walk(rng, lon, lat), None
    return (*_offset(rng, *street, 5), None, None)  # on the street or its pavement


def _time_slots(now: datetime, days: int) -> tuple[list[datetime], list[float]]:
    start = (now.astimezone(LONDON) - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    slots, weights = [], []
    for h in range(days * 24):
        local = start + timedelta(hours=h)
        weight = HOUR_WEIGHT[local.hour] * DAY_WEIGHT[local.weekday()]
        if local.weekday() in (4, 5) and local.hour in NIGHT_HOURS:
            weight *= 1.4  # Friday and Saturday nights
        slots.append(local)
        weights.append(weight)
    return slots, weights


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def generate_reports(
    count: int, seed: int = 2026, now: datetime | None = None, users: int = 6000, days: int = 365
) -> Iterator[dict[str, Any]]:
    """Yield ``count`` report rows (column values, geometries as EWKT) over the last ``days`` days,
    deterministic for a seed."""
    rng = random.Random(seed)
    now = now or datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    stations, segments = _load_track()
    station_weights = [s.weight * rng.lognormvariate(0, 0.7) for s in stations]
    slots, slot_weights = _time_slots(now - timedelta(hours=1), days)
    slot_cum = list(_cumulative(slot_weights))
    user_cum = list(_cumulative([1 / (i + 1) ** 0.6 for i in range(users)]))

    for i in range(count):
        local = rng.choices(slots, cum_weights=slot_cum)[0] + timedelta(minutes=rng.randrange(60))
        night = local.hour in NIGHT_HOURS
        kind = rng.choices(("station", "line", "street"), weights=(55, 25, 20))[0]
        line_name = None
        if kind == "line":
            line_name, coords = rng.choice(segments)
            lon, lat = _offset(rng, *_along(rng, coords), 40)
            category = rng.choices(("harassment", "spiking"), weights=(80, 20))[0]
            mode = "dlr" if line_name == "DLR" else "tube"
        else:
            station = rng.choices(stations, weights=station_weights)[0]
            lon, lat = _offset(rng, station.lon, station.lat, 120 if kind == "station" else 450)
            line_name = rng.choice(station.lines)
            if kind == "station":
                category = rng.choices(("harassment", "spiking", "unsafe_route"), weights=(60, 20, 20))[0]
                mode = rng.choices(("tube", "walking", "bus"), weights=(70, 20, 10))[0]
                if mode == "tube" and line_name == "DLR":
                    mode = "dlr"
            else:
                category = rng.choices(("harassment", "spiking", "unsafe_route"), weights=(35, 15, 50))[0]
                mode = rng.choices(
                    ("walking", "night_bus" if night else "bus", "cycling", "taxi", "other"), weights=(45, 30, 10, 10, 5)
                )[0]
        if category == "unsafe_route" and mode not in ("walking", "cycling"):
            mode = "walking"
        venue = _offset(rng, lon, lat, 80)
        if category == "spiking" and night and kind != "line":
            # Spiking happens in venues near stations late at night, then people travel home.
            lon, lat = venue
        lon, lat, route, station_name = _place(rng, kind, mode, category, lon, lat)
        subcategory = _pick(rng, SUBCATEGORY_WEIGHTS[category])
        factors = set()
        dark = rng.random() < 0.6
        if category == "unsafe_route":
            factors.add(subcategory if subcategory in ("poor_lighting", "isolated", "antisocial_behaviour",
                                                        "overcrowded") else "poor_visibility")
            if night and dark:
                factors.add("poor_lighting")
        for factor in ("no_staff", "no_cctv", "isolated", "overcrowded", "poor_lighting"):
            if rng.random() < 0.12:
                factors.add(factor)
        occurred_at = local.astimezone(timezone.utc)
        age_days = (now - occurred_at).days
        # Every draw is made whatever the outcome, so that the same seed gives the same reports (and
        # idempotency keys, and authors) on any day: seeding again adds nothing.
        triaged, closed, reviewing = rng.random(), rng.random(), rng.random()
        if age_days > 30 and triaged < 0.6:
            status = "closed" if closed < 0.5 else "actioned"
        else:
            status = "reviewing" if age_days > 10 and reviewing < 0.3 else "received"
        yield {
            "author": f"demo-commuter-{rng.choices(range(users), cum_weights=user_cum)[0]:05d}",
            "idempotency_key": uuid.uuid5(DEMO_NAMESPACE, f"{seed}:{i}"),
            "category": category,
            "subcategory": subcategory,
            "occurred_at": occurred_at,
            "location": f"SRID=4326;POINT({lon:.6f} {lat:.6f})",
            "accuracy_m": float(rng.choice((5, 10, 15, 20, 30, 50))),
            "route": ("SRID=4326;LINESTRING(" + ", ".join(f"{x} {y}" for x, y in route) + ")") if route else None,
            "mode": mode,
            "line": line_name if mode in ("tube", "dlr") else None,
            "station": station_name,
            "factors": sorted(factors),
            "description": rng.choice(DESCRIPTIONS[category]) if rng.random() < 0.6 else None,
            "status": status,
            "created_at": occurred_at + timedelta(minutes=rng.randint(2, 180)),
        }


def _cumulative(weights: list[float]) -> Iterator[float]:
    total = 0.0
    for w in weights:
        total += w
        yield total


def _ensure_users(uids: set[str]) -> dict[str, uuid.UUID]:
    db.session.execute(
        insert(User).on_conflict_do_nothing(index_elements=[User.firebase_uid]), [{"firebase_uid": u} for u in sorted(uids)]
    )
    return dict(db.session.execute(select(User.firebase_uid, User.id).where(User.firebase_uid.in_(uids))).all())


def seed_reports(count: int, seed: int = 2026, chunk: int = 5000) -> int:
    """Insert ``count`` demo reports (idempotently); returns how many were new."""
    before = db.session.scalar(select(func.count()).select_from(Report))
    statement = insert(Report).on_conflict_do_nothing(constraint="uq_reports_author_idempotency_key")
    rows: list[dict[str, Any]] = []
    for row in generate_reports(count, seed):
        rows.append(row)
        if len(rows) == chunk:
            _insert_chunk(statement, rows)
            rows = []
    if rows:
        _insert_chunk(statement, rows)
    db.session.flush()
    return db.session.scalar(select(func.count()).select_from(Report)) - before


def _insert_chunk(statement, rows: list[dict[str, Any]]) -> None:
    user_ids = _ensure_users({r["author"] for r in rows})
    db.session.execute(statement, [
        {**{k: v for k, v in r.items() if k != "author"}, "author_id": user_ids[r["author"]], "updated_at": r["created_at"]}
        for r in rows
    ])
