"""Push notifications: one interface, two implementations chosen by configuration.

- ``FcmNotifier``: firebase-admin's ``messaging.send_each`` (FCM HTTP v1), used when
  GOOGLE_APPLICATION_CREDENTIALS is set;
- ``LogNotifier``: logs each message instead (development, the demo), and says so at start-up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

import firebase_admin
from firebase_admin import exceptions, messaging

from backend.config import current_settings

log = logging.getLogger(__name__)

MAX_BATCH = 500  # FCM's limit for one send_each call


@dataclass(frozen=True)
class Push:
    """One notification to one device. Pushes with the same ``collapse_id`` (an alert's id) replace
    each other on the phone instead of stacking: a push sent again after a worker died shows once."""

    token: str
    title: str
    body: str
    data: dict[str, str] = field(default_factory=dict)
    collapse_id: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened to one push: sent; or failed, and then whether the token is dead (prune it) or
    the failure transient (try again later)."""

    sent: bool
    dead_token: bool = False
    transient: bool = False
    error: str | None = None


class Notifier(Protocol):
    def send(self, pushes: list[Push]) -> list[Outcome]: ...


class LogNotifier:
    """Stands in for FCM where there are no credentials: every push is logged, none is sent."""

    def __init__(self) -> None:
        log.warning("No FCM credentials (GOOGLE_APPLICATION_CREDENTIALS): pushes are logged, not sent.")

    def send(self, pushes: list[Push]) -> list[Outcome]:
        for push in pushes:
            log.info("push (not sent, no FCM credentials) to …%s: %s: %s %s",
                     push.token[-6:], push.title, push.body, push.data)
        return [Outcome(sent=True) for _ in pushes]


def classify(error: Exception) -> Outcome:
    """An FCM error as an outcome: dead tokens are pruned, transient errors retried."""
    if isinstance(error, (messaging.UnregisteredError, messaging.SenderIdMismatchError)):
        return Outcome(False, dead_token=True, error=type(error).__name__)
    if isinstance(error, exceptions.InvalidArgumentError) and "registration token" in str(error).lower():
        return Outcome(False, dead_token=True, error="InvalidRegistrationToken")
    if isinstance(error, (messaging.QuotaExceededError, exceptions.UnavailableError, exceptions.InternalError,
                          exceptions.DeadlineExceededError, exceptions.UnknownError)):
        return Outcome(False, transient=True, error=type(error).__name__)
    return Outcome(False, error=f"{type(error).__name__}: {error}"[:300])


def message(push: Push) -> messaging.Message:
    """The FCM message for a push: high priority, and collapsible on every platform when it has a
    collapse id (Android's collapse key and notification tag, APNs' collapse id, the Web's tag)."""
    collapse = push.collapse_id
    apns_headers = {"apns-priority": "10", **({"apns-collapse-id": collapse} if collapse else {})}
    return messaging.Message(
        token=push.token,
        notification=messaging.Notification(title=push.title, body=push.body),
        data=push.data,
        android=messaging.AndroidConfig(priority="high", collapse_key=collapse,
                                        notification=messaging.AndroidNotification(tag=collapse) if collapse else None),
        apns=messaging.APNSConfig(headers=apns_headers),
        webpush=messaging.WebpushConfig(notification=messaging.WebpushNotification(tag=collapse)) if collapse else None,
    )


class FcmNotifier:
    def __init__(self, app: firebase_admin.App) -> None:
        self.app = app

    def send(self, pushes: list[Push]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for start in range(0, len(pushes), MAX_BATCH):
            batch = pushes[start:start + MAX_BATCH]
            response = messaging.send_each([
                message(p)
                for p in batch
            ], app=self.app)
            outcomes.extend(Outcome(sent=True) if r.success else classify(r.exception) for r in response.responses)
        return outcomes


_notifier: Notifier | None = None


def notifier() -> Notifier:
    """The process's notifier, chosen by configuration once."""
    global _notifier
    if _notifier is None:
        from flask import current_app

        settings = current_settings()
        _notifier = FcmNotifier(current_app.extensions["firebase_app"]) if settings.google_application_credentials \
            else LogNotifier()
    return _notifier


def use(replacement: Notifier | None) -> None:
    """Choose the notifier explicitly (None: from configuration again)."""
    global _notifier
    _notifier = replacement
