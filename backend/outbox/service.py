"""Record follow-up work with the data, hand it to the workers, run it exactly once.

The life of a task (a transactional outbox with a relay):
1. ``publish()`` (or a producer's own statement, through ``tasks_cte()``) inserts a task for each
   queued handler of the event (backend/outbox/registry.py) in the producer's transaction and sends
   ``NOTIFY outbox``, so the data and its follow-up work commit together: nothing is lost, and the
   web request never talks to Redis;
2. the relay (a thread of every worker, ``worker/relay.py``) wakes on the notification, ``claim()``s
   unclaimed tasks (``FOR UPDATE SKIP LOCKED``: several relays never claim one task twice), enqueues
   them in RQ and commits the claim; if Redis is down it rolls back: the tasks wait in PostgreSQL;
3. the sweep (``worker/relay.py``, every few seconds) ``release()``s tasks that were claimed long ago
   but are neither done nor held by RQ, so that the relay enqueues them again;
4. ``run()`` (the worker's job) locks the task, skips it if done, runs its handler and marks it done
   in the same transaction: a job delivered twice has its effects once. Tasks of a handler registered
   with ``batch=`` are claimed in batches of up to BATCH_SIZE, one job each (``mark_batches()``), and
   ``run_batch()`` does the same for the whole batch: one lock of its tasks, one call of the batch
   handler, every task's ``done_at`` in that transaction. A handler registered as
   committing on its own ends that transaction itself; the task is then marked done after it returns
   (at least once, made harmless by the handler's own records: see its registration).

This module knows PostgreSQL only; RQ is the worker's business.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, select, text, update

from backend.extensions import db
from backend.logs import current_request_id, request_id_var
from backend.outbox import registry
from backend.outbox.models import OutboxTask

log = logging.getLogger(__name__)

CHANNEL = "outbox"
# A task is tried at most MAX_ATTEMPTS times in all (RQ's retries, then the sweep's), then left for
# an operator (docs/operations.md).
MAX_ATTEMPTS = 10
# A claimed task not done after this long, and not in RQ, is released for the relay again.
STALE_CLAIM_S = 60
# The most tasks of one kind one job carries (a handler registered with ``batch=``).
BATCH_SIZE = 200
NOTIFY_SQL = text(f"SELECT pg_notify('{CHANNEL}', '')")


def add(task: str, queue: str, payload: dict[str, Any]) -> OutboxTask:
    """Record one task in the current transaction; the relay enqueues it once that commits."""
    row = OutboxTask(task=task, queue=queue, payload=payload, request_id=current_request_id())
    db.session.add(row)
    db.session.execute(NOTIFY_SQL)
    return row


def publish(event: str, payload: dict[str, Any], **attributes: Any) -> list[OutboxTask]:
    """Announce an event in the current transaction: inline handlers run now, queued ones get a task
    each (committed, or rolled back, with the publisher's own writes). ``attributes`` route it; a
    handler's ``when`` condition is asked of the database (in this transaction) first."""
    tasks = []
    for handler in registry.handlers_for(event):
        if not handler.accepts(attributes):
            continue
        if handler.when is not None and not db.session.scalar(text(f"SELECT {handler.when}")):
            continue
        if handler.inline:
            handler.func(**payload)
        else:
            tasks.append(OutboxTask(task=handler.task, queue=handler.queue, payload=payload,
                                    request_id=current_request_id()))
    if tasks:
        db.session.add_all(tasks)
        db.session.execute(NOTIFY_SQL)
    return tasks


def tasks_cte(event: str, source: str, payload: str, attributes: str) -> str:
    """A data-modifying CTE body that publishes ``event`` for every row of ``source`` inside a producer's
    own statement (the report insert keeps its single round trip): ``payload`` and ``attributes``
    are SQL jsonb expressions over ``source``. Bind ``tasks_params(event)`` with it. The handlers'
    ``when`` conditions are part of the text, evaluated by the same statement (on its snapshot): build
    it once the handlers are loaded, and again when ``registry.version()`` changes."""
    conditions = registry.conditions(event)
    when = ""
    if conditions:
        cases = " ".join(f"""WHEN '{task.replace("'", "''")}' THEN ({sql})""" for task, sql in conditions.items())
        when = f"AND CASE h.task {cases} ELSE true END"
    return f"""
        INSERT INTO outbox (task, queue, payload, request_id)
        SELECT h.task, h.queue, {payload}, :outbox_request_id
        FROM {source}, jsonb_to_recordset(CAST(:outbox_handlers AS jsonb)) AS h (task text, queue text, only_ jsonb)
        WHERE NOT EXISTS (
            SELECT FROM jsonb_each(h.only_) AS o (name, allowed)
            WHERE NOT coalesce(o.allowed ? ({attributes} ->> o.name), false)
        ) {when}
    """


def tasks_params(event: str) -> dict[str, Any]:
    """The parameters of ``tasks_cte()`` for an event: its queued handlers, as the registry has them."""
    return {"outbox_handlers": registry.routing_json(event), "outbox_request_id": current_request_id()}


# The claimed rows are picked once (a MATERIALIZED CTE): a LIMIT ... SKIP LOCKED subquery inside an
# UPDATE may be rescanned by a nested loop and claim more than ``limit`` rows.
# Tasks of a batched kind wait unclaimed while a batch of that kind is in flight (claimed in the last
# BATCH_HOLD_S, not done, not yet failed): they pile up and go as one batch when it is done (a finished
# batch wakes the relay), instead of a trickle of small jobs queuing behind a busy worker.
_CLAIM = text("""
    WITH in_flight AS MATERIALIZED (
        SELECT DISTINCT task FROM outbox
        WHERE done_at IS NULL AND attempts = 0 AND task = ANY(CAST(:batched AS text[]))
          AND enqueued_at > clock_timestamp() - make_interval(secs => :hold_s)
    ), claimed AS MATERIALIZED (
        SELECT id FROM outbox
        WHERE done_at IS NULL AND enqueued_at IS NULL AND attempts < :max_attempts
          AND task NOT IN (SELECT task FROM in_flight)
        ORDER BY id LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE outbox SET enqueued_at = clock_timestamp()
    FROM claimed WHERE outbox.id = claimed.id
    RETURNING outbox.id, outbox.task, outbox.queue, outbox.payload
""")
# How long a batch in flight holds back the next of its kind (beyond it, the next goes anyway).
BATCH_HOLD_S = 5.0


def claim(limit: int) -> list[Any]:
    """Mark up to ``limit`` waiting tasks claimed (in the caller's transaction) and return them."""
    batched = [h.task for h in registry.all_handlers() if h.batch is not None]
    return db.session.execute(_CLAIM, {"limit": limit, "max_attempts": MAX_ATTEMPTS, "batched": batched,
                                       "hold_s": BATCH_HOLD_S}).all()


def batches(claimed: list[Any], size: int = BATCH_SIZE) -> list[list[Any]]:
    """The claimed tasks grouped into jobs: tasks of a handler registered with ``batch=`` in batches of
    up to ``size`` of one kind (in id order), every other task alone."""
    jobs: list[list[Any]] = []
    open_batches: dict[str, list[Any]] = {}
    for task in claimed:
        handler = registry.handler_for_task(task.task)
        if handler is None or handler.batch is None:
            jobs.append([task])
            continue
        current = open_batches.get(task.task)
        if current is None or len(current) >= size:
            current = open_batches[task.task] = []
            jobs.append(current)
        current.append(task)
    return jobs


def mark_batches(jobs: list[list[Any]]) -> None:
    """Record, in the claim's transaction, which job carries each task of a batch (its first task's)."""
    members = [(task.id, job[0].id) for job in jobs if len(job) > 1 for task in job[1:]]
    if members:
        db.session.execute(
            text("UPDATE outbox SET batch_id = m.lead FROM unnest(CAST(:ids AS bigint[]), CAST(:leads AS bigint[])) "
                 "AS m (id, lead) WHERE outbox.id = m.id"),
            {"ids": [m[0] for m in members], "leads": [m[1] for m in members]},
        )


def stale_claims(stale_after_s: float = STALE_CLAIM_S, limit: int = 5000) -> list[Any]:
    """Tasks claimed more than ``stale_after_s`` ago and still not done, oldest first: (id, carrier),
    the carrier being the task whose job holds it (itself, unless it was claimed in a batch)."""
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=stale_after_s)
    return db.session.execute(
        select(OutboxTask.id, func.coalesce(OutboxTask.batch_id, OutboxTask.id).label("carrier"))
        .where(OutboxTask.done_at.is_(None), OutboxTask.enqueued_at < cutoff, OutboxTask.attempts < MAX_ATTEMPTS)
        .order_by(OutboxTask.id)
        .limit(limit)
    ).all()


