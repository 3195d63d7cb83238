"""Weekly opening hours in the city's local time (docs/api.md, "Safe hubs").

``"24/7"``, or a mapping from weekday (``mon`` ... ``sun``) to ``[["HH:MM", "HH:MM"], ...]``. A range
whose end is not after its start runs past midnight (``"fri": [["18:00", "04:00"]]`` is open at 02:00
on Saturday); ``"24:00"`` may end a range; a missing or empty day is closed. Times are wall-clock
times in the city, so a range keeps its clock times across daylight-saving changes: on the night the
clocks go forward, 18:00-04:00 is an hour shorter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS = "24/7"
CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
MAX_RANGES_PER_DAY = 6


class InvalidOpeningHours(ValueError):
    pass


def validate(value: Any) -> Any:
    """Check opening hours as the API receives them; returns them normalised (days in week order)."""
    if value == ALWAYS:
        return ALWAYS
    if not isinstance(value, dict):
        raise InvalidOpeningHours('must be "24/7" or an object from weekday (mon ... sun) to [["HH:MM", "HH:MM"], ...]')
    unknown = set(value) - set(WEEKDAYS)
    if unknown:
        raise InvalidOpeningHours(f"unknown day(s): {', '.join(sorted(map(str, unknown)))}; use mon, tue, ... sun")
    normalised = {}
    for day in WEEKDAYS:
        ranges = value.get(day)
        if ranges is None:
            continue
        if not isinstance(ranges, list) or len(ranges) > MAX_RANGES_PER_DAY:
            raise InvalidOpeningHours(f"{day}: a list of at most {MAX_RANGES_PER_DAY} [opens, closes] pairs")
        for pair in ranges:
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
                raise InvalidOpeningHours(f'{day}: each range is ["HH:MM", "HH:MM"]')
            opens, closes = pair
            if not CLOCK.match(opens) or opens == "24:00" or not CLOCK.match(closes):
                raise InvalidOpeningHours(f'{day}: {pair} is not ["HH:MM", "HH:MM"] (00:00 to 23:59, or 24:00 to close)')
            if opens == closes:
                raise InvalidOpeningHours(f'{day}: {pair} opens and closes at once; use "24/7" or 00:00-24:00')
        normalised[day] = [list(pair) for pair in ranges]
    return normalised


def _clock(text: str) -> time | None:
    return None if text == "24:00" else time(int(text[:2]), int(text[3:]))


def _local(day: date, clock: time | None, tz: ZoneInfo) -> datetime:
    """The moment a wall-clock time happens on a day (24:00 is the next midnight). A time that does not
    exist (skipped by the clocks going forward) is taken as the moment the clocks reach it."""
    naive = datetime.combine(day + timedelta(days=1), time(0)) if clock is None else datetime.combine(day, clock)
    moment = naive.replace(tzinfo=tz)
    # zoneinfo resolves a skipped time to its pre-transition offset; normalise through UTC so that
    # 01:30 on the spring-forward night reads as 02:30 BST, which is when it is first reached.
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class State:
    open_now: bool
    changes_at: datetime | None  # when it next closes (if open) or opens (if closed); None: never


def _intervals(hours: dict, around: date, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """Opening intervals (UTC) from the day before ``around`` to eight days after, merged."""
    spans = []
    for offset in range(-1, 9):
        day = around + timedelta(days=offset)
        for opens, closes in hours.get(WEEKDAYS[day.weekday()], []):
            start = _local(day, _clock(opens), tz)
            close_clock = _clock(closes)
            past_midnight = close_clock is not None and close_clock <= _clock(opens)
            end = _local(day + timedelta(days=1) if past_midnight else day, close_clock, tz)
            if end > start:
                spans.append((start, end))
    spans.sort()
    merged: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def state(hours: Any, at: datetime, tz: ZoneInfo) -> State:
    """Whether a place with these opening hours is open at ``at``, and when that next changes."""
    if hours == ALWAYS:
        return State(True, None)
    at = at.astimezone(timezone.utc)
    intervals = _intervals(hours or {}, at.astimezone(tz).date(), tz)
    horizon = at + timedelta(days=7)
    for start, end in intervals:
        if start <= at < end:
            # Open for the whole week ahead (every day 00:00-24:00): no closing time to give.
            return State(True, end if end <= horizon else None)
        if start > at:
            return State(False, start)
    return State(False, None)
