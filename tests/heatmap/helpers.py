"""Reports straight into the database, counted into the heatmap as the worker would."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from shapely.geometry import LineString, Point

from backend.extensions import db
from backend.heatmap import service as heatmap
from backend.reports import service as reports


def add_report(author: str, lon: float, lat: float, occurred_at: datetime, category: str = "harassment",
               mode: str | None = None, route: list[tuple[float, float]] | None = None, count: bool = True) -> str:
    data = {
        "category": category,
        "occurred_at": occurred_at,
        "location": Point(lon, lat),
        "route": LineString(route) if route else None,
        "transport": {"mode": mode} if mode else None,
    }
    key = uuid.uuid4()
    created = reports.create_report(author, data, hashlib.sha256(key.bytes).digest(), key)
    report_id = str(created.report.id)
    if count:
        assert heatmap.apply_report(report_id)
        db.session.commit()  # as the outbox task does
    return report_id
