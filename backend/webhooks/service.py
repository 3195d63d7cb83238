"""Partner webhooks: subscriptions, and what each event becomes for each subscription.

An event the platform announces (report.created, report.status_changed, cluster.detected, alert.sent)
reaches this domain as an outbox task (handlers.py). ``fan_out`` finds the active subscriptions that
want it (the event, the category, the location inside their area), writes one delivery each with its
body already made (coarse or exact location, per subscription; an exact one is audited), and publishes
``webhooks.deliveries_due``; delivery.py sends them. Bodies carry no free text and no user ids.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, Point
from sqlalchemy import select, text, update

from backend.audit import service as audit
from backend.auth import Principal
from backend.config import current_settings
from backend.councils.models import CouncilArea
from backend.extensions import db
from backend.geo import coarse
from backend.outbox import service as outbox
from backend.webhooks.models import EVENTS, WebhookDelivery, WebhookSubscription

# What this domain announces to itself: deliveries written, to be sent now.
DELIVERIES_DUE = "webhooks.deliveries_due"
# Who the audit log names for an exact location handed to a partner.
SYSTEM = Principal(uid="system:webhooks", role="system")


class UnknownCouncil(Exception):
    """No council area has this code."""


class InsecureUrl(Exception):
    """Production sends to https:// targets only."""


class NotReplayable(Exception):
    """Only a failed delivery of an active subscription can be replayed."""


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_url(url: str) -> None:
    if current_settings().is_production and urlsplit(url).scheme != "https":
        raise InsecureUrl(url)


def _area(data: dict[str, Any]) -> tuple[str | None, Any]:
    council = data.get("council")
    if council is not None:
        geom = db.session.scalar(select(CouncilArea.geom).where(CouncilArea.code == council))
        if geom is None:
            raise UnknownCouncil(council)
        return council, geom
    return None, from_shape(MultiPolygon([data["area"]]), srid=4326)


def create_subscription(admin: Principal, data: dict[str, Any]) -> WebhookSubscription:
    """Record a subscription (the caller commits). Its ``secret`` is readable on the returned object
    now, and shown to nobody again. Raises UnknownCouncil, InsecureUrl."""
    check_url(data["url"])
    council, area = _area(data)
    subscription = WebhookSubscription(
        id=uuid.uuid4(), url=data["url"], description=data.get("description"), events=list(data["events"]),
        council=council, area=area, categories=list(data.get("categories") or []),
        precision=data.get("precision", "coarse"), secret=new_secret(), created_by=admin.uid,
    )
    db.session.add(subscription)
    db.session.flush()
    audit.record(admin, "webhook.created", "webhook", subscription.id, url=subscription.url,
                 events=subscription.events, precision=subscription.precision, council=council)
    return subscription


def get_subscription(subscription_id: uuid.UUID) -> WebhookSubscription | None:
    return db.session.get(WebhookSubscription, subscription_id)


def list_subscriptions() -> list[WebhookSubscription]:
    return list(db.session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.created_at.desc())))


def update_subscription(admin: Principal, subscription: WebhookSubscription, data: dict[str, Any]) -> WebhookSubscription:
    """Change what was given (the caller commits). Switching it back on clears why it was off;
    switching it off fails what was waiting for it."""
    if "url" in data:
        check_url(data["url"])
    if "council" in data or "area" in data:
        subscription.council, subscription.area = _area(data)
    for name in ("url", "description", "events", "categories", "precision"):
        if name in data:
            setattr(subscription, name, list(data[name]) if isinstance(data[name], (list, tuple)) else data[name])
    if "active" in data:
        subscription.active = data["active"]
        subscription.disabled_reason = None if data["active"] else f"switched off by {admin.uid}"
        if not data["active"]:
            fail_pending(subscription.id, "the subscription was switched off")
    subscription.updated_at = datetime.now(timezone.utc)
    db.session.flush()
    audit.record(admin, "webhook.updated", "webhook", subscription.id,
                 changed=sorted(k for k in data if k != "area"), precision=subscription.precision)
    return subscription


