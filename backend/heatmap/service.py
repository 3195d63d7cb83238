"""Heatmap aggregation. The foundation wires the follow-up task; the heatmap work fills it in."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def apply_report(report_id: str) -> None:
    """Count one new report into the heatmap's cells. Runs inside its outbox task's transaction,
    so it happens exactly once per report. No aggregates exist yet: this only records the call."""
    log.info("heatmap: report %s queued for aggregation (aggregates arrive with the heatmap issue)", report_id)
