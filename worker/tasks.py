"""Outbox task names -> the services that carry them out. Producers name a task (backend/reports/
service.py); only the worker needs to know which function runs it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backend.alerts import service as alerts
from backend.exports import service as exports
from backend.heatmap import service as heatmap

HANDLERS: dict[str, Callable[..., Any]] = {
    "heatmap.apply_report": heatmap.apply_report,
    "alerts.check_cluster": alerts.check_cluster_for_report,
    "alerts.send": alerts.send_alert,
    exports.BUILD_TASK[0]: exports.build_export,
}
