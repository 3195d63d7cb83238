"""The one way domains talk: events, and the handlers that domains register for them.

A domain publishes what happened (``publish("report.created", {...}, category=...)``) in the
transaction that made it happen; it names no other domain. The domains that care subscribe in their
own ``handlers.py`` (``subscribe("report.created", apply_report, queue=queues.HEATMAP)``). Events
are catalogued in ``EVENTS`` below: the contract between publishers and subscribers, with who
publishes each. ``load()`` imports every domain's ``handlers.py`` and checks the catalogue against
them; create_app() calls it, so a process never runs with an event nobody handles.

Three kinds of handler (docs/architecture.md, "Events and handlers"):
- **inline** (no queue): runs at once, inside the publisher's transaction (erasure keeping the
  heatmap's counts before the cascade deletes the reports);
- **queued, transactional** (the default): an outbox task, run by a worker inside the task's own
  transaction, which also marks the task done: its effects happen exactly once;
- **queued, commits on its own**: an outbox task whose handler commits as it goes (a fan-out of
  thousands of pushes, a file written for minutes). It is run at least once; the reason it gives at
  registration says how its own records make a second run harmless.

A queued handler may also give ``when``, an SQL condition the publisher evaluates in its own
transaction (inside the producer's statement, for ``tasks_cte``): no task is written unless it holds
(webhooks for report.created, while no partner subscribes).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend import queues as queue_names


@dataclass(frozen=True)
class Event:
    """Something a domain announces. ``attributes`` are what handlers may filter on (they route the
    event; they are not stored); ``payload`` names what the handlers receive."""

    name: str
    publisher: str
    summary: str
    payload: tuple[str, ...]
    attributes: tuple[str, ...] = ()


EVENTS: dict[str, Event] = {e.name: e for e in (
    Event("report.created", "reports", "a report was stored (once, whatever the replays)",
          payload=("report_id",), attributes=("category",)),
    Event("reports.deleting", "reports", "reports are about to be deleted for their age",
          payload=("report_ids",)),
    Event("user.erasing", "users", "a person is about to be erased, with everything they submitted",
          payload=("user_id",)),
    Event("alert.created", "alerts", "an alert was recorded (by the safety team or by cluster detection)",
          payload=("alert_id",)),
    Event("alert.confirmed", "alerts", "a staff member confirmed a cluster alert's push to commuters",
          payload=("alert_id",)),
    Event("export.requested", "exports", "a council export was requested", payload=("export_id",)),
    Event("report.status_changed", "reports", "staff triaged a report to a new status",
          payload=("report_id", "status", "change_id"), attributes=("category",)),
    Event("cluster.detected", "alerts", "cluster detection found a new cluster of reports",
          payload=("cluster_id",), attributes=("category",)),
    Event("alert.sent", "alerts", "an alert's fan-out finished (every targeted device answered)",
          payload=("alert_id",)),
    Event("webhooks.deliveries_due", "webhooks", "webhook deliveries were recorded and are due now",
          payload=("delivery_ids",)),
)}


@dataclass(frozen=True)
class Handler:
    event: str
    func: Callable[..., Any]
    domain: str
    # Outbox task name (kept stable: tasks waiting in the table name it) and queue; None: inline.
    task: str | None = None
    queue: str | None = None
    # Attribute -> accepted values; the handler is not told of events outside them.
    only: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # None: runs in the task's transaction. Otherwise why running it again is harmless.
    commits_on_its_own: str | None = None
    # Called (payload as keyword arguments, plus ``error``: the last one) in a transaction of its own
    # when the task has failed its last attempt (outbox.MAX_ATTEMPTS): to record, in the domain's
    # own terms, that the work was given up.
    on_give_up: Callable[..., Any] | None = None
    # Does the work of many tasks of this kind at once, in one transaction: called with their payloads
    # (a list, in task order), it must leave the same effects as ``func`` called on each. The relay then
    # enqueues pending tasks of this kind in batches (one job each; service.run_batch).
    batch: Callable[[list[dict[str, Any]]], Any] | None = None
    # An SQL condition (a boolean expression over the database, no parameters) evaluated when the event is
    # published, in the publisher's statement or transaction: the task is written only when it holds.
    # For work that is usually unwanted (webhooks when no partner subscribes): no outbox row, no claim.
    when: str | None = None

    @property
    def inline(self) -> bool:
        return self.queue is None

    def accepts(self, attributes: Mapping[str, Any]) -> bool:
        return all(attributes.get(name) in allowed for name, allowed in self.only.items())


class RegistryError(RuntimeError):
    """Events and handlers disagree: a process must not start like this."""


_handlers: list[Handler] = []
# Bumped whenever a handler is added: statements that write an event's tasks (tasks_cte) hold the
# handlers' conditions in their text, and are rebuilt when it changes.
_version = 0
# Per event, its queued handlers and their filters as the JSON a single-statement publish binds
# (outbox.service.tasks_params): worked out once, not on every report; subscribe() forgets them.
_routing: dict[str, str] = {}


def subscribe(
    event: str,
    func: Callable[..., Any],
    *,
    queue: str | None = None,
    task: str | None = None,
    only: Mapping[str, Iterable[str]] | None = None,
    commits_on_its_own: str | None = None,
    on_give_up: Callable[..., Any] | None = None,
    batch: Callable[[list[dict[str, Any]]], Any] | None = None,
    when: str | None = None,
) -> Handler:
    """Register ``func`` for ``event``: inline without a queue, else as outbox task ``task`` on ``queue``.
    ``func`` is called with the event's payload as keyword arguments. ``when``: an SQL condition the
    publisher evaluates in its own transaction; the task is recorded only when it holds."""
    global _version
    domain = func.__module__.split(".")[1]
    if queue is None and (task or commits_on_its_own):
        raise RegistryError(f"{func.__qualname__}: an inline handler has no task name and cannot commit")
    if queue is not None and not task:
        raise RegistryError(f"{func.__qualname__}: a queued handler needs a task name")
    if queue is None and on_give_up is not None:
        raise RegistryError(f"{func.__qualname__}: an inline handler fails with its publisher; it has nothing to give up")
    if batch is not None and (queue is None or commits_on_its_own):
        raise RegistryError(f"{func.__qualname__}: only a queued handler that runs in its task's transaction "
                            "can run in batches")
    if when is not None and queue is None:
        raise RegistryError(f"{func.__qualname__}: an inline handler runs with its publisher; it has no condition")
    handler = Handler(event, func, domain, task, queue, {k: tuple(v) for k, v in (only or {}).items()},
                      commits_on_its_own, on_give_up, batch, when)
    if any(h.event == event and h.func is func for h in _handlers):
        return handler  # a module imported twice registers once
    if task and any(h.task == task for h in _handlers):
        raise RegistryError(f"two handlers for the outbox task {task!r}")
    _handlers.append(handler)
    _routing.clear()
    _version += 1
    return handler


def version() -> int:
    """Changes whenever a handler is added (statements built from the handlers are then stale)."""
    return _version


def conditions(event: str) -> dict[str, str]:
    """The event's queued handlers that have a ``when`` condition: task -> SQL condition."""
    return {h.task: h.when for h in handlers_for(event) if not h.inline and h.when is not None}


