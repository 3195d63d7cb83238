"""Devices over HTTP (docs/api.md, "Devices")."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import abort

from backend.audit import service as audit
from backend.auth import ANY_SIGNED_IN, current_principal, requires
from backend.devices import service
from backend.extensions import db
from backend.http import Blueprint
from backend.limits import limited
from schemas.devices import DeviceInSchema, DevicePatchSchema, DeviceSchema

blp = Blueprint("devices", __name__, url_prefix="/api/v1", description="Devices that receive pushes")

# The reason code of a 404 on a device whose token another account has since registered (docs/api.md).
MOVED_AWAY = "registered_on_another_account"


def _own_device_or_404(device_id: uuid.UUID):
    principal = current_principal()
    device = service.own_device(principal, device_id)
    if device is None:
        if service.moved_away(principal, device_id):
            abort(404, message="This device is now registered on another account.", reason=MOVED_AWAY)
        abort(404, message="No such device.")
    return device


@blp.route("/devices")
class Devices(MethodView):
    @requires(*ANY_SIGNED_IN)
    @limited("devices")
    @blp.alt_response(429, description="Too many registrations from this user or address (Retry-After says when to retry)")
    @blp.arguments(DeviceInSchema())
    @blp.response(201, DeviceSchema)
    @blp.alt_response(200, schema=DeviceSchema, description="The token was known: updated, and now the caller's")
    @blp.alt_response(409, description="The token is a staff device's, and this account is not staff")
    def post(self, data: dict[str, Any]):
        """Register a device's FCM token (re-registering a token updates it)

        `location` is stored coarse (snapped to about 100 m). Alerts reach the device when their area
        lies within `radius_m` (100-5000) of it; cluster alerts only for the `categories` opted in to.
        A token registered on another account moves to the caller (written to the audit log; the
        other account's next PATCH or DELETE answers 404 `registered_on_another_account`), except a
        staff device's, which only a staff account can take (409 `staff_device`).
        """
        principal = current_principal()
        try:
            registration = service.register(principal, data)
        except service.StaffDevice:
            abort(409, message="This device is registered to a safety-team account; only a staff account can "
                               "register it.", errors={"token": ["belongs to a staff device"]}, reason="staff_device")
        if registration.moved_from_uid is not None:
            audit.record(principal, "device.moved", "device", registration.device.id,
                         previous_owner=registration.moved_from_uid, audience=registration.device.audience)
        db.session.commit()
        return registration.device, 201 if registration.created else 200


@blp.route("/devices/<uuid:device_id>")
class DeviceById(MethodView):
    @requires(*ANY_SIGNED_IN)
    @blp.arguments(DevicePatchSchema(partial=True))
    @blp.response(200, DeviceSchema)
    @blp.alt_response(404, description="No such device, or not yours (reason `registered_on_another_account` "
                                       "when another account has registered its token since)")
    def patch(self, changes: dict[str, Any], device_id: uuid.UUID):
        """Change your device's location, radius or categories"""
        if not changes:
            abort(422, errors={"_schema": ["send at least one field to change"]})
        device = _own_device_or_404(device_id)
        service.update(device, changes)
        db.session.commit()
        return device

    @requires(*ANY_SIGNED_IN)
    @blp.response(204)
    @blp.alt_response(404, description="No such device, or not yours (reason `registered_on_another_account` "
                                       "when another account has registered its token since)")
    def delete(self, device_id: uuid.UUID):
        """Unregister your device"""
        device = _own_device_or_404(device_id)
        service.remove(device)
        db.session.commit()