def delete_subscription(admin: Principal, subscription: WebhookSubscription) -> None:
    db.session.delete(subscription)
    audit.record(admin, "webhook.deleted", "webhook", subscription.id, url=subscription.url)
    db.session.flush()


def rotate_secret(admin: Principal, subscription: WebhookSubscription) -> str:
    """A new signing secret, in use from the next attempt on; the old one stops working at once."""
    subscription.secret = new_secret()
    subscription.secret_rotated_at = subscription.updated_at = datetime.now(timezone.utc)
    audit.record(admin, "webhook.secret_rotated", "webhook", subscription.id)
    db.session.flush()
    return subscription.secret


def fail_pending(subscription_id: uuid.UUID, reason: str) -> None:
    db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.status == "pending")
        .values(status="failed", next_attempt_at=None, last_error=reason[:300])
    )


def list_deliveries(subscription_id: uuid.UUID, *, limit: int, status: str | None = None) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    return list(db.session.scalars(query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id).limit(limit)))


def replay(subscription: WebhookSubscription, delivery_id: uuid.UUID) -> WebhookDelivery | None:
    """Send a failed delivery again, with its webhook-id and body, retried as a new one would be
    (the caller commits). None: no such delivery of this subscription. Raises NotReplayable."""
    delivery = db.session.scalar(select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.subscription_id == subscription.id).with_for_update())
    if delivery is None:
        return None
    if delivery.status != "failed" or not subscription.active:
        raise NotReplayable(delivery.status if subscription.active else "inactive")
    now = datetime.now(timezone.utc)
    delivery.status, delivery.next_attempt_at, delivery.window_started_at = "pending", now, now
    db.session.flush()
    outbox.publish(DELIVERIES_DUE, {"delivery_ids": [str(delivery.id)]})
    return delivery


# ---- events into deliveries ------------------------------------------------------------------------

@dataclass(frozen=True)
class Fact:
    """An event as partners see it: where (for the area), its category (for the filter), and its data
    with the location put in by ``data(location)``."""

    lon: float
    lat: float
    category: str | None
    data: Callable[[dict[str, Any]], dict[str, Any]]


def _point(lon: float, lat: float, precision: str) -> dict[str, Any]:
    where = Point(lon, lat) if precision == "exact" else coarse(Point(lon, lat))
    return {"type": "Point", "coordinates": [round(where.x, 6), round(where.y, 6)]}


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


_SUBSCRIBERS = text("""
    SELECT id, precision FROM webhook_subscriptions
    WHERE active AND :event = ANY(events)
      AND (cardinality(categories) = 0 OR :category = ANY(categories))
      AND ST_Intersects(area, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
""")


def subscribed_to(event: str) -> bool:
    """Whether any active subscription wants ``event`` at all (anywhere, any category)."""
    return bool(db.session.scalar(text(f"SELECT {subscribed_sql(event)}")))


def subscribed_sql(event: str) -> str:
    """Whether any active subscription wants ``event``, as an SQL condition without parameters: a
    handler's ``when`` (backend/outbox/registry.py), which the publisher asks in its own statement."""
    if event not in EVENTS:
        raise ValueError(f"{event!r} is not an event partners subscribe to")
    return f"EXISTS (SELECT FROM webhook_subscriptions WHERE active AND '{event}' = ANY(events))"


