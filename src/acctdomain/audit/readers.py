"""Reading a store's events beside their chain rows, in notification order, a page at a time.

A reader yields *rows*: ``(notification_id, originator_id, originator_version, topic, state,
hash)`` with the originator id and topic already encoded as the chain hashes them (see
:mod:`acctdomain.audit.chain`). An event without a chain row has ``hash`` None; a chain row
without an event has ``originator_id`` None (and ``0, b"", b""`` for the other event fields).

Each page is one query joining the events to their chain rows, plus a count of the chain rows
in the same range of notification ids: chain rows that have no event (an event was deleted) are
only looked for when that count differs, so a sound store costs one extra index count per page.
A reader works inside one transaction (a snapshot): pages never disagree with each other while
writers go on appending.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from acctdomain.audit.chain import chain_table_name

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "ChainReader",
    "PostgresChainReader",
    "Row",
    "SQLiteChainReader",
]

DEFAULT_PAGE_SIZE = 2_000

# (notification_id, originator_id, originator_version, topic, state, hash)
Row = tuple[int, bytes | None, int, bytes, bytes, bytes | None]


class ChainReader(Protocol):
    """Where ``verify`` reads a store from."""

    def has_chain(self) -> bool:
        """True if the chain table exists."""
        ...

    def count_events(self) -> int:
        """How many events the store holds."""
        ...

    def count_links(self) -> int:
        """How many chain rows the store holds."""
        ...

    def first_event(self) -> int | None:
        """The lowest notification id of an event, None if there is none."""
        ...

    def last_position(self) -> int:
        """The highest notification id of an event or a chain row (0 if there is none)."""
        ...

    def row_at(self, position: int) -> Row | None:
        """The row at one notification id: the event beside its chain row, or a chain row
        alone; None if there is neither."""
        ...

    def pages(self, after: int, page_size: int) -> Iterator[list[Row]]:
        """Rows with notification ids above ``after``, in order, in pages of about
        ``page_size`` events."""
        ...


def _merge(page: list[Row], orphans: list[Row]) -> list[Row]:
    merged = page + orphans
    merged.sort(key=lambda row: row[0])
    return merged


class SQLiteChainReader:
    """Reads an SQLite store through ``connection`` (a plain ``sqlite3`` connection; whatever
    transaction it is in is used as it is)."""

    def __init__(
        self, connection: sqlite3.Connection, *, events_table: str = "stored_events"
    ) -> None:
        self.connection = connection
        self.events_table = events_table
        self.chain_table = chain_table_name(events_table)
        events, chain = self.events_table, self.chain_table
        self._page = (
            # Text read as BLOB: the bytes the chain hashes, without decoding and encoding.
            # Every column cast, since SQLite lets a tamperer store any type in any column.
            f"SELECT e.rowid, coalesce(CAST(e.originator_id AS BLOB), x''), "
            f"e.originator_version, CAST(e.topic AS BLOB), CAST(e.state AS BLOB), "
            f"CAST(c.hash AS BLOB) "
            f"FROM {events} AS e LEFT JOIN {chain} AS c ON c.notification_id = e.rowid "
            f"WHERE e.rowid > ? ORDER BY e.rowid LIMIT ?"
        )
        self._count_range = (
            f"SELECT count(*) FROM {chain} WHERE notification_id > ? AND notification_id <= ?"
        )
        self._count_after = f"SELECT count(*) FROM {chain} WHERE notification_id > ?"
        self._event_at = self._page.replace(
            "WHERE e.rowid > ? ORDER BY e.rowid LIMIT ?", "WHERE e.rowid = ?"
        )
        self._link_at = (
            f"SELECT notification_id, CAST(hash AS BLOB) FROM {chain} WHERE notification_id = ?"
        )
        self._orphans = (
            f"SELECT c.notification_id, CAST(c.hash AS BLOB) FROM {chain} AS c "
            f"WHERE c.notification_id > ? AND c.notification_id <= ? "
            f"AND NOT EXISTS (SELECT 1 FROM {events} AS e WHERE e.rowid = c.notification_id) "
            f"ORDER BY c.notification_id"
        )

    def _table_exists(self, name: str) -> bool:
        row = self.connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return row is not None

    def has_events_table(self) -> bool:
        return self._table_exists(self.events_table)

    def has_chain(self) -> bool:
        return self._table_exists(self.chain_table)

    def _one(self, statement: str) -> Any:
        return self.connection.execute(statement).fetchone()[0]

    def count_events(self) -> int:
        if not self.has_events_table():
            return 0
        return int(self._one(f"SELECT count(*) FROM {self.events_table}"))

    def count_links(self) -> int:
        if not self.has_chain():
            return 0
        return int(self._one(f"SELECT count(*) FROM {self.chain_table}"))

    def first_event(self) -> int | None:
        if not self.has_events_table():
            return None
        first = self._one(f"SELECT min(rowid) FROM {self.events_table}")
        return None if first is None else int(first)

    def last_position(self) -> int:
        last = 0
        if self.has_events_table():
            last = int(self._one(f"SELECT coalesce(max(rowid), 0) FROM {self.events_table}"))
        if self.has_chain():
            linked = self._one(f"SELECT coalesce(max(notification_id), 0) FROM {self.chain_table}")
            last = max(last, int(linked))
        return last

    def row_at(self, position: int) -> Row | None:
        if self.has_events_table() and self.has_chain():
            row: Row | None = self.connection.execute(self._event_at, (position,)).fetchone()
            if row is not None:
                return row
        if not self.has_chain():
            return None
        found = self.connection.execute(self._link_at, (position,)).fetchone()
        return None if found is None else (found[0], None, 0, b"", b"", found[1])

    def pages(self, after: int, page_size: int) -> Iterator[list[Row]]:
        execute = self.connection.execute
        while True:
            page: list[Row] = execute(self._page, (after, page_size)).fetchall()
            last = page[-1][0] if page else None
            if last is None:
                linked, stored = 0, execute(self._count_after, (after,)).fetchone()[0]
                upper = (1 << 63) - 1
            else:
                linked = sum(1 for row in page if row[5] is not None)
                stored = execute(self._count_range, (after, last)).fetchone()[0]
                upper = last
            if stored != linked:
                orphans: list[Row] = [
                    (n, None, 0, b"", b"", h) for n, h in execute(self._orphans, (after, upper))
                ]
                page = _merge(page, orphans)
            if page:
                yield page
            if last is None:
                return
            after = last


class PostgresChainReader:
    """Reads a PostgreSQL store through ``connection`` (a ``psycopg`` connection; whatever
    transaction it is in is used as it is)."""

    def __init__(
        self,
        connection: psycopg.Connection[Any],
        *,
        schema: str = "public",
        events_table: str = "acctdomain_events",
    ) -> None:
        from psycopg.sql import SQL, Identifier

        self.connection = connection
        self.schema = schema or "public"
        self.events_table = events_table
        self.chain_table = chain_table_name(events_table)
        events = SQL("{}.{}").format(Identifier(self.schema), Identifier(events_table))
        chain = SQL("{}.{}").format(Identifier(self.schema), Identifier(self.chain_table))
        self._count_events = SQL("SELECT count(*) FROM {}").format(events)
        self._first_event = SQL("SELECT min(notification_id) FROM {}").format(events)
        self._count_links = SQL("SELECT count(*) FROM {}").format(chain)
        self._page = SQL(
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state, "
            "c.hash FROM {} AS e LEFT JOIN {} AS c ON c.notification_id = e.notification_id "
            "WHERE e.notification_id > %s ORDER BY e.notification_id LIMIT %s"
        ).format(events, chain)
        self._count_range = SQL(
            "SELECT count(*) FROM {} WHERE notification_id > %s AND notification_id <= %s"
        ).format(chain)
        self._last_event = SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(events)
        self._last_link = SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(chain)
        self._event_at = SQL(
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state, "
            "c.hash FROM {} AS e LEFT JOIN {} AS c ON c.notification_id = e.notification_id "
            "WHERE e.notification_id = %s"
        ).format(events, chain)
        self._link_at = SQL(
            "SELECT notification_id, hash FROM {} WHERE notification_id = %s"
        ).format(chain)
        self._orphans = SQL(
            "SELECT c.notification_id, c.hash FROM {} AS c "
            "WHERE c.notification_id > %s AND c.notification_id <= %s "
            "AND NOT EXISTS (SELECT 1 FROM {} AS e WHERE e.notification_id = c.notification_id) "
            "ORDER BY c.notification_id"
        ).format(chain, events)

    def _cursor(self) -> psycopg.Cursor[tuple[Any, ...]]:
        from psycopg.rows import tuple_row

        return self.connection.cursor(row_factory=tuple_row)

    def _table_exists(self, name: str) -> bool:
        with self._cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s)", (f'"{self.schema}"."{name}"',))
            row = cursor.fetchone()
        return row is not None and row[0] is not None

    def has_events_table(self) -> bool:
        return self._table_exists(self.events_table)

    def has_chain(self) -> bool:
        return self._table_exists(self.chain_table)

    def _count(self, statement: Any) -> int:
        with self._cursor() as cursor:
            cursor.execute(statement)
            row = cursor.fetchone()
        return int(row[0]) if row is not None else 0

    def count_events(self) -> int:
        return self._count(self._count_events) if self.has_events_table() else 0

    def count_links(self) -> int:
        return self._count(self._count_links) if self.has_chain() else 0

    def first_event(self) -> int | None:
        if not self.has_events_table():
            return None
        with self._cursor() as cursor:
            row = cursor.execute(self._first_event).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def last_position(self) -> int:
        last = self._count(self._last_event) if self.has_events_table() else 0
        if self.has_chain():
            last = max(last, self._count(self._last_link))
        return last

    def row_at(self, position: int) -> Row | None:
        if not self.has_chain():
            return None
        with self._cursor() as cursor:
            if self.has_events_table():
                found = cursor.execute(self._event_at, (position,)).fetchone()
                if found is not None:
                    n, o, v, t, s, h = found
                    return (n, _pg_originator_id(o), v, t.encode(), bytes(s), _opt_bytes(h))
            link = cursor.execute(self._link_at, (position,)).fetchone()
        return None if link is None else (link[0], None, 0, b"", b"", bytes(link[1]))

    def pages(self, after: int, page_size: int) -> Iterator[list[Row]]:
        top = (1 << 63) - 1
        with self._cursor() as cursor:
            while True:
                raw = cursor.execute(self._page, (after, page_size)).fetchall()
                last: int | None = raw[-1][0] if raw else None
                page: list[Row] = [
                    (n, _pg_originator_id(o), v, t.encode(), bytes(s), _opt_bytes(h))
                    for n, o, v, t, s, h in raw
                ]
                upper = top if last is None else last
                linked = sum(1 for row in page if row[5] is not None)
                stored_row = cursor.execute(self._count_range, (after, upper)).fetchone()
                stored = int(stored_row[0]) if stored_row is not None else 0
                if stored != linked:
                    orphans: list[Row] = [
                        (n, None, 0, b"", b"", bytes(h))
                        for n, h in cursor.execute(self._orphans, (after, upper)).fetchall()
                    ]
                    page = _merge(page, orphans)
                if page:
                    yield page
                if last is None:
                    return
                after = last


def _pg_originator_id(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return str(value.hex).encode()  # a uuid column reads back a UUID


def _opt_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)
