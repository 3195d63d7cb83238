"""Opening hours: overnight ranges, 24/7, closed days, and the daylight-saving nights."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from backend.hubs.opening_hours import ALWAYS, InvalidOpeningHours, state, validate

LONDON = ZoneInfo("Europe/London")


def at(text: str) -> datetime:
    """A London wall-clock time."""
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


FRIDAY_NIGHTS = {"fri": [["18:00", "04:00"]]}


def test_an_overnight_range_is_open_after_midnight_on_the_next_day():
    # 2026-11-21 is a Saturday.
    s = state(FRIDAY_NIGHTS, at("2026-11-21T02:00"), LONDON)
    assert s.open_now and s.changes_at == at("2026-11-21T04:00")


def test_closed_outside_its_ranges_with_the_next_opening():
    s = state(FRIDAY_NIGHTS, at("2026-11-21T05:00"), LONDON)
    assert not s.open_now and s.changes_at == at("2026-11-27T18:00")
    assert not state(FRIDAY_NIGHTS, at("2026-11-20T17:59"), LONDON).open_now
    assert state(FRIDAY_NIGHTS, at("2026-11-20T18:00"), LONDON).open_now


def test_twenty_four_seven_is_always_open_and_never_changes():
    assert state(ALWAYS, at("2026-03-29T01:30"), LONDON) == state(ALWAYS, at("2026-01-01T00:00"), LONDON)
    assert state(ALWAYS, at("2026-01-01T00:00"), LONDON).open_now
    assert state(ALWAYS, at("2026-01-01T00:00"), LONDON).changes_at is None


def test_every_day_around_the_clock_has_no_closing_time():
    hours = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    s = state(hours, at("2026-11-21T12:00"), LONDON)
    assert s.open_now and s.changes_at is None


def test_a_missing_or_empty_day_is_closed():
    hours = {"mon": [["09:00", "17:00"]], "tue": []}
    assert not state(hours, at("2026-11-24T12:00"), LONDON).open_now  # Tuesday
    assert not state(hours, at("2026-11-25T12:00"), LONDON).open_now  # Wednesday, missing
    assert state(hours, at("2026-11-23T12:00"), LONDON).open_now


def test_ranges_that_meet_are_one_opening():
    hours = {"sat": [["18:00", "24:00"]], "sun": [["00:00", "06:00"]]}
    s = state(hours, at("2026-11-21T23:00"), LONDON)
    assert s.open_now and s.changes_at == at("2026-11-22T06:00")


def test_clocks_going_forward_shorten_the_night():
    # 29 March 2026: 01:00 GMT becomes 02:00 BST. Saturday 18:00 GMT to Sunday 04:00 BST is 9 hours.
    hours = {"sat": [["18:00", "04:00"]]}
    s = state(hours, utc("2026-03-29T00:30"), LONDON)  # 00:30 GMT
    assert s.open_now and s.changes_at == utc("2026-03-29T03:00")  # 04:00 BST
    assert state(hours, utc("2026-03-29T02:59"), LONDON).open_now
    assert not state(hours, utc("2026-03-29T03:00"), LONDON).open_now


def test_clocks_going_back_lengthen_the_night():
    # 25 October 2026: 02:00 BST becomes 01:00 GMT. Saturday 18:00 BST to Sunday 04:00 GMT is 11 hours.
    hours = {"sat": [["18:00", "04:00"]]}
    assert state(hours, utc("2026-10-25T03:30"), LONDON).open_now  # 03:30 GMT
    s = state(hours, utc("2026-10-24T17:00"), LONDON)  # 18:00 BST
    assert s.open_now and s.changes_at == utc("2026-10-25T04:00")


def test_an_opening_time_skipped_by_the_clocks_opens_when_they_reach_it():
    hours = {"sun": [["01:30", "05:00"]]}
    s = state(hours, utc("2026-03-29T00:15"), LONDON)  # 00:15 GMT, closed
    assert not s.open_now and s.changes_at == utc("2026-03-29T01:30")  # = 02:30 BST
    assert state(hours, utc("2026-03-29T01:30"), LONDON).open_now


@pytest.mark.parametrize("value", [
    "always", 7, {"monday": [["09:00", "17:00"]]}, {"mon": [["9:00", "17:00"]]}, {"mon": [["09:00", "25:00"]]},
    {"mon": [["24:00", "02:00"]]}, {"mon": [["09:00"]]}, {"mon": "09:00-17:00"}, {"mon": [["10:00", "10:00"]]},
    {"mon": [["09:00", "10:00"]] * 7},
])
def test_bad_opening_hours_are_refused(value):
    with pytest.raises(InvalidOpeningHours):
        validate(value)


def test_good_opening_hours_are_normalised_in_week_order():
    assert validate({"sun": [], "fri": [["18:00", "04:00"]], "mon": [["00:00", "24:00"]]}) == {
        "mon": [["00:00", "24:00"]], "fri": [["18:00", "04:00"]], "sun": []}
    assert validate("24/7") == "24/7"
