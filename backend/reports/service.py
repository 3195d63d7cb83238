"""Reports: create (idempotently), read, list, triage. Views and jobs call these; they call the DB.

Idempotency rests on a unique constraint, ``(author_id, idempotency_key)``, and
``INSERT ... ON CONFLICT DO NOTHING``: concurrent replays of one key serialise on the index, and
all but the first find the stored report. A replay with a different body is a conflict.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import psycopg
from sqlalchemy import and_, delete, func, or_, select, text, tuple_, update
from sqlalchemy.exc import DBAPIError

from backend import transient
from backend.auth import Principal
from backend.config import current_settings
from backend.councils.models import CouncilArea
from backend.extensions import db
from backend.outbox import registry
from backend.outbox import service as outbox
from backend.reports.models import Report, ReportStatusChange
from backend.users.service import IDENTITY_CTE, find_user_id

# What this domain announces (backend/outbox/registry.py); it does not know who listens.
REPORT_CREATED = "report.created"
REPORTS_DELETING = "reports.deleting"
REPORT_STATUS_CHANGED = "report.status_changed"


class IdempotencyConflict(Exception):
    """The key was used before, for a different report."""


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Created:
    report: Any  # a row with the report's columns
    replayed: bool


def request_fingerprint(body: dict[str, Any]) -> bytes:
    """What makes two submissions "the same body": the JSON, key order and spacing aside."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).digest()


# One round trip stores a report: find or create the author's identity link, insert the report
# unless its idempotency key was used, publish ``report.created`` (a task for each handler the
# registry has for it), and wake the outbox relay.
# ``author_id`` comes back NULL only when a brand-new user's first reports race; then we retry.
# Built once the handlers are registered (their ``when`` conditions are part of the text: a webhooks
# task only while a partner subscribes), and again if they change.
def _create_sql() -> Any:
    return text(f"""
    WITH {IDENTITY_CTE}
    , report AS (
        INSERT INTO reports (author_id, category, subcategory, occurred_at, location, accuracy_m, route, mode, line,
                             station, factors, description, idempotency_key, request_hash)
        SELECT identity.id, :category, :subcategory, :occurred_at, ST_GeomFromWKB(:location, 4326), :accuracy_m,
               ST_GeomFromWKB(:route, 4326), :mode, :line, :station, :factors, :description, :idempotency_key,
               :request_hash
        FROM identity
        ON CONFLICT ON CONSTRAINT uq_reports_author_idempotency_key DO NOTHING
        RETURNING *
    ), tasks AS ({outbox.tasks_cte(
        REPORT_CREATED, "report", payload="jsonb_build_object('report_id', report.id)",
        attributes="jsonb_build_object('category', report.category)")}
    )
    SELECT (SELECT id FROM identity) AS author_id_checked, report.*, pg_notify('{outbox.CHANNEL}', '') AS notified
    FROM (SELECT) AS one LEFT JOIN report ON true
""").columns(*Report.__table__.columns, author_id_checked=Report.author_id.type)


_RESULT_TYPES = {column.name: column.type for column in Report.__table__.columns}


def _execute_create(params: dict[str, Any]) -> SimpleNamespace:
    """The ingest statement on the session's psycopg connection, as a statement psycopg prepares once
    per connection: on the hot path SQLAlchemy's compile and result machinery cost more CPU than the
    statement (docs/benchmarks.md). Same transaction as the session's; columns converted by their
    SQLAlchemy types, as ``db.session.execute`` would."""
    connection = db.session.connection()
    dialect = connection.dialect
    sql = _compiled_create(dialect, registry.version())
    driver = connection.connection.driver_connection
    try:
        cursor = driver.execute(sql, params, prepare=True)
        values = cursor.fetchone()
    except psycopg.Error as error:
        # As SQLAlchemy would raise it (the app answers a lost database 503, retries a deadlock): a raw
        # psycopg error would be a 500. A broken connection is invalidated, not returned to the pool.
        # The parameters are a report: never in the message.
        lost = dialect.is_disconnect(error, driver, None)
        wrapped = DBAPIError.instance(sql, params, error, psycopg.Error, hide_parameters=True,
                                      connection_invalidated=lost, dialect=dialect)
        if lost:
            connection.invalidate(wrapped)
        raise wrapped from error
    row = {}
    for column, value in zip(cursor.description, values, strict=True):
        processor = _result_processor(dialect, column.name, column.type_code)
        row[column.name] = processor(value) if processor is not None and value is not None else value
    return SimpleNamespace(**row)


@functools.lru_cache(maxsize=4)
def _compiled_create(dialect: Any, _handlers_version: int) -> str:
    return str(_create_sql().compile(dialect=dialect))


@functools.cache
def _result_processor(dialect: Any, name: str, type_code: int) -> Any:
    column_type = _RESULT_TYPES.get(name)
    return column_type._cached_result_processor(dialect, type_code) if column_type is not None else None  # noqa: SLF001


