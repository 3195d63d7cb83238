"""Sending webhook deliveries: signed per Standard Webhooks, retried with backoff, never lost.

Each delivery is claimed with a lease (its next attempt pushed WEBHOOK_LEASE_S ahead, committed
before the POST), posted, and its outcome committed at once: a worker that dies mid-POST leaves it
due again after the lease, and it is sent again with the same ``webhook-id`` (receivers deduplicate
on it). A 2xx delivers it; 410 Gone disables the subscription and fails what waits for it; anything
else (another status, a refused connection, a timeout) is tried again after WEBHOOK_RETRY_BASE_S,
doubling up to WEBHOOK_RETRY_MAX_S, until WEBHOOK_RETRY_FOR_S after its first try (or its replay),
then it is failed. Redirects are not followed: a receiver answers where it was registered.

These functions commit on their own (the outbox handler is registered as such, handlers.py; the
periodic job calls ``deliver()`` for retries).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import requests
from sqlalchemy import text
from standardwebhooks import Webhook

from backend.config import current_settings
from backend.extensions import db
from backend.webhooks.models import webhook_id

log = logging.getLogger(__name__)

BATCH = 20
# A run stops taking deliveries after this long (its job is stopped at 300 s; a slow receiver takes up
# to WEBHOOK_TIMEOUT_S a POST): what it claimed and did not send is handed back, due at once.
BUDGET_S = 240
USER_AGENT = "SafeTravel-Webhooks/1"

_CLAIM = text("""
    WITH due AS MATERIALIZED (
        SELECT d.id FROM webhook_deliveries d
        WHERE d.status = 'pending' AND d.next_attempt_at <= clock_timestamp()
          AND (CAST(:ids AS uuid[]) IS NULL OR d.id = ANY(CAST(:ids AS uuid[])))
        ORDER BY d.next_attempt_at
        LIMIT :limit
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_deliveries d
    SET attempts = d.attempts + 1, last_attempt_at = clock_timestamp(),
        next_attempt_at = clock_timestamp() + make_interval(secs => :lease_s)
    FROM due, webhook_subscriptions s
    WHERE d.id = due.id AND s.id = d.subscription_id AND s.active
    RETURNING d.id, d.subscription_id, d.body, d.attempts, d.window_started_at, s.url, s.secret
""")

_DELIVERED = text("""
    UPDATE webhook_deliveries SET status = 'delivered', delivered_at = clock_timestamp(), next_attempt_at = NULL,
                                  last_status_code = :code, last_error = NULL
    WHERE id = :id
""")

_AGAIN = text("""
    UPDATE webhook_deliveries
    SET status = CASE WHEN clock_timestamp() + make_interval(secs => :delay_s)
                           > window_started_at + make_interval(secs => :retry_for_s) THEN 'failed' ELSE 'pending' END,
        next_attempt_at = CASE WHEN clock_timestamp() + make_interval(secs => :delay_s)
                           > window_started_at + make_interval(secs => :retry_for_s)
                          THEN NULL ELSE clock_timestamp() + make_interval(secs => :delay_s) END,
        last_status_code = :code, last_error = :error
    WHERE id = :id
    RETURNING status
""")

_GONE = text("""
    WITH off AS (
        UPDATE webhook_subscriptions SET active = false, updated_at = clock_timestamp(),
               disabled_reason = 'the receiver answered 410 Gone on ' || to_char(clock_timestamp() AT TIME ZONE 'UTC',
                                                                                 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        WHERE id = :subscription_id
    )
    UPDATE webhook_deliveries
    SET status = 'failed', next_attempt_at = NULL,
        last_status_code = CASE WHEN id = :id THEN 410 ELSE last_status_code END,
        last_error = CASE WHEN id = :id THEN 'the receiver answered 410 Gone: subscription disabled'
                          ELSE 'the subscription was disabled (410 Gone)' END
    WHERE id = :id OR (subscription_id = :subscription_id AND status = 'pending')
""")


_HAND_BACK = text("""
    UPDATE webhook_deliveries SET attempts = attempts - 1, next_attempt_at = clock_timestamp()
    WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'pending'
""")


def signed_headers(delivery_id: uuid.UUID, secret: str, body: str, now: datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt: the same webhook-id every time, a fresh timestamp."""
    now = now or datetime.now(timezone.utc)
    msg_id = webhook_id(delivery_id)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
    }


def backoff_s(attempts: int, base_s: int, max_s: int) -> int:
    """The wait after the ``attempts``-th failed try: base, 2 x base, 4 x base ... at most max."""
    return min(max_s, base_s * 2 ** min(attempts - 1, 30))


def _post(row: Any, timeout_s: int) -> tuple[int | None, str | None]:
    try:
        response = requests.post(row.url, data=row.body.encode(), headers=signed_headers(row.id, row.secret, row.body),
                                 timeout=timeout_s, allow_redirects=False)
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"[:300]
    return response.status_code, None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"


def deliver(delivery_ids: list[str] | None = None, *, limit: int = 1000, budget_s: float = BUDGET_S) -> dict[str, int]:
    """Send what is due (only ``delivery_ids`` if given), at most ``limit``, for about ``budget_s``;
    commits each outcome. Returns how many were delivered, will be tried again, failed."""
    settings = current_settings()
    started = time.monotonic()
    session = db.session
    figures = {"delivered": 0, "retry": 0, "failed": 0}
    ids = [uuid.UUID(str(i)) for i in delivery_ids] if delivery_ids is not None else None
    done = 0
    out_of_time = False
    while done < limit and not out_of_time:
        claimed = session.execute(_CLAIM, {"ids": ids, "limit": min(BATCH, limit - done),
                                           "lease_s": settings.webhook_lease_s}).all()
        session.commit()
        if not claimed:
            break
        done += len(claimed)
        for index, row in enumerate(claimed):
            if time.monotonic() - started >= budget_s:
                session.execute(_HAND_BACK, {"ids": [r.id for r in claimed[index:]]})
                session.commit()
                out_of_time = True
                break
            code, error = _post(row, settings.webhook_timeout_s)
            if error is None:
                session.execute(_DELIVERED, {"id": row.id, "code": code})
                figures["delivered"] += 1
            elif code == 410:
                session.execute(_GONE, {"id": row.id, "subscription_id": row.subscription_id})
                log.warning("webhook subscription %s answered 410 Gone: disabled", row.subscription_id)
                figures["failed"] += 1
            else:
                delay = backoff_s(row.attempts, settings.webhook_retry_base_s, settings.webhook_retry_max_s)
                status = session.execute(_AGAIN, {"id": row.id, "code": code, "error": error, "delay_s": delay,
                                                  "retry_for_s": settings.webhook_retry_for_s}).scalar()
                figures["retry" if status == "pending" else "failed"] += 1
                log.info("webhook delivery %s attempt %d: %s", webhook_id(row.id), row.attempts, error)
            session.commit()
    return figures

