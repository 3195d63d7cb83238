"""The street network over HTTP: the streets in a box, with their lighting (docs/api.md)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from backend.auth import COUNCIL, STAFF, requires
from backend.http import Blueprint
from backend.streets import service
from schemas.streets import StreetCollectionSchema, StreetsArgsSchema

blp = Blueprint("streets", __name__, url_prefix="/api/v1", description="Street network")


@blp.route("/streets")
class Streets(MethodView):
    @requires(*STAFF, COUNCIL)
    @blp.arguments(StreetsArgsSchema(), location="query")
    @blp.response(200, StreetCollectionSchema)
    def get(self, args: dict[str, Any]):
        """The street segments in a box (staff, councils), longest first

        Each with `segment_id`, `name`, `road_class`, `lit` (`yes`, `no`, `unknown`) and `length_m`;
        `lit=no` gives the streets known to be unlit. `bbox` spans at most 0.1 degrees each way.
        """
        return service.streets_in(args["bbox"], args.get("lit"), args["limit"])
