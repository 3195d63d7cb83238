"""What the streets domain does when other domains act (backend/outbox/registry.py)."""

from backend import queues
from backend.outbox.registry import subscribe
from backend.streets.nearby import add_report, add_reports

# Each new report's nearby edges are recorded once, in its outbox task's transaction, so that the next
# route request counts it; under a backlog, a batch of them in one statement. Erased and purged reports
# need no handler: their rows cascade with them.
subscribe("report.created", add_report, task="streets.report_edges", queue=queues.HEATMAP, batch=add_reports)
