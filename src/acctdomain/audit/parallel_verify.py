"""The quick pass of :func:`~acctdomain.audit.verify`: every event checked against the *stored*
hash of the event before it, in contiguous ranges of notification ids, side by side in worker
processes.

A chain row holds the hash of its event, which covers the hash before it. So when every event's
link, computed from the *stored* hash of the previous event, equals its own stored hash, and the
chain table holds no row without an event, a walk from the genesis would compute exactly the
stored hashes: the chain is sound. A range therefore needs only the stored hash of the last event
before it (its boundary link, checked once, as the last event of the range before), and ranges
can be checked independently.

The quick pass never names a problem. It returns the *prefix* that checked out (how many events,
the last position and its hash); :func:`~acctdomain.audit.verify` accepts the store when that is
the whole store and the chain has no other rows, and otherwise walks on from the prefix as it
always has, naming the first bad position exactly as a walk from the genesis would (over the
prefix that walk would compute the very hashes that are stored).

With ``workers`` above 1 the caller checks the first range itself and starts one process per
other range, running :mod:`acctdomain.audit.verify_worker` as a script (a bare interpreter: the
package is not imported there, and no connection of the caller's is inherited). A worker opens
its own connection to the same store: an SQLite file (its own read transaction; rows are only
ever appended after the range it reads) or a PostgreSQL database (importing the snapshot of the
caller's transaction, so all read the same snapshot). A worker that fails checked nothing; the
walk reads its range.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from acctdomain.audit import verify_worker
from acctdomain.audit.chain import GENESIS, HEADER
from acctdomain.audit.readers import PostgresChainReader, SQLiteChainReader
from acctdomain.audit.verify_worker import PostgresRanges, Prefix, Ranges, SQLiteRanges

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "AUTO_MAX_WORKERS",
    "AUTO_MIN_EVENTS",
    "PostgresSource",
    "Prefix",
    "SQLiteSource",
    "Source",
    "auto_workers",
    "postgres_source",
    "quick_pass",
    "sqlite_source",
]

AUTO_MIN_EVENTS = 100_000
"""Below this many events ``workers=None`` checks in the calling process: starting a worker
costs more than it saves."""
AUTO_MAX_WORKERS = 2
"""``workers=None`` uses at most this many processes (2 cores is all that was measured)."""

_WAIT_SECONDS = 0.1
_TOP = (1 << 63) - 1
_STARTUP_EVENTS = 7_000
"""About how many events the caller checks while a worker process starts (~30 ms)."""


@attrs.frozen(kw_only=True)
class SQLiteSource:
    """An SQLite file a worker process can open by itself."""

    path: str
    events_table: str

    def task(self) -> dict[str, Any]:
        return {"kind": "sqlite", "path": self.path, "events_table": self.events_table}


@attrs.frozen(kw_only=True)
class PostgresSource:
    """A PostgreSQL database a worker process can connect to by itself."""

    dsn: str
    password: str | None = attrs.field(repr=False)
    schema: str
    events_table: str

    def task(self) -> dict[str, Any]:
        return {
            "kind": "postgres",
            "dsn": self.dsn,
            "password": self.password,
            "schema": self.schema,
            "events_table": self.events_table,
        }


Source = SQLiteSource | PostgresSource


def sqlite_source(connection: sqlite3.Connection, events_table: str) -> SQLiteSource | None:
    """Where workers can read the file ``connection`` reads; None for an in-memory database."""
    for _, name, path in connection.execute("PRAGMA database_list").fetchall():
        if name == "main" and path:
            return SQLiteSource(path=str(path), events_table=events_table)
    return None


def postgres_source(
    connection: psycopg.Connection[Any], schema: str, events_table: str
) -> PostgresSource:
    """Where workers can connect to read the database ``connection`` reads."""
    info = connection.info
    return PostgresSource(
        dsn=info.dsn, password=info.password, schema=schema or "public", events_table=events_table
    )


def auto_workers(total: int) -> int:
    """What ``workers=None`` means for a store of ``total`` events."""
    if total < AUTO_MIN_EVENTS or not sys.executable:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(AUTO_MAX_WORKERS, cpus or 1))


def _ranges_of(reader: object) -> Ranges | None:
    """Range queries on the connection (and so in the transaction) of one of our readers."""
    if isinstance(reader, SQLiteChainReader):
        return SQLiteRanges(reader.connection, reader.events_table, GENESIS)
    if isinstance(reader, PostgresChainReader):
        return PostgresRanges(reader.connection, reader.schema, reader.events_table, GENESIS)
    return None


# --- the pass ------------------------------------------------------------------------------------


def quick_pass(
    reader: object,
    source: Source | None,
    *,
    total: int,
    page_size: int,
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> Prefix:
    """The prefix of the store that checks out against its stored links (see the module):
    ``complete`` only if that is every event and the chain has no other row.

    ``progress(done, total)`` is called after each page checked out (by the caller's range,
    with the events the workers checked so far added)."""
    nothing = Prefix(0, 0, GENESIS, False)
    ranges = _ranges_of(reader)
    if ranges is None:
        return nothing
    upto = ranges.last_event()
    if workers > 1 and source is not None and sys.executable and upto >= 2 * workers:
        prefix = _parallel(reader, ranges, source, upto, total, page_size, workers, progress)
    else:

        def on_page(checked: int) -> None:
            if progress is not None:
                progress(checked, total)

        prefix = verify_worker.link_prefix(
            ranges.pages(0, upto, page_size), GENESIS, HEADER, on_page
        )
    # A chain row without an event among the prefix (or, for the whole store, anywhere) is a
    # problem no link shows: the walk from the genesis finds it. Every event of the prefix has
    # a chain row of its own, so as many chain rows in all as events checked means none.
    if prefix.complete and ranges.count_all_links() == prefix.checked:
        return prefix
    if prefix.checked and ranges.count_links(prefix.position) != prefix.checked:
        return nothing
    if prefix.complete and ranges.count_links(_TOP) != prefix.checked:
        return prefix._replace(complete=False)  # a chain row after the last event
    return prefix


class _Worker:
    """One worker process checking one range, and a thread reading what it says."""

    def __init__(self, task: dict[str, Any]) -> None:
        self.done = 0
        self.result = Prefix(0, 0, b"", False)  # until it says otherwise: nothing checked
        self.process = subprocess.Popen(
            [sys.executable, "-I", verify_worker.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.process.stdin is not None
        with self.process.stdin as stdin:
            stdin.write(json.dumps(task).encode() + b"\n")
        self.reading = threading.Thread(target=self._read, daemon=True)
        self.reading.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            what, _, said = line.decode().rstrip("\n").partition(" ")
            if what == "p":
                self.done = int(said)
            elif what == "r":
                checked, position, head, complete = said.split(" ")
                self.result = Prefix(
                    int(checked),
                    int(position),
                    b"" if head == "-" else bytes.fromhex(head),
                    complete == "1",
                )

    def wait(self, waiting: Callable[[], None]) -> Prefix:
        while self.reading.is_alive():
            self.reading.join(_WAIT_SECONDS)
            waiting()
        self.process.wait()
        return self.result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.reading.join()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _bounds(upto: int, workers: int) -> list[int]:
    """``workers`` ranges over (0, upto] (ids are nearly contiguous), the caller's first range
    wider by what the others check while the caller starts them and they start up."""
    width = upto // workers
    head_start = min(_STARTUP_EVENTS, width // 2)
    bounds = [0] + [width * part + head_start * (workers - part) for part in range(1, workers)]
    return [*bounds, upto]


def _snapshot(reader: object) -> str:
    """The exported snapshot of ``reader``'s transaction (PostgreSQL), for workers to import."""
    if isinstance(reader, PostgresChainReader):
        row = reader.connection.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        return str(row[0])
    return ""


