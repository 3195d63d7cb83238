"""What the alerts domain does when something happens (backend/outbox/registry.py)."""

from backend import queues
from backend.alerts.clusters import CLUSTER_CATEGORIES, check_cluster_for_report
from backend.alerts.sending import send_alert
from backend.alerts.updates import notify_reporter
from backend.outbox.registry import subscribe

subscribe("report.created", check_cluster_for_report, task="alerts.check_cluster", queue=queues.ALERTS,
          only={"category": CLUSTER_CATEGORIES})
subscribe("alert.created", send_alert, task="alerts.send", queue=queues.ALERTS,
          commits_on_its_own="a batch of up to 500 pushes is committed as FCM answers it, so that a retry "
                             "resumes after the last recorded batch; a device whose delivery is recorded is "
                             "never sent to again (alert_deliveries)")
subscribe("report.status_changed", notify_reporter, task="alerts.notify_reporter", queue=queues.ALERTS)
