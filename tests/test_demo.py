"""The demo data: realistic, and seeding twice (on any day) adds nothing."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from backend.demo.seed import generate_reports, seed_reports
from backend.extensions import db
from backend.reports.models import Report

NOW = datetime(2026, 11, 21, 10, tzinfo=timezone.utc)


def test_the_same_seed_gives_the_same_reports_on_another_day():
    today = [(r["author"], r["idempotency_key"]) for r in generate_reports(2000, now=NOW)]
    later = [(r["author"], r["idempotency_key"]) for r in generate_reports(2000, now=NOW + timedelta(days=3, hours=5))]
    assert today == later


def test_demo_reports_cover_every_category_with_a_night_and_weekend_skew():
    rows = list(generate_reports(5000, now=NOW))
    assert set(Counter(r["category"] for r in rows)) == {"harassment", "spiking", "unsafe_route"}
    assert all(r["route"] for r in rows if r["category"] == "unsafe_route")
    local = [r["occurred_at"].astimezone(__import__("zoneinfo").ZoneInfo("Europe/London")) for r in rows]
    night = sum(1 for t in local if t.hour >= 21 or t.hour < 4) / len(local)
    weekend = sum(1 for t in local if t.weekday() in (4, 5)) / len(local)
    assert night > 7 / 24 * 1.3  # more than the night's share of the clock
    assert weekend > 2 / 7 * 1.3


def test_seeding_twice_adds_nothing():
    assert seed_reports(300) == 300
    assert seed_reports(300) == 0
    assert db.session.scalar(select(func.count()).select_from(Report)) == 300


def test_demo_hubs_are_stations_venues_and_hospitals_and_seed_once():
    from backend.demo.hubs import seed_hubs
    from backend.hubs.models import SafeHub

    first = seed_hubs()
    assert first > 300 and seed_hubs() == 0
    kinds = dict(db.session.execute(select(SafeHub.kind, func.count()).group_by(SafeHub.kind)).all())
    assert kinds["staffed_station"] == 420 and kinds["hospital"] == 10 and kinds["safe_haven"] + kinds["venue"] == 40


def test_demo_staffed_stations_carry_real_station_names_once_each():
    import json
    from pathlib import Path

    from backend.demo.hubs import seed_hubs
    from backend.hubs.models import SafeHub

    seed_hubs()
    names = db.session.scalars(select(SafeHub.name).where(SafeHub.kind == "staffed_station")).all()
    assert len(names) == len(set(names)) == 420  # no "Bakerloo line station, Brent" fifteen times
    # A database seeded by an earlier demo loses its unnamed stations on the next seed.
    from backend.demo.hubs import _earlier_station_ids

    earlier = _earlier_station_ids()[0]
    db.session.add(SafeHub(id=earlier, name="Bakerloo line station, Brent", kind="staffed_station",
                           location="SRID=4326;POINT(-0.25 51.55)", opening_hours="24/7"))
    db.session.flush()
    assert seed_hubs() == 0
    assert db.session.get(SafeHub, earlier) is None
    stations = json.loads((Path(__file__).resolve().parents[1] / "data" / "london_stations.geojson").read_text())
    real = {f["properties"]["name"] for f in stations["features"]}
    assert {"Brixton station", "King's Cross & St Pancras International station", "Peckham Rye station"} <= set(names)
    assert all(n.removesuffix(" station") in real or n.split(" station (")[0] in real for n in names), \
        [n for n in names if not (n.removesuffix(" station") in real or n.split(" station (")[0] in real)]
    brixton = db.session.execute(select(func.ST_X(SafeHub.location), func.ST_Y(SafeHub.location))
                                 .where(SafeHub.name == "Brixton station")).one()
    assert _metres(tuple(brixton), (-0.1145, 51.4627)) < 300


def test_demo_devices_are_coarse_varied_spread_and_reached_by_a_first_alert():
    from shapely.geometry import Point

    from backend.demo.devices import seed_devices
    from backend.devices.models import Device
    from backend.geo import coarse

    assert seed_devices(count=600) == 600 and seed_devices(count=600) == 0
    rows = db.session.execute(select(func.ST_X(Device.location), func.ST_Y(Device.location), Device.radius_m,
                                     Device.audience)).all()
    assert {r.audience for r in rows} == {"commuter"}
    assert all((x, y) == tuple(coarse(Point(x, y)).coords[0]) for x, y, _, _ in rows)  # stored coarse, as the API does
    radii = Counter(r.radius_m for r in rows)
    assert len(radii) >= 4 and radii.most_common(1)[0][0] == 1000
    central = sum(1 for x, y, _, _ in rows if _metres((x, y), (-0.1246, 51.5080)) < 4500)
    assert 0.4 * len(rows) < central < 0.9 * len(rows)  # near work in the centre, and near home all over
    assert max(_metres((x, y), (-0.1246, 51.5080)) for x, y, _, _ in rows) > 15_000
    # An alert of 500 m around Oxford Circus reaches someone (within each device's own radius too).
    oxford_circus = (-0.1415, 51.5154)
    reached = [r for r in rows if _metres((r[0], r[1]), oxford_circus) <= 500 + r.radius_m]
    assert len(reached) >= 5


def _point(ewkt: str) -> tuple[float, float]:
    lon, lat = ewkt.split("POINT(")[1].rstrip(")").split()
    return float(lon), float(lat)


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    import math

    return math.hypot((a[0] - b[0]) * 111_320 * math.cos(math.radians(a[1])), (a[1] - b[1]) * 111_320)


def test_demo_reports_sit_at_real_stops_and_stations_and_walk_along_real_streets():
    from backend.demo import places

    rows = list(generate_reports(3000, now=NOW))
    buses = [r for r in rows if r["mode"] in ("bus", "night_bus")]
    assert len(buses) > 100
    for r in buses:  # at a TfL bus stop (8 m of scatter)
        where = _point(r["location"])
        assert _metres(where, places.bus_stops().nearest(*where)[:2]) < 40, r
    at_stations = [r for r in rows if r["station"]]
    assert len(at_stations) > 500 and {r["mode"] for r in at_stations} <= {"tube", "dlr"}
    known = {name for _, _, name in places.stations("tube").points} | {name for _, _, name in places.stations("dlr").points}
    assert {r["station"] for r in at_stations} <= known and "King's Cross & St Pancras International" in {
        r["station"] for r in at_stations}
    routes = [r for r in rows if r["route"]]
    on_streets = 0
    for r in routes:
        steps = [tuple(map(float, p.split())) for p in r["route"].split("(")[1].rstrip(")").split(", ")]
        if all(places.streets().nearest(*p) is not None and _metres(p, places.streets().nearest(*p)) < 1.5
               for p in steps):
            on_streets += 1
            assert _point(r["location"]) == steps[0]  # the report is where the walk starts
    assert on_streets > 0.2 * len(routes)  # those that start where the network covers (central London)
