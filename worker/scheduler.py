"""``python -m worker.scheduler``: RQ's cron scheduler, restarted after a Redis outage instead of dying,
and ended by SIGTERM/SIGINT within a second whatever Redis is doing (worker/shutdown.py)."""

from __future__ import annotations

import logging

from redis import Redis
from redis.exceptions import RedisError
from rq.cron import CronScheduler
from rq.exceptions import StopRequested

from backend.config import Settings
from worker.schedule import register_all
from worker.shutdown import Shutdown

log = logging.getLogger("worker.scheduler")
RECONNECT_DELAY_S = 5


class SafeTravelScheduler(CronScheduler):
    def _install_signal_handlers(self) -> None:
        pass  # main() installed worker.shutdown's, which do not depend on Redis


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    shutdown = Shutdown()
    shutdown.install()
    while not shutdown.requested:
        try:
            scheduler = SafeTravelScheduler(connection=Redis.from_url(settings.redis_url, health_check_interval=30))
            register_all(scheduler)
            scheduler.start()  # returns when stopped; its last act, unregistering, may raise RedisError
        except StopRequested:
            break
        except RedisError as exc:
            if shutdown.requested:
                break
            log.warning("Redis unavailable (%s); scheduler restarts in %ss", exc, RECONNECT_DELAY_S)
        shutdown.sleep(RECONNECT_DELAY_S)
    log.info("scheduler stopped")


if __name__ == "__main__":
    main()
