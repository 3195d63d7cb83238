"""What the alerts domain does when something happens (backend/outbox/registry.py)."""

from backend import queues
from backend.alerts.clusters import CLUSTER_CATEGORIES, check_cluster_for_report, check_clusters_for_reports
from backend.alerts.sending import give_up_sending, send_alert
from backend.alerts.updates import notify_reporter
from backend.outbox.registry import subscribe


def check_clusters(payloads: list[dict]) -> None:
    """A batch of cluster checks, in report order, in one transaction: each sees the ones before it."""
    check_clusters_for_reports([payload["report_id"] for payload in payloads])


subscribe("report.created", check_cluster_for_report, task="alerts.check_cluster", queue=queues.ALERTS,
          only={"category": CLUSTER_CATEGORIES}, batch=check_clusters)
subscribe("alert.created", send_alert, task="alerts.send", queue=queues.ALERTS,
          commits_on_its_own="a batch of up to 500 pushes is committed as FCM answers it, so that a retry "
                             "resumes after the last recorded batch; a device whose delivery is recorded is "
                             "never sent to again (alert_deliveries)",
          on_give_up=give_up_sending)
subscribe("alert.confirmed", send_alert, task="alerts.send_confirmed", queue=queues.ALERTS,
          commits_on_its_own="the same fan-out as alerts.send: the staff devices the first fan-out recorded are not "
                             "sent to again, and commuters are targeted once (alerts.public_push)",
          on_give_up=give_up_sending)
subscribe("report.status_changed", notify_reporter, task="alerts.notify_reporter", queue=queues.ALERTS)
