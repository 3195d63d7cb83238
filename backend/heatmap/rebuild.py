"""Rebuilding every heatmap aggregate from the reports in bulk (``safetravel heatmap rebuild``, and the
demo seed after adding reports). Gives exactly what counting report by report gives (tested).

The rebuild never holds up heatmap reads or the worker's counting for long (docs/architecture.md,
"Rebuild"):

1. it notes ``since``, a time no later than the start of any transaction still running: every report
   its snapshot will miss is created after it (``reports.created_at`` is the inserting transaction's
   ``clock_timestamp()``);
2. on one REPEATABLE READ snapshot it builds the five swapped tables aside, in schema ``heatmap_next``
   (same columns, keys and names), and lists in ``heatmap_next.rebuild_seen`` the reports it counted
   that were either not yet counted or created since ``since``; the live tables keep serving and
   keep being counted into;
3. the snapshot's uncounted reports (a backlog, or reports loaded in bulk) are marked counted, in
   chunks of short transactions (the worker's late job for one then changes nothing); the catch-up:
   the reports created since ``since`` that the worker counted meanwhile (into the live tables) and
   that the snapshot did not hold are added to the new tables with the worker's own code;
4. the swap, in one short transaction: the live tables locked (giving up after
   ``SWAP_LOCK_TIMEOUT_MS`` and trying again, so that reads queue behind it for no longer), the last
   catch-up, the live tables moved to schema ``heatmap_old`` and the new ones into their place;
5. the old tables dropped, the new foreign keys validated, both without blocking anyone.

Reports removed meanwhile (an erasure, the retention purge) would leave the snapshot stale: each such
transaction writes a row in ``heatmap_removals``, and a rebuild that sees a new one at its swap starts
again. A rebuild that fails anywhere leaves the live tables serving; the reports it had marked
counted are then counted into them, as the worker would have.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from psycopg.errors import LockNotAvailable, QueryCanceled
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from backend.extensions import db
from backend.heatmap.counting import (
    COUNCIL_FACTS,
    COUNCIL_JOIN,
    HAS_ROUTE,
    PUBLIC_SHIFT,
    REPORT_FACTS,
    add_counted_reports,
    city_tz,
    fine_cell_rows,
    lock_aggregates,
)
from backend.heatmap.grid import FINE_LEVEL, LEVELS, morton
from backend.heatmap.publishing import COUNTS_PUBLICLY_SQL

log = logging.getLogger(__name__)

REBUILD_WORK_MEM = "512MB"
NEXT, OLD = "heatmap_next", "heatmap_old"  # schemas (migration 0015)
SWAPPED = ("heatmap_cells", "heatmap_totals", "heatmap_reporters", "heatmap_public_units", "heatmap_council_cells")
SWAP_LOCK_TIMEOUT_MS = 100  # the longest a read queues behind the swap's lock request
SWAP_ATTEMPTS = 100
CATCH_UP_CHUNK = 2_000
MARK_CHUNK = 5_000  # reports marked counted per transaction (the worker waits at most for one)

# No later than the start of any transaction now running, nor than now.
SINCE_SQL = """
    SELECT least(clock_timestamp(), min(xact_start)) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
