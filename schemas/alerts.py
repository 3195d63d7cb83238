"""Alert schemas."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_dump, validate, validates, validates_schema

from backend.alerts.models import PUBLIC_PUSH, SEVERITIES, STATUSES
from schemas.fields import LonLatArgsSchema, StrictInteger, Text, UtcDateTime
from schemas.geojson import PointField, PolygonField

MAX_ALERT_HOURS = 7 * 24
MIN_RADIUS_M, MAX_RADIUS_M = 50, 20_000


class AreaSchema(Schema):
    """Exactly one of: a circle (`center` + `radius_m`), a `polygon`, or a safe hub (`safe_hub_id` + `radius_m`)."""

    center = PointField()
    polygon = PolygonField(max_vertices=1000)
    safe_hub_id = fields.UUID()
    radius_m = StrictInteger(validate=validate.Range(min=MIN_RADIUS_M, max=MAX_RADIUS_M))

    @validates_schema
    def _one_shape(self, data: dict[str, Any], **_: Any) -> None:
        shapes = [k for k in ("center", "polygon", "safe_hub_id") if k in data]
        if len(shapes) != 1:
            raise ValidationError("give exactly one of center, polygon or safe_hub_id", "_schema")
        if shapes[0] in ("center", "safe_hub_id") and "radius_m" not in data:
            raise ValidationError(f"is required with {shapes[0]}", "radius_m")
        if shapes[0] == "polygon" and "radius_m" in data:
            raise ValidationError("does not go with a polygon", "radius_m")


class AlertInSchema(Schema):
    title = Text(required=True, max_length=100, validate=validate.Length(min=1))
    body = Text(required=True, max_length=1000, validate=validate.Length(min=1))
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    area = fields.Nested(AreaSchema, required=True)
    expires_at = UtcDateTime(required=True)

    @validates("expires_at")
    def _future(self, value: datetime, **_: Any) -> None:
        now = datetime.now(timezone.utc)
        if value <= now:
            raise ValidationError("must be in the future")
        if value > now + timedelta(hours=MAX_ALERT_HOURS):
            raise ValidationError(f"at most {MAX_ALERT_HOURS // 24} days ahead")


class AlertSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    title = fields.String()
    body = fields.String()
    severity = fields.String()
    area = fields.Dict(metadata={"description": "{center, radius_m} | {polygon} | {safe_hub_id, center, radius_m}"})
    expires_at = UtcDateTime()
    status = fields.String(validate=validate.OneOf(STATUSES))
    targeted = fields.Integer()
    sent = fields.Integer()
    failed = fields.Integer()
    pruned = fields.Integer(metadata={"description": "Dead tokens removed"})
    last_error = fields.String(allow_none=True, metadata={
        "description": "Status `failed`: the error that made the fan-out give up (otherwise null)"})
    created_at = UtcDateTime()
    kind = fields.String(validate=validate.OneOf(("manual", "cluster")),
                         metadata={"description": "manual (sent by staff) or cluster (cluster detection)"})
    category = fields.String(allow_none=True, metadata={"description": "A cluster alert's report category"})
    public_push = fields.String(validate=validate.OneOf(PUBLIC_PUSH), metadata={
        "description": "The push to commuters: awaiting_confirmation (a cluster alert: staff devices only, until "
                       "a staff member confirms it), due (the next fan-out targets them), done"})
    confirmed_by = fields.String(allow_none=True, metadata={"description": "The staff member who confirmed it"})
    confirmed_at = UtcDateTime(allow_none=True)

    @pre_dump
    def _area(self, alert: Any, **_: Any) -> dict[str, Any]:
        shape = PointField()._serialize(alert.area, None, None)
        if shape["type"] == "Polygon":
            area = {"polygon": shape}
        else:
            area = {"center": shape, "radius_m": alert.radius_m}
            if alert.safe_hub_id:
                area["safe_hub_id"] = str(alert.safe_hub_id)
        return {**{k: getattr(alert, k) for k in ("id", "title", "body", "severity", "expires_at", "status",
                                                   "targeted", "sent", "failed", "pruned", "last_error", "created_at",
                                                   "kind", "category", "public_push", "confirmed_by", "confirmed_at")},
                "area": area}


class NearbyAlertSchema(AlertSchema):
    class Meta:
        exclude = ("targeted", "sent", "failed", "pruned", "status", "last_error", "public_push", "confirmed_by",
                   "confirmed_at")


class CircleArgsSchema(LonLatArgsSchema):
    """A circular alert area in a query string: ``?lon=-0.0692&lat=51.474&radius_m=500``."""

    radius_m = fields.Integer(required=True, validate=validate.Range(min=MIN_RADIUS_M, max=MAX_RADIUS_M))


class CircleSchema(Schema):
    class Meta:
        ordered = True

    center = PointField()
    radius_m = fields.Integer()
    outline = PolygonField()
