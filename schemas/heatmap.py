"""Heatmap query parameters and answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from backend import vocabulary as v
from backend.config import current_settings
from schemas.fields import BBox

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_WINDOW_DAYS = 3660


class LocalDay(fields.Field):
    """A day in the city's time zone: ``2026-11-20``, or a timestamp with an offset (its local day)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata={**kwargs.pop("metadata", {}), "type": "string", "format": "date",
                                   "example": "2026-11-20"}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        if not isinstance(value, str) or len(value) > 40:
            raise ValidationError("must be a date (YYYY-MM-DD) or an ISO 8601 timestamp with an offset")
        try:
            day = date.fromisoformat(value)
        except ValueError:
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValidationError("must be a date (YYYY-MM-DD) or an ISO 8601 timestamp with an offset") from None
            if moment.tzinfo is None:
                raise ValidationError("a timestamp needs a time zone offset, e.g. 2026-11-20T22:00:00Z")
            day = moment.astimezone(current_settings().tz).date()
        if not 1990 <= day.year <= 2999:
            raise ValidationError("is out of range")
        return day


@dataclass(frozen=True)
class LocalHours:
    """Parsed ``hours``: every hour asked for, and those after midnight of a range that wraps it
    (``22-4``: 0, 1, 2, 3), which count with the day the range starts on (the night's day)."""

    hours: tuple[int, ...]
    after_midnight: tuple[int, ...] = ()


class Hours(fields.String):
    """Local hours of the day: ``22-4`` (22:00 to 04:00, across midnight), ``7-10,16-19``, ``23``.
    A range's end is excluded: ``22-4`` is 22, 23, 0, 1, 2 and 3. A range that wraps midnight is a
    night: its hours after midnight belong to the day it starts on (``LocalHours.after_midnight``)."""

    PART = re.compile(r"^(\d{1,2})(?:-(\d{1,2}))?$")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata={**kwargs.pop("metadata", {}), "example": "22-4",
                                   "pattern": r"^\d{1,2}(-\d{1,2})?(,\d{1,2}(-\d{1,2})?)*$",
                                   "description": "Local hours, end excluded: 22-4, 7-10,16-19, 23. A range that "
                                                  "wraps midnight (22-4) belongs to the day it starts on"}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> LocalHours:
        text = super()._deserialize(value, attr, data, **kwargs)
        hours: set[int] = set()
        after_midnight: set[int] = set()
        for part in text.split(","):
            match = self.PART.match(part.strip())
            if not match:
                raise ValidationError("must look like 22-4 or 7-10,16-19 (local hours, end excluded)")
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) is not None else (start + 1) % 24
            if not (0 <= start <= 23 and 0 <= end <= 24):
                raise ValidationError("hours run from 0 to 23 (24 allowed as an end)")
            end %= 24
            hour = start
            while True:
                hours.add(hour)
                if hour < start:  # past midnight within a range that started the day before
                    after_midnight.add(hour)
                hour = (hour + 1) % 24
                if hour == end:
                    break
        return LocalHours(tuple(sorted(hours)), tuple(sorted(after_midnight)))


class Weekdays(fields.String):
    """Local days of the week: ``fri,sat``, ``mon-fri``, ``sat-mon`` (wrapping)."""

    DAY = "(mon|tue|wed|thu|fri|sat|sun)"
    PATTERN = f"^{DAY}(-{DAY})?(,{DAY}(-{DAY})?)*$"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata={**kwargs.pop("metadata", {}), "example": "fri,sat", "pattern": self.PATTERN,
                                   "description": "Local days of the week: fri,sat or mon-fri"}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[int, ...]:
        text = super()._deserialize(value, attr, data, **kwargs).lower()
        # The whole value, as documented: ``tue;drop`` or ``tue\x00`` is not ``tue``.
        if not re.fullmatch(self.PATTERN.strip("^$"), text):
            raise ValidationError("must be days like fri,sat or mon-fri (mon, tue, wed, thu, fri, sat, sun)")
        days: set[int] = set()
        for part in text.split(","):
            ends = part.split("-")
            start, end = WEEKDAYS.index(ends[0]), WEEKDAYS.index(ends[-1])
            day = start
            while True:
                days.add(day + 1)  # ISO weekday
                if day == end:
                    break
                day = (day + 1) % 7
        return tuple(sorted(days))


def check_local_window(data: dict[str, Any]) -> None:
    """``from_`` not after ``to``, and at most MAX_WINDOW_DAYS apart (heatmaps, exports)."""
    start, end = data.get("from_"), data.get("to")
    if start and end:
        if start > end:
            raise ValidationError("must not be after `to`", "from")
        if (end - start).days > MAX_WINDOW_DAYS:
            raise ValidationError(f"the window spans at most {MAX_WINDOW_DAYS} days", "from")


class WindowSchema(Schema):
    from_ = LocalDay(data_key="from", metadata={"description": "First local day counted (inclusive)"})
    to = LocalDay(metadata={"description": "Last local day counted (inclusive)"})
    category = fields.List(fields.String(validate=validate.OneOf(v.CATEGORIES)))
    bbox = BBox()

    @validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        check_local_window(data)


