"""Export schemas."""

from __future__ import annotations

from typing import Any

from flask import url_for
from marshmallow import Schema, ValidationError, fields, pre_dump, validate, validates_schema

from backend.auth import GSS_CODE
from backend.exports.models import FORMATS, KINDS, STATUSES
from schemas.fields import UtcDateTime
from schemas.geojson import PolygonField
from schemas.heatmap import LocalDay, check_local_window

MAX_AREA_SPAN_DEG = 5.0


class ExportInSchema(Schema):
    """Exactly one of `council` (a GSS code) or `area` (a Polygon)."""

    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    council = fields.String(validate=validate.Regexp(GSS_CODE, error="must be a GSS code such as E09000028"),
                            metadata={"example": "E09000028"})
    area = PolygonField(max_vertices=5000)
    from_ = LocalDay(data_key="from", required=True, metadata={"description": "First local day (inclusive)"})
    to = LocalDay(required=True, metadata={"description": "Last local day (inclusive)"})
    format = fields.String(required=True, validate=validate.OneOf(FORMATS))
    min_reporters = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100), metadata={
        "description": "Leave out places fewer distinct people reported (for a file the council publishes; "
                       "1, the default, keeps every place)"})

    @validates_schema
    def _check(self, data: dict[str, Any], **_: Any) -> None:
        if ("council" in data) == ("area" in data):
            raise ValidationError("give exactly one of council or area", "_schema")
        if "area" in data:
            west, south, east, north = data["area"].bounds
            if east - west > MAX_AREA_SPAN_DEG or north - south > MAX_AREA_SPAN_DEG:
                raise ValidationError(f"spans at most {MAX_AREA_SPAN_DEG:g} degrees each way", "area")
        check_local_window(data)


class ExportSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    kind = fields.String()
    format = fields.String()
    council = fields.String(allow_none=True)
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    status = fields.String(validate=validate.OneOf(STATUSES))
    progress = fields.Integer(metadata={"description": "0 to 100"})
    rows = fields.Integer(allow_none=True, metadata={"description": "Places in the file"})
    min_reporters = fields.Integer(metadata={"description": "Places fewer distinct people reported are left out"})
    places = fields.String(allow_none=True, metadata={"description": "segments (street network) or cells (grid)"})
    unmatched_reports = fields.Integer(allow_none=True,
                                       metadata={"description": "Reports in the area further than STREET_MATCH_M from any street"})
    download_url = fields.String(allow_none=True)
    expires_at = UtcDateTime(allow_none=True)
    error = fields.String(allow_none=True)
    created_at = UtcDateTime()

    @pre_dump
    def _flatten(self, export: Any, **_: Any) -> dict[str, Any]:
        values = {k: getattr(export, k) for k in ("id", "kind", "format", "council", "status", "progress", "rows",
                                                   "min_reporters",
                                                   "places", "unmatched_reports", "expires_at", "error", "created_at")}
        values["from_"], values["to"] = export.period_from, export.period_to
        values["download_url"] = (url_for("exports.ExportDownload", export_id=export.id)
                                  if export.downloadable else None)
        return values
