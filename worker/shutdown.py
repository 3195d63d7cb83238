"""SIGTERM and SIGINT for the worker and the scheduler, whose own loops outlive RQ's.

RQ's handlers cannot be trusted to end the process: they talk to Redis on the way out (a worker's
warm stop records the request, its teardown registers its death, the cron scheduler unregisters
itself), and when Redis is away that raises ``RedisError``, which the reconnect loop took for
"Redis unavailable" and waited on, serving the next Redis to appear. Here a signal only sets a flag
that the loops check before anything else, and interrupts whatever is waiting:

- idle (RQ blocked on Redis, or waiting to reconnect): ``StopRequested`` is raised at once;
- mid-job: a warm stop; the job finishes (within its timeout), then the loop ends. A second
  signal while the job runs is a cold stop (``SystemExit``), as in RQ, unless it comes within a
  second of the first (Ctrl-C reaches the process both from the terminal and from its supervisor,
  deploy/local/serve.sh).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from types import FrameType

from rq.exceptions import StopRequested

log = logging.getLogger("worker")


class Shutdown:
    def __init__(self) -> None:
        self.requested = False
        self.requested_at = 0.0
        # Set while a job runs: called on the first signal instead of interrupting it.
        self.warm_stop: Callable[[], bool] | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        again = self.requested
        if again and time.monotonic() - self.requested_at < 1:
            return
        self.requested, self.requested_at = True, time.monotonic()
        if self.warm_stop is not None and not again and self.warm_stop():
            log.info("%s: stopping once the current job is done", signal.Signals(signum).name)
            return
        if again and self.warm_stop is not None:
            log.warning("%s again: stopping now, abandoning the current job (the outbox retries it)",
                        signal.Signals(signum).name)
            raise SystemExit(1)
        log.info("%s: stopping", signal.Signals(signum).name)
        raise StopRequested()

    def sleep(self, seconds: float) -> None:
        """Wait, unless a stop is (or becomes) requested."""
        if self.requested:
            return
        try:
            time.sleep(seconds)
        except StopRequested:
            pass
