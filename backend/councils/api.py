"""Council areas over HTTP (docs/api.md, "Reports": GET /councils)."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields

from backend.auth import ANY_SIGNED_IN, requires
from backend.councils import service
from backend.http import Blueprint

blp = Blueprint("councils", __name__, url_prefix="/api/v1", description="Council areas")


class CouncilSchema(Schema):
    code = fields.String(metadata={"example": "E09000028", "description": "ONS GSS code"})
    name = fields.String(metadata={"example": "Southwark"})


@blp.route("/councils")
class Councils(MethodView):
    @requires(*ANY_SIGNED_IN)
    @blp.response(200, CouncilSchema(many=True))
    def get(self):
        """Council areas: `code` and `name`"""
        return service.list_council_areas()
