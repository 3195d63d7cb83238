"""Realistic demo safe hubs for London: staffed stations (TfL's 420 rail, Underground, DLR, Overground
and Elizabeth line stations in data/london_stations.geojson, under their real names), late-night
venues in the "Ask for Angela" style near the busiest interchanges, and hospitals with 24-hour
emergency departments. Idempotent: each hub's id is derived from what it is, so seeding again adds
nothing."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert

from backend.demo.seed import DATA_DIR, _load_track
from backend.extensions import db
from backend.hubs.models import SafeHub

NAMESPACE = uuid.UUID("5afe7a7e-0000-4000-8000-0000000000b0")
NIGHT_TUBE = {"Victoria", "Central", "Jubilee", "Northern", "Piccadilly"}
STATION_HOURS = {day: [["05:30", "00:30"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat")} | {
    "sun": [["07:00", "23:30"]]}
NIGHT_TUBE_HOURS = {**STATION_HOURS, "fri": [["05:30", "24:00"]], "sat": [["00:00", "24:00"]],
                    "sun": [["00:00", "23:30"]]}
VENUE_HOURS = {"thu": [["18:00", "02:00"]], "fri": [["18:00", "04:00"]], "sat": [["18:00", "04:00"]],
               "sun": [["17:00", "23:00"]]}
# Hospitals with 24-hour A&E departments (public information).
HOSPITALS = (
    ("St Thomas' Hospital", -0.1181, 51.4989, "Westminster Bridge Road, SE1 7EH"),
    ("King's College Hospital", -0.0939, 51.4683, "Denmark Hill, SE5 9RS"),
    ("University College Hospital", -0.1355, 51.5246, "235 Euston Road, NW1 2BU"),
    ("The Royal London Hospital", -0.0596, 51.5187, "Whitechapel Road, E1 1FR"),
    ("St Mary's Hospital", -0.1747, 51.5173, "Praed Street, W2 1NY"),
    ("Chelsea and Westminster Hospital", -0.1816, 51.4844, "369 Fulham Road, SW10 9NH"),
    ("Homerton University Hospital", -0.0453, 51.5469, "Homerton Row, E9 6SR"),
    ("The Whittington Hospital", -0.1386, 51.5657, "Magdala Avenue, N19 5NF"),
    ("Royal Free Hospital", -0.1657, 51.5532, "Pond Street, NW3 2QG"),
    ("Queen Elizabeth Hospital", 0.0474, 51.4795, "Stadium Road, SE18 4QH"),
)


def stations() -> list[dict]:
    """TfL's stations (data/london_stations.geojson): id, name, lines, lon, lat, and `hub_name`, one
    per station (the two Bethnal Greens, Underground and Overground, told apart by their lines)."""
    features = json.loads((DATA_DIR / "london_stations.geojson").read_text(encoding="utf-8"))["features"]
    names = Counter(f["properties"]["name"] for f in features)
    return [{"id": f["properties"]["id"], "name": f["properties"]["name"], "lines": f["properties"]["lines"],
             "hub_name": f"{f['properties']['name']} station" + (f" ({', '.join(f['properties']['lines'])})"
                                                                 if names[f["properties"]["name"]] > 1 else ""),
             "lon": f["geometry"]["coordinates"][0], "lat": f["geometry"]["coordinates"][1]} for f in features]


def demo_hubs(seed: int = 2026) -> list[dict]:
    rng = random.Random(seed)
    hubs = []
    for station in stations():
        hubs.append({
            "id": uuid.uuid5(NAMESPACE, f"tfl-station:{station['id']}"),
            "name": station["hub_name"],
            "kind": "staffed_station", "location": f"SRID=4326;POINT({station['lon']} {station['lat']})",
            "address": None, "phone": None,
            "opening_hours": NIGHT_TUBE_HOURS if set(station["lines"]) & NIGHT_TUBE else STATION_HOURS,
        })
    busiest = sorted(stations(), key=lambda s: (-len(s["lines"]), s["name"]))[:40]
    for n, station in enumerate(busiest):
        lon = station["lon"] + rng.uniform(-0.002, 0.002)
        lat = station["lat"] + rng.uniform(-0.0015, 0.0015)
        hubs.append({
            "id": uuid.uuid5(NAMESPACE, f"venue:{n}"),
            "name": f"Late-night venue {n + 1} (Ask for Angela) near {station['name']}",
            "kind": "safe_haven" if n % 3 else "venue", "location": f"SRID=4326;POINT({lon:.6f} {lat:.6f})",
            "address": None, "phone": None, "opening_hours": VENUE_HOURS,
        })
    for name, lon, lat, address in HOSPITALS:
        hubs.append({
            "id": uuid.uuid5(NAMESPACE, f"hospital:{name}"), "name": f"{name} (A&E)", "kind": "hospital",
            "location": f"SRID=4326;POINT({lon} {lat})", "address": address, "phone": None,
            "opening_hours": "24/7",
        })
    return hubs


def _earlier_station_ids() -> list[uuid.UUID]:
    """The ids of the staffed-station hubs earlier demos made from the track data's segment ends
    (named "<line> station, <borough>"), which the named stations replace."""
    return [uuid.uuid5(NAMESPACE, f"station:{s.lon:.4f},{s.lat:.4f}") for s in _load_track()[0]]


def seed_hubs() -> int:
    """Insert the demo hubs that are not there yet (removing an earlier demo's unnamed stations);
    returns how many were new."""
    db.session.execute(delete(SafeHub).where(SafeHub.id.in_(_earlier_station_ids())))
    before = db.session.scalar(select(func.count()).select_from(SafeHub))
    rows = demo_hubs()
    db.session.execute(insert(SafeHub).on_conflict_do_nothing(index_elements=[SafeHub.id]), rows)
    db.session.flush()
    return db.session.scalar(select(func.count()).select_from(SafeHub)) - before

