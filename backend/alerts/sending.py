"""Alerts: geofenced pushes sent by a worker, every device at most once (cluster detection is clusters.py).

Fan-out (``send_alert``): the targeted devices get a delivery row each; batches of at most 500 are
claimed, sent through the notifier and recorded, one commit per batch. A device whose delivery is
recorded is never sent to again, so a retried or duplicated job resumes where the last one stopped.
Dead tokens are deleted; transient failures (5xx, QUOTA_EXCEEDED) are left for the job's next attempt
(RQ retries it with backoff).

One run at a time per alert: the sender holds the alert's advisory lock on a connection of its own,
which PostgreSQL releases the moment that connection closes. So a run that finds deliveries still
``sending`` knows their sender died between handing the batch to FCM and recording the answers: FCM
may or may not have taken them, and FCM has no idempotency key to ask. They are sent again (a missed
safety alert is worse than a repeated one), with the alert's id as the collapse key, notification tag
and ``apns-collapse-id``, so that the phone replaces the first notification instead of showing two.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from geoalchemy2.shape import from_shape, to_shape
from sqlalchemy import select, text, update

from backend.alerts import notifier as notifiers
from backend.alerts.models import Alert
from backend.config import current_settings
from backend.devices.models import interest_box
from backend.devices.service import prune_tokens
from backend.extensions import db
from backend.hubs.models import SafeHub
from backend.hubs.service import nearest_hubs
from backend.outbox import service as outbox

log = logging.getLogger(__name__)

# What this domain announces (backend/outbox/registry.py): its own handlers send the alert.
ALERT_CREATED = "alert.created"
ALERT_CONFIRMED = "alert.confirmed"
ALERT_SENT = "alert.sent"


class TransientFailures(Exception):
    """Some pushes failed for a reason that may pass; the job is retried for those devices only."""


class AlertBeingSent(Exception):
    """Another live worker is sending this alert; the job is retried, and finds it sent or its sender gone."""


class UnknownHub(ValueError):
    pass


class NothingToConfirm(Exception):
    """The alert is not a cluster alert waiting for a person (a manual alert, or one already pushed)."""


class AlertExpired(Exception):
    pass


def create_alert(data: dict[str, Any], staff_uid: str) -> Alert:
    """Record an alert and publish ``alert.created`` (a worker sends it once the caller commits)."""
    area = data["area"]
    radius_m = area.get("radius_m")
    hub_id = area.get("safe_hub_id")
    if hub_id is not None:
        hub = db.session.get(SafeHub, hub_id)
        if hub is None:
            raise UnknownHub(hub_id)
        geometry = hub.location
    elif "polygon" in area:
        geometry = from_shape(area["polygon"], srid=4326)
    else:
        geometry = from_shape(area["center"], srid=4326)
    alert = Alert(title=data["title"], body=data["body"], severity=data["severity"], area=geometry,
                  radius_m=radius_m, safe_hub_id=hub_id, expires_at=data["expires_at"], created_by=staff_uid)
    db.session.add(alert)
    db.session.flush()
    outbox.publish(ALERT_CREATED, {"alert_id": str(alert.id)})
    return alert


def get_alert(alert_id: uuid.UUID) -> Alert | None:
    return db.session.get(Alert, alert_id)


def confirm_public_push(alert_id: uuid.UUID, staff_uid: str) -> tuple[Alert, bool] | None:
    """A staff member confirms a cluster alert: its push to commuters is due, and a second fan-out
    (``alert.confirmed``) targets them; the staff devices already reached are not sent to again.
    Returns the alert and whether this call confirmed it (False: already confirmed, nothing done);
    None if there is no such alert."""
    # The row lock orders this against a fan-out reading public_push (_send_locked).
    alert = db.session.get(Alert, alert_id, with_for_update=True, populate_existing=True)
    if alert is None:
        return None
    if alert.confirmed_at is not None:
        return alert, False
    if alert.public_push != "awaiting_confirmation":
        raise NothingToConfirm()
    if alert.expires_at <= datetime.now(timezone.utc):
        raise AlertExpired()
    now = datetime.now(timezone.utc)
    alert.public_push, alert.confirmed_by, alert.confirmed_at = "due", staff_uid, now
    alert.status, alert.updated_at = "queued", now
    db.session.flush()
    outbox.publish(ALERT_CONFIRMED, {"alert_id": str(alert.id)})
    return alert, True


def alerts_awaiting_confirmation(now: datetime | None = None) -> list[Alert]:
    """Cluster alerts not yet pushed to commuters and not expired, newest first."""
    return list(db.session.scalars(
        select(Alert).where(Alert.public_push == "awaiting_confirmation",
                            Alert.expires_at > (now or datetime.now(timezone.utc)))
        .order_by(Alert.created_at.desc()).limit(100)))


# Devices a manual alert reaches: those whose owners asked for alerts within radius_m of them, and
# whose (coarse) location is that close to the alert's area. Each device's interest box is indexed,
# so the index returns only devices that can be reached, whatever their radius.
TARGET_MANUAL_SELECT = f"""
    SELECT a.id, d.id
    FROM alerts a
    JOIN devices d ON d.location IS NOT NULL
        AND {interest_box("d")} && expand_by_metres(a.area, coalesce(a.radius_m, 0))
        -- On the sphere: within 0.3 percent of the spheroid, and faster per device.
        AND ST_DWithin(d.location::geography, a.area::geography, coalesce(a.radius_m, 0) + d.radius_m, false)
    WHERE a.id = :alert_id