def _parallel(
    reader: object,
    ranges: Ranges,
    source: Source,
    upto: int,
    total: int,
    page_size: int,
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> Prefix:
    bounds = _bounds(upto, workers)
    common = {
        **source.task(),
        "snapshot": _snapshot(reader),
        "page_size": page_size,
        "header": HEADER.format,
    }
    started: list[_Worker] = []
    reported = -1

    def report(own: int) -> None:
        nonlocal reported
        done = own + sum(worker.done for worker in started)
        if progress is not None and done != reported:
            reported = done
            progress(done, total)

    try:
        for part in range(1, workers):
            previous = ranges.previous(bounds[part])
            task = {
                **common,
                "after": bounds[part],
                "upto": bounds[part + 1],
                "previous": None if previous is None else previous.hex(),
            }
            try:
                started.append(_Worker(task))
            except OSError:  # no process: this range and the ones after are left to the walk
                break
        first = verify_worker.link_prefix(
            ranges.pages(0, bounds[1], page_size), GENESIS, HEADER, report
        )
        results = [first]
        if first.complete:
            for worker in started:
                result = worker.wait(lambda: report(first.checked))
                results.append(result)
                if not result.complete:
                    break
            report(first.checked)
        if len(started) < workers - 1:
            results.append(Prefix(0, 0, b"", False))  # a range no worker checked
        return _joined(results)
    finally:
        for worker in started:
            worker.stop()


def _joined(results: list[Prefix]) -> Prefix:
    """The prefix of consecutive ranges: complete ones, then the part of the first that is not."""
    checked, position, head = 0, 0, GENESIS
    for result in results:
        if result.checked:
            checked += result.checked
            position, head = result.position, result.head
        if not result.complete:
            return Prefix(checked, position, head, False)
    return Prefix(checked, position, head, True)
