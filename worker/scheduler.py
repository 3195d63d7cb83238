"""``python -m worker.scheduler``: RQ's cron scheduler, restarted after a Redis outage instead of dying."""

from __future__ import annotations

import logging
import time

from redis import Redis
from redis.exceptions import RedisError
from rq.cron import CronScheduler

from backend.config import Settings
from worker.schedule import register_all

log = logging.getLogger("worker.scheduler")
RECONNECT_DELAY_S = 5


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    while True:
        scheduler = CronScheduler(connection=Redis.from_url(settings.redis_url, health_check_interval=30))
        register_all(scheduler)
        try:
            scheduler.start()
            return  # stopped by SIGINT/SIGTERM
        except RedisError as exc:
            log.warning("Redis unavailable (%s); scheduler restarts in %ss", exc, RECONNECT_DELAY_S)
            time.sleep(RECONNECT_DELAY_S)


if __name__ == "__main__":
    main()
