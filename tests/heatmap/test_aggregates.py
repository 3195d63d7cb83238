"""The aggregates count what a brute-force query over the raw reports counts, for any filters; they
are counted once however often the job runs; a rebuild gives exactly the same tables."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from backend.extensions import db
from backend.heatmap import counting, grid, queries
from backend.heatmap.rebuild import rebuild
from backend.vocabulary import CATEGORIES, MODES
from tests.appctx import app_context
from tests.heatmap.helpers import add_report

# A 2 km square around Waterloo, clear of the Greenwich meridian (a grid line at every level).
WEST, SOUTH, EAST, NORTH = -0.13, 51.495, -0.10, 51.515
AREA = (WEST, SOUTH, EAST, NORTH)
M_PER_DEG = 111_320.0

BRUTE_FORCE = """
    SELECT g.x, gy.y, count(r.id) AS n
    FROM generate_series(CAST(:x0 AS integer), CAST(:x1 AS integer)) AS g (x)
    CROSS JOIN generate_series(CAST(:y0 AS integer), CAST(:y1 AS integer)) AS gy (y)
    CROSS JOIN LATERAL (SELECT ST_TileEnvelope(CAST(:level AS integer), g.x, gy.y) AS env) AS e
    JOIN reports r ON (
        ST_Intersects(e.env, heatmap_point_3857(r.location))
        OR (r.route IS NOT NULL AND ST_Length(ST_Intersection(ST_Transform(r.route, 3857), e.env)) > 0)
    )
    WHERE (CAST(:categories AS text[]) IS NULL OR r.category = ANY(:categories))
      AND (CAST(:modes AS text[]) IS NULL OR coalesce(r.mode, '') = ANY(:modes))
      AND (CAST(:from_day AS date) IS NULL OR (r.occurred_at AT TIME ZONE 'Europe/London')::date >= :from_day)
      AND (CAST(:to_day AS date) IS NULL OR (r.occurred_at AT TIME ZONE 'Europe/London')::date <= :to_day)
      AND (CAST(:hours AS int[]) IS NULL
           OR extract(hour FROM r.occurred_at AT TIME ZONE 'Europe/London')::int = ANY(:hours))
      AND (CAST(:weekdays AS int[]) IS NULL
           OR extract(isodow FROM r.occurred_at AT TIME ZONE 'Europe/London')::int = ANY(:weekdays))
    GROUP BY g.x, gy.y
    HAVING count(r.id) > 0
