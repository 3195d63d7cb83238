"""Webhook subscription and delivery schemas."""

from __future__ import annotations

import json
from typing import Any

from geoalchemy2.shape import to_shape
from marshmallow import Schema, ValidationError, fields, pre_dump, validate, validates, validates_schema

from backend import vocabulary as v
from backend.auth import GSS_CODE
from backend.webhooks.models import DELIVERY_STATUSES, EVENTS, PRECISIONS, webhook_id
from schemas.fields import Text, UtcDateTime
from schemas.geojson import PolygonField

MAX_AREA_SPAN_DEG = 5.0


def _unique(value: list[str]) -> None:
    if len(set(value)) != len(value):
        raise ValidationError("must not repeat a value")


def _url(**kwargs: Any) -> fields.URL:
    return fields.URL(schemes={"http", "https"}, require_tld=False, validate=validate.Length(max=2000),
                      metadata={"example": "https://control-room.example.org/safetravel",
                                "description": "Where deliveries are POSTed; https only in production"}, **kwargs)


def _events(**kwargs: Any) -> fields.List:
    return fields.List(fields.String(validate=validate.OneOf(EVENTS)), validate=[validate.Length(min=1), _unique],
                       metadata={"description": "Any of: " + ", ".join(EVENTS)}, **kwargs)


PRECISION_HELP = {"description": "coarse (default): locations snapped to about 100 m; exact: as reported, every "
                                 "delivery audited"}


class WebhookPatchSchema(Schema):
    url = _url()
    description = Text(max_length=200, allow_none=True)
    events = _events()
    council = fields.String(validate=validate.Regexp(GSS_CODE, error="must be a GSS code such as E09000028"),
                            metadata={"example": "E09000028", "description": "The area: a council's (see GET /councils)"})
    area = PolygonField(max_vertices=5000, metadata={"description": "The area: a GeoJSON Polygon (instead of council)"})
    categories = fields.List(fields.String(validate=validate.OneOf(v.CATEGORIES)), validate=_unique,
                             metadata={"description": "Only these categories; empty or absent: all"})
    precision = fields.String(validate=validate.OneOf(PRECISIONS), metadata=PRECISION_HELP)
    active = fields.Boolean(metadata={"description": "false switches deliveries off; true switches them back on"})

    @validates("area")
    def _span(self, value: Any, **_: Any) -> None:
        west, south, east, north = value.bounds
        if east - west > MAX_AREA_SPAN_DEG or north - south > MAX_AREA_SPAN_DEG:
            raise ValidationError(f"spans at most {MAX_AREA_SPAN_DEG:g} degrees each way")

    @validates_schema
    def _one_area(self, data: dict[str, Any], **_: Any) -> None:
        if "council" in data and "area" in data:
            raise ValidationError("give one of council or area, not both", "_schema")


class WebhookInSchema(WebhookPatchSchema):
    """A new subscription: `url`, `events`, and exactly one of `council` or `area`."""

    class Meta:
        exclude = ("active",)

    url = _url(required=True)
    events = _events(required=True)
    precision = fields.String(load_default="coarse", validate=validate.OneOf(PRECISIONS), metadata=PRECISION_HELP)

    @validates_schema
    def _one_area(self, data: dict[str, Any], **_: Any) -> None:
        if ("council" in data) == ("area" in data):
            raise ValidationError("give exactly one of council or area", "_schema")


class WebhookSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    url = fields.String()
    description = fields.String(allow_none=True)
    events = fields.List(fields.String())
    council = fields.String(allow_none=True)
    area = fields.Dict(allow_none=True, metadata={"description": "The GeoJSON Polygon given (null for a council's area)"})
    categories = fields.List(fields.String())
    precision = fields.String()
    active = fields.Boolean()
    disabled_reason = fields.String(allow_none=True, metadata={"description": "Why it is off (410 Gone, an admin)"})
    created_by = fields.String()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()
    secret_rotated_at = UtcDateTime(allow_none=True)

    @pre_dump
    def _flatten(self, subscription: Any, **_: Any) -> dict[str, Any]:
        values = {name: getattr(subscription, name) for name in (
            "id", "url", "description", "events", "council", "categories", "precision", "active", "disabled_reason",
            "created_by", "created_at", "updated_at", "secret_rotated_at")}
        area = None
        if subscription.council is None:
            polygon = to_shape(subscription.area).geoms[0]
            area = {"type": "Polygon",
                    "coordinates": [[list(c) for c in polygon.exterior.coords],
                                    *[[list(c) for c in ring.coords] for ring in polygon.interiors]]}
        values["area"] = area
        return values


class WebhookCreatedSchema(WebhookSchema):
    secret = fields.String(metadata={"description": "The signing secret (whsec_...): shown this once"})

    @pre_dump
    def _flatten(self, subscription: Any, **kwargs: Any) -> dict[str, Any]:
        return {**super()._flatten(subscription, **kwargs), "secret": subscription.secret}


class SecretSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    secret = fields.String(metadata={"description": "The new signing secret (whsec_...): shown this once"})


class DeliveryArgsSchema(Schema):
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class DeliverySchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    webhook_id = fields.String(metadata={"description": "The webhook-id header: the same on every attempt and replay"})
    event = fields.String()
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))
    attempts = fields.Integer()
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    last_attempt_at = UtcDateTime(allow_none=True)
    next_attempt_at = UtcDateTime(allow_none=True)
    delivered_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime()
    payload = fields.Dict(metadata={"description": "The body sent"})

    @pre_dump
    def _flatten(self, delivery: Any, **_: Any) -> dict[str, Any]:
        values = {name: getattr(delivery, name) for name in (
            "id", "event", "status", "attempts", "last_status_code", "last_error", "last_attempt_at", "next_attempt_at",
            "delivered_at", "created_at")}
        values["webhook_id"] = webhook_id(delivery.id)
        values["payload"] = json.loads(delivery.body)
        return values
