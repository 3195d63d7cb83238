"""The deployment's meta document: what a client needs to know before it shows a form or a time."""

from __future__ import annotations

from marshmallow import Schema, fields


class CategorySchema(Schema):
    class Meta:
        ordered = True

    name = fields.String(metadata={"example": "spiking"})
    subcategories = fields.List(fields.String(), metadata={"example": ["drink", "needle", "other"]})


class VocabularySchema(Schema):
    """The words the API accepts and answers, in the order a form should offer them."""

    class Meta:
        ordered = True

    categories = fields.List(fields.Nested(CategorySchema), metadata={"description": "A report's categories, each "
                                                                                       "with its subcategories"})
    modes = fields.List(fields.String(), metadata={"description": "A report's `transport.mode`"})
    factors = fields.List(fields.String(), metadata={"description": "A report's `factors`"})
    statuses = fields.List(fields.String(), metadata={"description": "A report's triage `status`"})
    hub_kinds = fields.List(fields.String(), metadata={"description": "A safe hub's `kind`"})
    alert_severities = fields.List(fields.String(), metadata={"description": "An alert's `severity`"})


class ReportLimitsSchema(Schema):
    class Meta:
        ordered = True

    max_description_chars = fields.Integer(metadata={"example": 2000})
    max_note_chars = fields.Integer(metadata={"description": "A triage note", "example": 1000})
    max_route_vertices = fields.Integer(metadata={"example": 500})
    max_route_length_m = fields.Integer(metadata={"example": 20000})
    max_accuracy_m = fields.Integer(metadata={"example": 10000})
    future_skew_s = fields.Integer(metadata={"description": "How far ahead of the server clock `occurred_at` may be",
                                             "example": 300})


class MetaSchema(Schema):
    class Meta:
        ordered = True

    time_zone = fields.String(metadata={"description": "The city's IANA time zone (`CITY_TIMEZONE`): local days and "
                                                       "hours in filters, hubs' opening hours", "example": "Europe/London"})
    vocabulary = fields.Nested(VocabularySchema)
    report_limits = fields.Nested(ReportLimitsSchema)
    push_notifications = fields.String(metadata={
        "description": "`fcm`: alerts are pushed through Firebase Cloud Messaging; `logged`: no FCM credentials "
                       "are configured (GOOGLE_APPLICATION_CREDENTIALS), so pushes are only written to the "
                       "worker's log and reach no phone (development, the demo)", "example": "fcm"})
