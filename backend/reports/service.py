"""Reports: create (idempotently), read, list, triage. Views and jobs call these; they call the DB.

Idempotency rests on a unique constraint, ``(author_id, idempotency_key)``, and
``INSERT ... ON CONFLICT DO NOTHING``: concurrent replays of one key serialise on the index, and
all but the first find the stored report. A replay with a different body is a conflict.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from geoalchemy2.shape import from_shape
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from backend.auth import Principal
from backend.councils.models import CouncilArea
from backend.extensions import db
from backend.outbox import service as outbox
from backend.reports.models import Report, ReportStatusChange
from backend.reports.vocabulary import CLUSTER_CATEGORIES
from backend.users.service import find_user_id, user_id_for

# Follow-up work for each new report (worker/tasks.py maps these names to services).
HEATMAP_TASK = ("heatmap.apply_report", "heatmap")
CLUSTER_TASK = ("alerts.check_cluster", "alerts")


class IdempotencyConflict(Exception):
    """The key was used before, for a different report."""


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Created:
    report: Report
    replayed: bool


def request_fingerprint(body: dict[str, Any]) -> bytes:
    """What makes two submissions "the same body": the JSON, key order and spacing aside."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).digest()


def _columns(data: dict[str, Any]) -> dict[str, Any]:
    transport = data.get("transport") or {}
    return {
        "category": data["category"],
        "subcategory": data.get("subcategory"),
        "occurred_at": data["occurred_at"],
        "location": from_shape(data["location"], srid=4326),
        "accuracy_m": data.get("accuracy_m"),
        "route": from_shape(data["route"], srid=4326) if data.get("route") is not None else None,
        "mode": transport.get("mode"),
        "line": transport.get("line") or None,
        "station": transport.get("station") or None,
        "factors": data.get("factors") or [],
        "description": data.get("description") or None,
    }


def _insert(author_id: uuid.UUID, data: dict[str, Any], key: uuid.UUID | None, fingerprint: bytes) -> Created:
    statement = (
        insert(Report)
        .values(author_id=author_id, idempotency_key=key, request_hash=fingerprint, **_columns(data))
        .on_conflict_do_nothing(constraint="uq_reports_author_idempotency_key")
        .returning(Report)
    )
    report = db.session.scalar(select(Report).from_statement(statement))
    if report is not None:
        return Created(report, replayed=False)
    existing = db.session.scalar(
        select(Report).where(Report.author_id == author_id, Report.idempotency_key == key)
    )
    if existing.request_hash != fingerprint:
        raise IdempotencyConflict(key)
    return Created(existing, replayed=True)


def _follow_ups(report: Report) -> list:
    tasks = [outbox.add(HEATMAP_TASK[0], HEATMAP_TASK[1], {"report_id": str(report.id)})]
    if report.category in CLUSTER_CATEGORIES:
        tasks.append(outbox.add(CLUSTER_TASK[0], CLUSTER_TASK[1], {"report_id": str(report.id)}))
    return tasks


def create_report(
    author: Principal, data: dict[str, Any], raw_body: dict[str, Any], key: uuid.UUID | None
) -> Created:
    """Store a report and its follow-up work in one transaction, then queue the work."""
    author_id = user_id_for(author.uid)
    created = _insert(author_id, data, key, request_fingerprint(raw_body))
    tasks = [] if created.replayed else _follow_ups(created.report)
    db.session.commit()
    outbox.dispatch(tasks)
    return created


@dataclass(frozen=True)
class BatchItem:
    index: int
    client_id: uuid.UUID | None
    data: dict[str, Any] | None
    raw: dict[str, Any]
    errors: dict[str, Any] | None = None


@dataclass(frozen=True)
class BatchOutcome:
    index: int
    client_id: uuid.UUID | None
    status: int
    report: Report | None = None
    errors: dict[str, Any] | None = None


