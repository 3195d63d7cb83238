"""Reporter updates ("you said, we did"): when staff move a report to a status in
REPORTER_UPDATE_STATUSES, the reporter's own devices that want updates get a push with the new status
and the public note, in each device's language (messages/<language>.json, English as the fallback).
Nobody else's device is told: the devices are chosen by the report's author, in one query.

Runs in its outbox task's transaction (``report.status_changed``). FCM has no idempotency key, so a
task run again after a crash may push again: every push of one change carries the same collapse id,
so the phone replaces the first instead of showing two.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path

from sqlalchemy import text

from backend.alerts import notifier as notifiers
from backend.config import current_settings
from backend.devices.service import prune_tokens
from backend.extensions import db

log = logging.getLogger(__name__)

MESSAGES = Path(__file__).with_name("messages")
FALLBACK = "en"


@cache
def catalogue(language: str) -> dict[str, str]:
    path = MESSAGES / f"{language}.json"
    if language != FALLBACK and not path.is_file():
        return catalogue(FALLBACK)
    messages = json.loads(path.read_text(encoding="utf-8"))
    return messages if language == FALLBACK else {**catalogue(FALLBACK), **messages}


def languages() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in MESSAGES.glob("*.json")))


def language_of(locale: str | None) -> str:
    """A BCP 47 tag's language, if there is a catalogue for it: "cy-GB" -> "cy", "pt-BR" -> "en"."""
    primary = (locale or FALLBACK).split("-")[0].lower()
    return primary if primary in languages() else FALLBACK


def update_message(locale: str | None, status: str, category: str, day: str, note: str | None) -> tuple[str, str]:
    """The title and body of an update, in the device's language."""
    messages = catalogue(language_of(locale))
    update = messages[f"report_update.{status}"].format(category=messages[f"category.{category}"], day=day)
    body = messages["report_update.with_note"].format(update=update, note=note) if note else update
    return messages["report_update.title"], body


_DEVICES = text("""
    SELECT d.token, d.locale, r.category, r.occurred_at
    FROM reports r JOIN devices d ON d.user_id = r.author_id AND d.updates
    WHERE r.id = :report_id
""")


def notify_reporter(report_id: str, status: str, change_id: int) -> int:
    """Push a report's new status to its author's devices; returns how many pushes FCM took."""
    settings = current_settings()
    if status not in settings.reporter_update_statuses:
        return 0
    note = db.session.scalar(text("SELECT public_note FROM report_status_changes WHERE id = :id"), {"id": change_id})
    devices = db.session.execute(_DEVICES, {"report_id": report_id}).all()
    if not devices:
        return 0
    data = {"type": "report_update", "report_id": report_id, "status": status,
            "deep_link": f"safetravel://reports/{report_id}"}
    pushes = []
    for device in devices:
        day = device.occurred_at.astimezone(settings.tz).date().isoformat()
        title, body = update_message(device.locale, status, device.category, day, note)
        pushes.append(notifiers.Push(device.token, title, body, data, collapse_id=f"report-{report_id}-{change_id}"))
    outcomes = notifiers.notifier().send(pushes)
    prune_tokens([p.token for p, o in zip(pushes, outcomes) if o.dead_token])
    if any(o.transient for o in outcomes):
        log.warning("report %s: %d update push(es) failed for now", report_id, sum(o.transient for o in outcomes))
    return sum(o.sent for o in outcomes)