"""
_TARGET_MANUAL = text(f"INSERT INTO alert_deliveries (alert_id, device_id) {TARGET_MANUAL_SELECT} ON CONFLICT DO NOTHING")
# A cluster alert reaches the safety team's devices, wherever they are, and (once its public push is
# confirmed, or automatic) the commuters who opted in to its category and are inside the cluster's radius.
_TARGET_CLUSTER = text("""
    INSERT INTO alert_deliveries (alert_id, device_id)
    SELECT a.id, d.id FROM alerts a JOIN devices d ON d.audience = 'staff' WHERE a.id = :alert_id
    UNION
    SELECT a.id, d.id FROM alerts a
    JOIN devices d ON d.location IS NOT NULL AND a.category = ANY(d.categories)
        AND ST_DWithin(d.location::geography, a.area::geography, a.radius_m)
    WHERE a.id = :alert_id AND CAST(:commuters AS boolean)
    ON CONFLICT DO NOTHING
""")

# The claimed rows are picked once (a MATERIALIZED CTE): a LIMIT ... SKIP LOCKED subquery joined into
# an UPDATE may be rescanned by a nested loop and claim more than one batch.
_CLAIM = text("""
    WITH claimed AS MATERIALIZED (
        SELECT device_id FROM alert_deliveries
        WHERE alert_id = :alert_id AND status = 'pending'
        LIMIT :batch  -- the partial index holds only unfinished deliveries, however many were sent
        FOR UPDATE SKIP LOCKED
    ), updated AS (
        UPDATE alert_deliveries AS ad SET status = 'sending', attempts = ad.attempts + 1,
                                          updated_at = clock_timestamp()
        FROM claimed
        WHERE ad.alert_id = :alert_id AND ad.device_id = claimed.device_id
        RETURNING ad.device_id
    )
    SELECT u.device_id, d.token, d.audience FROM updated u LEFT JOIN devices d ON d.id = u.device_id
""")

_RECORD = text("""
    UPDATE alert_deliveries AS ad SET status = r.status, last_error = r.error, updated_at = clock_timestamp()
    FROM unnest(CAST(:device_ids AS uuid[]), CAST(:statuses AS text[]), CAST(:errors AS text[]))
        AS r (device_id, status, error)
    WHERE ad.alert_id = :alert_id AND ad.device_id = r.device_id
