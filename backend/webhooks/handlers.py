"""What the webhooks domain does when something happens (backend/outbox/registry.py): each event a
partner may subscribe to becomes deliveries (in the task's transaction), which are then sent."""

from __future__ import annotations

from backend import queues
from backend.outbox.registry import subscribe
from backend.webhooks import service
from backend.webhooks.delivery import deliver


def report_created(report_id: str) -> None:
    service.fan_out("report.created", service.report_fact(report_id))


def reports_created(payloads: list[dict]) -> None:
    """A batch of ``report_created``: one look for a subscription to the event first (usually none)."""
    if not service.subscribed_to("report.created"):
        return
    for payload in payloads:
        report_created(**payload)


def report_status_changed(report_id: str, status: str, change_id: int) -> None:
    service.fan_out("report.status_changed", service.report_fact(report_id, status, change_id))


def cluster_detected(cluster_id: str) -> None:
    service.fan_out("cluster.detected", service.cluster_fact(cluster_id))


def alert_sent(alert_id: str) -> None:
    service.fan_out("alert.sent", service.alert_fact(alert_id))


def deliveries_due(delivery_ids: list[str]) -> None:
    deliver(delivery_ids)


# Most reports have no partner waiting for them: the ingest statement writes this task only while an
# active subscription to report.created exists (its own snapshot decides: a subscription sees the reports
# stored after it was made). Subscriptions to the rarer events are looked up when their task runs.
subscribe("report.created", report_created, task="webhooks.report_created", queue=queues.WEBHOOKS,
          batch=reports_created, when=service.subscribed_sql("report.created"))
subscribe("report.status_changed", report_status_changed, task="webhooks.report_status_changed", queue=queues.WEBHOOKS)
subscribe("cluster.detected", cluster_detected, task="webhooks.cluster_detected", queue=queues.WEBHOOKS)
subscribe("alert.sent", alert_sent, task="webhooks.alert_sent", queue=queues.WEBHOOKS)
subscribe("webhooks.deliveries_due", deliveries_due, task="webhooks.deliver", queue=queues.WEBHOOKS,
          commits_on_its_own="each delivery is claimed with a lease and its outcome committed as its receiver "
                             "answers; a second run finds it delivered or not yet due, and one in flight when a "
                             "worker died is sent again after the lease with the same webhook-id, on which "
                             "receivers deduplicate")
