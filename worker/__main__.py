"""``python -m worker [--burst] [queue ...]``: an RQ worker serving SafeTravel's queues, with the
outbox relay (worker/relay.py) running beside it."""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys
import threading

from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker, worker_registration
from rq.exceptions import StopRequested
from rq.worker import WorkerStatus

from backend import queues
from backend.alerts.notifier import notifier
from worker.app import end_of_job, worker_app
from worker.relay import start_relay
from worker.shutdown import Shutdown

log = logging.getLogger("worker")
RECONNECT_DELAY_S = 2
HEARTBEAT_S = 10


class SafeTravelWorker(SimpleWorker):
    """Runs jobs in-process (no fork per job: the app, its connection pool and imports stay warm)
    and hands the database session back after every job, whatever its outcome.

    RQ's SimpleWorker announces itself alive for the job's whole timeout, so a worker killed mid-job
    (SIGKILL, a lost node) would hold its job for ten minutes. This one beats every HEARTBEAT_S from a
    thread while a job runs, with a short time-to-live: about a minute after a kill, the outbox sweep
    sees the job's worker gone and the task runs again elsewhere (backend/outbox/service.py).

    Signals are ``worker.shutdown``'s, not RQ's (which talk to Redis on the way out), and RQ's wait
    between attempts to reach Redis is capped at a couple of seconds, so that a worker serves again
    soon after Redis returns."""

    max_connection_wait_time = RECONNECT_DELAY_S

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - RQ's signature
        kwargs.setdefault("job_monitoring_interval", HEARTBEAT_S)
        super().__init__(*args, **kwargs)

    def _install_signal_handlers(self) -> None:
        pass  # main() installed worker.shutdown's

    def warm_stop(self) -> bool:
        """On SIGTERM/SIGINT: if a job is running, let it finish and stop after it (True)."""
        if self.get_state() != WorkerStatus.BUSY:
            return False
        self._stop_requested = True
        return True

    def teardown(self) -> None:
        # RQ's teardown records the worker's death in Redis; with Redis away that must not turn a
        # stop into "Redis unavailable" (main() forgets this worker once Redis is back).
        try:
            super().teardown()
        except RedisError as exc:
            log.warning("could not record the worker's end in Redis (%s)", exc)

    def forget(self) -> None:
        """Remove a worker that lost Redis from Redis's list of live workers, so that the outbox
        sweep sees at once that the job it held is nobody's (worker/relay.py)."""
        with self.connection.pipeline() as pipe:
            worker_registration.unregister(self, pipe)
            pipe.delete(self.key)
            pipe.execute()

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


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _end_with_the_worker() -> None:
    """In a process the worker forks (RQ's scheduler of delayed retries): be sent SIGTERM when the
    worker ends, however it ends. A SIGKILLed worker otherwise leaves it running, holding a copy of
    the worker's Redis socket, so Redis keeps the dead worker's blocking pop alive and hands it the
    next job, which nobody then runs (until the sweep)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


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
    shutdown = Shutdown()
    shutdown.install()
    os.register_at_fork(after_in_child=_end_with_the_worker)
    # RQ blocks on Redis for minutes at a time: this connection has no short socket timeout.
    connection = Redis.from_url(settings.redis_url, health_check_interval=30)
    relay = None if args.burst else start_relay(settings.database_url)
    # A Redis outage must not end the worker, idle or mid-job: RQ's loop then ends (with or without
    # an exception); this one waits and serves again. Only SIGTERM/SIGINT end it (worker/shutdown.py).
    previous: SafeTravelWorker | None = None
    while not shutdown.requested:
        try:
            if previous is not None:
                previous.forget()
                previous = None
            worker = SafeTravelWorker(args.queues, connection=connection)
            log.info("worker serving %s", ", ".join(args.queues))
            shutdown.warm_stop = worker.warm_stop
            try:
                worker.work(burst=args.burst, with_scheduler=True)
            finally:
                shutdown.warm_stop = None
            if args.burst or shutdown.requested:
                break
            previous = worker
            log.warning("the worker's loop ended without a stop being asked (Redis lost?); "
                        "serving again in %ss", RECONNECT_DELAY_S)
        except StopRequested:
            break
        except RedisError as exc:
            if args.burst:
                raise
            log.warning("Redis unavailable (%s); the worker serves again in %ss", exc, RECONNECT_DELAY_S)
        shutdown.sleep(RECONNECT_DELAY_S)
    if relay is not None:
        relay.stop()
        relay.join(timeout=2)
    log.info("worker stopped")


if __name__ == "__main__":
    main()