"""


def brute_force(f: queries.Filters, level: int) -> dict[tuple[int, int], int]:
    x0, x1, y0, y1 = grid.bbox_cell_range(AREA, level)
    rows = db.session.execute(text(BRUTE_FORCE), {
        "level": level, "x0": x0, "x1": x1, "y0": y0, "y1": y1,
        "categories": list(f.categories) if f.categories else None,
        "modes": list(f.modes) if f.modes else None,
        "from_day": f.from_day, "to_day": f.to_day,
        "hours": list(f.hours) if f.hours is not None else None,
        "weekdays": list(f.weekdays) if f.weekdays is not None else None,
    }).all()
    return {(x, y): n for x, y, n in rows}


def aggregated(f: queries.Filters, level: int) -> dict[tuple[int, int], int]:
    return {(c["x"], c["y"]): c["count"] for c in queries.cells(f, queries.Area.bbox(level, AREA), 100_000)}


def snapshot() -> dict[str, list]:
    return {
        table: db.session.execute(text(f"SELECT * FROM {table} AS t ORDER BY t")).all()
        for table in ("heatmap_cells", "heatmap_totals", "heatmap_reporters", "heatmap_retained", "heatmap_public_units",
                      "heatmap_council_cells", "heatmap_council_retained")
    }


def clear() -> None:
    db.session.execute(text(
        "TRUNCATE reports, users, outbox, heatmap_cells, heatmap_totals, heatmap_reporters, heatmap_retained, "
        "heatmap_public_units, heatmap_council_cells, heatmap_council_retained CASCADE"
    ))


# Times around both 2026 daylight-saving changes in London (29 March, 25 October) and ordinary weeks.
moments = st.datetimes(min_value=datetime(2026, 3, 26), max_value=datetime(2026, 4, 2)) | st.datetimes(
    min_value=datetime(2026, 10, 22), max_value=datetime(2026, 10, 29))


@st.composite
def reports(draw):
    lon = draw(st.floats(WEST + 0.002, EAST - 0.002))
    lat = draw(st.floats(SOUTH + 0.002, NORTH - 0.002))
    category = draw(st.sampled_from(CATEGORIES))
    route = None
    if category == "unsafe_route":
        heading = draw(st.floats(0, 2 * math.pi))
        steps = draw(st.lists(st.floats(30, 250), min_size=1, max_size=4))
        route = [(lon, lat)]
        for i, step in enumerate(steps):
            angle = heading + 0.4 * i
            px, py = route[-1]
            route.append((px + step * math.sin(angle) / (M_PER_DEG * math.cos(math.radians(py))),
                          py + step * math.cos(angle) / M_PER_DEG))
    return {
        "author": draw(st.sampled_from(["ann", "ben", "cat", "dan", "eve", "fay"])),
        "lon": lon, "lat": lat, "category": category, "route": route,
        "mode": draw(st.sampled_from((None,) + MODES[:4])),
        "occurred_at": draw(moments).replace(tzinfo=timezone.utc),
    }


LONDON = ZoneInfo("Europe/London")


@st.composite
def filters(draw, data):
    """Filters whose edges fall on the reports: windows ending on a report's local day, hours and
    weekdays that include some reports and exclude others."""
    anchor = draw(st.sampled_from(data))["occurred_at"].astimezone(LONDON)
    window = draw(st.booleans())
    from_day = anchor.date() - timedelta(days=draw(st.integers(0, 3))) if window else None
    to_day = anchor.date() + timedelta(days=draw(st.sampled_from((0, 0, 1, 30)))) if window else None
    hours = None
    if draw(st.booleans()):
        start, length = draw(st.sampled_from((anchor.hour, (anchor.hour + 1) % 24, 22))), draw(st.integers(1, 23))
        hours = tuple(sorted({(start + i) % 24 for i in range(length)}))
    weekdays = None
    if draw(st.booleans()):
        weekdays = tuple(sorted({anchor.isoweekday()} | set(draw(st.lists(st.integers(1, 7), max_size=2)))))
    return queries.Filters(
        categories=draw(st.none() | st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2, unique=True).map(tuple)),
        modes=draw(st.none() | st.lists(st.sampled_from(("",) + MODES[:4]), min_size=1, max_size=3, unique=True).map(tuple)),
        from_day=from_day, to_day=to_day, hours=hours, weekdays=weekdays,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), level=st.sampled_from((14, 16, 18)))
def test_counts_equal_a_brute_force_count_over_raw_reports(data, level):
    clear()
    generated = data.draw(st.lists(reports(), min_size=1, max_size=12), label="reports")
    for r in generated:
        add_report(r["author"], r["lon"], r["lat"], r["occurred_at"], r["category"], r["mode"], r["route"])
    f = data.draw(filters(generated), label="filters")
    assert aggregated(f, level) == brute_force(f, level)
    assert aggregated(queries.Filters(), level) == brute_force(queries.Filters(), level)


def test_counting_a_report_twice_changes_nothing():
    report_id = add_report("ann", -0.1145, 51.4627, datetime(2026, 11, 20, 22, 15, tzinfo=timezone.utc))
    before = snapshot()
    with app_context():  # as in a worker
        assert counting.apply_report(report_id) is False
    assert snapshot() == before
    assert sum(c["count"] for c in queries.cells(queries.Filters(), queries.Area(18), 100)) == 1


def test_a_route_counts_once_in_each_cell_along_it_and_in_each_coarser_cell():
    # About 700 m due east across Waterloo Bridge's latitude: several fine cells, once each.
    route = [(-0.1200, 51.5050), (-0.1100, 51.5050)]
    add_report("ann", -0.1200, 51.5050, datetime(2026, 11, 20, 22, tzinfo=timezone.utc), "unsafe_route", route=route)
    fine = queries.cells(queries.Filters(), queries.Area(18), 100)
    assert len(fine) >= 6 and {c["count"] for c in fine} == {1}
    assert {c["count"] for c in queries.cells(queries.Filters(), queries.Area(12), 100)} == {1}


def test_hours_wrap_past_midnight_in_local_time():
    # Local (BST in July, UTC+1): 23:30, 01:30 and 12:00.
    for utc_hour in (22, 0, 11):
        add_report("ann", -0.1145, 51.4627, datetime(2026, 7, 3, utc_hour, 30, tzinfo=timezone.utc))
    night = queries.Filters(hours=tuple(sorted({22, 23, 0, 1, 2, 3})))
    assert sum(c["count"] for c in queries.cells(night, queries.Area(12), 10)) == 2


def test_hours_and_days_are_local_across_a_daylight_saving_change():
    # 2026-03-29 01:30 UTC is 02:30 BST on Sunday; 2026-03-28 23:30 UTC is 23:30 GMT on Saturday.
    add_report("ann", -0.1145, 51.4627, datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc))
    add_report("ben", -0.1145, 51.4627, datetime(2026, 3, 28, 23, 30, tzinfo=timezone.utc))
    total = lambda f: sum(c["count"] for c in queries.cells(f, queries.Area(12), 10))  # noqa: E731
    assert total(queries.Filters(hours=(2,), weekdays=(7,))) == 1
    assert total(queries.Filters(hours=(23,), weekdays=(6,))) == 1
    assert total(queries.Filters(from_day=date(2026, 3, 29), to_day=date(2026, 3, 29))) == 1


@pytest.fixture
def clean_heatmap(real_commits):
    yield


def test_rebuild_gives_exactly_what_incremental_updates_gave(app, clean_heatmap, client, commuter):
    with app.app_context():
        base = datetime(2026, 10, 24, 20, tzinfo=timezone.utc)
        for i in range(30):
            add_report(f"user-{i % 7}", -0.13 + 0.001 * i, 51.50 + 0.0007 * (i % 9), base + timedelta(hours=5 * i),
                       CATEGORIES[i % 3], MODES[i % 5] if i % 4 else None,
                       [(-0.13 + 0.001 * i, 51.50 + 0.0007 * (i % 9)), (-0.125 + 0.001 * i, 51.503)] if i % 3 == 2 else None,
                       # Most filed at the time (they count in the public units), some weeks late (they do not).
                       filed_at=base + timedelta(hours=5 * i, days=20 if i % 5 == 0 else 0, minutes=30))
        db.session.commit()
        # A person erases their data: their reports go, their counts stay.
        from backend.users.service import erase_user
        assert erase_user("user-3")
        incremental = snapshot()
        assert incremental["heatmap_retained"]
        assert incremental["heatmap_council_retained"]
        assert {c.council for c in incremental["heatmap_council_cells"]} >= {"E09000033", "E09000022"}
        units = incremental["heatmap_public_units"]
        assert units and sum(u.reports for u in units) < 30 * 2  # the late ones left out
        db.session.commit()
        rebuild()
        assert snapshot() == incremental
        db.session.remove()


def test_reports_past_retention_are_deleted_and_the_heatmap_keeps_their_counts(app, clean_heatmap, staff):
    from backend.reports import service as reports
    from worker import jobs

    with app.app_context():
        base = datetime(2026, 10, 1, 21, tzinfo=timezone.utc)
        ids = [add_report(f"user-{i}", -0.12 + 0.002 * i, 51.5, base + timedelta(hours=i), CATEGORIES[i % 3], None,
                          [(-0.12 + 0.002 * i, 51.5), (-0.118 + 0.002 * i, 51.501)] if i % 3 == 2 else None,
                          filed_at=base + timedelta(hours=i, minutes=30))
               for i in range(9)]
        old = ids[:6]
        reports.triage(old[0], "reviewing", "looked at", staff)
        db.session.execute(text("UPDATE reports SET created_at = now() - interval '400 days' WHERE id = ANY(:ids)"),
                           {"ids": old})
        db.session.commit()
        before = snapshot()
        assert jobs.purge_expired_reports(365, batch=4) == 6  # in two batches
        assert set(db.session.scalars(text("SELECT id::text FROM reports")).all()) == set(ids[6:])
        assert db.session.scalar(text("SELECT count(*) FROM report_status_changes")) == 0
        after = snapshot()
        for table in ("heatmap_cells", "heatmap_totals", "heatmap_council_cells"):
            assert after[table] == before[table]  # the heatmap shows the same counts
        assert after["heatmap_retained"]
        # Who reported where and when goes with the reports: only the people of the recent ones remain.
        recent_authors = set(db.session.scalars(text("SELECT author_id FROM reports")).all())
        assert {r.author_id for r in after["heatmap_reporters"]} == recent_authors
        assert {r.author_id for r in before["heatmap_reporters"]} > recent_authors
        # The public units lose the reports too.
        assert {u.author_id for u in after["heatmap_public_units"]} == recent_authors
        assert {u.author_id for u in before["heatmap_public_units"]} > recent_authors
        db.session.commit()
        rebuild()
        assert snapshot() == after  # and a rebuild gives it again
        assert jobs.purge_expired_reports(365) == 0
        db.session.remove()


def test_the_retention_purge_is_scheduled_daily():
    from backend import queues
    from worker import jobs
    from worker.schedule import PERIODIC

    assert (jobs.purge_expired_reports, queues.MAINTENANCE, 86400) in PERIODIC


def test_rebuild_counts_reports_the_worker_has_not_reached_and_marks_them(app, clean_heatmap):
    with app.app_context():
        pending = add_report("ann", -0.1145, 51.4627, datetime(2026, 11, 20, 22, tzinfo=timezone.utc), count=False)
        db.session.commit()
        rebuild()
        assert sum(c["count"] for c in queries.cells(queries.Filters(), queries.Area(18), 10)) == 1
        assert counting.apply_report(pending) is False  # the job, arriving late, changes nothing
        db.session.commit()
        assert sum(c["count"] for c in queries.cells(queries.Filters(), queries.Area(18), 10)) == 1
        db.session.remove()


def test_erasing_a_person_keeps_the_heatmap_counts(client, commuter, staff):
    response = client.post("/api/v1/reports", json={
        "category": "spiking", "occurred_at": "2026-11-20T22:00:00Z",
        "location": {"type": "Point", "coordinates": [-0.1145, 51.4627]}}, headers=commuter.headers())
    with app_context():  # as in a worker
        assert counting.apply_report(response.json["id"])
    before = {c["q"]: c["count"] for c in queries.cells(queries.Filters(), queries.Area(16), 10)}
    assert client.delete("/api/v1/me", headers=commuter.headers()).status_code == 204
    assert {c["q"]: c["count"] for c in queries.cells(queries.Filters(), queries.Area(16), 10)} == before
    assert db.session.execute(text("SELECT count(*) FROM heatmap_reporters")).scalar() == 0


def test_a_window_includes_both_of_its_end_days_in_local_time():
    # 2026-11-19 23:30 UTC is 19 November in London (GMT); 2026-07-19 23:30 UTC is 20 July (BST).
    add_report("ann", -0.1145, 51.4627, datetime(2026, 11, 19, 23, 30, tzinfo=timezone.utc))
    add_report("ben", -0.1145, 51.4627, datetime(2026, 7, 19, 23, 30, tzinfo=timezone.utc))
    total = lambda a, b: sum(c["count"] for c in queries.cells(  # noqa: E731
        queries.Filters(from_day=a, to_day=b), queries.Area(12), 10))
    assert total(date(2026, 11, 19), date(2026, 11, 19)) == 1
    assert total(date(2026, 11, 18), date(2026, 11, 19)) == 1
    assert total(date(2026, 11, 20), date(2026, 11, 21)) == 0
    assert total(date(2026, 7, 20), date(2026, 7, 20)) == 1
    assert total(date(2026, 7, 19), date(2026, 7, 19)) == 0