def _insert(uid: str, data: dict[str, Any], key: uuid.UUID | None, fingerprint: bytes) -> Created:
    transport = data.get("transport") or {}
    params = {
        "uid": uid,
        "category": data["category"],
        "subcategory": data.get("subcategory"),
        "occurred_at": data["occurred_at"],
        "location": data["location"].wkb,
        "accuracy_m": data.get("accuracy_m"),
        "route": data["route"].wkb if data.get("route") is not None else None,
        "mode": transport.get("mode"),
        "line": transport.get("line") or None,
        "station": transport.get("station") or None,
        "factors": data.get("factors") or [],
        "description": data.get("description") or None,
        "idempotency_key": key,
        "request_hash": fingerprint,
        **outbox.tasks_params(REPORT_CREATED),
    }
    for _ in range(2):
        row = _execute_create(params)
        if row.author_id_checked is not None:
            break
    if row.id is not None:
        return Created(row, replayed=False)
    existing = db.session.execute(
        select(*Report.__table__.columns).where(
            Report.author_id == row.author_id_checked, Report.idempotency_key == key
        )
    ).one()
    if existing.request_hash != fingerprint:
        raise IdempotencyConflict(key)
    return Created(existing, replayed=True)


def create_report(uid: str, data: dict[str, Any], fingerprint: bytes, key: uuid.UUID | None) -> Created:
    """Store a report with its follow-up work (one statement; the caller commits)."""
    return _insert(uid, data, key, fingerprint)


@dataclass(frozen=True)
class BatchItem:
    index: int
    client_id: uuid.UUID | str | None
    data: dict[str, Any] | None
    fingerprint: bytes | None
    errors: dict[str, Any] | None = None


@dataclass(frozen=True)
class BatchOutcome:
    index: int
    client_id: uuid.UUID | str | None
    status: int
    report: Any = None
    errors: dict[str, Any] | None = None


def create_batch(uid: str, items: list[BatchItem]) -> list[BatchOutcome]:
    """Store each valid item (its ``client_id`` its idempotency key); one bad item sinks no other.
    One transaction for the whole batch (the caller commits)."""
    outcomes: list[BatchOutcome] = []
    for item in items:
        if item.errors is not None:
            outcomes.append(BatchOutcome(item.index, item.client_id, 422, errors=item.errors))
            continue
        try:
            created = _insert(uid, item.data, item.client_id, item.fingerprint)
        except IdempotencyConflict:
            outcomes.append(BatchOutcome(
                item.index, item.client_id, 409, errors={"client_id": ["was already used for a different report"]},
            ))
            continue
        outcomes.append(BatchOutcome(item.index, item.client_id, 201, report=created.report))
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


def _encode_opaque_cursor(report: Report) -> str:
    return base64.urlsafe_b64encode(report.id.bytes).decode().rstrip("=")


def _decode_opaque_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidCursor(cursor) from None


def _page(query, limit: int, cursor: str | None, exact_times: bool = True) -> tuple[list[Report], str | None]:
    """Newest first, keyset-paginated on (created_at, id), which ix_reports_created_at_id serves.
    Without ``exact_times`` (council listings) the cursor holds the last report's id only, and the
    database looks up its time: a cursor never tells a time the page itself does not."""
    if cursor and exact_times:
        created_at, report_id = _decode_cursor(cursor)
        query = query.where(
            or_(Report.created_at < created_at, and_(Report.created_at == created_at, Report.id < report_id))
        )
    elif cursor:
        last_id = _decode_opaque_cursor(cursor)
        last_created = select(Report.created_at).where(Report.id == last_id).scalar_subquery()
        query = query.where(tuple_(Report.created_at, Report.id) < tuple_(last_created, last_id))
    rows = db.session.scalars(query.order_by(Report.created_at.desc(), Report.id.desc()).limit(limit + 1)).all()
    encode = _encode_cursor if exact_times else _encode_opaque_cursor
    next_cursor = encode(rows[limit - 1]) if len(rows) > limit else None
    return list(rows[:limit]), next_cursor


def list_reports(
    *,
    limit: int,
    cursor: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    category: list[str] | None = None,
    status: list[str] | None = None,
    mode: list[str] | None = None,
    from_: date | None = None,
    to: date | None = None,
    council: str | None = None,
) -> tuple[list[Report], str | None]:
    """Staff triage and council listings. ``council`` limits to reports inside that council's area.
    ``from_`` and ``to`` are local days of ``occurred_at``, both included (SQL ``local_midnight``)."""
    query = select(Report)
    if bbox:
        query = query.where(func.ST_Intersects(Report.location, func.ST_MakeEnvelope(*bbox, 4326)))
    if category:
        query = query.where(Report.category.in_(category))
    if status:
        query = query.where(Report.status.in_(status))
    if mode:
        query = query.where(Report.mode.in_(mode))
    tz = current_settings().city_timezone
    if from_:
        query = query.where(Report.occurred_at >= func.local_midnight(from_, tz))
    if to:
        query = query.where(Report.occurred_at < func.local_midnight(to + timedelta(days=1), tz))
    if council:
        area = select(CouncilArea.geom).where(CouncilArea.code == council).scalar_subquery()
        query = query.where(func.ST_Intersects(Report.location, area))
    return _page(query, limit, cursor, exact_times=council is None)