"""


class StaleSnapshot(RuntimeError):
    """Reports were removed while the rebuild ran: its tables would count them wrongly."""


def rebuild(chunk: int = 20_000, attempts: int = 3) -> dict[str, float]:
    """Recompute every aggregate from the reports (plus the retained counts of erased ones) aside,
    and swap the new tables in (see the module's docstring). Gives exactly what incremental updates
    give. Minutes per million reports (docs/benchmarks.md); reads and counting go on meanwhile."""
    if db.session().in_transaction():
        raise RuntimeError("heatmap rebuild runs in transactions of its own: commit or roll back first")
    for attempt in range(1, attempts + 1):
        marking = {"begun": False}  # whether this attempt has marked reports and not swapped yet
        try:
            return {**_rebuild(chunk, marking), "attempts": attempt}
        except StaleSnapshot:
            db.session.rollback()
            _count_marked_into_live_tables()  # the next attempt counts them afresh
            if attempt == attempts:
                raise
            log.warning("reports were removed during the heatmap rebuild (attempt %d); starting again", attempt)
        except BaseException:
            db.session.rollback()
            try:
                if marking["begun"]:
                    _count_marked_into_live_tables()
                _drop_aside()
            except Exception:  # noqa: BLE001 - the next rebuild drops them; the first error is the news
                log.exception("could not drop the failed heatmap rebuild's tables")
            raise
    raise AssertionError("unreachable")


def _rebuild(chunk: int, marking: dict[str, bool]) -> dict[str, float]:
    started = time.perf_counter()
    session = db.session
    _drop_aside()
    since = session.scalar(text(SINCE_SQL))
    session.commit()
    removals, phases = _build(chunk, since)
    session.commit()
    built = time.perf_counter()
    _add_foreign_keys()
    caught_up = _catch_up(since)
    session.execute(text(f"ANALYZE {', '.join(f'{NEXT}.{t}' for t in SWAPPED)}"))
    session.commit()
    marking["begun"] = True
    marked = _mark_counted()
    caught_up += _catch_up(since)
    session.commit()
    phases["catch_up_s"] = time.perf_counter() - built
    swap = _swap(since, removals)
    marking["begun"] = False
    phases["swap_s"] = swap["seconds"]
    try:  # the new tables serve from here on; what is left is tidying
        _drop_aside()
        _validate_foreign_keys()
    except Exception:  # noqa: BLE001 - the next rebuild drops what is left
        db.session.rollback()
        log.exception("heatmap rebuild swapped in; tidying up after it failed")
    return {"seconds": time.perf_counter() - started, "caught_up": caught_up + swap["caught_up"],
            "marked": marked, "swap_attempts": swap["attempts"], **phases}


def _drop_aside() -> None:
    """Whatever an earlier rebuild left aside: the old tables after a swap, new ones after a failure.
    Dropping their foreign keys locks ``users`` for a moment: with short lock requests."""
    _with_short_locks(lambda: db.session.execute(text(
        f"DROP TABLE IF EXISTS {', '.join(f'{schema}.{t}' for schema in (NEXT, OLD) for t in SWAPPED)}, "
        f"{NEXT}.rebuild_seen")))


def _keys_of(table: str) -> list[str]:
    """The statements that give ``heatmap_next.<table>`` the live table's keys and indexes, under the
    same names (counting's ``ON CONFLICT ON CONSTRAINT`` names them)."""
    statements = [
        f"ALTER TABLE {NEXT}.{table} ADD CONSTRAINT {name} {definition}"
        for name, definition in db.session.execute(text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:t AS regclass) AND contype IN ('p', 'u') ORDER BY conname"
        ), {"t": f"public.{table}"}).all()
    ]
    for (definition,) in db.session.execute(text(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = CAST(:t AS regclass) "
        "AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY 1"
    ), {"t": f"public.{table}"}).all():
        statements.append(re.sub(rf" ON (public\.)?{table} ", f" ON {NEXT}.{table} ", definition))
    return statements


def _foreign_keys_of(table: str) -> list[tuple[str, str]]:
    return db.session.execute(text(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = CAST(:t AS regclass) AND contype = 'f' ORDER BY conname"
    ), {"t": f"public.{table}"}).all()


