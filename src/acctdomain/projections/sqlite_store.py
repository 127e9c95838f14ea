"""Read models in the SQLite file of the events, through a connection of their own."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from acctdomain.application.stores import SQLITE_LOCK_TIMEOUT
from acctdomain.projections.batch import Changes
from acctdomain.projections.codec import RowCodec
from acctdomain.projections.keys import ReadModelKey, table_name
from acctdomain.projections.store import (
    TRACKING_TABLE,
    Claim,
    PositionConflict,
    ReadModelStore,
)

__all__ = ["SQLiteReadModelStore"]

_PAGE = 1000


class SQLiteReadModelStore(ReadModelStore):
    """Tables ``rm_<projection>_v<version>_<table>`` and ``rm_tracking`` in ``path``.

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
        with self._lock:
            row = self._connection.execute(
                f'SELECT value FROM "{table}" WHERE key = ?', (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    def fetch_all(self, table: str) -> Iterator[tuple[str, str]]:
        # Pages by key, so a long scan neither holds the lock nor loads the whole table.
        with self._lock:
            page = self._connection.execute(
                f'SELECT key, value FROM "{table}" ORDER BY key LIMIT ?', (_PAGE,)
            ).fetchall()
        while page:
            yield from page
            if len(page) < _PAGE:
                return
            with self._lock:
                page = self._connection.execute(
                    f'SELECT key, value FROM "{table}" WHERE key > ? ORDER BY key LIMIT ?',
                    (page[-1][0], _PAGE),
                ).fetchall()

    def _create(self, key: ReadModelKey) -> None:
        with self._transaction() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {TRACKING_TABLE} (projection TEXT NOT NULL, "
                "version INTEGER NOT NULL, position BIGINT NOT NULL, epoch INTEGER NOT NULL, "
                "PRIMARY KEY (projection, version))"
            )
            for table in key.tables:
                cursor.execute(
                    f'CREATE TABLE IF NOT EXISTS "{table_name(key, table)}" '
                    "(key TEXT PRIMARY KEY, value TEXT NOT NULL)"
                )

    def _read_tracking(self, key: ReadModelKey) -> tuple[int, int]:
        with self._lock:
            row = self._connection.execute(
                f"SELECT position, epoch FROM {TRACKING_TABLE} "
                "WHERE projection = ? AND version = ?",
                (key.name, key.version),
            ).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def _commit(self, key: ReadModelKey, claim: Claim, changes: Changes) -> None:
        with self._transaction() as cursor:
            self._claim_position(cursor, key, claim)
            self._write_rows(cursor, changes)

    def _claim_position(self, cursor: sqlite3.Cursor, key: ReadModelKey, claim: Claim) -> None:
        # Inserts the first row, else moves the position only if the row is still the one
        # the batch started from.
        cursor.execute(
            f"INSERT INTO {TRACKING_TABLE} VALUES (?, ?, ?, ?) "
            "ON CONFLICT (projection, version) DO UPDATE SET position = excluded.position "
            f"WHERE {TRACKING_TABLE}.position = ? AND {TRACKING_TABLE}.epoch = ?",
            (key.name, key.version, claim.end, claim.epoch, claim.start, claim.epoch),
        )
        if cursor.rowcount != 1:
            raise PositionConflict(f"{key.name} v{key.version} moved from {claim.start}")

    def _write_rows(self, cursor: sqlite3.Cursor, changes: Changes) -> None:
        for table, rows in changes.puts.items():
            cursor.executemany(
                f'INSERT INTO "{table}" (key, value) VALUES (?, ?) '
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                rows.items(),
            )
        for table, keys in changes.deletes.items():
            cursor.executemany(f'DELETE FROM "{table}" WHERE key = ?', ((k,) for k in keys))

    def _reset(self, key: ReadModelKey) -> None:
        with self._transaction() as cursor:
            for table in key.tables:
                cursor.execute(f'DELETE FROM "{table_name(key, table)}"')
            cursor.execute(
                f"INSERT INTO {TRACKING_TABLE} VALUES (?, ?, 0, 1) "
                "ON CONFLICT (projection, version) DO UPDATE SET position = 0, "
                f"epoch = {TRACKING_TABLE}.epoch + 1",
                (key.name, key.version),
            )
