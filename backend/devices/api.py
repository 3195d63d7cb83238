"""Devices over HTTP (PRODUCT.md: POST /devices, PATCH/DELETE /devices/{id})."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import abort

from backend.auth import ANY_SIGNED_IN, current_principal, requires
from backend.devices import service
from backend.extensions import db
from backend.http import Blueprint
from backend.limits import limited
from schemas.devices import DeviceInSchema, DevicePatchSchema, DeviceSchema

blp = Blueprint("devices", __name__, url_prefix="/api/v1", description="Devices that receive pushes")


@blp.route("/devices")
class Devices(MethodView):
    @requires(*ANY_SIGNED_IN)
    @limited("devices")
    @blp.alt_response(429, description="Too many registrations from this user or address (Retry-After says when to retry)")
    @blp.arguments(DeviceInSchema())
    @blp.response(201, DeviceSchema)
    @blp.alt_response(200, schema=DeviceSchema, description="The token was known: updated, and now the caller's")
    def post(self, data: dict[str, Any]):
        """Register a device's FCM token (re-registering a token updates it)

        `location` is stored coarse (snapped to about 100 m). Alerts reach the device when their area
        lies within `radius_m` (100-5000) of it; cluster alerts only for the `categories` opted in to.
        """
        device, created = service.register(current_principal(), data)
        db.session.commit()
        return device, 201 if created else 200


@blp.route("/devices/<uuid:device_id>")
class DeviceById(MethodView):
    @requires(*ANY_SIGNED_IN)
    @blp.arguments(DevicePatchSchema(partial=True))
    @blp.response(200, DeviceSchema)
    @blp.alt_response(404, description="No such device, or not yours")
    def patch(self, changes: dict[str, Any], device_id: uuid.UUID):
        """Change your device's location, radius or categories"""
        if not changes:
            abort(422, errors={"_schema": ["send at least one field to change"]})
        device = service.own_device(current_principal(), device_id)
        if device is None:
            abort(404, message="No such device.")
        service.update(device, changes)
        db.session.commit()
        return device

    @requires(*ANY_SIGNED_IN)
    @blp.response(204)
    @blp.alt_response(404, description="No such device, or not yours")
    def delete(self, device_id: uuid.UUID):
        """Unregister your device"""
        device = service.own_device(current_principal(), device_id)
        if device is None:
            abort(404, message="No such device.")
        service.remove(device)
        db.session.commit()
