"""``python -m worker [--burst] [queue ...]``: an RQ worker serving SafeTravel's queues, with the
outbox relay (worker/relay.py) running beside it."""

from __future__ import annotations

import argparse
import logging
import threading
import time

from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker

from backend import queues
from backend.alerts.notifier import notifier
from worker.app import end_of_job, worker_app
from worker.relay import start_relay

log = logging.getLogger("worker")
RECONNECT_DELAY_S = 2
HEARTBEAT_S = 10


class SafeTravelWorker(SimpleWorker):
    """Runs jobs in-process (no fork per job: the app, its connection pool and imports stay warm)
    and hands the database session back after every job, whatever its outcome.

    RQ's SimpleWorker announces itself alive for the job's whole timeout, so a worker killed mid-job
    (SIGKILL, a lost node) would hold its job for ten minutes. This one beats every HEARTBEAT_S from a
    thread while a job runs, with a short time-to-live: about a minute after a kill, the outbox sweep
    sees the job's worker gone and the task runs again elsewhere (backend/outbox/service.py)."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - RQ's signature
        kwargs.setdefault("job_monitoring_interval", HEARTBEAT_S)
        super().__init__(*args, **kwargs)

    def get_heartbeat_ttl(self, job) -> int:  # noqa: ANN001 - RQ's signature
        return self.job_monitoring_interval + 60

    def perform_job(self, job, queue):  # noqa: ANN001 - RQ's signature
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.job_monitoring_interval):
                try:
                    self.maintain_heartbeats(job)
                except Exception as exc:  # Redis away: the next beat tries again
                    log.warning("heartbeat failed: %s", exc)

        beating = threading.Thread(target=beat, name="rq-heartbeat", daemon=True)
        beating.start()
        try:
            return super().perform_job(job, queue)
        finally:
            done.set()
            end_of_job()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("queues", nargs="*", default=list(queues.ALL), help="queues to serve (default: all)")
    parser.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    app = worker_app()
    settings = app.config["SETTINGS"]
    notifier()  # chosen now, so that a missing FCM credential is said at start-up, not at the first alert
    # RQ blocks on Redis for minutes at a time: this connection has no short socket timeout.
    connection = Redis.from_url(settings.redis_url, health_check_interval=30)
    if not args.burst:
        start_relay(settings.database_url)
    # A Redis outage must not end the worker: it waits, then serves again (the relay thread, which
    # talks to PostgreSQL, keeps trying on its own; nothing waits in Redis that is not also in the outbox).
    while True:
        try:
            worker = SafeTravelWorker(args.queues, connection=connection)
            log.info("worker serving %s", ", ".join(args.queues))
            worker.work(burst=args.burst, with_scheduler=True)
            return
        except RedisError as exc:
            if args.burst:
                raise
            log.warning("Redis unavailable (%s); the worker serves again in %ss", exc, RECONNECT_DELAY_S)
            time.sleep(RECONNECT_DELAY_S)


if __name__ == "__main__":
    main()