""")

_FIGURES = text("""
    UPDATE alerts SET
        targeted = f.targeted, sent = f.sent, failed = f.failed, pruned = f.pruned,
        status = CASE WHEN f.unfinished > 0 THEN 'sending' ELSE 'sent' END, updated_at = clock_timestamp()
    FROM (
        SELECT count(*) AS targeted,
               count(*) FILTER (WHERE status = 'sent') AS sent,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status = 'pruned') AS pruned,
               count(*) FILTER (WHERE status IN ('pending', 'sending', 'retry')) AS unfinished
        FROM alert_deliveries WHERE alert_id = :alert_id
    ) AS f
    WHERE alerts.id = :alert_id
    RETURNING f.unfinished
""")


def _payload(alert: Alert) -> dict[str, str]:
    return {"type": "alert", "alert_id": str(alert.id), "severity": alert.severity,
            "expires_at": alert.expires_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
            "deep_link": f"safetravel://alerts/{alert.id}"}


def send_alert(alert_id: str, batch: int = notifiers.MAX_BATCH) -> dict[str, int]:
    """Send an alert to each of its devices once; safe to run again after any failure (a push is
    repeated only when its worker died with it in flight, and then under the same collapse id).
    Handles ``alert.created`` and ``alert.confirmed``: the second targets the commuters a confirmed
    cluster alert now reaches; devices already recorded are not sent to again."""
    alert = db.session.get(Alert, uuid.UUID(alert_id))
    # Settled: sent (and nothing waits for commuters), or failed (the outbox gave up on it).
    if alert is None or alert.status == "failed" or (alert.status == "sent" and alert.public_push != "due"):
        return {}
    with _send_lock(alert.id) as held:
        if not held:
            raise AlertBeingSent(f"alert {alert_id} is being sent by another worker")
        db.session.refresh(alert)  # a run that held the lock before this one may have finished it
        if alert.status == "failed" or (alert.status == "sent" and alert.public_push != "due"):
            return {}
        return _send_locked(alert, batch)


@contextmanager
def _send_lock(alert_id: uuid.UUID) -> Iterator[bool]:
    """The alert's send lock, held on a connection of its own for the whole run (not in a transaction,
    which would hold back vacuum for minutes). A killed worker's connection closes and frees it."""
    key = {"key": f"alerts.send:{alert_id}"}
    with db.engine.connect() as connection:
        held = connection.execute(text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"), key).scalar()
        connection.commit()
        try:
            yield held
        finally:
            if held:
                connection.execute(text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), key)
                connection.commit()


