"""Alerts over HTTP (docs/api.md, "Alerts")."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import abort
from shapely.geometry import Point

from backend.alerts import sending as service
from backend.audit import service as audit
from backend.auth import ANY_SIGNED_IN, STAFF, current_principal, requires
from backend.extensions import db
from backend.geo import circle
from backend.http import Blueprint
from schemas.alerts import AlertInSchema, AlertSchema, CircleArgsSchema, CircleSchema, NearbyAlertSchema
from schemas.fields import LonLatArgsSchema

blp = Blueprint("alerts", __name__, url_prefix="/api/v1", description="Geofenced alerts")


@blp.route("/alerts")
class Alerts(MethodView):
    @requires(*STAFF)
    @blp.arguments(AlertInSchema())
    @blp.response(202, AlertSchema)
    def post(self, data: dict[str, Any]):
        """Send a geofenced push (staff): answered 202, sent by a worker

        `area` is `{"center": Point, "radius_m": n}`, `{"polygon": Polygon}` or
        `{"safe_hub_id": id, "radius_m": n}`. Devices are reached when the area lies within their own
        `radius_m`. Follow `GET /alerts/{id}` for the delivery figures.
        """
        try:
            alert = service.create_alert(data, current_principal().uid)
        except service.UnknownHub:
            abort(422, errors={"area": {"safe_hub_id": ["no such safe hub"]}})
        db.session.commit()
        return alert, 202, {"Location": f"/api/v1/alerts/{alert.id}"}


@blp.route("/alerts/awaiting-confirmation")
class AlertsAwaitingConfirmation(MethodView):
    @requires(*STAFF)
    @blp.response(200, AlertSchema(many=True))
    def get(self):
        """Cluster alerts waiting for a staff member before they reach commuters (staff), newest first

        Not expired, at most 100. Each has been pushed to the safety team's devices; `POST
        /alerts/{id}/confirm` pushes it to the opted-in commuters inside its area.
        """
        return service.alerts_awaiting_confirmation()


@blp.route("/alerts/nearby")
class NearbyAlerts(MethodView):
    @requires(*ANY_SIGNED_IN)
    @blp.arguments(LonLatArgsSchema(), location="query")
    @blp.response(200, NearbyAlertSchema(many=True))
    def get(self, args: dict[str, Any]):
        """Active alerts whose area covers a point, newest first"""
        return service.active_alerts_at(args["lon"], args["lat"])


@blp.route("/alerts/circle")
class AlertCircle(MethodView):
    @requires(*STAFF)
    @blp.arguments(CircleArgsSchema(), location="query")
    @blp.response(200, CircleSchema)
    def get(self, args: dict[str, Any]):
        """The outline of a circular area (`center` + `radius_m`), to draw it before sending (staff)

        `outline` is a 64-sided polygon through the points `radius_m` from `center` on the sphere the
        server measures on, so that a page need not convert metres to degrees itself. `radius_m` is
        50 to 20,000, as for an alert.
        """
        centre = (args["lon"], args["lat"])
        return {"center": Point(centre), "radius_m": args["radius_m"], "outline": circle(centre, args["radius_m"])}


@blp.route("/alerts/<uuid:alert_id>")
class AlertById(MethodView):
    @requires(*STAFF)
    @blp.response(200, AlertSchema)
    @blp.alt_response(404, description="No such alert")
    def get(self, alert_id: uuid.UUID):
        """An alert's status (queued, sending, sent, failed) and delivery figures (staff)"""
        alert = service.get_alert(alert_id)
        if alert is None:
            abort(404, message="No such alert.")
        return alert


@blp.route("/alerts/<uuid:alert_id>/confirm")
class AlertConfirmation(MethodView):
    @requires(*STAFF)
    @blp.response(202, AlertSchema)
    @blp.alt_response(200, schema=AlertSchema, description="Already confirmed: nothing more is sent")
    @blp.alt_response(404, description="No such alert")
    @blp.alt_response(409, description="Nothing to confirm (not a cluster alert waiting), or the alert has expired")
    def post(self, alert_id: uuid.UUID):
        """Confirm a cluster alert's push to commuters (staff): answered 202, sent by a worker

        A cluster alert reaches the safety team's devices at once and commuters only after this
        (unless the deployment pushes automatically). The opted-in commuters inside its area are then
        sent it once; staff devices already reached are not sent to again. Confirming twice answers
        200 and sends nothing more.
        """
        principal = current_principal()
        try:
            confirmed = service.confirm_public_push(alert_id, principal.uid)
        except service.NothingToConfirm:
            abort(409, message="This alert is not a cluster alert waiting for confirmation: nothing to confirm.",
                  errors={"public_push": ["is not awaiting_confirmation"]})
        except service.AlertExpired:
            abort(409, message="This alert has expired: it is no longer pushed.", errors={"expires_at": ["is past"]})
        if confirmed is None:
            abort(404, message="No such alert.")
        alert, changed = confirmed
        if changed:
            audit.record(principal, "alert.confirmed", "alert", alert.id)
        db.session.commit()
        return alert, 202 if changed else 200, {"Location": f"/api/v1/alerts/{alert.id}"}
