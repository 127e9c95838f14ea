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
from acctdomain.projections.keys import ReadModelKey, prefix_bounds, table_name
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

__all__ = ["PostgresReadModelStore"]

_PAGE = 1000
_TRACKING = sql.Identifier(TRACKING_TABLE)
_LETTERS = sql.Identifier(DEAD_LETTER_TABLE)
_PAUSED = sql.Identifier(PAUSED_TABLE)
_SERVING = sql.Identifier(SERVING_TABLE)
_PARTITIONS = sql.Identifier(PARTITIONS_TABLE)
_FAILURES = sql.Identifier(FAILURES_TABLE)
# The rows of a projection version: the whole's, and its partitions' (``<name>#i/n``).
_VERSION_OF = sql.SQL("version = %s AND (projection = %s OR left(projection, %s) = %s)")
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

    def fetch_all(self, table: str, prefix: str = "") -> Iterator[tuple[str, str]]:
        # Pages by key, so a long scan neither holds the lock nor loads the whole table.
        lower, upper = prefix_bounds(prefix)
        bound = sql.SQL("") if upper is None else sql.SQL(" AND key < %s")
        tail = () if upper is None else (upper,)
        first = sql.SQL("SELECT key, value FROM {} WHERE key >= %s{} ORDER BY key LIMIT %s").format(
            sql.Identifier(table), bound
        )
        after = sql.SQL("SELECT key, value FROM {} WHERE key > %s{} ORDER BY key LIMIT %s").format(
            sql.Identifier(table), bound
        )
        with self._lock:
            page = self._connection.execute(first, (lower, *tail, _PAGE)).fetchall()
        while page:
            yield from ((str(key), str(value)) for key, value in page)
            if len(page) < _PAGE:
                return
            with self._lock:
                page = self._connection.execute(after, (page[-1][0], *tail, _PAGE)).fetchall()

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
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (projection TEXT NOT NULL, "
                    "version INTEGER NOT NULL, partitions INTEGER NOT NULL, "
                    "PRIMARY KEY (projection, version))"
                ).format(_PARTITIONS)
            )
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (projection TEXT NOT NULL, "
                    "version INTEGER NOT NULL, position BIGINT NOT NULL, error TEXT NOT NULL, "
                    "PRIMARY KEY (projection, version))"
                ).format(_FAILURES)
            )
            for table in key.tables:
                cursor.execute(
                    sql.SQL(
                        'CREATE TABLE IF NOT EXISTS {} (key TEXT COLLATE "C" PRIMARY KEY, '
                        "value TEXT NOT NULL)"
                    ).format(sql.Identifier(table_name(key, table)))
                )

    def _read_tracking(self, key: ReadModelKey) -> Tracking:
        # One statement, so the position, the partitioning and a stop come from one snapshot.
        stopped, failures = _failures_of(key)
        query = sql.SQL(
            "SELECT t.position, t.epoch, (SELECT partitions FROM {1} WHERE {2}), "
            "EXISTS (SELECT 1 FROM {3} WHERE {4}) "
            "FROM (SELECT 1) AS one LEFT JOIN {0} AS t "
            "ON t.projection = %s AND t.version = %s"
        ).format(_TRACKING, _PARTITIONS, _KEY, _FAILURES, stopped)
        parameters = (key.name, key.version, *failures, key.tracking_name, key.version)
        with self._lock:
            row = self._connection.execute(query, parameters, prepare=True).fetchone()
        assert row is not None
        position, epoch, partitions, is_stopped = row
        return Tracking(int(position or 0), int(epoch or 0), int(partitions or 1), bool(is_stopped))

    def _partition(self, key: ReadModelKey, count: int) -> None:
        with self._transaction() as cursor:
            # The whole's tracking row, locked: a batch of the whole commits before us (and
            # its position is the one the partitions start from) or fails after us.
            cursor.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, 0, 0) ON CONFLICT DO NOTHING").format(
                    _TRACKING
                ),
                (key.name, key.version),
            )
            row = cursor.execute(
                sql.SQL("SELECT position FROM {} WHERE {} FOR UPDATE").format(_TRACKING, _KEY),
                (key.name, key.version),
            ).fetchone()
            assert row is not None
            position = int(row[0])
            found = cursor.execute(
                sql.SQL("SELECT partitions FROM {} WHERE {}").format(_PARTITIONS, _KEY),
                (key.name, key.version),
            ).fetchone()
            current = 1 if found is None else int(found[0])
            if current == count:
                return
            if current != 1:
                raise LayoutConflict(key.name, key.version, current, count)
            names = [key.name] + [f"{key.name}#{index}/{count}" for index in range(count)]
            cursor.executemany(
                sql.SQL(
                    "INSERT INTO {0} VALUES (%s, %s, %s, 1) ON CONFLICT (projection, version) "
                    "DO UPDATE SET position = excluded.position, epoch = {0}.epoch + 1"
                ).format(_TRACKING),
                [(name, key.version, position) for name in names],
            )
            cursor.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(_PARTITIONS),
                (key.name, key.version, count),
            )

    def _restart_tracking(self, cursor: psycopg.Cursor[tuple[Any, ...]], key: ReadModelKey) -> None:
        """Position 0 in a new epoch for the whole and every partition; run whole again,
        without failures."""
        cursor.execute(
            sql.SQL("UPDATE {} SET position = 0, epoch = epoch + 1 WHERE {}").format(
                _TRACKING, _VERSION_OF
            ),
            _version_of(key),
        )
        cursor.execute(
            sql.SQL("DELETE FROM {} WHERE {}").format(_PARTITIONS, _KEY), (key.name, key.version)
        )
        cursor.execute(
            sql.SQL("DELETE FROM {} WHERE {}").format(_FAILURES, _VERSION_OF), _version_of(key)
        )

    def _read_failure(self, key: ReadModelKey) -> Failure | None:
        where, parameters = _failures_of(key)
        query = sql.SQL("SELECT position, error FROM {} WHERE {} ORDER BY position LIMIT 1")
        with self._lock:
            row = self._connection.execute(query.format(_FAILURES, where), parameters).fetchone()
        return None if row is None else Failure(key.name, int(row[0]), str(row[1]))

    def _write_failure(self, key: ReadModelKey, failure: Failure) -> None:
        with self._transaction() as cursor:
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} VALUES (%s, %s, %s, %s) ON CONFLICT (projection, version) "
                    "DO UPDATE SET position = excluded.position, error = excluded.error"
                ).format(_FAILURES),
                (key.tracking_name, key.version, failure.position, failure.error),
            )

    def _clear_failures(self, key: ReadModelKey) -> None:
        with self._transaction() as cursor:
            cursor.execute(
                sql.SQL("DELETE FROM {} WHERE {}").format(_FAILURES, _VERSION_OF),
                _version_of(key),
            )

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
            (key.tracking_name, key.version, claim.end, claim.next_epoch, claim.start, claim.epoch),
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
                sql.SQL("INSERT INTO {} VALUES (%s, %s, 0, 0) ON CONFLICT DO NOTHING").format(
                    _TRACKING
                ),
                (key.name, key.version),
            )
            self._restart_tracking(cursor, key)
            # Rebuilt from its code: queries read the tables the code declares now.
            cursor.execute(
                sql.SQL("UPDATE {} SET tables = %s WHERE {}").format(_SERVING, _KEY),
                (",".join(key.tables), key.name, key.version),
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
            self._restart_tracking(cursor, old)
        return True

    def _ddl_lock_key(self) -> int:
        digest = hashlib.blake2b(
            f"acctdomain-read-models:{self._spec.dbname}:{self._spec.schema}".encode(),
            digest_size=8,
        ).digest()
        return int.from_bytes(digest, "big", signed=True)


def _version_of(key: ReadModelKey) -> tuple[Any, ...]:
    prefix = f"{key.name}#"
    return (key.version, key.name, len(prefix), prefix)


def _failures_of(key: ReadModelKey) -> tuple[sql.Composable, tuple[Any, ...]]:
    """Where the failures of the key are: a partition's own, or the whole's and its parts'."""
    if key.partition is None:
        return _VERSION_OF, _version_of(key)
    return _KEY, (key.tracking_name, key.version)


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
