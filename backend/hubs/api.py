"""Safe hubs over HTTP (docs/api.md, "Safe hubs")."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from flask.views import MethodView
from flask_smorest import abort

from backend.auth import ANY_SIGNED_IN, STAFF, requires
from backend.config import current_settings
from backend.extensions import db
from backend.http import Blueprint
from backend.hubs import service
from schemas.hubs import (
    HubInSchema,
    HubListArgsSchema,
    HubPatchSchema,
    HubSchema,
    NearbyHubSchema,
    NearestArgsSchema,
)

blp = Blueprint("safe-hubs", __name__, url_prefix="/api/v1", description="Safe hubs")


@blp.route("/safe-hubs")
class SafeHubs(MethodView):
    @requires(*ANY_SIGNED_IN)
    @blp.arguments(HubListArgsSchema(), location="query")
    @blp.response(200, HubSchema(many=True))
    def get(self, args: dict[str, Any]):
        """Safe hubs, by name (filters: `bbox`, `kind`, repeatable)"""
        return service.list_hubs(args.get("bbox"), args.get("kind"), args["limit"])

    @requires(*STAFF)
    @blp.arguments(HubInSchema())
    @blp.response(201, HubSchema)
    def post(self, data: dict[str, Any]):
        """Add a safe hub (staff)"""
        hub = service.create_hub(data)
        db.session.commit()
        return hub


@blp.route("/safe-hubs/nearest")
class NearestSafeHubs(MethodView):
    @requires(*ANY_SIGNED_IN)
    @blp.arguments(NearestArgsSchema(), location="query")
    @blp.response(200, NearbyHubSchema(many=True))
    def get(self, args: dict[str, Any]):
        """The nearest safe hubs, nearest first

        Each with `distance_m`, `open_now`, and `closes_at` (when open) or `opens_at` (when closed).
        With `open_now=true`, only hubs open now.
        """
        return service.nearest_hubs(args["lon"], args["lat"], args["limit"], args["open_now"],
                                    datetime.now(timezone.utc), current_settings().tz)


@blp.route("/safe-hubs/<uuid:hub_id>")
class SafeHub(MethodView):
    @requires(*ANY_SIGNED_IN)
    @blp.response(200, HubSchema)
    @blp.alt_response(404, description="No such hub")
    def get(self, hub_id: uuid.UUID):
        """One safe hub"""
        hub = service.get_hub(hub_id)
        if hub is None:
            abort(404, message="No such safe hub.")
        return hub

    @requires(*STAFF)
    @blp.arguments(HubPatchSchema(partial=True))
    @blp.response(200, HubSchema)
    @blp.alt_response(404, description="No such hub")
    def patch(self, changes: dict[str, Any], hub_id: uuid.UUID):
        """Change a safe hub (staff): any of its fields"""
        if not changes:
            abort(422, errors={"_schema": ["send at least one field to change"]})
        hub = service.update_hub(hub_id, changes)
        if hub is None:
            abort(404, message="No such safe hub.")
        db.session.commit()
        return hub

    @requires(*STAFF)
    @blp.response(204)
    @blp.alt_response(404, description="No such hub")
    def delete(self, hub_id: uuid.UUID):
        """Remove a safe hub (staff)"""
        if not service.delete_hub(hub_id):
            abort(404, message="No such safe hub.")
        db.session.commit()
