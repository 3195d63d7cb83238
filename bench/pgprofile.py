"""Where PostgreSQL's CPU goes during a benchmark phase (``make bench-ingest BENCH_ARGS=--pg-profile``).

Three views of one phase, taken from PostgreSQL's own accounting, divided by the reports of the phase:

- **CPU by process**: user + system time (/proc/<pid>/stat) of every process under the postmaster,
  grouped by whom it serves: a client backend by the process at the other end of its socket (the API,
  the worker, the scheduler: found through /proc/net/tcp and the clients' file descriptors) or else its
  ``application_name`` (the bench's own connections), any other by its ``backend_type`` (walwriter,
  autovacuum worker, checkpointer ...); connections that ended during the phase, and the postmaster's
  own work (forking them), as one line;
- **statements** (pg_stat_statements, when ``shared_preload_libraries`` has it, as deploy/local/stack.sh
  sets): calls and execution time per report of each statement, planning included, with the WAL each
  writes. Execution time is elapsed time in the backend, not CPU: on a busy machine it includes waiting
  for a core, a lock or the WAL flush, so compare statements with each other, not with the CPU above;
- **tables**: rows inserted, updated (HOT or not), deleted per report, and the autovacuum runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import psycopg

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _ticks(pid: int) -> tuple[int, int, int] | None:
    """(parent, own user + system ticks, reaped children's user + system ticks)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def _tree(root: int) -> list[int]:
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (ticks := _ticks(int(entry.name))) is not None:
            parents[int(entry.name)] = ticks[0]
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return found


def _socket_owners(clients: dict[str, int]) -> dict[int, str]:
    """Local TCP port -> the name of the client process tree holding that socket."""
    inode_port = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    inode_port[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
        except OSError:
            continue
    owners = {}
    for name, root in clients.items():
        for pid in _tree(root):
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:[") and (port := inode_port.get(target[8:-1])) is not None:
                    owners[port] = name
    return owners


@dataclass
class Snapshot:
    own: dict[int, int] = field(default_factory=dict)  # backend pid -> its own ticks
    group: dict[int, str] = field(default_factory=dict)  # backend pid -> whom it serves
    postmaster_own: int = 0
    postmaster_reaped: int = 0
    statements: dict[tuple[int, str], tuple] = field(default_factory=dict)
    tables: dict[str, tuple] = field(default_factory=dict)
    wal: tuple = ()


class PgProfile:
    """Snapshots around a phase; ``report(n)`` prints the three tables per report."""

    def __init__(self, dsn: str, postmaster: int) -> None:
        self.postmaster = postmaster
        self.clients: dict[str, int] = {}  # name -> root pid of a client process tree
        self.conn = psycopg.connect(dsn, autocommit=True, application_name="bench-profile")
        self.statements = bool(self.conn.execute(
            "SELECT 'pg_stat_statements' = ANY(string_to_array(current_setting('shared_preload_libraries'), ', '))"
        ).fetchone()[0])
        if self.statements:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        self.dbid = self.conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]

    def close(self) -> None:
        self.conn.close()

    def snapshot(self) -> Snapshot:
        snap = Snapshot()
        owners = _socket_owners(self.clients)
        activity = {pid: ((owners.get(port) or app or kind) + (" LISTEN" if query.startswith("LISTEN") else "")
                          if kind == "client backend" else kind)
                    for pid, kind, app, port, query in self.conn.execute(
                        "SELECT pid, backend_type, application_name, client_port, coalesce(query, '') "
                        "FROM pg_stat_activity")}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            ticks = _ticks(pid)
            if ticks is None:
                continue
            if pid == self.postmaster:
                snap.postmaster_own, snap.postmaster_reaped = ticks[1], ticks[2]
            elif ticks[0] == self.postmaster:
                snap.own[pid] = ticks[1] + ticks[2]
                snap.group[pid] = activity.get(pid, "other postmaster child")
        if self.statements:
            for row in self.conn.execute(
                    "SELECT queryid, query, calls, total_exec_time + total_plan_time, rows, "
                    "shared_blks_hit + shared_blks_read, shared_blks_dirtied, wal_bytes::bigint, plans "
                    "FROM pg_stat_statements WHERE dbid = %s", (self.dbid,)):
                snap.statements[(row[0], row[1])] = row[2:]
        for row in self.conn.execute(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, autovacuum_count, "
                "autoanalyze_count FROM pg_stat_user_tables"):
            snap.tables[row[0]] = row[1:]
        snap.wal = self.conn.execute("SELECT wal_records, wal_fpi, wal_bytes::bigint FROM pg_stat_wal").fetchone()
        return snap

    def start(self) -> None:
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        self.before = self.snapshot()

    def stop(self) -> None:
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        self.after = self.snapshot()

    def cpu_by_group(self) -> dict[str, float]:
        """CPU ms per group over the phase."""
        before, after = self.before, self.after
        groups: dict[str, float] = {}
        ended_start = 0
        for pid, ticks in after.own.items():
            name = after.group[pid]
            groups[name] = groups.get(name, 0) + ticks - before.own.get(pid, 0)
        for pid, ticks in before.own.items():
            if pid not in after.own:
                ended_start += ticks  # reaped into the postmaster's children's time, counted from 0 again
        ended = (after.postmaster_reaped - before.postmaster_reaped - ended_start
                 + after.postmaster_own - before.postmaster_own)
        groups["ended connections + postmaster"] = ended
        return {name: ticks * 1000 / CLOCK_TICKS for name, ticks in groups.items()}

    def report(self, reports: int, label: str) -> dict:
        n = reports
        cpu = self.cpu_by_group()
        total = sum(cpu.values())
        print(f"\nPostgreSQL CPU by process, {label} ({n} reports): {total / n:.2f} ms per report")
        print("| process | CPU ms per report | share |")
        print("| --- | ---: | ---: |")
        for name, ms in sorted(cpu.items(), key=lambda kv: -kv[1]):
            if abs(ms) >= 0.005 * n:
                print(f"| {name} | {ms / n:.3f} | {ms / total:.0%} |")
        statements = []
        if self.statements:
            for key, row in self.after.statements.items():
                old = self.before.statements.get(key, (0,) * len(row))
                delta = [a - b for a, b in zip(row, old)]
                if delta[0]:
                    statements.append((key[1], *delta))
            statements.sort(key=lambda s: -s[2])
            elapsed = sum(s[2] for s in statements)
            print(f"\nstatements, {label}: {elapsed / n:.2f} ms of execution (elapsed) per report")
            print("| statement | calls per report | ms per report | ms per call | rows per call | buffers per call "
                  "| dirtied per report | WAL bytes per report | plans per call |")
            print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
            for query, calls, ms, rows, buffers, dirtied, wal, plans in statements[:25]:
                text = " ".join(query.split())
                text = (text[:110] + " ...") if len(text) > 110 else text
                print(f"| `{text.replace('|', '/')}` | {calls / n:.3f} | {ms / n:.3f} | {ms / calls:.3f} | "
                      f"{rows / calls:.1f} | {buffers / calls:.1f} | {dirtied / n:.2f} | {wal / n:.0f} | "
                      f"{plans / calls:.2f} |")
        print(f"\ntables, {label}, per report: inserted / updated (HOT) / deleted; autovacuum, autoanalyze runs")
        tables = []
        for name, row in self.after.tables.items():
            old = self.before.tables.get(name, (0,) * len(row))
            delta = [a - b for a, b in zip(row, old)]
            if any(delta):
                tables.append((name, *delta))
                print(f"  {name}: {delta[0] / n:.2f} / {delta[1] / n:.2f} ({delta[2] / n:.2f}) / {delta[3] / n:.2f}; "
                      f"{delta[4]}, {delta[5]}")
        wal = [a - b for a, b in zip(self.after.wal, self.before.wal)]
        print(f"WAL per report: {wal[0] / n:.1f} records, {wal[1] / n:.2f} full-page images, {wal[2] / n:.0f} bytes")
        return {"cpu_ms_per_report": {k: round(v / n, 3) for k, v in cpu.items()},
                "statements": [{"query": " ".join(s[0].split())[:300], "calls_per_report": round(s[1] / n, 3),
                                "ms_per_report": round(s[2] / n, 4), "wal_bytes_per_report": round(s[6] / n)}
                               for s in statements[:25]],
                "tables": {t[0]: [round(x / n, 3) for x in t[1:5]] + list(t[5:]) for t in tables},
                "wal_per_report": {"records": round(wal[0] / n, 2), "fpi": round(wal[1] / n, 3),
                                   "bytes": round(wal[2] / n)}}
