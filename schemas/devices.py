"""Device schemas."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from backend.devices.models import PLATFORMS
from backend.vocabulary import CATEGORIES
from schemas.fields import StrictInteger, Text, UtcDateTime
from schemas.geojson import PointField

# A BCP 47 language tag's shape (language, then subtags: "cy", "en-GB", "pl-PL", "zh-Hant-TW").
LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


class DeviceInSchema(Schema):
    token = Text(required=True, max_length=4096, validate=validate.Length(min=20),
                 metadata={"description": "The FCM registration token"})
    platform = fields.String(required=True, validate=validate.OneOf(PLATFORMS))
    location = PointField(allow_none=True, metadata={"description": "Stored coarse (about 100 m)"})
    radius_m = StrictInteger(load_default=1000, validate=validate.Range(min=100, max=5000))
    categories = fields.List(fields.String(validate=validate.OneOf(CATEGORIES)),
                             metadata={"description": "Categories of cluster alerts to receive"})
    locale = fields.String(load_default="en", validate=[validate.Length(max=35), validate.Regexp(
        LANGUAGE_TAG, error="must be a BCP 47 language tag such as en-GB, cy or pl")],
        metadata={"description": "The app's language (BCP 47) for updates about the caller's reports: en, cy and pl "
                                 "have messages, others get English", "example": "cy-GB"})
    updates = fields.Boolean(load_default=True, metadata={
        "description": "Push updates when the caller's reports are actioned, closed or rejected (default true)"})

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
    locale = fields.String()
    updates = fields.Boolean()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()
