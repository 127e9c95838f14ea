"""Read models in the PostgreSQL database and schema of the events, on a connection of their
own."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from acctdomain.application.stores import StoreSpec
from acctdomain.projections.batch import Changes
from acctdomain.projections.codec import RowCodec
from acctdomain.projections.keys import ReadModelKey, table_name
from acctdomain.projections.status import ParkedEvent
from acctdomain.projections.store import (
    DEAD_LETTER_TABLE,
    PAUSED_TABLE,
    SERVING_TABLE,
    TRACKING_TABLE,
    Claim,
    LetterFilter,
    PositionConflict,
    ReadModelStore,
    parked_from_row,
    parked_to_row,
)

__all__ = ["PostgresReadModelStore"]

_PAGE = 1000
_TRACKING = sql.Identifier(TRACKING_TABLE)
_LETTERS = sql.Identifier(DEAD_LETTER_TABLE)
_PAUSED = sql.Identifier(PAUSED_TABLE)
_SERVING = sql.Identifier(SERVING_TABLE)
_LETTER_COLUMNS = sql.SQL(
    "projection, version, position, account_id, originator_version, topic, error, parked_at"
)
_KEY = sql.SQL("projection = %s AND version = %s")


class PostgresReadModelStore(ReadModelStore):
    """Tables ``rm_<projection>__v<version>__<table>``, ``rm_tracking``, ``rm_dead_letters`` and
    ``rm_paused`` in the store's schema.

    Keys are collated "C" (code point order, as in SQLite and Python), so scans list rows in
    the same order on every backend and page through the primary key index.
    """

    def __init__(self, spec: StoreSpec, codec: RowCodec) -> None:
        super().__init__(codec)
        self._spec = spec
        self._lock = threading.RLock()
        self._connection: psycopg.Connection[tuple[Any, ...]] = spec.connect()
        if spec.schema:
            self._connection.execute(
                sql.SQL("SET search_path TO {}").format(sql.Identifier(spec.schema))
            )

    def close(self) -> None:
        super().close()
        with self._lock:
            self._connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[tuple[Any, ...]]]:
        with self._lock, self._connection.transaction(), self._connection.cursor() as cursor:
            yield cursor

    def fetch(self, table: str, key: str) -> str | None:
        query = sql.SQL("SELECT value FROM {} WHERE key = %s").format(sql.Identifier(table))
        with self._lock:
            row = self._connection.execute(query, (key,), prepare=True).fetchone()
        return None if row is None else str(row[0])

    def fetch_all(self, table: str) -> Iterator[tuple[str, str]]:
        # Pages by key, so a long scan neither holds the lock nor loads the whole table.
        first = sql.SQL("SELECT key, value FROM {} ORDER BY key LIMIT %s").format(
            sql.Identifier(table)
        )
        after = sql.SQL("SELECT key, value FROM {} WHERE key > %s ORDER BY key LIMIT %s").format(
            sql.Identifier(table)
        )
        with self._lock:
            page = self._connection.execute(first, (_PAGE,)).fetchall()
        while page:
            yield from ((str(key), str(value)) for key, value in page)
            if len(page) < _PAGE:
                return
            with self._lock:
                page = self._connection.execute(after, (page[-1][0], _PAGE)).fetchall()

    def _create(self, key: ReadModelKey) -> None:
        with self._transaction() as cursor:
            # Concurrent CREATE TABLE IF NOT EXISTS can fail on PostgreSQL (a duplicate key in
            # pg_type): one lock per schema makes read-model DDL take turns.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self._ddl_lock_key(),))
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (projection TEXT NOT NULL, "
                    "version INTEGER NOT NULL, position BIGINT NOT NULL, "
                    "epoch INTEGER NOT NULL, PRIMARY KEY (projection, version))"
                ).format(_TRACKING)
            )
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (projection TEXT NOT NULL, "
                    "version INTEGER NOT NULL, position BIGINT NOT NULL, "
                    "account_id TEXT NOT NULL, originator_version BIGINT NOT NULL, "
                    "topic TEXT NOT NULL, error TEXT, parked_at TEXT NOT NULL, "
                    "PRIMARY KEY (projection, version, position))"
                ).format(_LETTERS)
            )
            cursor.execute(
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {} ON {} (projection, version, account_id)"
                ).format(sql.Identifier(f"{DEAD_LETTER_TABLE}_account"), _LETTERS)
            )
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (projection TEXT NOT NULL, "
                    "version INTEGER NOT NULL, PRIMARY KEY (projection, version))"
                ).format(_PAUSED)
            )
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (projection TEXT PRIMARY KEY, "
                    "version INTEGER NOT NULL, tables TEXT NOT NULL)"
                ).format(_SERVING)
            )
            for table in key.tables:
                cursor.execute(
                    sql.SQL(
                        'CREATE TABLE IF NOT EXISTS {} (key TEXT COLLATE "C" PRIMARY KEY, '
                        "value TEXT NOT NULL)"
                    ).format(sql.Identifier(table_name(key, table)))
                )

    def _read_tracking(self, key: ReadModelKey) -> tuple[int, int]:
        query = sql.SQL(
            "SELECT position, epoch FROM {} WHERE projection = %s AND version = %s"
        ).format(_TRACKING)
        with self._lock:
            row = self._connection.execute(query, (key.name, key.version)).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def _commit(self, key: ReadModelKey, claim: Claim, changes: Changes) -> None:
        with self._transaction() as cursor:
            self._claim_position(cursor, key, claim)
            self._write_rows(cursor, changes)
            self._write_letters(cursor, key, changes)

    def _claim_position(
        self, cursor: psycopg.Cursor[tuple[Any, ...]], key: ReadModelKey, claim: Claim
    ) -> None:
        # Inserts the first row, else moves the position only if the row is still the one the
        # batch started from. Taking the row first also makes a second runner of the
        # projection wait here, then fail the check, instead of interleaving rows with ours.
        cursor.execute(
            sql.SQL(
                "INSERT INTO {0} VALUES (%s, %s, %s, %s) ON CONFLICT (projection, version) "
                "DO UPDATE SET position = excluded.position, epoch = excluded.epoch "
                "WHERE {0}.position = %s AND {0}.epoch = %s"
            ).format(_TRACKING),
            (key.name, key.version, claim.end, claim.next_epoch, claim.start, claim.epoch),
        )
        if cursor.rowcount != 1:
            raise PositionConflict(f"{key.name} v{key.version} moved from {claim.start}")

    def _write_rows(self, cursor: psycopg.Cursor[tuple[Any, ...]], changes: Changes) -> None:
        for table, prefix in changes.clears.items():
            cursor.execute(
                sql.SQL("DELETE FROM {} WHERE left(key, %s) = %s").format(sql.Identifier(table)),
                (len(prefix), prefix),
            )
        for table, rows in changes.puts.items():
            cursor.executemany(
                sql.SQL(
                    "INSERT INTO {} (key, value) VALUES (%s, %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                ).format(sql.Identifier(table)),
                list(rows.items()),
            )
        for table, keys in changes.deletes.items():
            cursor.executemany(
                sql.SQL("DELETE FROM {} WHERE key = %s").format(sql.Identifier(table)),
                [(k,) for k in keys],
            )

    def _write_letters(
        self, cursor: psycopg.Cursor[tuple[Any, ...]], key: ReadModelKey, changes: Changes
    ) -> None:
        if changes.unpark_account is not None:
            cursor.execute(
                sql.SQL("DELETE FROM {} WHERE {} AND account_id = %s").format(_LETTERS, _KEY),
                (key.name, key.version, str(changes.unpark_account)),
            )
        if changes.unpark:
            cursor.execute(
                sql.SQL("DELETE FROM {} WHERE {} AND position = ANY(%s)").format(_LETTERS, _KEY),
                (key.name, key.version, sorted(changes.unpark)),
            )
        if changes.park:
            # A parked event keeps the time it was first parked; a replay updates its error.
            cursor.executemany(
                sql.SQL(
                    "INSERT INTO {} ({}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (projection, version, position) "
                    "DO UPDATE SET error = excluded.error"
                ).format(_LETTERS, _LETTER_COLUMNS),
                [parked_to_row(parked) for parked in changes.park],
            )

    def _select_letters(self, key: ReadModelKey, selection: LetterFilter) -> list[ParkedEvent]:
        where, parameters = _letter_filter(key, selection)
        query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY position").format(
            _LETTER_COLUMNS, _LETTERS, where
        )
        with self._lock:
            rows = self._connection.execute(query, parameters).fetchall()
        return [parked_from_row(row) for row in rows]

    def _count_letters(self, key: ReadModelKey) -> int:
        query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(_LETTERS, _KEY)
        with self._lock:
            row = self._connection.execute(query, (key.name, key.version)).fetchone()
        return 0 if row is None else int(row[0])

    def _blocked_accounts(self, key: ReadModelKey) -> set[UUID]:
        query = sql.SQL("SELECT DISTINCT account_id FROM {} WHERE {}").format(_LETTERS, _KEY)
        with self._lock:
            rows = self._connection.execute(query, (key.name, key.version)).fetchall()
        return {UUID(str(row[0])) for row in rows}

    def _delete_letters(self, key: ReadModelKey, selection: LetterFilter) -> int:
        where, parameters = _letter_filter(key, selection)
        with self._transaction() as cursor:
            cursor.execute(sql.SQL("DELETE FROM {} WHERE {}").format(_LETTERS, where), parameters)
            return cursor.rowcount

    def _read_paused(self, key: ReadModelKey) -> bool:
        query = sql.SQL("SELECT 1 FROM {} WHERE {}").format(_PAUSED, _KEY)
        with self._lock:
            row = self._connection.execute(query, (key.name, key.version)).fetchone()
        return row is not None

    def _write_paused(self, key: ReadModelKey, paused: bool) -> None:
        if paused:
            query = sql.SQL("INSERT INTO {} VALUES (%s, %s) ON CONFLICT DO NOTHING").format(_PAUSED)
        else:
            query = sql.SQL("DELETE FROM {} WHERE {}").format(_PAUSED, _KEY)
        with self._transaction() as cursor:
            cursor.execute(query, (key.name, key.version))

    def _reset(self, key: ReadModelKey) -> None:
        with self._transaction() as cursor:
            for table in key.tables:
                cursor.execute(
                    sql.SQL("TRUNCATE {}").format(sql.Identifier(table_name(key, table)))
                )
            cursor.execute(
                sql.SQL("DELETE FROM {} WHERE {}").format(_LETTERS, _KEY), (key.name, key.version)
            )
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {0} VALUES (%s, %s, 0, 1) ON CONFLICT (projection, version) "
                    "DO UPDATE SET position = 0, epoch = {0}.epoch + 1"
                ).format(_TRACKING),
                (key.name, key.version),
            )

    def _read_serving(self, name: str) -> tuple[int, tuple[str, ...]] | None:
        query = sql.SQL("SELECT version, tables FROM {} WHERE projection = %s").format(_SERVING)
        with self._lock:
            row = self._connection.execute(query, (name,)).fetchone()
        if row is None:
            return None
        return int(row[0]), tuple(str(row[1]).split(",")) if row[1] else ()

    def _write_serving(self, key: ReadModelKey) -> None:
        query = sql.SQL(
            "INSERT INTO {} VALUES (%s, %s, %s) ON CONFLICT (projection) DO NOTHING"
        ).format(_SERVING)
        with self._transaction() as cursor:
            cursor.execute(query, (key.name, key.version, ",".join(key.tables)))

    def _switch(self, old: ReadModelKey, new: ReadModelKey) -> bool:
        with self._transaction() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self._ddl_lock_key(),))
            cursor.execute(
                sql.SQL("UPDATE {} SET version = %s, tables = %s WHERE {}").format(_SERVING, _KEY),
                (new.version, ",".join(new.tables), old.name, old.version),
            )
            if cursor.rowcount != 1:
                return False
            for table in old.tables:
                cursor.execute(
                    sql.SQL("DROP TABLE IF EXISTS {}").format(
                        sql.Identifier(table_name(old, table))
                    )
                )
            for bookkeeping in (_LETTERS, _PAUSED):
                cursor.execute(
                    sql.SQL("DELETE FROM {} WHERE {}").format(bookkeeping, _KEY),
                    (old.name, old.version),
                )
            cursor.execute(
                sql.SQL("UPDATE {} SET position = 0, epoch = epoch + 1 WHERE {}").format(
                    _TRACKING, _KEY
                ),
                (old.name, old.version),
            )
        return True

    def _ddl_lock_key(self) -> int:
        digest = hashlib.blake2b(
            f"acctdomain-read-models:{self._spec.dbname}:{self._spec.schema}".encode(),
            digest_size=8,
        ).digest()
        return int.from_bytes(digest, "big", signed=True)


def _letter_filter(key: ReadModelKey, selection: LetterFilter) -> tuple[sql.Composable, list[Any]]:
    where: list[sql.Composable] = [_KEY]
    parameters: list[Any] = [key.name, key.version]
    if selection.account_id is not None:
        where.append(sql.SQL("account_id = %s"))
        parameters.append(str(selection.account_id))
    if selection.position is not None:
        where.append(sql.SQL("position = %s"))
        parameters.append(selection.position)
    return sql.SQL(" AND ").join(where), parameters
