"""What ``make app-screenshots`` and ``make dashboard-screenshots`` share: a scratch database prepared
for the pictures, the API as shipped serving it on a free port, the pictures taken, the API stopped."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from backend.config import prepare_process_environment
from backend.devserver import free_port, scratch_database, start_api


def take(name: str, prepare: Callable[[str], None], shoot: Callable[[str], None]) -> None:
    """Prepare the scratch database ``<database>_<name>`` (``prepare(url)``), start the API on it and
    take the pictures (``shoot(base_url)``); the API is stopped whatever happens."""
    prepare_process_environment()
    url, _ = scratch_database(os.environ["DATABASE_URL"], name)
    prepare(url)
    server = start_api(url, os.environ["REDIS_URL"], port := free_port())
    try:
        shoot(f"http://127.0.0.1:{port}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
