"""Schemas of the Open311 api_keys staff issue to councils (Open311 itself answers in the spec's shapes)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from backend.auth import GSS_CODE
from schemas.fields import Text, UtcDateTime


class ApiKeyInSchema(Schema):
    council = fields.String(required=True, validate=validate.Regexp(GSS_CODE, error="must be a GSS code such as E09000028"),
                            metadata={"example": "E09000028"})
    label = Text(max_length=200, metadata={"example": "Southwark CRM"})


class ApiKeySchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    council = fields.String()
    label = fields.String(allow_none=True)
    created_by = fields.String()
    created_at = UtcDateTime()
    last_used_at = UtcDateTime(allow_none=True)
    revoked_at = UtcDateTime(allow_none=True)


class ApiKeyCreatedSchema(ApiKeySchema):
    key = fields.String(metadata={"description": "The api_key: shown this once"})
