"""Cluster detection: reports of one category from several people near one place within hours make a
cluster, announced once by a cluster alert (by default 3 or more people within 300 m and 6 hours: docs/api.md, "Cluster alerts").

People, not reports: an account counts once however many reports it sends (``CLUSTER_MIN_REPORTERS``
different reporters), so one account cannot make the platform push. The alert reaches the safety
team's devices at once; commuters only once a staff member confirms it (``confirm_cluster_alert``),
unless the deployment turns ``CLUSTER_AUTO_PUBLIC_PUSH`` on.

It runs as the handler of ``report.created`` for the categories it knows (alerts/handlers.py), in
the outbox task's transaction: a report counted into a cluster is counted once.

A cluster alert describes a place, not a person (docs/privacy.md): its area is a fixed radius around
the centre of the coarse grid cell holding the cluster's centre, its creation and expiry are whole
hours fixed when it is made, and its text says "several reports", never how many. Nothing in it moves
when one more report arrives, so someone who filed reports nearby cannot work out where or when
another person's report was made.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert

from backend.alerts.models import Alert, Cluster, ClusterReport
from backend.alerts.sending import ALERT_CREATED
from backend.config import current_settings
from backend.extensions import db
from backend.heatmap.grid import EARTH_CIRCUMFERENCE_M, lonlat_to_cell
from backend.outbox import service as outbox

# What this domain announces besides alert.created (backend/outbox/registry.py).
CLUSTER_DETECTED = "cluster.detected"

log = logging.getLogger(__name__)

# The categories a cluster can be made of, with the alert's title word and severity: the handler
# subscribes to these categories' reports only (alerts/handlers.py).
CLUSTER_WORDS = {"spiking": ("Spiking", "urgent"), "harassment": ("Harassment", "warning")}
CLUSTER_CATEGORIES = tuple(CLUSTER_WORDS)
# A cluster alert's centre is the centre of the grid cell of this level holding the cluster's centre
# (about 380 m across in London), its radius the cluster's plus the cell's half-diagonal, in whole 100 m.
ALERT_CELL_LEVEL = 16

_NEARBY_CONDITION = """
    category = :category
    AND occurred_at BETWEEN :at - make_interval(hours => :window_h) AND :at + make_interval(hours => :window_h)
    AND ST_DWithin(location::geography, ST_GeomFromWKB(:location, 4326)::geography, :radius_m)
"""
_NEARBY_REPORTS = text(f"""
    SELECT count(*) AS n, count(DISTINCT author_id) AS reporters, min(occurred_at) AS first_at, max(occurred_at) AS last_at,
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

_CLUSTER_COUNTS = text("""
    SELECT count(*) AS n, count(DISTINCT r.author_id) AS reporters
    FROM cluster_reports cr JOIN reports r ON r.id = cr.report_id WHERE cr.cluster_id = :cluster_id
""")


_REPORT_FACTS = "SELECT id, category, ST_AsBinary(location) AS location, occurred_at FROM reports"

# A report joins a known cluster: its link, and the cluster's span (a batch recounts it at its end).
_JOIN_CLUSTER = text("""
    WITH joined AS (
        INSERT INTO cluster_reports (cluster_id, report_id) VALUES (:cluster_id, :report_id) ON CONFLICT DO NOTHING
    )
    UPDATE clusters SET first_at = least(first_at, :at), last_at = greatest(last_at, :at), updated_at = clock_timestamp()
    WHERE id = :cluster_id
""")
# Links only: each names a report that exists (they cascade with it), so counting them is an index-only
# scan of the cluster's key range, not a visit to every report of the cluster (2.3 ms for three
# clusters of 600-800 reports: most of a stream's PostgreSQL time for cluster checks, docs/benchmarks.md).
_RECOUNT = text("""
    UPDATE clusters SET report_count = (SELECT count(*) FROM cluster_reports cr WHERE cr.cluster_id = clusters.id)
    WHERE id = ANY(:ids)
""")


def check_clusters_for_reports(report_ids: list[str]) -> list[str | None]:
    """``check_cluster_for_report`` for a batch of reports, in order, in one transaction (each sees the
    ones before it): their facts read at once, each category's lock taken once, a report joining a known
    cluster in one statement, and each grown cluster counted once at the end."""
    facts = {str(r.id): r for r in db.session.execute(
        text(f"{_REPORT_FACTS} WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": [str(i) for i in report_ids]})}
    batch = _Batch(grown=set(), locked=set())
    outcomes = [_check(str(report_id), facts.get(str(report_id)), batch) for report_id in report_ids]
    if batch.grown:
        db.session.execute(_RECOUNT, {"ids": sorted(batch.grown)})
    return outcomes


@dataclass
class _Batch:
    grown: set  # clusters that reports joined: recounted at the end
    locked: set  # categories whose lock the transaction holds


