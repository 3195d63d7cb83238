"""Report schemas: what the phone app sends, what it and the staff dashboard get back."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_dump, validate, validates, validates_schema

from backend import vocabulary as v
from schemas.fields import BBox, FiniteFloat, Text, UtcDateTime
from schemas.geojson import LineStringField, PointField
from schemas.heatmap import LocalDay, check_local_window


class TransportSchema(Schema):
    mode = fields.String(required=True, validate=validate.OneOf(v.MODES))
    line = Text(max_length=100, metadata={"example": "Victoria"})
    station = Text(max_length=100, metadata={"example": "Brixton"})


class ReportInSchema(Schema):
    """A report as the phone app sends it."""

    category = fields.String(required=True, validate=validate.OneOf(v.CATEGORIES))
    subcategory = fields.String(
        validate=validate.OneOf(sorted({s for subs in v.SUBCATEGORIES.values() for s in subs})),
        metadata={"description": "Per category: " + "; ".join(f"{c}: {', '.join(s)}" for c, s in v.SUBCATEGORIES.items())},
    )
    occurred_at = UtcDateTime(required=True, metadata={"example": "2026-11-20T22:15:00Z"})
    location = PointField(required=True)
    accuracy_m = FiniteFloat(validate=validate.Range(min=0, max=v.MAX_ACCURACY_M))
    route = LineStringField(
        max_vertices=v.MAX_ROUTE_VERTICES,
        max_length_m=v.MAX_ROUTE_LENGTH_M,
        metadata={"description": "Required for unsafe_route: 2 to 500 points, at most 20 km"},
    )
    transport = fields.Nested(TransportSchema)
    factors = fields.List(
        fields.String(validate=validate.OneOf(v.FACTORS)), validate=validate.Length(max=len(v.FACTORS))
    )
    description = Text(max_length=v.MAX_DESCRIPTION_CHARS, strip=False)

    @validates("occurred_at")
    def _not_in_future(self, value: datetime, **_: Any) -> None:
        now = datetime.now(timezone.utc)
        if value > now + timedelta(seconds=v.FUTURE_SKEW_S):
            raise ValidationError("is in the future (more than 5 minutes ahead of the server clock)")

    @validates("factors")
    def _unique_factors(self, value: list[str], **_: Any) -> None:
        if len(set(value)) != len(value):
            raise ValidationError("must not repeat a factor")

    @validates_schema
    def _per_category(self, data: dict[str, Any], **_: Any) -> None:
        category = data.get("category")
        if category is None:
            return
        subcategory = data.get("subcategory")
        if subcategory is not None and subcategory not in v.SUBCATEGORIES[category]:
            raise ValidationError(
                f"for {category} must be one of: {', '.join(v.SUBCATEGORIES[category])}", "subcategory"
            )
        if category == "unsafe_route" and data.get("route") is None:
            raise ValidationError("is required for unsafe_route reports", "route")


class BatchItemSchema(ReportInSchema):
    client_id = fields.UUID(required=True, metadata={"description": "The item's idempotency key (a client UUID)"})


class ReportSchema(Schema):
    """A report as its author sees it (staff get StaffReportSchema: the internal note too)."""

    class Meta:
        ordered = True

    id = fields.UUID()
    category = fields.String()
    subcategory = fields.String(allow_none=True)
    occurred_at = UtcDateTime()
    location = PointField()
    accuracy_m = fields.Float(allow_none=True)
    route = LineStringField(max_vertices=v.MAX_ROUTE_VERTICES, max_length_m=v.MAX_ROUTE_LENGTH_M, allow_none=True)
    transport = fields.Nested(TransportSchema, allow_none=True)
    factors = fields.List(fields.String())
    description = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf(v.STATUSES))
    public_note = fields.String(allow_none=True, metadata={"description": "What the safety team tells the reporter"})
    created_at = UtcDateTime()
    updated_at = UtcDateTime()

    @pre_dump
    def _transport(self, report: Any, **_: Any) -> dict[str, Any]:
        fields_ = {name: getattr(report, name, None) for name in (
            "id", "category", "subcategory", "occurred_at", "location", "accuracy_m", "route", "factors",
            "description", "status", "status_note", "public_note", "created_at", "updated_at", "status_history",
        )}
        fields_["transport"] = (
            {k: val for k, val in (("mode", report.mode), ("line", report.line), ("station", report.station)) if val}
            if report.mode
            else None
        )
        return fields_


class CouncilTransportSchema(Schema):
    mode = fields.String(validate=validate.OneOf(v.MODES))


class ReportForCouncilSchema(Schema):
    """What a council officer sees in their area (backend.reports.service.council_view): no free text
    (description, internal status note, transport line and station) but the public note, times to the
    hour, the route clipped to the council's area."""

    class Meta:
        ordered = True

    id = fields.UUID()
    category = fields.String()
    subcategory = fields.String(allow_none=True)
    occurred_at = UtcDateTime(metadata={"description": "To the hour"})
    location = PointField()
    accuracy_m = fields.Float(allow_none=True)
    route = fields.Dict(allow_none=True, metadata={
        "description": "The part of the route inside the council's area: a GeoJSON LineString or "
                       "MultiLineString; null when none of it is inside"})
    transport = fields.Nested(CouncilTransportSchema, allow_none=True, metadata={"description": "The mode only"})
    factors = fields.List(fields.String())
    status = fields.String(validate=validate.OneOf(v.STATUSES))
    public_note = fields.String(allow_none=True, metadata={
        "description": "What the safety team tells the reporter (written for the public; Open311 status_notes)"})
    created_at = UtcDateTime(metadata={"description": "To the hour"})
    updated_at = UtcDateTime(metadata={"description": "To the hour"})


