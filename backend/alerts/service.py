"""Cluster detection. The foundation wires the follow-up task; the alerts work fills it in."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def check_cluster_for_report(report_id: str) -> None:
    """Look for a cluster around a new spiking or harassment report. Runs exactly once per report
    inside its outbox task's transaction. No detection yet: this only records the call."""
    log.info("alerts: report %s queued for a cluster check (detection arrives with the alerts issue)", report_id)