def _send_locked(alert: Alert, batch: int) -> dict[str, int]:
    session = db.session
    alert_id = str(alert.id)
    # The row lock orders this against a confirmation (confirm_public_push): commuters are targeted by
    # the run that sees their push due, and marked done in the same commit.
    public_push = session.scalar(select(Alert.public_push).where(Alert.id == alert.id).with_for_update())
    session.execute(update(Alert).where(Alert.id == alert.id).values(
        status="sending", public_push="done" if public_push == "due" else public_push))
    if alert.kind == "cluster":
        session.execute(_TARGET_CLUSTER, {"alert_id": alert.id, "commuters": public_push != "awaiting_confirmation"})
    else:
        session.execute(_TARGET_MANUAL, {"alert_id": alert.id})
    # Under the lock, a delivery still 'sending' was handed to FCM by a worker that died before it
    # recorded the answer: in doubt, so sent again (same collapse id). Transient failures are due again too.
    in_doubt = session.scalar(text("SELECT count(*) FROM alert_deliveries WHERE alert_id = :a AND status = 'sending'"),
                              {"a": alert.id})
    session.execute(text("UPDATE alert_deliveries SET status = 'pending' WHERE alert_id = :a AND status IN ('sending', 'retry')"),
                    {"a": alert.id})
    session.commit()
    if in_doubt:
        log.warning("alert %s: %d push(es) in doubt (their worker died mid-send): sending again under the same "
                    "collapse id, so a phone that got the first shows one notification", alert_id, in_doubt)
    send = notifiers.notifier().send
    payload = _payload(alert)
    commuter_body = _commuter_body(alert) if alert.kind == "cluster" else alert.body
    while True:
        claimed = session.execute(_CLAIM, {"alert_id": alert.id, "batch": batch}).all()
        session.commit()
        if not claimed:
            break
        gone = [row.device_id for row in claimed if row.token is None]
        live = [row for row in claimed if row.token is not None]
        try:
            outcomes = send([
                notifiers.Push(row.token, alert.title, alert.body if row.audience == "staff" else commuter_body, payload,
                               collapse_id=alert_id)
                for row in live
            ]) if live else []
        except Exception as exc:  # the whole batch failed (FCM unreachable, credentials refused): try later
            log.warning("alert %s: a batch of %d failed: %s", alert_id, len(live), exc)
            outcomes = [notifiers.Outcome(False, transient=True, error=f"{type(exc).__name__}"[:300]) for _ in live]
        ids, statuses, errors, dead = [], [], [], []
        for row, outcome in zip(live, outcomes):
            ids.append(row.device_id)
            if outcome.sent:
                statuses.append("sent")
            elif outcome.dead_token:
                statuses.append("pruned")
                dead.append(row.token)
            else:
                statuses.append("retry" if outcome.transient else "failed")
            errors.append(outcome.error)
        for device_id in gone:
            ids.append(device_id)
            statuses.append("failed")
            errors.append("device removed before sending")
        session.execute(_RECORD, {"alert_id": alert.id, "device_ids": ids, "statuses": statuses, "errors": errors})
        prune_tokens(dead)
        session.commit()
    unfinished = session.execute(_FIGURES, {"alert_id": alert.id}).scalar()
    if not unfinished:
        # In the commit that marks it sent, under the lock: announced once.
        outbox.publish(ALERT_SENT, {"alert_id": alert_id})
    session.commit()
    session.refresh(alert)
    figures = {k: getattr(alert, k) for k in ("targeted", "sent", "failed", "pruned")}
    if unfinished:
        raise TransientFailures(f"alert {alert_id}: {unfinished} device(s) to try again")
    log.info("alert %s sent: %s", alert_id, figures)
    return figures


def give_up_sending(alert_id: str, error: str) -> None:
    """The fan-out failed its last attempt (the outbox gives up: ``on_give_up``): the devices not yet
    reached are counted failed, and the alert is ``failed`` with the last error (the dashboard shows
    it). The caller commits."""
    alert_uuid = uuid.UUID(alert_id)
    db.session.execute(text("""
        UPDATE alert_deliveries SET status = 'failed', last_error = coalesce(last_error, :error),
               updated_at = clock_timestamp()
        WHERE alert_id = :a AND status IN ('pending', 'sending', 'retry')
    """), {"a": alert_uuid, "error": error[:300]})
    db.session.execute(_FIGURES, {"alert_id": alert_uuid})
    db.session.execute(update(Alert).where(Alert.id == alert_uuid).values(status="failed", last_error=error[:1000]))
    log.error("alert %s failed: its fan-out gave up: %s", alert_id, error)


_NEARBY = text("""
    SELECT id FROM alerts
    WHERE expires_at > :now AND public_push <> 'awaiting_confirmation'  -- not public until a person confirms
      AND ST_DWithin(area::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, coalesce(radius_m, 0))
    ORDER BY created_at DESC
    LIMIT 100
""")


def active_alerts_at(lon: float, lat: float, now: datetime | None = None) -> list[Alert]:
    """Active alerts whose area covers a point, newest first (cluster alerts once confirmed)."""
    ids = db.session.scalars(_NEARBY, {"lon": lon, "lat": lat, "now": now or datetime.now(timezone.utc)}).all()
    alerts = {a.id: a for a in db.session.scalars(select(Alert).where(Alert.id.in_(ids)))}
    return [alerts[i] for i in ids]


def _commuter_body(alert: Alert) -> str:
    """What opted-in commuters near a cluster are told: the nearest safe hubs open now."""
    centre = to_shape(alert.area)
    hubs = nearest_hubs(centre.x, centre.y, 3, open_now=True, at=datetime.now(timezone.utc), tz=current_settings().tz)
    places = "; ".join(f"{h.hub.name} ({round(h.distance_m / 10) * 10:.0f} m)" for h in hubs)
    return f"{alert.body} Nearest open safe places: {places}." if places else alert.body
