"""Partner webhooks over HTTP: admins manage subscriptions and read their delivery logs."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import abort

from backend.auth import ADMIN, current_principal, requires
from backend.extensions import db
from backend.http import Blueprint
from backend.webhooks import service
from schemas.webhooks import (
    DeliveryArgsSchema,
    DeliverySchema,
    SecretSchema,
    WebhookCreatedSchema,
    WebhookInSchema,
    WebhookPatchSchema,
    WebhookSchema,
)

blp = Blueprint("webhooks", __name__, url_prefix="/api/v1",
                description="Partner webhooks: signed deliveries of reports, triage, clusters and alerts (admins)")


def _subscription_or_404(subscription_id: uuid.UUID):
    subscription = service.get_subscription(subscription_id)
    if subscription is None:
        abort(404, message="No such webhook subscription.")
    return subscription


def _checked(change):
    try:
        return change()
    except service.UnknownCouncil:
        abort(422, errors={"council": ["no council area has this code (see GET /councils)"]})
    except service.InsecureUrl:
        abort(422, errors={"url": ["must be an https:// URL in production"]})


@blp.route("/webhooks")
class Webhooks(MethodView):
    @requires(ADMIN)
    @blp.arguments(WebhookInSchema())
    @blp.response(201, WebhookCreatedSchema)
    def post(self, data: dict[str, Any]):
        """Subscribe a partner's endpoint (admin): answered 201 with the signing secret, shown once

        Give `url`, `events` and the area (`council`, a GSS code, or `area`, a GeoJSON Polygon);
        optionally `categories` (default: all) and `precision` (`coarse`, the default, or `exact`).
        """
        subscription = _checked(lambda: service.create_subscription(current_principal(), data))
        db.session.commit()
        return subscription, 201, {"Location": f"/api/v1/webhooks/{subscription.id}"}

    @requires(ADMIN)
    @blp.response(200, WebhookSchema(many=True))
    def get(self):
        """Every subscription, newest first (admin); secrets are never shown"""
        return service.list_subscriptions()


@blp.route("/webhooks/<uuid:subscription_id>")
class WebhookById(MethodView):
    @requires(ADMIN)
    @blp.response(200, WebhookSchema)
    @blp.alt_response(404, description="No such subscription")
    def get(self, subscription_id: uuid.UUID):
        """One subscription (admin)"""
        return _subscription_or_404(subscription_id)

    @requires(ADMIN)
    @blp.arguments(WebhookPatchSchema())
    @blp.response(200, WebhookSchema)
    @blp.alt_response(404, description="No such subscription")
    def patch(self, data: dict[str, Any], subscription_id: uuid.UUID):
        """Change a subscription (admin): any of its fields; `active: true` switches it back on after a 410"""
        subscription = _subscription_or_404(subscription_id)
        _checked(lambda: service.update_subscription(current_principal(), subscription, data))
        db.session.commit()
        return subscription

    @requires(ADMIN)
    @blp.response(204)
    @blp.alt_response(404, description="No such subscription")
    def delete(self, subscription_id: uuid.UUID):
        """Delete a subscription and its delivery log (admin)"""
        service.delete_subscription(current_principal(), _subscription_or_404(subscription_id))
        db.session.commit()


@blp.route("/webhooks/<uuid:subscription_id>/secret")
class WebhookSecret(MethodView):
    @requires(ADMIN)
    @blp.response(200, SecretSchema)
    @blp.alt_response(404, description="No such subscription")
    def post(self, subscription_id: uuid.UUID):
        """Rotate the signing secret (admin): the new one, shown once, signs every attempt from now on"""
        secret = service.rotate_secret(current_principal(), _subscription_or_404(subscription_id))
        db.session.commit()
        return {"id": subscription_id, "secret": secret}


@blp.route("/webhooks/<uuid:subscription_id>/deliveries")
class WebhookDeliveries(MethodView):
    @requires(ADMIN)
    @blp.arguments(DeliveryArgsSchema(), location="query", as_kwargs=True)
    @blp.response(200, DeliverySchema(many=True))
    @blp.alt_response(404, description="No such subscription")
    def get(self, subscription_id: uuid.UUID, limit: int, status: str | None = None):
        """The delivery log, newest first (admin): each delivery's attempts and outcome, and the body sent"""
        _subscription_or_404(subscription_id)
        return service.list_deliveries(subscription_id, limit=limit, status=status)


@blp.route("/webhooks/<uuid:subscription_id>/deliveries/<uuid:delivery_id>/replay")
class WebhookReplay(MethodView):
    @requires(ADMIN)
    @blp.response(202, DeliverySchema)
    @blp.alt_response(404, description="No such subscription, or no such delivery of it")
    @blp.alt_response(409, description="The delivery has not failed, or the subscription is switched off")
    def post(self, subscription_id: uuid.UUID, delivery_id: uuid.UUID):
        """Send a failed delivery again (admin): same webhook-id and body, retried for another 24 hours"""
        subscription = _subscription_or_404(subscription_id)
        try:
            delivery = service.replay(subscription, delivery_id)
        except service.NotReplayable as exc:
            reason = ("the subscription is switched off: PATCH it with active: true first" if str(exc) == "inactive"
                      else f"only a failed delivery can be replayed; this one is {exc}")
            abort(409, message=f"Cannot replay: {reason}.")
        if delivery is None:
            abort(404, message="No such delivery of this subscription.")
        db.session.commit()
        return delivery
