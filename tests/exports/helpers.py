"""Reports straight into the database, and exports built in-process as the worker would."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyogrio
from sqlalchemy import text

from backend.exports import service as exports
from backend.exports.models import Export
from backend.extensions import db
from backend.outbox import service as outbox
from tests import factories
from tests.factories import Caller

SECRET = "Tall man, red scarf, followed me from the bus stop"


def add_report(author: str, lon: float, lat: float, occurred_at: datetime, *, factors: tuple[str, ...] = (),
               route: list[tuple[float, float]] | None = None, category: str = "harassment") -> str:
    """A report carrying the SECRET description (which no export may contain); with a route, an unsafe route."""
    if route and category == "harassment":
        category = "unsafe_route"
    return factories.add_report(author, lon, lat, occurred_at, category=category, route=route, factors=factors,
                                description=SECRET)


def export_body(**overrides: Any) -> dict[str, Any]:
    body = {"kind": "lighting", "council": "E09000028", "from": "2026-01-01", "to": "2026-12-31", "format": "geojson"}
    for key, value in overrides.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def request(client, caller: Caller, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/exports", json=export_body(**overrides), headers=caller.headers())
    assert response.status_code == 202, response.json
    return response.json


def run_outbox(app) -> None:
    """Run pending outbox tasks in-process, as the worker would (in an app context of its own)."""
    with app.app_context():
        for task_id in db.session.scalars(text("SELECT id FROM outbox WHERE done_at IS NULL ORDER BY id")).all():
            outbox.run(task_id)


def export_file(app, export_id: str) -> Path:
    with app.app_context():
        return exports.file_path(db.session.get(Export, uuid.UUID(export_id)))


def built(client, caller: Caller, **overrides: Any) -> tuple[dict[str, Any], Path]:
    """Request an export, build it, and return its status and file."""
    created = request(client, caller, **overrides)
    run_outbox(client.application)
    status = client.get(f"/api/v1/exports/{created['id']}", headers=caller.headers()).json
    assert status["status"] == "done", status
    return status, export_file(client.application, created["id"])


def read_features(path: Path) -> list[dict[str, Any]]:
    """Every feature of a file, read back by GDAL (pyogrio), as attribute dicts with ``geometry`` (WKB)."""
    meta, _, geometries, values = pyogrio.raw.read(str(path))
    names = list(meta["fields"])
    rows = []
    for i in range(len(geometries) if geometries is not None else len(values[0]) if values else 0):
        row = {name: _plain(values[j][i]) for j, name in enumerate(names)}
        row["geometry"] = None if geometries is None else geometries[i]
        rows.append(row)
    return rows


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value
