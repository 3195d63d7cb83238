"""What the heatmap does when other domains act (backend/outbox/registry.py)."""

from backend import queues
from backend.heatmap.counting import apply_report, apply_reports, retain_counts_of_author, retain_counts_of_reports
from backend.outbox.registry import subscribe

# Each report is counted in once, in its outbox task's transaction; under a backlog up to a batch of
# tasks at once, in one transaction (one pass, one upsert per table).
subscribe("report.created", apply_report, task="heatmap.apply_report", queue=queues.HEATMAP, batch=apply_reports)
# Before reports go (a person's erasure, the retention purge), what they added is kept as bare counts,
# in the deleting transaction: the map keeps its counts and a rebuild gives them again.
subscribe("user.erasing", retain_counts_of_author)
subscribe("reports.deleting", retain_counts_of_reports)
