"""The hot loop of :func:`~acctdomain.audit.verify`, and the worker process that runs it on one
range of a store (see :mod:`acctdomain.audit.parallel_verify`).

This module imports nothing but the standard library (and ``psycopg`` for a PostgreSQL range,
when asked), because a worker runs it as a script: ``python -I verify_worker.py`` reads one task
as a JSON line on stdin, and writes ``p <checked>`` after each page that checked out and, at the
end, ``r <checked> <position> <head hex> <complete 0|1>`` (or ``e <error>``) on stdout. Starting
it costs about as much as starting Python (tens of milliseconds): neither the package nor the
caller's open connections come along. The chain's encoding (the header's ``struct`` format) and
the boundary link come with the task, from the caller, so nothing here restates the chain.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import struct
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresRanges", "Prefix", "RangeRow", "Ranges", "SQLiteRanges", "link_prefix", "main"]

# (notification_id, originator_id, originator_version, topic, state, stored hash): an event
# beside its chain row, its values as the chain readers give them.
RangeRow = tuple[int, bytes, int, bytes, bytes, bytes | None]


class Prefix(NamedTuple):
    """The events of a range that checked out, in order, from its start."""

    checked: int
    position: int
    """Notification id of the last of them (meaningless when ``checked`` is 0)."""
    head: bytes
    """Its stored hash, which checked out (meaningless when ``checked`` is 0)."""
    complete: bool
    """True when every event of the range checked out."""


def link_prefix(
    pages: Iterable[Sequence[RangeRow]],
    previous: bytes | None,
    header: struct.Struct,
    on_page: Callable[[int], None] | None = None,
) -> Prefix:
    """Check rows in order, each against the *stored* hash of the row before it (``previous``
    for the first; None when that event has no chain row, which fails the first row), and
    return how far they checked out. ``on_page(checked)`` is called after each page that did.
    ``header`` is :data:`acctdomain.audit.chain.HEADER`."""
    # chain.link inlined: one concatenation and one SHA-256 per event, nothing else per row. A
    # value of a type no recorder writes raises, which fails the row as a mismatch does.
    sha256, pack = hashlib.sha256, header.pack
    checked, position = 0, 0
    for page in pages:
        try:
            for n, o, v, t, s, stored in page:
                computed = sha256(previous + pack(n, v, len(o), len(t), len(s)) + o + t + s)  # type: ignore[operator]
                if computed.digest() != stored:
                    break
                previous, position = stored, n
            else:
                checked += len(page)
                if on_page is not None:
                    on_page(checked)
                continue
        except (TypeError, struct.error):
            pass
        checked += sum(1 for row in page if row[0] <= position)
        return Prefix(checked, position, previous or b"", False)
    return Prefix(checked, position, previous or b"", True)


# --- reading ranges ------------------------------------------------------------------------------


class Ranges(Protocol):
    def previous(self, after: int) -> bytes | None:
        """The stored hash of the last event with an id in (0, ``after``]; ``genesis`` if there
        is none; None if it has no chain row."""
        ...

    def last_event(self) -> int:
        """The highest notification id of an event, 0 if there is none."""
        ...

    def count_links(self, upto: int) -> int:
        """How many chain rows have ids in (0, ``upto``]."""
        ...

    def count_all_links(self) -> int:
        """How many chain rows there are (a count the database keeps cheaply)."""
        ...

    def pages(self, after: int, upto: int, page_size: int) -> Iterator[list[RangeRow]]:
        """Events with ids in (``after``, ``upto``], in order, beside their stored hashes, in
        pages of ``page_size``."""
        ...


class SQLiteRanges:
    """Ranges of an SQLite store through ``connection``, in whatever transaction it is in."""

    def __init__(self, connection: sqlite3.Connection, events_table: str, genesis: bytes) -> None:
        self.connection = connection
        self.genesis = genesis
        events, chain = events_table, f"{events_table}_chain"
        # The columns as SQLiteChainReader reads them: every one cast, text read as BLOB.
        columns = (
            "e.rowid, coalesce(CAST(e.originator_id AS BLOB), x''), e.originator_version, "
            "CAST(e.topic AS BLOB), CAST(e.state AS BLOB), CAST(c.hash AS BLOB)"
        )
        joined = f"{events} AS e LEFT JOIN {chain} AS c ON c.notification_id = e.rowid"
        self._page = (
            f"SELECT {columns} FROM {joined} "
            f"WHERE e.rowid > ? AND e.rowid <= ? ORDER BY e.rowid LIMIT ?"
        )
        self._previous = (
            f"SELECT CAST(c.hash AS BLOB) FROM {joined} "
            f"WHERE e.rowid > 0 AND e.rowid <= ? ORDER BY e.rowid DESC LIMIT 1"
        )
        self._last = f"SELECT coalesce(max(rowid), 0) FROM {events}"
        self._all_links = f"SELECT count(*) FROM {chain}"
        self._links = (
            f"SELECT count(*) FROM {chain} WHERE notification_id > 0 AND notification_id <= ?"
        )

    def previous(self, after: int) -> bytes | None:
        row = self.connection.execute(self._previous, (after,)).fetchone()
        return self.genesis if row is None else row[0]

    def last_event(self) -> int:
        return int(self.connection.execute(self._last).fetchone()[0])

    def count_links(self, upto: int) -> int:
        return int(self.connection.execute(self._links, (upto,)).fetchone()[0])

    def count_all_links(self) -> int:
        return int(self.connection.execute(self._all_links).fetchone()[0])

    def pages(self, after: int, upto: int, page_size: int) -> Iterator[list[RangeRow]]:
        execute, query = self.connection.execute, self._page
        while True:
            page: list[RangeRow] = execute(query, (after, upto, page_size)).fetchall()
            if not page:
                return
            yield page
            after = page[-1][0]


def _pg_originator_id(value: Any) -> bytes:
    # As acctdomain.audit.readers reads it: a text id's UTF-8, a uuid column's 32 hex digits.
    if isinstance(value, str):
        return value.encode()
    return str(value.hex).encode()


def _opt_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


class PostgresRanges:
    """Ranges of a PostgreSQL store through ``connection``, in whatever transaction it is in."""

    def __init__(
        self, connection: psycopg.Connection[Any], schema: str, events_table: str, genesis: bytes
    ) -> None:
        from psycopg.sql import SQL, Identifier

        self.connection = connection
        self.genesis = genesis
        events = SQL("{}.{}").format(Identifier(schema), Identifier(events_table))
        chain = SQL("{}.{}").format(Identifier(schema), Identifier(f"{events_table}_chain"))
        joined = SQL("{} AS e LEFT JOIN {} AS c ON c.notification_id = e.notification_id").format(
            events, chain
        )
        self._page = SQL(
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state, "
            "c.hash FROM {} WHERE e.notification_id > %s AND e.notification_id <= %s "
            "ORDER BY e.notification_id LIMIT %s"
        ).format(joined)
        self._previous = SQL(
            "SELECT c.hash FROM {} WHERE e.notification_id > 0 AND e.notification_id <= %s "
            "ORDER BY e.notification_id DESC LIMIT 1"
        ).format(joined)
        self._last = SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(events)
        self._all_links = SQL("SELECT count(*) FROM {}").format(chain)
        self._links = SQL(
            "SELECT count(*) FROM {} WHERE notification_id > 0 AND notification_id <= %s"
        ).format(chain)

    def _cursor(self) -> psycopg.Cursor[tuple[Any, ...]]:
        from psycopg.rows import tuple_row

        return self.connection.cursor(row_factory=tuple_row)

    def previous(self, after: int) -> bytes | None:
        with self._cursor() as cursor:
            row = cursor.execute(self._previous, (after,)).fetchone()
        return self.genesis if row is None else _opt_bytes(row[0])

    def last_event(self) -> int:
        with self._cursor() as cursor:
            row = cursor.execute(self._last).fetchone()
        return 0 if row is None else int(row[0])

    def count_links(self, upto: int) -> int:
        with self._cursor() as cursor:
            row = cursor.execute(self._links, (upto,)).fetchone()
        return 0 if row is None else int(row[0])

    def count_all_links(self) -> int:
        with self._cursor() as cursor:
            row = cursor.execute(self._all_links).fetchone()
        return 0 if row is None else int(row[0])

    def pages(self, after: int, upto: int, page_size: int) -> Iterator[list[RangeRow]]:
        with self._cursor() as cursor:
            while True:
                raw = cursor.execute(self._page, (after, upto, page_size)).fetchall()
                if not raw:
                    return
                yield [
                    (n, _pg_originator_id(o), v, t.encode(), bytes(s), _opt_bytes(h))
                    for n, o, v, t, s, h in raw
                ]
                after = raw[-1][0]


# --- the worker process --------------------------------------------------------------------------


def _check(task: dict[str, Any], ranges: Ranges, out: Any) -> Prefix:
    def on_page(checked: int) -> None:
        out.write(f"p {checked}\n")
        out.flush()

    previous = task["previous"]
    return link_prefix(
        ranges.pages(task["after"], task["upto"], task["page_size"]),
        None if previous is None else bytes.fromhex(previous),
        struct.Struct(task["header"]),
        on_page,
    )


def _run(task: dict[str, Any], out: Any) -> Prefix:
    genesis = b""  # the caller sends the boundary link: previous() is not asked for here
    if task["kind"] == "sqlite":
        connection = sqlite3.connect(task["path"], isolation_level=None)
        try:
            connection.execute("BEGIN")
            return _check(task, SQLiteRanges(connection, task["events_table"], genesis), out)
        finally:
            connection.close()
    import psycopg
    from psycopg import sql

    options: dict[str, Any] = {"autocommit": True}
    if task.get("password"):
        options["password"] = task["password"]
    with psycopg.connect(task["dsn"], **options) as pg:
        pg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try:
            if task.get("snapshot"):
                snapshot = sql.SQL("SET TRANSACTION SNAPSHOT {}").format(
                    sql.Literal(task["snapshot"])
                )
                pg.execute(snapshot)
            ranges = PostgresRanges(pg, task["schema"], task["events_table"], genesis)
            return _check(task, ranges, out)
        finally:
            pg.execute("ROLLBACK")


def main() -> int:
    """Run the task on stdin (see the module); exit status 0 unless it could not be read."""
    out = sys.stdout
    try:
        task = json.loads(sys.stdin.readline())
        checked, position, head, complete = _run(task, out)
    except Exception as error:  # the caller reads the range itself
        out.write(f"e {type(error).__name__}: {error}".replace("\n", " ") + "\n")
        out.flush()
        return 1
    out.write(f"r {checked} {position} {head.hex() or '-'} {int(complete)}\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
