"""sun_is_down() (migration 0007) against astral, an independent sunrise/sunset implementation."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from astral import Observer
from astral.sun import sunrise, sunset
from sqlalchemy import text

from backend.extensions import db

PLACES = {"Peckham": (-0.0692, 51.4740), "Edinburgh": (-3.1883, 55.9533), "Sydney": (151.2093, -33.8688)}
MARGIN = timedelta(minutes=2)


@pytest.mark.parametrize("place", PLACES)
def test_the_sun_is_down_between_sunset_and_sunrise_to_within_two_minutes(app, place):
    lon, lat = PLACES[place]
    observer = Observer(latitude=lat, longitude=lon)
    moments, expected = [], []
    day = date(2026, 1, 1)
    while day.year == 2026:
        for event, down_after in ((sunrise(observer, day, tzinfo=timezone.utc), False),
                                  (sunset(observer, day, tzinfo=timezone.utc), True)):
            moments += [event - MARGIN, event + MARGIN]
            expected += [not down_after, down_after]
        day += timedelta(days=3)
    with app.app_context():
        got = db.session.scalars(text("SELECT sun_is_down(t, :lon, :lat) FROM unnest(CAST(:moments AS timestamptz[])) AS t"),
                                 {"lon": lon, "lat": lat, "moments": moments}).all()
    wrong = [(m.isoformat(), e) for m, e, g in zip(moments, expected, got) if e != g]
    assert len(got) == len(moments) > 480 and wrong == []


def test_midnight_and_noon_in_london(app):
    with app.app_context():
        night, noon = db.session.execute(text("""
            SELECT sun_is_down('2026-06-21 00:00+01', -0.1276, 51.5072), sun_is_down('2026-12-21 12:00Z', -0.1276, 51.5072)
        """)).one()
    assert night is True and noon is False


def test_polar_day_and_night(app):
    with app.app_context():
        midsummer, midwinter = db.session.execute(text("""
            SELECT sun_is_down(:june, 15.6, 78.2), sun_is_down(:december, 15.6, 78.2)
        """), {"june": datetime(2026, 6, 21, 23, tzinfo=timezone.utc),
              "december": datetime(2026, 12, 21, 11, tzinfo=timezone.utc)}).one()
    assert midsummer is False and midwinter is True  # Svalbard: midnight sun, polar night