def release(task_ids: list[int]) -> None:
    """Unclaim tasks, for the relay to enqueue them again (it is woken)."""
    db.session.execute(update(OutboxTask).where(OutboxTask.id.in_(task_ids)).values(enqueued_at=None, batch_id=None))
    db.session.execute(NOTIFY_SQL)


def run(task_id: int, handlers: Mapping[str, Callable[..., Any]] | None = None) -> str:
    """Run one task exactly once: its handler's writes and its ``done_at`` commit together. This is
    the job's edge: it owns the transaction. ``handlers`` (task -> function) replaces the registry's."""
    task = db.session.scalar(select(OutboxTask).where(OutboxTask.id == task_id).with_for_update())
    if task is None:
        db.session.rollback()
        return "gone"
    token = request_id_var.set(task.request_id or f"task-{task_id}")
    try:
        return _run_locked(task, handlers)
    finally:
        request_id_var.reset(token)


def run_batch(task_ids: list[int]) -> str:
    """Run a batch of tasks of one kind exactly once (the job's edge: it owns the transaction): their
    rows locked in id order, those not done yet handed to the handler's ``batch`` function at once,
    and all of them marked done in the same transaction. If the batch fails, each task is run alone
    (``run()``), so that one bad task is retried, and given up, by itself and the others are done."""
    locked = db.session.execute(
        select(OutboxTask.id, OutboxTask.task, OutboxTask.payload)
        .where(OutboxTask.id.in_(task_ids), OutboxTask.done_at.is_(None))
        .order_by(OutboxTask.id)
        .with_for_update()
    ).all()
    if not locked:
        db.session.rollback()
        return "already done"
    names = {task.task for task in locked}
    handler = registry.handler_for_task(locked[0].task) if len(names) == 1 else None
    if handler is None or handler.batch is None:
        db.session.rollback()
        return _one_by_one([task.id for task in locked])
    ids = [task.id for task in locked]
    token = request_id_var.set(f"tasks-{ids[0]}-{len(ids)}")
    try:
        handler.batch([task.payload for task in locked])
    except Exception as exc:  # noqa: BLE001 - any failure: the tasks are tried one by one
        db.session.rollback()
        log.warning("outbox batch of %d %s task(s) from %d failed (%s: %s); running them one by one",
                    len(ids), handler.task, ids[0], type(exc).__name__, exc)
        return _one_by_one(ids)
    finally:
        request_id_var.reset(token)
    db.session.execute(
        update(OutboxTask).where(OutboxTask.id.in_(ids))
        .values(done_at=func.clock_timestamp(), attempts=OutboxTask.attempts + 1, last_error=None)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(NOTIFY_SQL)  # the tasks of this kind held back meanwhile can go now
    db.session.commit()
    log.info("outbox batch of %d %s task(s) from %d done", len(ids), handler.task, ids[0])
    return f"{len(ids)} done"


def _one_by_one(task_ids: list[int]) -> str:
    failure: Exception | None = None
    for task_id in task_ids:
        try:
            run(task_id)
        except Exception as exc:  # noqa: BLE001 - the others still run; the job fails after them
            failure = exc
    if failure is not None:
        raise failure
    return f"{len(task_ids)} done one by one"


def _handler(name: str, handlers: Mapping[str, Callable[..., Any]] | None) -> Callable[..., Any]:
    if handlers is not None:
        return handlers[name]
    handler = registry.handler_for_task(name)
    if handler is None:
        raise LookupError(f"no handler is registered for the outbox task {name!r}")
    return handler.func


def _run_locked(task: OutboxTask, handlers: Mapping[str, Callable[..., Any]] | None) -> str:
    task_id, name = task.id, task.task
    if task.done_at is not None:
        db.session.rollback()
        return "already done"
    try:
        _handler(name, handlers)(**task.payload)
    except Exception as exc:
        db.session.rollback()
        error = f"{type(exc).__name__}: {exc}"[:1000]
        attempts = db.session.execute(
            update(OutboxTask)
            .where(OutboxTask.id == task_id)
            .values(attempts=OutboxTask.attempts + 1, last_error=error)
            .returning(OutboxTask.attempts, OutboxTask.payload)
        ).one()
        db.session.commit()
        log.warning("outbox task %d %s failed (attempt %d of %d): %s", task_id, name, attempts[0], MAX_ATTEMPTS, exc)
        if attempts[0] >= MAX_ATTEMPTS:
            _give_up(task_id, name, attempts[1], error, handlers)
        raise
    task.attempts += 1
    task.done_at = datetime.now(timezone.utc)
    task.last_error = None
    if (handler := registry.handler_for_task(name)) is not None and handler.batch is not None:
        db.session.execute(NOTIFY_SQL)  # tasks of its kind were held back while it ran (claim())
    db.session.commit()
    log.info("outbox task %d %s done", task_id, name)
    return "done"


def _give_up(task_id: int, name: str, payload: dict[str, Any], error: str,
             handlers: Mapping[str, Callable[..., Any]] | None) -> None:
    """The task's last attempt failed: it is left for an operator (docs/operations.md), and its
    handler's ``on_give_up`` records that in the domain's terms (an alert ``failed``)."""
    log.error("outbox task %d %s gave up after %d attempts: %s", task_id, name, MAX_ATTEMPTS, error)
    handler = registry.handler_for_task(name) if handlers is None else None
    if handler is None or handler.on_give_up is None:
        return
    try:
        handler.on_give_up(**payload, error=error)
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("outbox task %d %s: recording that it gave up failed", task_id, name)


def purge_done(older_than: timedelta = timedelta(days=1)) -> int:
    """Forget finished tasks after a while (they are kept a day for inspection); the caller commits."""
    cutoff = datetime.now(timezone.utc) - older_than
    return db.session.execute(delete(OutboxTask).where(OutboxTask.done_at < cutoff)).rowcount
