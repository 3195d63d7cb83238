"""``python -m worker [--burst] [queue ...]``: an RQ worker serving SafeTravel's queues, with the
outbox relay (worker/relay.py) running beside it."""

from __future__ import annotations

import argparse
import logging

from redis import Redis
from rq import SimpleWorker

from backend.alerts.notifier import notifier
from worker import queues
from worker.app import end_of_job, worker_app
from worker.relay import start_relay

log = logging.getLogger("worker")


class SafeTravelWorker(SimpleWorker):
    """Runs jobs in-process (no fork per job: the app, its connection pool and imports stay warm)
    and hands the database session back after every job, whatever its outcome."""

    def perform_job(self, job, queue):  # noqa: ANN001 - RQ's signature
        try:
            return super().perform_job(job, queue)
        finally:
            end_of_job()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("queues", nargs="*", default=list(queues.ALL))
    parser.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    args = parser.parse_args(argv)
    app = worker_app()
    settings = app.config["SETTINGS"]
    notifier()  # chosen now, so that a missing FCM credential is said at start-up, not at the first alert
    # RQ blocks on Redis for minutes at a time: this connection has no short socket timeout.
    connection = Redis.from_url(settings.redis_url, health_check_interval=30)
    worker = SafeTravelWorker(args.queues, connection=connection)
    if not args.burst:
        start_relay(settings.database_url)
    log.info("worker serving %s", ", ".join(args.queues))
    worker.work(burst=args.burst, with_scheduler=True)


if __name__ == "__main__":
    main()
