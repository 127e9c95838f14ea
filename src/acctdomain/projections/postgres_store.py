"""Read models in the PostgreSQL database and schema of the events, on a connection of their
own."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from acctdomain.application.stores import StoreSpec
from acctdomain.projections.batch import Changes
from acctdomain.projections.codec import RowCodec
from acctdomain.projections.keys import ReadModelKey, table_name
from acctdomain.projections.store import (
    TRACKING_TABLE,
    Claim,
    PositionConflict,
    ReadModelStore,
)

__all__ = ["PostgresReadModelStore"]

_PAGE = 1000
_TRACKING = sql.Identifier(TRACKING_TABLE)


class PostgresReadModelStore(ReadModelStore):
    """Tables ``rm_<projection>_v<version>_<table>`` and ``rm_tracking`` in the store's schema.

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

    def _claim_position(
        self, cursor: psycopg.Cursor[tuple[Any, ...]], key: ReadModelKey, claim: Claim
    ) -> None:
        # Inserts the first row, else moves the position only if the row is still the one the
        # batch started from. Taking the row first also makes a second runner of the
        # projection wait here, then fail the check, instead of interleaving rows with ours.
        cursor.execute(
            sql.SQL(
                "INSERT INTO {0} VALUES (%s, %s, %s, %s) ON CONFLICT (projection, version) "
                "DO UPDATE SET position = excluded.position "
                "WHERE {0}.position = %s AND {0}.epoch = %s"
            ).format(_TRACKING),
            (key.name, key.version, claim.end, claim.epoch, claim.start, claim.epoch),
        )
        if cursor.rowcount != 1:
            raise PositionConflict(f"{key.name} v{key.version} moved from {claim.start}")

    def _write_rows(self, cursor: psycopg.Cursor[tuple[Any, ...]], changes: Changes) -> None:
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

    def _reset(self, key: ReadModelKey) -> None:
        with self._transaction() as cursor:
            for table in key.tables:
                cursor.execute(
                    sql.SQL("TRUNCATE {}").format(sql.Identifier(table_name(key, table)))
                )
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {0} VALUES (%s, %s, 0, 1) ON CONFLICT (projection, version) "
                    "DO UPDATE SET position = 0, epoch = {0}.epoch + 1"
                ).format(_TRACKING),
                (key.name, key.version),
            )

    def _ddl_lock_key(self) -> int:
        digest = hashlib.blake2b(
            f"acctdomain-read-models:{self._spec.dbname}:{self._spec.schema}".encode(),
            digest_size=8,
        ).digest()
        return int.from_bytes(digest, "big", signed=True)