def _to_the_hour(at: datetime | None) -> datetime | None:
    return at.replace(minute=0, second=0, microsecond=0) if at else None


def council_view(reports: list[Report], council: str) -> list[dict[str, Any]]:
    """What a council officer sees of reports in its area (docs/privacy.md): no free text (description,
    status note, and the transport line and station, which people fill with names and numbers), times
    to the hour, and a route clipped to the council's area (null when no part of it lies inside)."""
    routed = [r.id for r in reports if r.route is not None]
    clipped: dict[uuid.UUID, Any] = {}
    if routed:
        clipped = dict(db.session.execute(text("""
            SELECT r.id, CASE WHEN ST_IsEmpty(part) THEN NULL ELSE ST_AsGeoJSON(part, 7)::json END
            FROM reports r, council_areas a,
                 LATERAL (SELECT CASE WHEN ST_CoveredBy(r.route, a.geom) THEN r.route
                                      ELSE ST_CollectionExtract(ST_Intersection(r.route, a.geom), 2) END AS part) AS p
            WHERE r.id = ANY(:ids) AND a.code = :council
        """), {"ids": routed, "council": council}).all())
    return [{
        "id": r.id, "category": r.category, "subcategory": r.subcategory,
        "occurred_at": _to_the_hour(r.occurred_at), "location": r.location, "accuracy_m": r.accuracy_m,
        "route": clipped.get(r.id), "transport": {"mode": r.mode} if r.mode else None, "factors": r.factors,
        "status": r.status, "public_note": r.public_note, "created_at": _to_the_hour(r.created_at),
        "updated_at": _to_the_hour(r.updated_at),
    } for r in reports]


def list_own_reports(principal: Principal, *, limit: int, cursor: str | None) -> tuple[list[Report], str | None]:
    """The caller's reports, newest first, each with its status history (``with_history``)."""
    author_id = find_user_id(principal.uid)
    if author_id is None:
        return [], None
    items, next_cursor = _page(select(Report).where(Report.author_id == author_id), limit, cursor)
    return with_history(items), next_cursor


def with_history(reports: list[Report]) -> list[Report]:
    """Give each report its ``status_history`` as its author may see it: received when it was, then each
    triage's status and public note (never the internal note), oldest first. One query for the page."""
    changes: dict[uuid.UUID, list[dict[str, Any]]] = {r.id: [] for r in reports}
    for row in db.session.execute(
        select(ReportStatusChange.report_id, ReportStatusChange.status, ReportStatusChange.public_note,
               ReportStatusChange.changed_at)
        .where(ReportStatusChange.report_id.in_(list(changes)))
        .order_by(ReportStatusChange.changed_at, ReportStatusChange.id)
    ):
        changes[row.report_id].append({"status": row.status, "public_note": row.public_note, "changed_at": row.changed_at})
    for report in reports:
        report.status_history = [{"status": "received", "public_note": None, "changed_at": report.created_at},
                                 *changes[report.id]]
    return reports


def triage(report_id: uuid.UUID, status: str, note: str | None, staff: Principal,
           public_note: str | None = None) -> Report | None:
    """Move a report to a status, recording who did it and why (the caller commits). None: no such report.
    A new status is announced as ``report.status_changed``."""
    previous = db.session.scalar(select(Report.status).where(Report.id == report_id).with_for_update())
    if previous is None:
        return None
    report = db.session.scalar(
        update(Report)
        .where(Report.id == report_id)
        .values(status=status, status_note=note, public_note=public_note, updated_at=datetime.now(timezone.utc))
        .returning(Report)
    )
    change = ReportStatusChange(report_id=report_id, status=status, note=note, public_note=public_note,
                                changed_by=staff.uid)
    db.session.add(change)
    db.session.flush()
    if status != previous:
        outbox.publish(REPORT_STATUS_CHANGED, {"report_id": str(report_id), "status": status, "change_id": change.id},
                       category=report.category)
    return report


def delete_expired_batch(retention_days: int, *, batch: int = 5000, now: datetime | None = None) -> int:
    """Delete up to ``batch`` reports received more than ``retention_days`` ago (the daily
    ``purge_expired_reports`` job calls this until it returns 0, committing each batch). Announced
    first as ``reports.deleting``, in the same transaction, so that the aggregates can keep what the
    reports added to them; their triage history goes with them. Returns how many were deleted."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=retention_days)

    def delete_batch() -> int:
        # Reports taken with SKIP LOCKED: it never waits for one a worker holds.
        ids = list(db.session.scalars(
            select(Report.id).where(Report.created_at < cutoff).order_by(Report.created_at).limit(batch)
            .with_for_update(skip_locked=True)
        ))
        if ids:
            outbox.publish(REPORTS_DELETING, {"report_ids": ids})
            db.session.execute(delete(Report).where(Report.id.in_(ids)))
        return len(ids)

    return transient.retrying(delete_batch, "retention purge")