class HeatmapArgsSchema(WindowSchema):
    zoom = fields.Integer(load_default=12, validate=validate.Range(min=0, max=18),
                          metadata={"description": "Map zoom: chooses the cell size"})
    mode = fields.List(fields.String(validate=validate.OneOf(v.MODES)))
    hours = Hours()
    days = Weekdays()


class HeatmapCellsArgsSchema(HeatmapArgsSchema):
    limit = fields.Integer(load_default=5000, validate=validate.Range(min=1, max=20000),
                           metadata={"description": "At most this many cells, densest first"})


class HotspotArgsSchema(HeatmapArgsSchema):
    zoom = fields.Integer(load_default=12, validate=validate.Range(min=0, max=18),
                          metadata={"description": "Map zoom: chooses the cell size (default 12: level 16, about 380 m)"})
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    min_count = fields.Integer(load_default=5, validate=validate.Range(min=1, max=10000), metadata={
        "description": "Leave out cells with fewer reports in the period (default 5): one or two reports are not a hotspot"})


class PublicHeatmapArgsSchema(WindowSchema):
    pass


def default_window(data: dict[str, Any], days: int, today: date) -> tuple[date, date]:
    """The filters' window, or the ``days`` days ending today."""
    end = data.get("to") or today
    start = data.get("from_") or end - timedelta(days=days - 1)
    return start, end


class CellPropertiesSchema(Schema):
    cell = fields.String(metadata={"example": "16/32740/21800", "description": "level/x/y"})
    count = fields.Integer()
    harassment = fields.Integer()
    spiking = fields.Integer()
    unsafe_route = fields.Integer()


class CellFeatureSchema(Schema):
    type = fields.Constant("Feature")
    id = fields.String()
    geometry = fields.Dict(metadata={"description": "GeoJSON Polygon (the cell)"})
    properties = fields.Nested(CellPropertiesSchema)


class HeatmapSchema(Schema):
    type = fields.Constant("FeatureCollection")
    level = fields.Integer(metadata={"description": "Grid level of the cells (12 coarse to 18 fine)"})
    truncated = fields.Boolean(metadata={"description": "True when `limit` cut off sparser cells"})
    features = fields.List(fields.Nested(CellFeatureSchema))


class PublicPropertiesSchema(Schema):
    count = fields.Integer()


class PublicFeatureSchema(Schema):
    type = fields.Constant("Feature")
    geometry = fields.Dict()
    properties = fields.Nested(PublicPropertiesSchema)


class PublicWeeksSchema(Schema):
    from_ = fields.String(data_key="from", allow_none=True,
                          metadata={"description": "First ISO week counted, e.g. 2026-W45 (null: from the first)"})
    to = fields.String(metadata={"description": "Last ISO week counted, e.g. 2026-W47"})
    first_day = fields.Date(allow_none=True, metadata={"description": "Its Monday (local)"})
    last_day = fields.Date(metadata={"description": "The last week's Sunday (local)"})


class PublicHeatmapSchema(Schema):
    type = fields.Constant("FeatureCollection")
    min_reporters = fields.Integer()
    epsilon = fields.Float(metadata={"description": "The privacy budget per published unit (docs/privacy.md)"})
    weeks = fields.Nested(PublicWeeksSchema, allow_none=True,
                          metadata={"description": "The whole weeks the counts cover; null when none is published"})
    features = fields.List(fields.Nested(PublicFeatureSchema))


class HotspotPlaceSchema(Schema):
    station = fields.String(allow_none=True, metadata={"description": "The nearest station to the cell's centre",
                                                       "example": "Peckham Rye"})
    station_distance_m = fields.Integer(allow_none=True, metadata={"description": "How far it is, in metres"})
    street = fields.String(allow_none=True, metadata={
        "description": "The nearest named street of the loaded network within 200 m of the centre (null: none there)",
        "example": "Rye Lane"})
    borough = fields.String(allow_none=True, metadata={"description": "The council area the centre lies in",
                                                      "example": "Southwark"})


class HotspotSchema(Schema):
    cell = fields.String()
    place = fields.Nested(HotspotPlaceSchema, metadata={"description": "What names the cell (each null when unknown)"})
    count = fields.Integer()
    previous_count = fields.Integer()
    change = fields.Integer()
    change_pct = fields.Float(allow_none=True, metadata={"description": "null when the previous count was 0"})
    p_value = fields.Float(metadata={"description": "One-sided exact test that the count rose by chance (Poisson "
                                                    "counts over equal periods, docs/api.md)"})
    rising = fields.Boolean(metadata={"description": "true when the rise is significant: p_value below 0.05"})
    confidence = fields.String(validate=validate.OneOf(("strong", "moderate", "none")), metadata={
        "description": "The rise in plain words: strong (p < 0.01), moderate (p < 0.05), none (could be chance)"})
    centre = fields.Dict(metadata={"description": "GeoJSON Point"})
    bounds = fields.List(fields.Float(), metadata={"description": "The cell's west, south, east, north"})
    geometry = fields.Dict(metadata={"description": "GeoJSON Polygon: the cell"})


class HotspotsSchema(Schema):
    level = fields.Integer()
    min_count = fields.Integer(metadata={"description": "Cells with fewer reports in the period are left out"})
    period = fields.Dict(metadata={"example": {"from": "2026-10-25", "to": "2026-11-21"}})
    previous_period = fields.Dict()
    hotspots = fields.List(fields.Nested(HotspotSchema))
