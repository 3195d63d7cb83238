"""The rebuild builds its tables aside and swaps them in: reads and counting go on while it runs,
reports counted meanwhile end up counted once, and a rebuild that fails leaves the old tables serving."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import psycopg
import pytest
from sqlalchemy import text

from backend.config import libpq_dsn
from backend.extensions import db
from backend.heatmap import counting, queries
from backend.heatmap import rebuild as rebuilding
from backend.heatmap.rebuild import rebuild
from tests.appctx import app_context
from tests.heatmap.helpers import add_report
from tests.heatmap.test_aggregates import snapshot

NIGHT = datetime(2026, 11, 20, 22, tzinfo=timezone.utc)
ROUTE = [(-0.1200, 51.5050), (-0.1100, 51.5050)]


def fine_total() -> int:
    """Reports at fine cells, leaving the route out (it counts once in each cell along it)."""
    return db.session.scalar(text(
        "SELECT coalesce(sum(count), 0) FROM heatmap_cells WHERE level = 18 AND category <> 'unsafe_route'"))


def waiting_for_locks(settings) -> psycopg.Connection:
    """A connection that fails rather than wait more than 200 ms for a lock."""
    conn = psycopg.connect(libpq_dsn(settings.database_url), autocommit=True)
    conn.execute("SET lock_timeout = '200ms'")
    return conn


class Pause:
    """Holds a rebuild at one of its steps until released (only the first time it gets there)."""

    def __init__(self, monkeypatch, name: str) -> None:
        self.reached, self.go = threading.Event(), threading.Event()
        step = getattr(rebuilding, name)

        def paused(*args, **kwargs):
            if not self.reached.is_set():
                self.reached.set()
                assert self.go.wait(60)
            return step(*args, **kwargs)

        monkeypatch.setattr(rebuilding, name, paused)


def in_background(app, work) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        with app.app_context():
            try:
                outcome["result"] = work()
            except BaseException as exc:  # handed to the test
                outcome["error"] = exc
            finally:
                db.session.remove()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.fixture
def clean_heatmap(real_commits):
    yield


def test_reads_and_counting_go_on_during_a_rebuild_and_every_report_counts_once(
        app, settings, clean_heatmap, client, staff, monkeypatch):
    with app.app_context():
        add_report("ann", -0.1145, 51.4627, NIGHT)
        add_report("ben", -0.1200, 51.5050, NIGHT, "unsafe_route", route=ROUTE)
        pending = add_report("cat", -0.1150, 51.4630, NIGHT, count=False)  # the worker has not reached it
        db.session.commit()
        db.session.remove()
    building = Pause(monkeypatch, "_keys_of")  # inside the snapshot's transaction
    swapping = Pause(monkeypatch, "_swap")  # after the first catch-up
    thread, outcome = in_background(app, rebuild)
    assert building.reached.wait(60)

    # While it builds: reads answer at once, with the live tables' counts, over HTTP and in SQL.
    response = client.get("/api/v1/heatmap", query_string={"zoom": 18, "bbox": "-0.13,51.45,-0.10,51.52"},
                          headers=staff.headers())
    assert response.status_code == 200
    assert sum(f["properties"]["count"] for f in response.json["features"]) >= 2
    with waiting_for_locks(settings) as conn:
        assert conn.execute("SELECT count(*) FROM heatmap_cells").fetchone()[0] > 0
    # ... and the worker counts without waiting: the report pending at the snapshot, and a new one.
    with app.app_context():
        db.session.execute(text("SET LOCAL lock_timeout = '200ms'"))
        assert counting.apply_report(pending)
        db.session.commit()
        during_build = add_report("dan", -0.1160, 51.4640, NIGHT)
        db.session.remove()
    building.go.set()

    # Between the first catch-up and the swap: one more report comes in and is counted.
    assert swapping.reached.wait(60)
    with app.app_context():
        before_swap = add_report("eve", -0.1170, 51.4650, NIGHT)
        after_swap = add_report("fay", -0.1180, 51.4660, NIGHT, count=False)  # counted after the swap
        db.session.commit()
        db.session.remove()
    swapping.go.set()
    thread.join(120)
    assert "error" not in outcome, outcome.get("error")
    stats = outcome["result"]
    assert stats["caught_up"] == 2  # during_build and before_swap, which the snapshot did not hold
    assert stats["marked"] == 0  # the pending one was counted by the worker meanwhile

    with app_context():
        for report_id in (pending, during_build, before_swap):
            assert counting.apply_report(report_id) is False  # already counted, once
        assert counting.apply_report(after_swap)
    with app.app_context():
        assert fine_total() == 5  # ann, cat, dan, eve, fay: once each
        swapped = snapshot()
        db.session.remove()
        rebuild()  # undisturbed, from the reports: the same tables
        assert snapshot() == swapped
        assert db.session.scalar(text(
            "SELECT count(*) FROM pg_tables WHERE schemaname IN ('heatmap_next', 'heatmap_old')")) == 0
        db.session.remove()


def test_a_report_pending_at_the_snapshot_is_counted_by_the_rebuild_and_marked(app, clean_heatmap):
    with app.app_context():
        add_report("ann", -0.1145, 51.4627, NIGHT)
        pending = add_report("cat", -0.1150, 51.4630, NIGHT, count=False)
        db.session.commit()
        db.session.remove()
        stats = rebuild()
        assert stats["marked"] == 1 and stats["caught_up"] == 0
        assert counting.apply_report(pending) is False
        assert fine_total() == 2
        db.session.remove()


def test_a_rebuild_failing_while_it_builds_leaves_the_old_tables_as_they_were(app, clean_heatmap, monkeypatch):
    with app.app_context():
        add_report("ann", -0.1145, 51.4627, NIGHT)
        pending = add_report("cat", -0.1150, 51.4630, NIGHT, count=False)
        db.session.commit()
        before = snapshot()
        db.session.remove()

        def broken(*_args):
            raise RuntimeError("the disk is full")

        monkeypatch.setattr(rebuilding, "_keys_of", broken)
        with pytest.raises(RuntimeError, match="disk is full"):
            rebuild()
        assert snapshot() == before
        assert db.session.scalar(text("SELECT heatmap_counted_at IS NULL FROM reports WHERE id = :id"), {"id": pending})
        assert db.session.scalar(text(
            "SELECT count(*) FROM pg_tables WHERE schemaname IN ('heatmap_next', 'heatmap_old')")) == 0
        db.session.remove()


def test_a_rebuild_failing_in_its_swap_leaves_the_old_tables_serving(app, clean_heatmap, client, staff, monkeypatch):
    with app.app_context():
        add_report("ann", -0.1145, 51.4627, NIGHT)
        pending = add_report("cat", -0.1150, 51.4630, NIGHT, count=False)
        db.session.commit()
        db.session.remove()
        catch_up, calls = rebuilding._catch_up, []

        def failing_in_the_swap(*args):  # the third catch-up runs inside the swap's transaction
            calls.append(args)
            if len(calls) == 3:
                raise RuntimeError("the disk is full")
            return catch_up(*args)

        monkeypatch.setattr(rebuilding, "_catch_up", failing_in_the_swap)
        with pytest.raises(RuntimeError, match="disk is full"):
            rebuild()
        # The old tables serve; the report the rebuild had marked counted is counted into them, once.
        assert counting.apply_report(pending) is False
        db.session.commit()
        assert fine_total() == 2
        assert db.session.scalar(text(
            "SELECT count(*) FROM pg_tables WHERE schemaname IN ('heatmap_next', 'heatmap_old')")) == 0
        after_failure = snapshot()
        db.session.remove()
    response = client.get("/api/v1/heatmap", query_string={"zoom": 8}, headers=staff.headers())
    assert response.status_code == 200 and sum(f["properties"]["count"] for f in response.json["features"]) == 2
    monkeypatch.undo()
    with app.app_context():
        assert rebuild()["marked"] == 0  # and the next one works, and gives the same tables
        assert snapshot() == after_failure
        db.session.remove()


def test_an_erasure_during_a_rebuild_makes_it_start_again(app, clean_heatmap, monkeypatch):
    from backend.users.service import erase_user

    with app.app_context():
        add_report("ann", -0.1145, 51.4627, NIGHT)
        add_report("ben", -0.1200, 51.5050, NIGHT, "unsafe_route", route=ROUTE)
        db.session.remove()
    building = Pause(monkeypatch, "_keys_of")
    thread, outcome = in_background(app, rebuild)
    assert building.reached.wait(60)
    with app.app_context():
        db.session.execute(text("SET LOCAL lock_timeout = '200ms'"))  # the erasure does not wait either
        assert erase_user("ben")
        db.session.commit()
        incremental = snapshot()
        db.session.remove()
    building.go.set()
    thread.join(120)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"]["attempts"] == 2
    with app.app_context():
        assert snapshot() == incremental  # ben's counts kept, ben gone from the reporters
        assert not db.session.scalar(text("SELECT count(*) FROM heatmap_reporters r JOIN users u ON u.id = r.author_id "
                                          "WHERE u.firebase_uid = 'ben'"))
        db.session.remove()


def test_the_swap_gives_way_to_a_long_read_and_reads_queue_behind_it_briefly(app, settings, clean_heatmap):
    with app.app_context():
        add_report("ann", -0.1145, 51.4627, NIGHT)
        db.session.remove()
    long_read = psycopg.connect(libpq_dsn(settings.database_url))
    long_read.execute("SELECT count(*) FROM heatmap_cells")  # holds its lock until it ends
    thread, outcome = in_background(app, rebuild)
    waits = []
    with waiting_for_locks(settings) as conn:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            started = time.perf_counter()
            conn.execute("SELECT count(*) FROM heatmap_cells").fetchone()  # fails after 200 ms of waiting
            waits.append(time.perf_counter() - started)
            time.sleep(0.01)
    long_read.close()
    thread.join(120)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"]["swap_attempts"] > 1
    assert len(waits) > 20
    with app.app_context():
        assert sum(c["count"] for c in queries.cells(queries.Filters(), queries.Area(18), 10)) == 1
        db.session.remove()