def create_batch(author: Principal, items: list[BatchItem]) -> list[BatchOutcome]:
    """Store each valid item (its ``client_id`` its idempotency key); one bad item sinks no other.

    One transaction for the batch, a savepoint per item, one dispatch at the end."""
    author_id = user_id_for(author.uid)
    outcomes: list[BatchOutcome] = []
    tasks = []
    for item in items:
        if item.errors is not None:
            outcomes.append(BatchOutcome(item.index, item.client_id, 422, errors=item.errors))
            continue
        try:
            with db.session.begin_nested():
                created = _insert(author_id, item.data, item.client_id, request_fingerprint(item.raw))
                if not created.replayed:
                    tasks.extend(_follow_ups(created.report))
        except IdempotencyConflict:
            outcomes.append(BatchOutcome(
                item.index, item.client_id, 409,
                errors={"client_id": ["was already used for a different report"]},
            ))
            continue
        outcomes.append(BatchOutcome(item.index, item.client_id, 201, report=created.report))
    db.session.commit()
    outbox.dispatch(tasks)
    return outcomes


def report_visible_to(principal: Principal, report_id: uuid.UUID) -> Report | None:
    """A report its author or staff may see; None for anyone else (the API answers 404)."""
    report = db.session.get(Report, report_id)
    if report is None:
        return None
    if principal.is_staff:
        return report
    author_id = find_user_id(principal.uid)
    return report if author_id is not None and report.author_id == author_id else None


def _encode_cursor(report: Report) -> str:
    raw = f"{report.created_at.isoformat()}|{report.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, report_id = raw.split("|")
        parsed = datetime.fromisoformat(created_at)
        if parsed.tzinfo is None:
            raise ValueError
        return parsed, uuid.UUID(report_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor(cursor) from None


def _page(query, limit: int, cursor: str | None) -> tuple[list[Report], str | None]:
    """Newest first, keyset-paginated on (created_at, id), which ix_reports_created_at_id serves."""
    if cursor:
        created_at, report_id = _decode_cursor(cursor)
        query = query.where(
            or_(Report.created_at < created_at, and_(Report.created_at == created_at, Report.id < report_id))
        )
    rows = db.session.scalars(query.order_by(Report.created_at.desc(), Report.id.desc()).limit(limit + 1)).all()
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return list(rows[:limit]), next_cursor


def list_reports(
    *,
    limit: int,
    cursor: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    category: list[str] | None = None,
    status: list[str] | None = None,
    mode: list[str] | None = None,
    from_: datetime | None = None,
    to: datetime | None = None,
    council: str | None = None,
) -> tuple[list[Report], str | None]:
    """Staff triage and council listings. ``council`` limits to reports inside that council's area."""
    query = select(Report)
    if bbox:
        query = query.where(func.ST_Intersects(Report.location, func.ST_MakeEnvelope(*bbox, 4326)))
    if category:
        query = query.where(Report.category.in_(category))
    if status:
        query = query.where(Report.status.in_(status))
    if mode:
        query = query.where(Report.mode.in_(mode))
    if from_:
        query = query.where(Report.occurred_at >= from_)
    if to:
        query = query.where(Report.occurred_at < to)
    if council:
        area = select(CouncilArea.geom).where(CouncilArea.code == council).scalar_subquery()
        query = query.where(func.ST_Intersects(Report.location, area))
    return _page(query, limit, cursor)


def list_own_reports(principal: Principal, *, limit: int, cursor: str | None) -> tuple[list[Report], str | None]:
    author_id = find_user_id(principal.uid)
    if author_id is None:
        return [], None
    return _page(select(Report).where(Report.author_id == author_id), limit, cursor)


def triage(report_id: uuid.UUID, status: str, note: str | None, staff: Principal) -> Report | None:
    """Move a report to a status, recording who did it and why."""
    report = db.session.scalar(
        update(Report)
        .where(Report.id == report_id)
        .values(status=status, status_note=note, updated_at=datetime.now(timezone.utc))
        .returning(Report)
    )
    if report is None:
        db.session.rollback()
        return None
    db.session.add(ReportStatusChange(report_id=report_id, status=status, note=note, changed_by=staff.uid))
    db.session.commit()
    return report
