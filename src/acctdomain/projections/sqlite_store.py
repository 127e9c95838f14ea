"""Read models in the SQLite file of the events, through a connection of their own."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from acctdomain.application.stores import SQLITE_LOCK_TIMEOUT
from acctdomain.projections.batch import Changes
from acctdomain.projections.codec import RowCodec
from acctdomain.projections.keys import (
    ReadModelKey,
    check_sql_table,
    prefix_bounds,
    table_name,
)
from acctdomain.projections.status import Failure, ParkedEvent
from acctdomain.projections.store import (
    DEAD_LETTER_TABLE,
    FAILURES_TABLE,
    PARTITIONS_TABLE,
    PAUSED_TABLE,
    SERVING_TABLE,
    TRACKING_TABLE,
    Claim,
    LayoutConflict,
    LetterFilter,
    PositionConflict,
    ReadModelStore,
    Tracking,
    parked_from_row,
    parked_to_row,
)

__all__ = ["SQLiteReadModelStore"]

_PAGE = 1000


_LETTER_COLUMNS = (
    "projection, version, position, account_id, originator_version, topic, error, parked_at"
)


class SQLiteReadModelStore(ReadModelStore):
    """Tables ``rm_<projection>__v<version>__<table>``, ``rm_tracking``, ``rm_dead_letters`` and
    ``rm_paused`` in ``path``.

    Reads run outside transactions (WAL gives each a snapshot); a commit takes the write lock
    with ``BEGIN IMMEDIATE``, waiting up to the store's lock timeout for other writers.
    """

    def __init__(self, path: str, codec: RowCodec) -> None:
        super().__init__(codec)
        # One connection, shared by the runner and its readers: serialise its use.
        self._lock = threading.RLock()
        self._connection = sqlite3.connect(
            path,
            timeout=float(SQLITE_LOCK_TIMEOUT),
            isolation_level=None,
            check_same_thread=False,
            uri=path.startswith("file:"),
        )
        self._connection.execute("PRAGMA journal_mode=WAL")

    def close(self) -> None:
        super().close()
        with self._lock:
            self._connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cursor = self._connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                if self._connection.in_transaction:
                    cursor.execute("ROLLBACK")
                raise

    def fetch(self, table: str, key: str) -> str | None:
        check_sql_table(table)
        with self._lock:
            row = self._connection.execute(
                f'SELECT value FROM "{table}" WHERE key = ?', (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    def fetch_all(self, table: str, prefix: str = "") -> Iterator[tuple[str, str]]:
        # Pages by key, so a long scan neither holds the lock nor loads the whole table.
        check_sql_table(table)
        lower, upper = prefix_bounds(prefix)
        bound = "" if upper is None else " AND key < ?"
        tail = () if upper is None else (upper,)
        with self._lock:
            page = self._connection.execute(
                f'SELECT key, value FROM "{table}" WHERE key >= ?{bound} ORDER BY key LIMIT ?',
                (lower, *tail, _PAGE),
            ).fetchall()
        while page:
            yield from page
            if len(page) < _PAGE:
                return
            with self._lock:
                page = self._connection.execute(
                    f'SELECT key, value FROM "{table}" WHERE key > ?{bound} ORDER BY key LIMIT ?',
                    (page[-1][0], *tail, _PAGE),
                ).fetchall()

    def _create(self, key: ReadModelKey) -> None:
        with self._transaction() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {TRACKING_TABLE} (projection TEXT NOT NULL, "
                "version INTEGER NOT NULL, position BIGINT NOT NULL, epoch INTEGER NOT NULL, "
                "PRIMARY KEY (projection, version))"
            )
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {DEAD_LETTER_TABLE} (projection TEXT NOT NULL, "
                "version INTEGER NOT NULL, position BIGINT NOT NULL, account_id TEXT NOT NULL, "
                "originator_version BIGINT NOT NULL, topic TEXT NOT NULL, error TEXT, "
                "parked_at TEXT NOT NULL, PRIMARY KEY (projection, version, position))"
            )
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {DEAD_LETTER_TABLE}_account ON "
                f"{DEAD_LETTER_TABLE} (projection, version, account_id, position)"
            )
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {PAUSED_TABLE} (projection TEXT NOT NULL, "
                "version INTEGER NOT NULL, PRIMARY KEY (projection, version))"
            )
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {SERVING_TABLE} (projection TEXT PRIMARY KEY, "
                "version INTEGER NOT NULL, tables TEXT NOT NULL)"
            )
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {PARTITIONS_TABLE} (projection TEXT NOT NULL, "
                "version INTEGER NOT NULL, partitions INTEGER NOT NULL, "
                "PRIMARY KEY (projection, version))"
            )
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {FAILURES_TABLE} (projection TEXT NOT NULL, "
                "version INTEGER NOT NULL, position BIGINT NOT NULL, error TEXT NOT NULL, "
                "PRIMARY KEY (projection, version))"
            )
            for table in key.tables:
                cursor.execute(
                    f'CREATE TABLE IF NOT EXISTS "{table_name(key, table)}" '
                    "(key TEXT PRIMARY KEY, value TEXT NOT NULL)"
                )

    def _read_tracking(self, key: ReadModelKey) -> Tracking:
        # One statement, so the position, the partitioning and a stop come from one snapshot.
        stopped, failures = _failures_of(key)
        with self._lock:
            row = self._connection.execute(
                f"SELECT (SELECT position FROM {TRACKING_TABLE} WHERE projection = ? "
                f"AND version = ?), (SELECT epoch FROM {TRACKING_TABLE} WHERE projection = ? "
                f"AND version = ?), (SELECT partitions FROM {PARTITIONS_TABLE} "
                "WHERE projection = ? AND version = ?), "
                f"EXISTS (SELECT 1 FROM {FAILURES_TABLE} WHERE {stopped})",
                (key.tracking_name, key.version) * 2 + (key.name, key.version) + failures,
            ).fetchone()
        position, epoch, partitions, is_stopped = row
        return Tracking(int(position or 0), int(epoch or 0), int(partitions or 1), bool(is_stopped))

    def _partition(self, key: ReadModelKey, count: int) -> None:
        with self._transaction() as cursor:
            row = cursor.execute(
                f"SELECT partitions FROM {PARTITIONS_TABLE} WHERE projection = ? AND version = ?",
                (key.name, key.version),
            ).fetchone()
            current = 1 if row is None else int(row[0])
            if current == count:
                return
            if current != 1:
                raise LayoutConflict(key.name, key.version, current, count)
            row = cursor.execute(
                f"SELECT position FROM {TRACKING_TABLE} WHERE projection = ? AND version = ?",
                (key.name, key.version),
            ).fetchone()
            position = 0 if row is None else int(row[0])
            names = [key.name] + [f"{key.name}#{index}/{count}" for index in range(count)]
            cursor.executemany(
                f"INSERT INTO {TRACKING_TABLE} VALUES (?, ?, ?, 1) "
                "ON CONFLICT (projection, version) DO UPDATE SET position = excluded.position, "
                f"epoch = {TRACKING_TABLE}.epoch + 1",
                [(name, key.version, position) for name in names],
            )
            cursor.execute(
                f"INSERT INTO {PARTITIONS_TABLE} VALUES (?, ?, ?)",
                (key.name, key.version, count),
            )

    def _restart_tracking(self, cursor: sqlite3.Cursor, key: ReadModelKey) -> None:
        """Position 0 in a new epoch for the whole and every partition; run whole again,
        without failures."""
        cursor.execute(
            f"UPDATE {TRACKING_TABLE} SET position = 0, epoch = epoch + 1 WHERE {_VERSION_OF}",
            _version_of(key),
        )
        cursor.execute(
            f"DELETE FROM {PARTITIONS_TABLE} WHERE projection = ? AND version = ?",
            (key.name, key.version),
        )
        cursor.execute(f"DELETE FROM {FAILURES_TABLE} WHERE {_VERSION_OF}", _version_of(key))

    def _read_failure(self, key: ReadModelKey) -> Failure | None:
        where, parameters = _failures_of(key)
        with self._lock:
            row = self._connection.execute(
                f"SELECT position, error FROM {FAILURES_TABLE} WHERE {where} "
                "ORDER BY position LIMIT 1",
                parameters,
            ).fetchone()
        return None if row is None else Failure(key.name, int(row[0]), str(row[1]))

    def _write_failure(self, key: ReadModelKey, failure: Failure) -> None:
        with self._transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {FAILURES_TABLE} VALUES (?, ?, ?, ?) ON CONFLICT "
                "(projection, version) DO UPDATE SET position = excluded.position, "
                "error = excluded.error",
                (key.tracking_name, key.version, failure.position, failure.error),
            )

    def _clear_failures(self, key: ReadModelKey) -> None:
        with self._transaction() as cursor:
            cursor.execute(f"DELETE FROM {FAILURES_TABLE} WHERE {_VERSION_OF}", _version_of(key))

    def _commit(self, key: ReadModelKey, claim: Claim, changes: Changes) -> None:
        with self._transaction() as cursor:
            self._claim_position(cursor, key, claim)
            self._write_rows(cursor, changes)
            self._write_letters(cursor, key, changes)

    def _claim_position(self, cursor: sqlite3.Cursor, key: ReadModelKey, claim: Claim) -> None:
        # Inserts the first row, else moves the position only if the row is still the one
        # the batch started from.
        cursor.execute(
            f"INSERT INTO {TRACKING_TABLE} VALUES (?, ?, ?, ?) "
            "ON CONFLICT (projection, version) DO UPDATE SET position = excluded.position, "
            f"epoch = excluded.epoch WHERE {TRACKING_TABLE}.position = ? "
            f"AND {TRACKING_TABLE}.epoch = ?",
            (key.tracking_name, key.version, claim.end, claim.next_epoch, claim.start, claim.epoch),
        )
        if cursor.rowcount != 1:
            raise PositionConflict(f"{key.name} v{key.version} moved from {claim.start}")

    def _write_rows(self, cursor: sqlite3.Cursor, changes: Changes) -> None:
        for table, prefix in changes.clears.items():
            cursor.execute(
                f'DELETE FROM "{table}" WHERE substr(key, 1, ?) = ?', (len(prefix), prefix)
            )
        for table, rows in changes.puts.items():
            cursor.executemany(
                f'INSERT INTO "{table}" (key, value) VALUES (?, ?) '
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                rows.items(),
            )
        for table, keys in changes.deletes.items():
            cursor.executemany(f'DELETE FROM "{table}" WHERE key = ?', ((k,) for k in keys))

    def _write_letters(self, cursor: sqlite3.Cursor, key: ReadModelKey, changes: Changes) -> None:
        where = "projection = ? AND version = ?"
        if changes.unpark_account is not None:
            cursor.execute(
                f"DELETE FROM {DEAD_LETTER_TABLE} WHERE {where} AND account_id = ?",
                (key.name, key.version, str(changes.unpark_account)),
            )
        cursor.executemany(
            f"DELETE FROM {DEAD_LETTER_TABLE} WHERE {where} AND position = ?",
            ((key.name, key.version, position) for position in changes.unpark),
        )
        # A parked event keeps the time it was first parked; a replay updates its error.
        cursor.executemany(
            f"INSERT INTO {DEAD_LETTER_TABLE} ({_LETTER_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (projection, version, position) "
            "DO UPDATE SET error = excluded.error",
            (parked_to_row(parked) for parked in changes.park),
        )

    def _select_letters(self, key: ReadModelKey, selection: LetterFilter) -> list[ParkedEvent]:
        where, parameters = _letter_filter(key, selection)
        with self._lock:
            rows = self._connection.execute(
                f"SELECT {_LETTER_COLUMNS} FROM {DEAD_LETTER_TABLE} WHERE {where} "
                "ORDER BY position",
                parameters,
            ).fetchall()
        return [parked_from_row(row) for row in rows]

    def _count_letters(self, key: ReadModelKey) -> int:
        with self._lock:
            row = self._connection.execute(
                f"SELECT count(*) FROM {DEAD_LETTER_TABLE} WHERE projection = ? AND version = ?",
                (key.name, key.version),
            ).fetchone()
        return int(row[0])

    def _blocked_accounts(self, key: ReadModelKey) -> set[UUID]:
        with self._lock:
            rows = self._connection.execute(
                f"SELECT DISTINCT account_id FROM {DEAD_LETTER_TABLE} "
                "WHERE projection = ? AND version = ?",
                (key.name, key.version),
            ).fetchall()
        return {UUID(row[0]) for row in rows}

    def _delete_letters(self, key: ReadModelKey, selection: LetterFilter) -> int:
        where, parameters = _letter_filter(key, selection)
        with self._transaction() as cursor:
            cursor.execute(f"DELETE FROM {DEAD_LETTER_TABLE} WHERE {where}", parameters)
            return cursor.rowcount

    def _read_paused(self, key: ReadModelKey) -> bool:
        with self._lock:
            row = self._connection.execute(
                f"SELECT 1 FROM {PAUSED_TABLE} WHERE projection = ? AND version = ?",
                (key.name, key.version),
            ).fetchone()
        return row is not None

    def _write_paused(self, key: ReadModelKey, paused: bool) -> None:
        with self._transaction() as cursor:
            if paused:
                cursor.execute(
                    f"INSERT INTO {PAUSED_TABLE} VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (key.name, key.version),
                )
            else:
                cursor.execute(
                    f"DELETE FROM {PAUSED_TABLE} WHERE projection = ? AND version = ?",
                    (key.name, key.version),
                )

    def _reset(self, key: ReadModelKey) -> None:
        with self._transaction() as cursor:
            for table in key.tables:
                cursor.execute(f'DELETE FROM "{table_name(key, table)}"')
            cursor.execute(
                f"DELETE FROM {DEAD_LETTER_TABLE} WHERE projection = ? AND version = ?",
                (key.name, key.version),
            )
            cursor.execute(
                f"INSERT INTO {TRACKING_TABLE} VALUES (?, ?, 0, 0) ON CONFLICT DO NOTHING",
                (key.name, key.version),
            )
            self._restart_tracking(cursor, key)
            # Rebuilt from its code: queries read the tables the code declares now.
            cursor.execute(
                f"UPDATE {SERVING_TABLE} SET tables = ? WHERE projection = ? AND version = ?",
                (",".join(key.tables), key.name, key.version),
            )

    def _read_serving(self, name: str) -> tuple[int, tuple[str, ...]] | None:
        with self._lock:
            row = self._connection.execute(
                f"SELECT version, tables FROM {SERVING_TABLE} WHERE projection = ?", (name,)
            ).fetchone()
        return None if row is None else (int(row[0]), _split_tables(str(row[1])))

    def _write_serving(self, key: ReadModelKey) -> None:
        with self._transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {SERVING_TABLE} VALUES (?, ?, ?) ON CONFLICT (projection) DO NOTHING",
                (key.name, key.version, ",".join(key.tables)),
            )

    def _switch(self, old: ReadModelKey, new: ReadModelKey) -> bool:
        where = "projection = ? AND version = ?"
        with self._transaction() as cursor:
            cursor.execute(
                f"UPDATE {SERVING_TABLE} SET version = ?, tables = ? WHERE {where}",
                (new.version, ",".join(new.tables), old.name, old.version),
            )
            if cursor.rowcount != 1:
                return False
            for table in old.tables:
                cursor.execute(f'DROP TABLE IF EXISTS "{table_name(old, table)}"')
            for bookkeeping in (DEAD_LETTER_TABLE, PAUSED_TABLE):
                cursor.execute(f"DELETE FROM {bookkeeping} WHERE {where}", (old.name, old.version))
            self._restart_tracking(cursor, old)
        return True


# The rows of a projection version: the whole's, and its partitions' (``<name>#i/n``).
_VERSION_OF = "version = ? AND (projection = ? OR substr(projection, 1, ?) = ?)"


def _version_of(key: ReadModelKey) -> tuple[Any, ...]:
    prefix = f"{key.name}#"
    return (key.version, key.name, len(prefix), prefix)


def _failures_of(key: ReadModelKey) -> tuple[str, tuple[Any, ...]]:
    """Where the failures of the key are: a partition's own, or the whole's and its parts'."""
    if key.partition is None:
        return _VERSION_OF, _version_of(key)
    return "projection = ? AND version = ?", (key.tracking_name, key.version)


def _split_tables(text: str) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()


def _letter_filter(key: ReadModelKey, selection: LetterFilter) -> tuple[str, list[Any]]:
    where, parameters = "projection = ? AND version = ?", [key.name, key.version]
    if selection.account_id is not None:
        where += " AND account_id = ?"
        parameters.append(str(selection.account_id))
    if selection.position is not None:
        where += " AND position = ?"
        parameters.append(selection.position)
    return where, parameters
