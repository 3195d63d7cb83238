"""Council exports: request one (scope checked, audited), build its file in a worker, serve and expire it.

The API records the export and its ``exports.build`` outbox task in one transaction (answered 202);
a worker runs ``build_export``: the ranking query (``lighting.py``) streams through a server-side
cursor into a writer (``writers.py``), so the worker's memory stays flat however many reports there
are. The file is written under a temporary name and renamed when complete: a worker killed
mid-file leaves no half file behind, and the retried job starts again from the top.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, Polygon
from sqlalchemy import func, select, update

from backend.audit import service as audit
from backend.auth import Principal
from backend.config import current_settings
from backend.councils.models import CouncilArea
from backend.exports import lighting, writers
from backend.exports.models import Export
from backend.extensions import db
from backend.outbox import service as outbox
from backend.streets.service import covers

log = logging.getLogger(__name__)

# What this domain announces (backend/outbox/registry.py): its own handler builds the file.
EXPORT_REQUESTED = "export.requested"
FETCH_ROWS = 5000
PROGRESS_EVERY_S = 1.0
# The ranking sorts and hashes millions of (report, place) pairs: give its transaction more memory
# than an API query gets, so that they stay off disk (one export runs per worker at a time).
WORK_MEM = "64MB"
# Progress: the query's share of the work (the ranking is complete before the first row arrives).
QUERY_PROGRESS = 10


class OutsideScope(Exception):
    """A council asked for an area that is not (wholly) its own."""


class UnknownCouncil(Exception):
    """No council area has this code."""


def request_export(principal: Principal, data: dict[str, Any]) -> Export:
    """Record an export, publish ``export.requested`` (a worker builds the file) and audit the request;
    the caller commits. Raises OutsideScope or UnknownCouncil."""
    council = data.get("council")
    if council is not None:
        if principal.is_council and council != principal.council:
            raise OutsideScope
        area = db.session.scalar(select(CouncilArea.geom).where(CouncilArea.code == council))
        if area is None:
            raise UnknownCouncil
    else:
        polygon: Polygon = data["area"]
        area = from_shape(MultiPolygon([polygon]), srid=4326)
        if principal.is_council:
            inside = db.session.scalar(
                select(func.ST_CoveredBy(area, CouncilArea.geom)).where(CouncilArea.code == principal.council))
            if not inside:
                raise OutsideScope
    export = Export(
        id=uuid.uuid4(), kind=data["kind"], format=data["format"], requested_by=principal.uid,
        requester_role=principal.role, council=council, area=area,
        period_from=data["from_"], period_to=data["to"], min_reporters=data["min_reporters"],
    )
    db.session.add(export)
    db.session.flush()
    outbox.publish(EXPORT_REQUESTED, {"export_id": str(export.id)})
    audit.record(principal, "export.requested", "export", export.id, kind=export.kind, format=export.format,
                 council=council, area=None if council else data["area"].wkt[:20000],
                 period=[export.period_from.isoformat(), export.period_to.isoformat()],
                 min_reporters=export.min_reporters)
    return export


def get_export(export_id: uuid.UUID, principal: Principal) -> Export | None:
    """An export its requester or staff may see; None otherwise (so that it answers 404)."""
    export = db.session.get(Export, export_id)
    if export is None or not (principal.is_staff or export.requested_by == principal.uid):
        return None
    return export


def list_exports(principal: Principal, limit: int = 50) -> list[Export]:
    """The caller's exports, newest first (staff: everyone's)."""
    query = select(Export).order_by(Export.created_at.desc()).limit(limit)
    if not principal.is_staff:
        query = query.where(Export.requested_by == principal.uid)
    return list(db.session.scalars(query))


def file_path(export: Export) -> Path:
    return Path(current_settings().export_dir) / f"{export.id}.{writers.EXTENSIONS[export.format]}"


def download_name(export: Export) -> str:
    where = export.council or "area"
    return (f"safetravel-lighting-{where}-{export.period_from.isoformat()}-{export.period_to.isoformat()}"
            f".{writers.EXTENSIONS[export.format]}")


def record_download(principal: Principal, export: Export) -> None:
    audit.record(principal, "export.downloaded", "export", export.id, format=export.format, council=export.council)


def _set(export_id: uuid.UUID, **values: Any) -> None:
    """Update an export outside the job's transaction, so that readers see progress as it happens."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(update(Export).where(Export.id == export_id).values(**values))


