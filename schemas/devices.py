"""Device schemas."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from backend.devices.models import PLATFORMS
from backend.vocabulary import CATEGORIES
from schemas.fields import StrictInteger, Text, UtcDateTime
from schemas.geojson import PointField


class DeviceInSchema(Schema):
    token = Text(required=True, max_length=4096, validate=validate.Length(min=20),
                 metadata={"description": "The FCM registration token"})
    platform = fields.String(required=True, validate=validate.OneOf(PLATFORMS))
    location = PointField(allow_none=True, metadata={"description": "Stored coarse (about 100 m)"})
    radius_m = StrictInteger(load_default=1000, validate=validate.Range(min=100, max=5000))
    categories = fields.List(fields.String(validate=validate.OneOf(CATEGORIES)),
                             metadata={"description": "Categories of cluster alerts to receive"})

    @validates("categories")
    def _unique(self, value: list[str], **_: Any) -> None:
        if len(set(value)) != len(value):
            raise ValidationError("must not repeat a category")


class DevicePatchSchema(DeviceInSchema):
    """Any of a device's fields but its token (load with ``partial=True``)."""

    class Meta:
        exclude = ("token",)


class DeviceSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    platform = fields.String()
    location = PointField(allow_none=True)
    radius_m = fields.Integer()
    categories = fields.List(fields.String())
    created_at = UtcDateTime()
    updated_at = UtcDateTime()
