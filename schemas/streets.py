"""Street network schemas: the query for the streets in a box, and the GeoJSON answered."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.fields import BBox

LIT = ("yes", "no", "unknown")


class StreetsArgsSchema(Schema):
    bbox = BBox(required=True, max_span_deg=0.1)
    lit = fields.List(fields.String(validate=validate.OneOf(LIT)), metadata={
        "description": "Only streets with this lighting (repeatable): `yes`, `no`, `unknown`"})
    limit = fields.Integer(load_default=5000, validate=validate.Range(min=1, max=20_000))


class StreetPropertiesSchema(Schema):
    class Meta:
        ordered = True

    segment_id = fields.String(metadata={"description": "The source's id (OpenStreetMap way id for the shipped network)"})
    name = fields.String(allow_none=True)
    road_class = fields.String(allow_none=True)
    lit = fields.String(metadata={"description": "`yes`, `no` or `unknown`"})
    length_m = fields.Float()


class StreetFeatureSchema(Schema):
    class Meta:
        ordered = True

    type = fields.Constant("Feature")
    geometry = fields.Dict()
    properties = fields.Nested(StreetPropertiesSchema)


class StreetCollectionSchema(Schema):
    class Meta:
        ordered = True

    type = fields.Constant("FeatureCollection")
    features = fields.List(fields.Nested(StreetFeatureSchema))
    truncated = fields.Boolean(metadata={"description": "True when more streets lie in the box than `limit`"})
