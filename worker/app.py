"""The worker side's Flask app: one per process, its context pushed for the process's lifetime."""

from __future__ import annotations

from flask import Flask

from backend import create_app
from backend.config import prepare_process_environment
from backend.extensions import db

_app: Flask | None = None


def worker_app() -> Flask:
    global _app
    if _app is None:
        prepare_process_environment()
        _app = create_app()
        _app.app_context().push()
    return _app


def end_of_job() -> None:
    """Return the job's connections (the primary's, the read standby's) to the pools and forget its objects."""
    db.remove()
