"""Safe hub schemas."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_dump, validate

from backend.hubs import opening_hours
from backend.hubs.models import KINDS
from schemas.fields import BBox, LonLatArgsSchema, Text, UtcDateTime
from schemas.geojson import PointField

OPENING_HOURS_DOC = (
    '"24/7", or an object from weekday (mon ... sun) to [["HH:MM", "HH:MM"], ...] in the city\'s local '
    'time; a range whose end is not after its start runs past midnight; "24:00" may end a range; a '
    "missing or empty day is closed."
)


class OpeningHoursField(fields.Field):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata={**kwargs.pop("metadata", {}), "description": OPENING_HOURS_DOC,
                                   "example": {"fri": [["18:00", "04:00"]], "sat": [["18:00", "04:00"]]}}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            return opening_hours.validate(value)
        except opening_hours.InvalidOpeningHours as exc:
            raise ValidationError(str(exc)) from None


class HubInSchema(Schema):
    name = Text(required=True, max_length=200, validate=validate.Length(min=1))
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    location = PointField(required=True)
    address = Text(max_length=300, allow_none=True)
    phone = Text(max_length=40, allow_none=True)
    opening_hours = OpeningHoursField(required=True)


class HubPatchSchema(HubInSchema):
    """Any of a hub's fields (load it with ``partial=True``)."""


class HubSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    name = fields.String()
    kind = fields.String()
    location = PointField()
    address = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    opening_hours = fields.Raw(metadata={"description": OPENING_HOURS_DOC})
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class HubListArgsSchema(Schema):
    bbox = BBox()
    kind = fields.List(fields.String(validate=validate.OneOf(KINDS)))
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=2000))


class NearestArgsSchema(LonLatArgsSchema):
    limit = fields.Integer(load_default=5, validate=validate.Range(min=1, max=50))
    open_now = fields.Boolean(load_default=False)


class NearbyHubSchema(HubSchema):
    distance_m = fields.Float()
    open_now = fields.Boolean()
    closes_at = UtcDateTime(allow_none=True, metadata={"description": "When it next closes (if open now)"})
    opens_at = UtcDateTime(allow_none=True, metadata={"description": "When it next opens (if closed now)"})

    @pre_dump
    def _flatten(self, nearby: Any, **_: Any) -> dict[str, Any]:
        hub = nearby.hub
        return {**{k: getattr(hub, k) for k in ("id", "name", "kind", "location", "address", "phone",
                                                 "opening_hours", "created_at", "updated_at")},
                "distance_m": nearby.distance_m, "open_now": nearby.open_now,
                "closes_at": nearby.closes_at, "opens_at": nearby.opens_at}