def check_cluster_for_report(report_id: str) -> str | None:
    """After a spiking or harassment report: is there now a cluster (reports of one category from 3 or
    more different people within 300 m and 6 hours)? A new cluster gets exactly one alert, pushed to
    the safety team (and, once confirmed or with automatic public pushes, to opted-in commuters inside
    it); a report in a known cluster updates it and its alert, and pushes nothing. Runs in its outbox
    task's transaction. Returns what it did."""
    report = db.session.execute(text(f"{_REPORT_FACTS} WHERE id = :id"), {"id": report_id}).one_or_none()
    return _check(report_id, report, None)


def _check(report_id: str, report: Any, batch: _Batch | None) -> str | None:
    settings = current_settings()
    if report is None or report.category not in CLUSTER_WORDS:
        return None
    # One check at a time per category: two reports of one new cluster never make two alerts.
    if batch is None or report.category not in batch.locked:
        db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"cluster:{report.category}"})
        if batch is not None:
            batch.locked.add(report.category)
    params = {"category": report.category, "location": bytes(report.location), "at": report.occurred_at,
              "window_h": settings.cluster_window_h, "radius_m": settings.cluster_radius_m}
    known = db.session.execute(_KNOWN_CLUSTER, params).one_or_none()
    if known is not None and batch is not None:
        db.session.execute(_JOIN_CLUSTER, {"cluster_id": known.id, "report_id": report_id, "at": report.occurred_at})
        batch.grown.add(known.id)
        return "updated"
    if known is not None:
        cluster = db.session.get(Cluster, known.id)
        db.session.execute(insert(ClusterReport).values(cluster_id=cluster.id, report_id=report_id)
                           .on_conflict_do_nothing())
        cluster.report_count = db.session.execute(_CLUSTER_COUNTS, {"cluster_id": cluster.id}).one().n
        cluster.first_at = min(cluster.first_at, report.occurred_at)
        cluster.last_at = max(cluster.last_at, report.occurred_at)
        cluster.updated_at = datetime.now(timezone.utc)
        # Its alert stays as it was made: a change would tell its readers about this one report.
        return "updated"
    nearby = db.session.execute(_NEARBY_REPORTS, params).one()
    if nearby.reporters < settings.cluster_min_reporters:
        return None
    word, severity = CLUSTER_WORDS[report.category]
    centre_point = shapely.from_wkb(bytes(nearby.centre))
    centre = from_shape(centre_point, srid=4326)
    (lon, lat), radius_m = alert_circle(centre_point.x, centre_point.y, settings.cluster_radius_m)
    made_at = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    alert = Alert(title=f"{word} reports nearby", body=_cluster_text(report.category, radius_m, settings),
                  severity=severity, area=from_shape(shapely.Point(lon, lat), srid=4326), radius_m=radius_m,
                  kind="cluster", category=report.category, created_by="cluster-detection", created_at=made_at,
                  public_push="due" if settings.cluster_auto_public_push else "awaiting_confirmation",
                  expires_at=made_at + timedelta(hours=settings.cluster_window_h + 1))
    db.session.add(alert)
    db.session.flush()
    cluster = Cluster(category=report.category, centre=centre, radius_m=settings.cluster_radius_m,
                      first_at=nearby.first_at, last_at=nearby.last_at, report_count=nearby.n, alert_id=alert.id)
    db.session.add(cluster)
    db.session.flush()
    db.session.execute(text(f"""
        INSERT INTO cluster_reports (cluster_id, report_id)
        SELECT :cluster_id, id FROM reports WHERE {_NEARBY_CONDITION}
        ORDER BY id FOR KEY SHARE  -- reports in id order, as erasure takes them (docs/architecture.md)
    """), {**params, "cluster_id": cluster.id})
    outbox.publish(ALERT_CREATED, {"alert_id": str(alert.id)})
    outbox.publish(CLUSTER_DETECTED, {"cluster_id": str(cluster.id)}, category=report.category)
    log.info("new %s cluster of %d reports from %d people: alert %s (%s)", report.category, nearby.n,
             nearby.reporters, alert.id, alert.public_push)
    return "created"


def alert_circle(lon: float, lat: float, cluster_radius_m: int) -> tuple[tuple[float, float], int]:
    """A cluster alert's area: the centre of the coarse cell holding (lon, lat), and a radius that
    covers every point within ``cluster_radius_m`` of anywhere in that cell, in whole 100 m."""
    x, y = lonlat_to_cell(lon, lat, ALERT_CELL_LEVEL)
    n = 2**ALERT_CELL_LEVEL
    centre_lon = (x + 0.5) / n * 360.0 - 180.0
    centre_lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 0.5) / n))))
    cell_m = EARTH_CIRCUMFERENCE_M / n * math.cos(math.radians(centre_lat))
    return (round(centre_lon, 6), round(centre_lat, 6)), math.ceil((cluster_radius_m + cell_m / math.sqrt(2)) / 100) * 100


def _cluster_text(category: str, radius_m: int, settings: Any) -> str:
    # In words, never the number: the number would change with one more report.
    return f"Several {category} reports within {radius_m} m in the last {settings.cluster_window_h} hours."
