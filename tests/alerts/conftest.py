"""The alerts tests' FCM: intercepted at the HTTP boundary, firebase-admin's own code running (fcm.py)."""

from __future__ import annotations

import pytest
import responses

from backend.alerts import notifier as notifiers
from tests.alerts.fcm import FakeFcm, firebase_test_app


@pytest.fixture
def fcm(monkeypatch):
    from firebase_admin import _http_client

    # firebase-admin's own HTTP retries back off 0.5 s, 1 s, 2 s...: not in tests.
    monkeypatch.setattr(_http_client.DEFAULT_RETRY_CONFIG, "backoff_factor", 0)
    notifiers.use(notifiers.FcmNotifier(firebase_test_app()))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeFcm(rsps)
    notifiers.use(None)
