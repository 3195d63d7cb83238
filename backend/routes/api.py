"""Walking routes over HTTP: the shortest and a safer way between two places (docs/api.md)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask.views import MethodView
from flask_smorest import abort

from backend.auth import ANY_SIGNED_IN, requires
from backend.config import current_settings
from backend.http import Blueprint
from backend.routes import service
from schemas.routes import SaferRouteArgsSchema, SaferRouteSchema

blp = Blueprint("routes", __name__, url_prefix="/api/v1", description="Walking routes")


@blp.route("/routes/safer")
class SaferRoute(MethodView):
    @requires(*ANY_SIGNED_IN)
    @blp.arguments(SaferRouteArgsSchema(), location="query")
    @blp.response(200, SaferRouteSchema)
    def get(self, args: dict[str, Any]):
        """The shortest and a safer walking route between two places

        A GeoJSON FeatureCollection of two LineStrings, `shortest` then `safer`. The safer one avoids
        streets near recent reports (more so those made at the same time of day) and, after dark,
        streets tagged unlit; it is never longer than 1.5 times the shortest.
        """
        at = args.get("at") or datetime.now(timezone.utc)
        try:
            return service.safer_route(args["start"], args["end"], at, current_settings().tz)
        except service.RouteInputError as exc:
            abort(422, message=f"`{exc.field}` {exc}.", errors={exc.field: [str(exc)]})
