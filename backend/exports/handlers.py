"""What the exports domain does when something happens (backend/outbox/registry.py)."""

from backend import queues
from backend.exports.service import build_export
from backend.outbox.registry import subscribe

subscribe("export.requested", build_export, task="exports.build", queue=queues.EXPORTS,
          commits_on_its_own="progress and a failure are committed on connections of their own as the file is "
                             "written; the file is written under a temporary name and renamed when whole, and "
                             "a run that finds the export done does nothing, so a second run rewrites or skips it")