def handlers_for(event: str) -> list[Handler]:
    if event not in EVENTS:
        raise RegistryError(f"{event!r} is not a catalogued event (backend/outbox/registry.py)")
    return [h for h in _handlers if h.event == event]


def queued_handlers(event: str) -> list[Handler]:
    return [h for h in handlers_for(event) if not h.inline]


def routing_json(event: str) -> str:
    """The event's queued handlers as JSON (task, queue, and the attribute filters as ``only_``), for a
    publish written into a producer's own statement. Inline handlers have no place in one statement:
    such an event is published with ``outbox.service.publish()``."""
    cached = _routing.get(event)
    if cached is None:
        handlers = handlers_for(event)
        if any(h.inline for h in handlers):
            raise RegistryError(f"{event!r} has inline handlers: publish it with publish()")
        cached = _routing[event] = json.dumps([
            {"task": h.task, "queue": h.queue, "only_": {k: list(v) for k, v in h.only.items()}} for h in handlers])
    return cached


def handler_for_task(task: str) -> Handler | None:
    return next((h for h in _handlers if h.task == task), None)


def all_handlers() -> list[Handler]:
    return list(_handlers)


def load(domains: Iterable[str]) -> list[Handler]:
    """Import the ``handlers.py`` of each domain, in the order given (an event's tasks are written in
    that order), then check events and handlers. A domain with handlers left out of ``domains`` is an
    error: its subscriptions would silently not exist."""
    import backend

    domains = list(domains)
    with_handlers = {m.name for m in pkgutil.iter_modules(backend.__path__)
                     if m.ispkg and importlib.util.find_spec(f"backend.{m.name}.handlers") is not None}
    if missing := with_handlers - set(domains):
        raise RegistryError(f"domains with handlers that the app does not load: {', '.join(sorted(missing))}")
    for domain in domains:
        if domain in with_handlers:
            importlib.import_module(f"backend.{domain}.handlers")
    check()
    return all_handlers()


def check() -> None:
    """Every event has a handler, every handler an event and a queue that workers serve."""
    problems = []
    for name in EVENTS:
        if not any(h.event == name for h in _handlers):
            problems.append(f"nobody handles {name!r}")
    for h in _handlers:
        if h.event not in EVENTS:
            problems.append(f"{h.func.__qualname__} subscribes to {h.event!r}, which is not catalogued")
        elif not set(h.only) <= set(EVENTS[h.event].attributes):
            problems.append(f"{h.func.__qualname__} filters {h.event!r} on attributes it does not carry")
        if h.queue is not None and h.queue not in queue_names.ALL:
            problems.append(f"{h.func.__qualname__} runs on {h.queue!r}, which no worker serves")
    if problems:
        raise RegistryError("; ".join(problems))
