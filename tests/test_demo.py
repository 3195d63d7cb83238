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
    assert kinds["staffed_station"] > 250 and kinds["hospital"] == 10 and kinds["safe_haven"] + kinds["venue"] == 40
