"""Cluster detection: several reports of one category near one place within hours make a cluster,
announced once by a cluster alert (PRODUCT.md defaults: 3 or more within 300 m and 6 hours).

It runs as the handler of ``report.created`` for the categories it knows (alerts/handlers.py), in
the outbox task's transaction: a report counted into a cluster is counted once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert

from backend.alerts.models import Alert, Cluster, ClusterReport
from backend.alerts.sending import ALERT_CREATED
from backend.config import current_settings
from backend.extensions import db
from backend.outbox import service as outbox

# What this domain announces besides alert.created (backend/outbox/registry.py).
CLUSTER_DETECTED = "cluster.detected"

log = logging.getLogger(__name__)

# The categories a cluster can be made of, with the alert's title word and severity: the handler
# subscribes to these categories' reports only (alerts/handlers.py).
CLUSTER_WORDS = {"spiking": ("Spiking", "urgent"), "harassment": ("Harassment", "warning")}
CLUSTER_CATEGORIES = tuple(CLUSTER_WORDS)

_NEARBY_CONDITION = """
    category = :category
    AND occurred_at BETWEEN :at - make_interval(hours => :window_h) AND :at + make_interval(hours => :window_h)
    AND ST_DWithin(location::geography, ST_GeomFromWKB(:location, 4326)::geography, :radius_m)
"""
_NEARBY_REPORTS = text(f"""
    SELECT count(*) AS n, min(occurred_at) AS first_at, max(occurred_at) AS last_at,
           ST_AsBinary(ST_Centroid(ST_Collect(location))) AS centre
    FROM reports WHERE {_NEARBY_CONDITION}
""")

_KNOWN_CLUSTER = text("""
    SELECT id, alert_id FROM clusters
    WHERE category = :category
      AND ST_DWithin(centre::geography, ST_GeomFromWKB(:location, 4326)::geography, radius_m)
      AND last_at >= :at - make_interval(hours => :window_h) AND first_at <= :at + make_interval(hours => :window_h)
    ORDER BY last_at DESC LIMIT 1
""")


def check_cluster_for_report(report_id: str) -> str | None:
    """After a spiking or harassment report: is there now a cluster (PRODUCT.md defaults: 3 or more
    reports of one category within 300 m and 6 hours)? A new cluster gets exactly one alert, pushed to
    the safety team and to opted-in commuters inside it; a report in a known cluster updates it and its
    alert, and pushes nothing. Runs in its outbox task's transaction. Returns what it did."""
    settings = current_settings()
    report = db.session.execute(
        text("SELECT category, ST_AsBinary(location) AS location, occurred_at FROM reports WHERE id = :id"),
        {"id": report_id},
    ).one_or_none()
    if report is None or report.category not in CLUSTER_WORDS:
        return None
    # One check at a time per category: two reports of one new cluster never make two alerts.
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"cluster:{report.category}"})
    params = {"category": report.category, "location": bytes(report.location), "at": report.occurred_at,
              "window_h": settings.cluster_window_h, "radius_m": settings.cluster_radius_m}
    known = db.session.execute(_KNOWN_CLUSTER, params).one_or_none()
    if known is not None:
        cluster = db.session.get(Cluster, known.id)
        db.session.execute(insert(ClusterReport).values(cluster_id=cluster.id, report_id=report_id)
                           .on_conflict_do_nothing())
        cluster.report_count = db.session.scalar(
            select(func.count()).select_from(ClusterReport).where(ClusterReport.cluster_id == cluster.id))
        cluster.first_at = min(cluster.first_at, report.occurred_at)
        cluster.last_at = max(cluster.last_at, report.occurred_at)
        cluster.updated_at = datetime.now(timezone.utc)
        alert = db.session.get(Alert, cluster.alert_id) if cluster.alert_id else None
        if alert is not None:
            alert.body = _cluster_text(report.category, cluster.report_count, settings)
            alert.expires_at = max(alert.expires_at, datetime.now(timezone.utc) + timedelta(hours=settings.cluster_window_h))
            alert.updated_at = datetime.now(timezone.utc)
        return "updated"
    nearby = db.session.execute(_NEARBY_REPORTS, params).one()
    if nearby.n < settings.cluster_min_reports:
        return None
    word, severity = CLUSTER_WORDS[report.category]
    centre = from_shape(shapely.from_wkb(bytes(nearby.centre)), srid=4326)
    alert = Alert(title=f"{word} reports nearby", body=_cluster_text(report.category, nearby.n, settings),
                  severity=severity, area=centre, radius_m=settings.cluster_radius_m, kind="cluster",
                  category=report.category, created_by="cluster-detection",
                  expires_at=datetime.now(timezone.utc) + timedelta(hours=settings.cluster_window_h))
    db.session.add(alert)
    db.session.flush()
    cluster = Cluster(category=report.category, centre=centre, radius_m=settings.cluster_radius_m,
                      first_at=nearby.first_at, last_at=nearby.last_at, report_count=nearby.n, alert_id=alert.id)
    db.session.add(cluster)
    db.session.flush()
    db.session.execute(text(f"""
        INSERT INTO cluster_reports (cluster_id, report_id)
        SELECT :cluster_id, id FROM reports WHERE {_NEARBY_CONDITION}
    """), {**params, "cluster_id": cluster.id})
    outbox.publish(ALERT_CREATED, {"alert_id": str(alert.id)})
    outbox.publish(CLUSTER_DETECTED, {"cluster_id": str(cluster.id)}, category=report.category)
    log.info("new %s cluster of %d reports: alert %s", report.category, nearby.n, alert.id)
    return "created"


def _cluster_text(category: str, count: int, settings: Any) -> str:
    return (f"{count} {category} reports within {settings.cluster_radius_m} m "
            f"in {settings.cluster_window_h} hours.")
