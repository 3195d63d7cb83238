"""Debian's Chromium (Playwright) and the app served for real on a free port, with real commits (the
browser's requests run in the server's own threads and sessions): for the dashboard's and the commuter's
app's browser tests. One browser for the whole session (Playwright's sync API allows one at a time)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright
from werkzeug.serving import make_server

from backend.devserver import free_port

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("Debian's chromium is missing: `make test` installs it (deploy/local/stack.sh browser)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def live_server(app, real_commits) -> Iterator[str]:
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def wait_for_async(page, expression: str, arg: object = None, timeout_s: float = 10.0) -> None:
    """Wait until an async page function (``expression``, given ``arg``) answers truthy. Playwright's
    ``wait_for_function`` does not await a promise (any promise is truthy, so it returns at once), and
    MapLibre's ``getSource(...).getData()`` answers one: poll ``page.evaluate``, which awaits it."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s: {expression}")
        page.wait_for_timeout(50)
