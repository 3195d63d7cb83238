"""Fields used across schemas."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate


class Text(fields.String):
    """A string PostgreSQL can store (no NUL characters), trimmed, with a length limit."""

    def __init__(self, *, max_length: int, strip: bool = True, **kwargs: Any) -> None:
        metadata = {**kwargs.pop("metadata", {}), "maxLength": max_length}
        super().__init__(metadata=metadata, **kwargs)
        self.max_length = max_length
        self.strip = strip

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("must not contain NUL characters")
        if self.strip:
            text = text.strip()
        if len(text) > self.max_length:
            raise ValidationError(f"at most {self.max_length:,} characters (got {len(text):,})")
        return text


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 timestamp with an offset, stored and answered in UTC (``...Z``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _serialize(self, value: datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str):
            raise ValidationError("must be an ISO 8601 timestamp string, e.g. 2026-11-20T22:15:00Z")
        try:
            parsed = super()._deserialize(value, attr, data, **kwargs)
        except ValidationError:
            raise ValidationError(
                "must be an ISO 8601 timestamp with a time zone offset, e.g. 2026-11-20T22:15:00Z"
            ) from None
        if not 1990 <= parsed.year <= 2999:
            raise ValidationError("is out of range")
        return parsed.astimezone(timezone.utc)


class FiniteFloat(fields.Float):
    """A JSON number that is finite; booleans are not numbers."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_nan=False, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError("must be a number")
        result = super()._deserialize(value, attr, data, **kwargs)
        if not math.isfinite(result):
            raise ValidationError("must be a finite number")
        return result


class StrictInteger(fields.Integer):
    """An integer from JSON: a JSON number without a fraction (not a string, not a boolean)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise ValidationError("must be an integer")
        return super()._deserialize(value, attr, data, **kwargs)


class BBox(fields.String):
    """``minLon,minLat,maxLon,maxLat`` in a query string, loaded as a tuple of four floats."""

    def __init__(self, *, max_span_deg: float = 5.0, **kwargs: Any) -> None:
        number = r"-?\d+(\.\d+)?"
        metadata = {**kwargs.pop("metadata", {}), "example": "-0.2,51.45,-0.05,51.55",
                    "pattern": f"^{number},{number},{number},{number}$",
                    "description": "minLon,minLat,maxLon,maxLat"}
        super().__init__(metadata=metadata, **kwargs)
        self.max_span_deg = max_span_deg

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[float, ...]:
        text = super()._deserialize(value, attr, data, **kwargs)
        parts = text.split(",")
        if len(parts) != 4:
            raise ValidationError("must be minLon,minLat,maxLon,maxLat")
        try:
            west, south, east, north = (float(p) for p in parts)
        except ValueError:
            raise ValidationError("must be four numbers: minLon,minLat,maxLon,maxLat") from None
        if not all(math.isfinite(v) for v in (west, south, east, north)):
            raise ValidationError("must be finite numbers")
        if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
            raise ValidationError("longitudes must be within -180..180 and latitudes within -90..90")
        if west >= east or south >= north:
            raise ValidationError("minLon must be less than maxLon and minLat less than maxLat")
        if east - west > self.max_span_deg or north - south > self.max_span_deg:
            raise ValidationError(f"spans at most {self.max_span_deg:g} degrees each way")
        return west, south, east, north


class LonLatArgsSchema(Schema):
    """A place given in a query string: ``?lon=-0.1145&lat=51.4627``."""

    lon = fields.Float(required=True, allow_nan=False, validate=validate.Range(min=-180, max=180))
    lat = fields.Float(required=True, allow_nan=False, validate=validate.Range(min=-90, max=90))