def _with_short_locks(work, attempts: int = SWAP_ATTEMPTS) -> Any:
    """Run ``work`` in a transaction whose lock requests give up after SWAP_LOCK_TIMEOUT_MS (those
    queued behind it wait no longer), and try again a little later."""
    for attempt in range(1, attempts + 1):
        try:
            db.session.execute(text(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT_MS}ms'"))
            result = work()
            db.session.execute(text("SET LOCAL lock_timeout = DEFAULT"))
            db.session.commit()
            return result, attempt
        except OperationalError as exc:
            db.session.rollback()
            if not isinstance(exc.orig, LockNotAvailable | QueryCanceled) or attempt == attempts:
                raise
            time.sleep(min(0.05 * attempt, 1.0))
    raise AssertionError("unreachable")


def _add_foreign_keys() -> None:
    """The new tables reference users as the live ones do (an erasure's cascade reaches them too).
    NOT VALID: adding them takes a moment's lock on users, and no scan; validated after the swap."""
    def add() -> None:
        for table in SWAPPED:
            for name, definition in _foreign_keys_of(table):
                db.session.execute(text(f"ALTER TABLE {NEXT}.{table} ADD CONSTRAINT {name} {definition} NOT VALID"))
    _with_short_locks(add)


def _validate_foreign_keys() -> None:
    for table in SWAPPED:
        for name, _ in db.session.execute(text(
            "SELECT conname, 1 FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) AND contype = 'f' "
            "AND NOT convalidated"), {"t": f"public.{table}"}).all():
            db.session.execute(text(f"ALTER TABLE public.{table} VALIDATE CONSTRAINT {name}"))
    db.session.commit()


def _catch_up(since: Any) -> int:
    """Add to the new tables the reports counted into the live ones that the snapshot did not hold:
    created since ``since``, counted, not yet seen. Runs in the caller's transaction."""
    path = db.session.scalar(text("SELECT current_setting('search_path')"))
    db.session.execute(text(f"SELECT set_config('search_path', '{NEXT}, ' || :path, true)"), {"path": path})
    ids = db.session.scalars(text(f"""
        SELECT r.id FROM reports r
        WHERE r.created_at >= :since AND r.heatmap_counted_at IS NOT NULL
          AND NOT EXISTS (SELECT FROM {NEXT}.rebuild_seen s WHERE s.id = r.id)
    """), {"since": since}).all()
    for start in range(0, len(ids), CATCH_UP_CHUNK):
        add_counted_reports(ids[start:start + CATCH_UP_CHUNK])
    db.session.execute(text(f"INSERT INTO {NEXT}.rebuild_seen (id, uncounted, marked) SELECT id, false, false "
                            "FROM unnest(CAST(:ids AS uuid[])) AS id"),
                       {"ids": list(ids)})
    db.session.execute(text("SELECT set_config('search_path', :path, true)"), {"path": path})
    return len(ids)


def _mark_counted() -> int:
    """Mark counted the reports the snapshot counted while they were still uncounted, a chunk per
    transaction: no aggregate lock is taken, so a worker counting one of them waits for one chunk at
    most, then finds it counted (it went to the old tables; the new ones count it from the snapshot).
    Those this marks are noted (``marked``), for the repair should the rebuild fail."""
    while True:
        chunk = db.session.execute(text(f"""
            WITH chunk AS (
                SELECT id FROM {NEXT}.rebuild_seen WHERE uncounted AND NOT marked ORDER BY id LIMIT :chunk
            ), stamped AS (
                UPDATE reports r SET heatmap_counted_at = clock_timestamp()
                FROM chunk WHERE r.id = chunk.id AND r.heatmap_counted_at IS NULL
                RETURNING r.id
            )
            -- uncounted stays true only for those this marked: the others the worker counted meanwhile
            UPDATE {NEXT}.rebuild_seen s SET marked = true, uncounted = s.id IN (SELECT id FROM stamped)
            FROM chunk WHERE s.id = chunk.id
        """), {"chunk": MARK_CHUNK}).rowcount
        db.session.commit()
        if chunk < MARK_CHUNK:
            return db.session.scalar(text(f"SELECT count(*) FROM {NEXT}.rebuild_seen WHERE uncounted AND marked"))


def _count_marked_into_live_tables() -> None:
    """After a failed rebuild: the reports it marked counted go into the live tables, as the worker's
    jobs, which now change nothing, would have counted them."""
    exists = db.session.scalar(text(f"SELECT to_regclass('{NEXT}.rebuild_seen') IS NOT NULL"))
    if not exists:
        return
    ids = db.session.scalars(text(f"SELECT id FROM {NEXT}.rebuild_seen WHERE uncounted AND marked")).all()
    if ids:
        lock_aggregates()
        for start in range(0, len(ids), CATCH_UP_CHUNK):
            add_counted_reports(ids[start:start + CATCH_UP_CHUNK])
        log.warning("heatmap rebuild failed: %d reports it had marked counted are counted into the live tables", len(ids))
    db.session.commit()


def _swap(since: Any, removals: int) -> dict[str, Any]:
    started = time.perf_counter()

    def swap() -> dict[str, Any]:
        # The lock order of docs/architecture.md: the aggregates first.
        db.session.execute(text(f"LOCK TABLE {', '.join(SWAPPED)} IN ACCESS EXCLUSIVE MODE"))
        db.session.execute(text(f"LOCK TABLE {', '.join(f'{NEXT}.{t}' for t in SWAPPED)} IN ACCESS EXCLUSIVE MODE"))
        if db.session.scalar(text("SELECT count(*) FROM heatmap_removals")) != removals:
            raise StaleSnapshot("reports were removed during the rebuild")
        caught_up = _catch_up(since)
        for table in SWAPPED:
            db.session.execute(text(f"ALTER TABLE public.{table} SET SCHEMA {OLD}"))
            db.session.execute(text(f"ALTER TABLE {NEXT}.{table} SET SCHEMA public"))
        return {"caught_up": caught_up}

    result, attempts = _with_short_locks(swap)
    return {**result, "attempts": attempts, "seconds": time.perf_counter() - started}


def _build(chunk: int, since: Any) -> tuple[int, dict[str, float]]:
    """The new tables, built aside on one snapshot; returns the removals seen then, and phase times."""
    started = time.perf_counter()
    session = db.session
    tz = city_tz()
    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    removals = session.scalar(text("SELECT count(*) FROM heatmap_removals"))  # takes the snapshot
    for table in SWAPPED:
        session.execute(text(f"CREATE TABLE {NEXT}.{table} (LIKE public.{table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    key_statements = [statement for table in SWAPPED for statement in _keys_of(table)]
    # The statements below name the tables bare: the new ones, found first.
    path = session.scalar(text("SELECT current_setting('search_path')"))
    session.execute(text(f"SELECT set_config('search_path', '{NEXT}, ' || :path, true)"), {"path": path})
    # Bulk work: hash aggregates in memory, and the primary keys built once at the end, not row by row.
    session.execute(text(f"SET LOCAL work_mem = '{REBUILD_WORK_MEM}'"))
    session.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    session.execute(text("""
        CREATE TEMP TABLE heatmap_route_facts (n integer, author_id uuid, day date, hour smallint,
                                               category text, mode text, filed_day date) ON COMMIT DROP;
        CREATE TEMP TABLE heatmap_route_cells (n integer, q bigint) ON COMMIT DROP;
        CREATE TEMP TABLE heatmap_council_route_facts (n integer, council text, day date, hour smallint,
                                                       category text, mode text) ON COMMIT DROP;
        CREATE TEMP TABLE heatmap_council_route_cells (n integer, q bigint) ON COMMIT DROP;
    """))

    # Reports with a route: their cells come from grid.py, fed in chunks, written with COPY.
    routes = session.execute(
        text(f"SELECT {REPORT_FACTS} FROM reports r WHERE {HAS_ROUTE}"),
        {"tz": tz},
        execution_options={"stream_results": True, "yield_per": chunk},
    )
    cursor = session.connection().connection.driver_connection.cursor()
    n = 0
    for batch in routes.partitions(chunk):
        with cursor.copy("COPY heatmap_route_facts FROM STDIN") as copy:
            for i, f in enumerate(batch):
                copy.write_row((n + i, f.author_id, f.day, f.hour, f.category, f.mode, f.filed_day))
        cells = fine_cell_rows(batch, offset=n)
        keys = morton(cells[:, 1], cells[:, 2])
        with cursor.copy("COPY heatmap_route_cells FROM STDIN") as copy:
            copy.write("".join(f"{r}\t{q}\n" for r, q in zip(cells[:, 0].tolist(), keys.tolist())))
        n += len(batch)
    # The same for each council a routed report touches: its route clipped to the area, its
    # location only when inside.
    council_routes = session.execute(
        text(f"SELECT {COUNCIL_FACTS} FROM reports r {COUNCIL_JOIN} WHERE {HAS_ROUTE}"),
        {"tz": tz},
        execution_options={"stream_results": True, "yield_per": chunk},
    )
    m = 0
    for batch in council_routes.partitions(chunk):
        with cursor.copy("COPY heatmap_council_route_facts FROM STDIN") as copy:
            for i, f in enumerate(batch):
                copy.write_row((m + i, f.council, f.day, f.hour, f.category, f.mode))
        cells = fine_cell_rows(batch, offset=m)
        keys = morton(cells[:, 1], cells[:, 2])
        with cursor.copy("COPY heatmap_council_route_cells FROM STDIN") as copy:
            copy.write("".join(f"{r}\t{q}\n" for r, q in zip(cells[:, 0].tolist(), keys.tolist())))
        m += len(batch)
    phases = {"routes_s": time.perf_counter() - started}

    levels = list(LEVELS)
    session.execute(
        text(f"""
            INSERT INTO heatmap_cells (level, q, day, hour, category, mode, count)
            SELECT level, q, day, hour, category, mode, sum(n)::integer FROM (
                -- Reports without a route: one fine cell each, grouped once, then rolled up per level.
                SELECT l.level, p.q >> (2 * ({FINE_LEVEL} - l.level)) AS q, p.day, p.hour, p.category, p.mode, p.n
                FROM (
                    SELECT heatmap_morton(heatmap_fine_x(ST_X(pt)), heatmap_fine_y(ST_Y(pt))) AS q,
                           local_day(r.occurred_at, :tz) AS day, local_hour(r.occurred_at, :tz) AS hour,
                           r.category, coalesce(r.mode, '') AS mode, count(*) AS n
                    FROM reports r, heatmap_point_3857(r.location) AS pt
                    WHERE NOT ({HAS_ROUTE})
                    GROUP BY 1, 2, 3, 4, 5
                ) AS p CROSS JOIN unnest(CAST(:levels AS smallint[])) AS l (level)
                UNION ALL
                -- Reports with a route: once in each distinct cell per level.
                SELECT d.level, d.q, f.day, f.hour, f.category, f.mode, 1
                FROM (
                    SELECT DISTINCT l.level, c.n, c.q >> (2 * ({FINE_LEVEL} - l.level)) AS q
                    FROM heatmap_route_cells c CROSS JOIN unnest(CAST(:levels AS smallint[])) AS l (level)
                ) AS d JOIN heatmap_route_facts f USING (n)
                UNION ALL
                SELECT level, q, day, hour, category, mode, count FROM heatmap_retained
            ) AS everything
            GROUP BY level, q, day, hour, category, mode
            ORDER BY level, q  -- stored in key order: a tile's rows sit on few pages
        """),
        {"tz": tz, "levels": levels},
    )
    phases["cells_s"] = time.perf_counter() - started - sum(phases.values())
    session.execute(
        text(f"""
            INSERT INTO heatmap_council_cells (council, level, q, day, hour, category, mode, count)
            SELECT council, level, q, day, hour, category, mode, sum(n)::integer FROM (
                SELECT p.council, l.level, p.q >> (2 * ({FINE_LEVEL} - l.level)) AS q, p.day, p.hour, p.category,
                       p.mode, p.n
                FROM (
                    SELECT a.code AS council,
                           heatmap_morton(heatmap_fine_x(ST_X(pt)), heatmap_fine_y(ST_Y(pt))) AS q,
                           local_day(r.occurred_at, :tz) AS day, local_hour(r.occurred_at, :tz) AS hour,
                           r.category, coalesce(r.mode, '') AS mode, count(*) AS n
                    FROM council_areas a
                    JOIN reports r ON ST_Intersects(a.geom, r.location)
                    CROSS JOIN heatmap_point_3857(r.location) AS pt
                    WHERE NOT ({HAS_ROUTE})
                    GROUP BY 1, 2, 3, 4, 5, 6
                ) AS p CROSS JOIN unnest(CAST(:levels AS smallint[])) AS l (level)
                UNION ALL
                SELECT f.council, d.level, d.q, f.day, f.hour, f.category, f.mode, 1
                FROM (
                    SELECT DISTINCT l.level, c.n, c.q >> (2 * ({FINE_LEVEL} - l.level)) AS q
                    FROM heatmap_council_route_cells c CROSS JOIN unnest(CAST(:levels AS smallint[])) AS l (level)
                ) AS d JOIN heatmap_council_route_facts f USING (n)
                UNION ALL
                SELECT council, level, q, day, hour, category, mode, count FROM heatmap_council_retained
            ) AS everything
            GROUP BY council, level, q, day, hour, category, mode
            ORDER BY council, level, q
        """),
        {"tz": tz, "levels": levels},
    )
    phases["council_cells_s"] = time.perf_counter() - started - sum(phases.values())
    session.execute(
        text(f"""
            INSERT INTO heatmap_reporters (q, day, category, author_id)
            SELECT heatmap_morton(heatmap_fine_x(ST_X(pt)), heatmap_fine_y(ST_Y(pt))) >> {2 * PUBLIC_SHIFT},
                   local_day(r.occurred_at, :tz), r.category, r.author_id
            FROM reports r, heatmap_point_3857(r.location) AS pt
            WHERE NOT ({HAS_ROUTE})
            UNION
            SELECT c.q >> {2 * PUBLIC_SHIFT}, f.day, f.category, f.author_id
            FROM heatmap_route_cells c JOIN heatmap_route_facts f USING (n)
        """),
        {"tz": tz},
    )
    # The public units: each report once in each public cell it touches, when filed in time.
    session.execute(
        text(f"""
            INSERT INTO heatmap_public_units (q, week, category, author_id, reports)
            SELECT q, date_trunc('week', day)::date, category, author_id, count(*)
            FROM (
                SELECT heatmap_morton(heatmap_fine_x(ST_X(pt)), heatmap_fine_y(ST_Y(pt))) >> {2 * PUBLIC_SHIFT} AS q,
                       local_day(r.occurred_at, :tz) AS day, r.category, r.author_id
                FROM reports r, heatmap_point_3857(r.location) AS pt
                WHERE NOT ({HAS_ROUTE})
                  AND {COUNTS_PUBLICLY_SQL.format(filed="local_day(r.created_at, :tz)", day="local_day(r.occurred_at, :tz)")}
                UNION ALL
                SELECT p.q, f.day, f.category, f.author_id
                FROM (SELECT DISTINCT n, q >> {2 * PUBLIC_SHIFT} AS q FROM heatmap_route_cells) AS p
                JOIN heatmap_route_facts f USING (n)
                WHERE {COUNTS_PUBLICLY_SQL.format(filed="f.filed_day", day="f.day")}
            ) AS placed
            GROUP BY 1, 2, 3, 4
        """),
        {"tz": tz},
    )
    session.execute(text("""
        INSERT INTO heatmap_totals (level, q, category, mode, count)
        SELECT level, q, category, mode, sum(count) FROM heatmap_cells GROUP BY level, q, category, mode
        ORDER BY level, q
    """))
    for statement in key_statements:
        session.execute(text(statement))
    phases["reporters_and_keys_s"] = time.perf_counter() - started - sum(phases.values())
    session.execute(text(f"CREATE TABLE {NEXT}.rebuild_seen (id uuid PRIMARY KEY, uncounted boolean NOT NULL, "
                         "marked boolean NOT NULL DEFAULT false)"))
    session.execute(text(f"""
        INSERT INTO {NEXT}.rebuild_seen (id, uncounted)
        SELECT id, heatmap_counted_at IS NULL FROM reports
        WHERE heatmap_counted_at IS NULL OR created_at >= :since
    """), {"since": since})
    session.execute(text("SELECT set_config('search_path', :path, true)"), {"path": path})
    return removals, {**phases, "routes": n}