def fan_out(event: str, fact: Fact | None) -> list[uuid.UUID]:
    """One delivery per subscription that wants this event here, its body made now (the task's
    transaction commits them); exact locations are audited, one entry per delivery."""
    if fact is None:
        return []
    subscribers = db.session.execute(_SUBSCRIBERS, {"event": event, "category": fact.category,
                                                    "lon": fact.lon, "lat": fact.lat}).all()
    if not subscribers:
        return []
    timestamp = _iso(datetime.now(timezone.utc))
    bodies = {precision: json.dumps({"type": event, "timestamp": timestamp, "data": fact.data(_point(fact.lon, fact.lat, precision))},
                                    separators=(",", ":"))
              for precision in {s.precision for s in subscribers}}
    deliveries = [WebhookDelivery(id=uuid.uuid4(), subscription_id=s.id, event=event, body=bodies[s.precision])
                  for s in subscribers]
    db.session.add_all(deliveries)
    db.session.flush()
    for delivery, subscriber in zip(deliveries, subscribers):
        if subscriber.precision == "exact":
            audit.record(SYSTEM, "webhook.exact_location", "webhook_delivery", delivery.id,
                         subscription=str(subscriber.id), event=event)
    ids = [d.id for d in deliveries]
    outbox.publish(DELIVERIES_DUE, {"delivery_ids": [str(i) for i in ids]})
    return ids


_REPORT = text("""
    SELECT id, category, subcategory, occurred_at, mode, line, station, created_at,
           ST_X(location) AS lon, ST_Y(location) AS lat
    FROM reports WHERE id = :id
""")


def report_fact(report_id: str, status: str | None = None, change_id: int | None = None) -> Fact | None:
    """A report without its description or author: what, when, how travelling, where, its status."""
    row = db.session.execute(_REPORT, {"id": report_id}).one_or_none()
    if row is None:
        return None
    changed_at = None
    if change_id is not None:
        changed_at = db.session.scalar(text("SELECT changed_at FROM report_status_changes WHERE id = :id"),
                                       {"id": change_id})

    def data(location: dict[str, Any]) -> dict[str, Any]:
        report = {
            "id": str(row.id), "category": row.category, "subcategory": row.subcategory,
            "occurred_at": _iso(row.occurred_at), "received_at": _iso(row.created_at),
            "transport": {k: v for k, v in (("mode", row.mode), ("line", row.line), ("station", row.station)) if v} or None,
            "location": location, "status": status or "received",
        }
        if changed_at is not None:
            report["status_changed_at"] = _iso(changed_at)
        return {"report": report}

    return Fact(row.lon, row.lat, row.category, data)


_CLUSTER = text("""
    SELECT id, category, report_count, radius_m, first_at, last_at, alert_id,
           ST_X(centre) AS lon, ST_Y(centre) AS lat
    FROM clusters WHERE id = :id
""")


def cluster_fact(cluster_id: str) -> Fact | None:
    row = db.session.execute(_CLUSTER, {"id": cluster_id}).one_or_none()
    if row is None:
        return None

    def data(location: dict[str, Any]) -> dict[str, Any]:
        return {"cluster": {"id": str(row.id), "category": row.category, "report_count": row.report_count,
                            "centre": location, "radius_m": row.radius_m, "first_at": _iso(row.first_at),
                            "last_at": _iso(row.last_at), "alert_id": str(row.alert_id) if row.alert_id else None}}

    return Fact(row.lon, row.lat, row.category, data)


# An alert drawn as a polygon is placed at a point on its surface (for the area filter and the payload).
_ALERT = text("""
    SELECT id, kind, category, severity, title, radius_m, expires_at, targeted, sent,
           ST_X(ST_PointOnSurface(area)) AS lon, ST_Y(ST_PointOnSurface(area)) AS lat
    FROM alerts WHERE id = :id
""")


def alert_fact(alert_id: str) -> Fact | None:
    row = db.session.execute(_ALERT, {"id": alert_id}).one_or_none()
    if row is None:
        return None

    def data(location: dict[str, Any]) -> dict[str, Any]:
        return {"alert": {"id": str(row.id), "kind": row.kind, "category": row.category, "severity": row.severity,
                          "title": row.title, "centre": location, "radius_m": row.radius_m,
                          "expires_at": _iso(row.expires_at), "devices_targeted": row.targeted,
                          "devices_reached": row.sent}}

    return Fact(row.lon, row.lat, row.category, data)

