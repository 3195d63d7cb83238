"""The test session's app, for helpers that run what a worker runs: jobs and handlers read their
settings from the app's context (backend/config.py, current_settings), as they do in a worker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, has_app_context

from backend.extensions import db

session_app: Flask | None = None  # set by the `app` fixture (tests/conftest.py)


@contextmanager
def app_context() -> Iterator[None]:
    """Run the block as a job runs: in the app's context, committing at the end (the job is the edge
    that commits; leaving the context hands the session back). Inside a context already: just the block."""
    if has_app_context():
        yield
        return
    assert session_app is not None, "needs the `app` fixture"
    with session_app.app_context():
        yield
        db.session.commit()
