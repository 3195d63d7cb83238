"""Walking route schemas: the query (two places and a moment) and the answer (GeoJSON)."""

from __future__ import annotations

import math
from typing import Any

from marshmallow import Schema, ValidationError, fields, validates_schema

from schemas.fields import UtcDateTime

MAX_APART_M = 10_000
EARTH_RADIUS_M = 6_371_008.8


class LonLat(fields.String):
    """``lon,lat`` in a query string, loaded as a tuple of two floats."""

    def __init__(self, **kwargs: Any) -> None:
        number = r"-?\d+(\.\d+)?"
        super().__init__(metadata={**kwargs.pop("metadata", {}), "pattern": f"^{number},{number}$"}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[float, float]:
        parts = super()._deserialize(value, attr, data, **kwargs).split(",")
        if len(parts) != 2:
            raise ValidationError("must be lon,lat (two numbers, longitude first)")
        try:
            lon, lat = (float(p) for p in parts)
        except ValueError:
            raise ValidationError("must be two numbers: lon,lat") from None
        if not (math.isfinite(lon) and math.isfinite(lat)) or not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValidationError("longitude must be within -180..180 and latitude within -90..90")
        return lon, lat


def metres_apart(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine, on the mean Earth radius)."""
    (lon1, lat1), (lon2, lat2) = (map(math.radians, p) for p in (a, b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


class SaferRouteArgsSchema(Schema):
    start = LonLat(required=True, data_key="from", metadata={
        "description": "Where the walk starts: lon,lat (WGS 84)", "example": "-0.1240,51.5308"})
    end = LonLat(required=True, data_key="to", metadata={
        "description": "Where it ends: lon,lat, at most 10 km from `from`", "example": "-0.1246,51.5218"})
    at = UtcDateTime(metadata={"description": "When the walk starts (ISO 8601 with an offset); default: now. "
                                              "Decides whether it is dark and which reports weigh most."})

    @validates_schema
    def _apart(self, data: dict[str, Any], **_: Any) -> None:
        if "start" not in data or "end" not in data:
            return
        if data["start"] == data["end"]:
            raise ValidationError("must be another place than `from`", field_name="to")
        if metres_apart(data["start"], data["end"]) > MAX_APART_M:
            raise ValidationError(f"must be within {MAX_APART_M // 1000} km of `from`", field_name="to")


class RoutePropertiesSchema(Schema):
    class Meta:
        ordered = True

    kind = fields.String(metadata={"description": "`shortest` or `safer`"})
    length_m = fields.Float()
    walk_min = fields.Float(metadata={"description": "At 80 m a minute (4.8 km/h)"})
    reports_nearby = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "Reports within 25 m of the route in the 90 days before `at`, by category"})
    unlit_m = fields.Float(allow_none=True, metadata={
        "description": "Metres along streets tagged unlit; null in daylight"})
    open_hubs_within_200m = fields.Integer(metadata={"description": "Safe hubs open at `at` within 200 m"})


class LineStringSchema(Schema):
    type = fields.Constant("LineString")
    coordinates = fields.List(fields.List(fields.Float()))


class RouteFeatureSchema(Schema):
    class Meta:
        ordered = True

    type = fields.Constant("Feature")
    geometry = fields.Nested(LineStringSchema)
    properties = fields.Nested(RoutePropertiesSchema)


class SaferRouteSchema(Schema):
    class Meta:
        ordered = True

    type = fields.Constant("FeatureCollection")
    features = fields.List(fields.Nested(RouteFeatureSchema), metadata={
        "description": "Two routes: `shortest` first, then `safer`"})
    same_route = fields.Boolean(metadata={"description": "True when the safer route is the shortest one"})
    note = fields.String(allow_none=True, metadata={"description": "Why the two are the same, when they are"})
    after_dark = fields.Boolean(metadata={"description": "Whether the sun is down at `from` at `at`"})
    at = UtcDateTime()