class StaffReportSchema(ReportSchema):
    """A report as the safety team sees it: with the internal triage note."""

    status_note = fields.String(allow_none=True, metadata={"description": "Internal triage note: staff only"})


class StatusChangeSchema(Schema):
    class Meta:
        ordered = True

    status = fields.String(validate=validate.OneOf(v.STATUSES))
    public_note = fields.String(allow_none=True)
    changed_at = UtcDateTime()


class OwnReportSchema(ReportSchema):
    """A report in its author's list: with its status history (statuses and public notes)."""

    status_history = fields.List(fields.Nested(StatusChangeSchema), metadata={
        "description": "Oldest first, starting with received; the internal note is never shown"})


class ReportPageSchema(Schema):
    items = fields.List(fields.Nested(StaffReportSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Pass as `cursor` for the next page"})


class CouncilReportPageSchema(ReportPageSchema):
    items = fields.List(fields.Nested(ReportForCouncilSchema))


class OwnReportPageSchema(ReportPageSchema):
    items = fields.List(fields.Nested(OwnReportSchema))


class PageArgsSchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=200))


class ReportFilterSchema(PageArgsSchema):
    bbox = BBox()
    category = fields.List(fields.String(validate=validate.OneOf(v.CATEGORIES)))
    status = fields.List(fields.String(validate=validate.OneOf(v.STATUSES)))
    mode = fields.List(fields.String(validate=validate.OneOf(v.MODES)))
    from_ = LocalDay(data_key="from", metadata={"description": "First local day of `occurred_at` (inclusive)"})
    to = LocalDay(metadata={"description": "Last local day of `occurred_at` (inclusive)"})

    @validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        check_local_window(data)


class BatchInSchema(Schema):
    reports = fields.List(
        fields.Dict(),
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Up to 100 reports, each a Report plus its `client_id` (idempotency key)"},
    )


class BatchResultSchema(Schema):
    class Meta:
        ordered = True

    index = fields.Integer()
    client_id = fields.String(allow_none=True)
    status = fields.Integer(metadata={"description": "201 created or replayed, 409 key reused, 422 invalid, "
                                                 "429 over the report rate limit (not stored: send it again later)"})
    report = fields.Nested(ReportSchema, allow_none=True)
    errors = fields.Dict(allow_none=True)


class BatchOutSchema(Schema):
    results = fields.List(fields.Nested(BatchResultSchema))


class TriageSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(v.STATUSES))
    note = Text(max_length=v.MAX_NOTE_CHARS, metadata={"description": "Internal: staff only"})
    public_note = Text(max_length=v.MAX_NOTE_CHARS, metadata={
        "description": "For the reporter: shown in their app and pushed with the update"})


class IdempotencyHeaderSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    idempotency_key = fields.UUID(data_key="Idempotency-Key", metadata={"description": "A client UUID"})