def build_export(export_id: str) -> dict[str, Any]:
    """Write an export's file (the ``exports.build`` task). Runs again from the top when retried."""
    settings = current_settings()
    export = db.session.get(Export, uuid.UUID(export_id))
    if export is None:
        return {"status": "gone"}
    if export.status == "done" and export.file_name:
        return {"status": "already done"}
    places = "segments" if covers(export.area) else "cells"
    target = file_path(export)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{export.id}.part.{writers.EXTENSIONS[export.format]}")
    started = time.monotonic()
    _set(export.id, status="running", progress=0, started_at=datetime.now(timezone.utc), error=None, places=places)
    try:
        rows, unmatched = _write(export, places, partial, settings)
        os.replace(partial, target)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        _set(export.id, status="failed", error=f"{type(exc).__name__}: {exc}"[:1000])
        raise
    now = datetime.now(timezone.utc)
    db.session.execute(update(Export).where(Export.id == export.id).values(
        status="done", progress=100, rows=rows, places=places, unmatched_reports=unmatched, error=None,
        file_name=download_name(export), file_bytes=target.stat().st_size, finished_at=now,
        expires_at=now + timedelta(days=settings.export_ttl_days),
    ))
    log.info("export %s: %d %s in %.1f s", export.id, rows, places, time.monotonic() - started)
    return {"status": "done", "rows": rows}


def _write(export: Export, places: str, path: Path, settings: Any) -> tuple[int, int | None]:
    writer = writers.open_writer(export.format, path, places)
    params = {"export_id": export.id, "tz": settings.city_timezone, "match_m": settings.street_match_m}
    sql = lighting.ranking_sql(places, writer.geometry)
    connection = db.session.connection().connection.driver_connection
    written, unmatched, total = 0, None, None
    last_progress_at = 0.0
    connection.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
    with connection.cursor(name=f"export_{export.id.hex}") as cursor:
        cursor.itersize = FETCH_ROWS
        cursor.execute(sql, params)
        columns = [c.name for c in cursor.description]
        with writer:
            while batch := cursor.fetchmany(FETCH_ROWS):
                if total is None:
                    total = batch[0][columns.index("total_rows")]
                    if "unmatched" in columns:
                        unmatched = batch[0][columns.index("unmatched")]
                writer.write(columns, batch)
                written += len(batch)
                if time.monotonic() - last_progress_at >= PROGRESS_EVERY_S:
                    last_progress_at = time.monotonic()
                    share = written / total if total else 1
                    _set(export.id, progress=min(99, QUERY_PROGRESS + int((100 - QUERY_PROGRESS) * share)))
    if unmatched is None and places == "segments":
        unmatched = 0
    return written, unmatched


def delete_expired_files(now: datetime | None = None) -> int:
    """Delete the files of expired exports (the scheduled ``purge_exports`` job, which commits); the
    export rows stay as the record of what was exported. Also removes partial files a killed worker
    left a day ago."""
    now = now or datetime.now(timezone.utc)
    expired = list(db.session.scalars(
        select(Export).where(Export.expires_at <= now, Export.deleted_at.is_(None)).with_for_update(skip_locked=True)))
    for export in expired:
        file_path(export).unlink(missing_ok=True)
        export.deleted_at = now
    db.session.flush()
    directory = Path(current_settings().export_dir)
    if directory.is_dir():
        for partial in directory.glob("*.part.*"):
            if partial.stat().st_mtime < time.time() - 86400:
                partial.unlink(missing_ok=True)
    return len(expired)

