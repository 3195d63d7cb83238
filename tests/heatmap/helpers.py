"""Reports straight into the database, counted into the heatmap as the worker would."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from backend.extensions import db
from backend.heatmap import counting
from tests import factories
from tests.appctx import app_context


def add_report(author: str, lon: float, lat: float, occurred_at: datetime, category: str = "harassment",
               mode: str | None = None, route: list[tuple[float, float]] | None = None, count: bool = True,
               filed_at: datetime | None = None) -> str:
    """A report, counted into the heatmap unless ``count=False``; ``filed_at`` backdates its submission
    (the public heatmap counts only reports filed while their week could change)."""
    report_id = factories.add_report(author, lon, lat, occurred_at, category=category, route=route, mode=mode)
    if filed_at is not None:
        db.session.execute(text("UPDATE reports SET created_at = :at WHERE id = :id"), {"at": filed_at, "id": report_id})
        db.session.commit()
    if count:
        with app_context():  # as in a worker
            assert counting.apply_report(report_id)
        db.session.commit()  # as the outbox task does
    return report_id
