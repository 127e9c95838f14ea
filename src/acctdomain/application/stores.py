"""Where events are stored: one URL (or a plain file path) picks the backend.

========================================  ============================================
``memory:``                               in memory (tests, experiments)
``sqlite:///relative/path.db``            an SQLite file (``sqlite:////abs/path.db``)
``book.db`` (a plain path)                an SQLite file
``postgresql://user:pw@host:5432/db``     PostgreSQL; ``?schema=name`` picks a schema
========================================  ============================================

With no URL, ``ACCTDOMAIN_STORE`` is read, and without it the SQLite file ``acctdomain.db``.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

from acctdomain.errors import StoreConfigurationError

if TYPE_CHECKING:
    import psycopg

__all__ = ["DEFAULT_STORE", "STORE_ENV_VAR", "StoreSpec", "parse_store"]

STORE_ENV_VAR = "ACCTDOMAIN_STORE"
DEFAULT_STORE = "acctdomain.db"

# Seconds a writer waits for another process's write lock before giving up.
SQLITE_LOCK_TIMEOUT = "30"

# The factory of acctdomain.application.sqlite_persistence (named, not imported: eventsourcing
# imports it when the service is built).
SQLITE_PERSISTENCE_MODULE = "acctdomain.application.sqlite_persistence"

# The factory of acctdomain.application.postgres_persistence: eventsourcing's PostgreSQL
# recorders, plus the hash chain.
POSTGRES_PERSISTENCE_MODULE = "acctdomain.application.postgres_persistence"


@attrs.frozen(kw_only=True)
class StoreSpec:
    """A parsed store location."""

    kind: Literal["memory", "sqlite", "postgres"]
    path: str = ""
    host: str = ""
    port: str = ""
    user: str = ""
    password: str = ""
    dbname: str = ""
    schema: str = ""

    def environment(self) -> dict[str, str]:
        """The eventsourcing environment variables for this store."""
        if self.kind == "memory":
            return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        if self.kind == "sqlite":
            # Our factory: eventsourcing's SQLite recorders, plus a subscribe() that follows
            # commits made by this process and by others, and the hash chain.
            return {
                "PERSISTENCE_MODULE": SQLITE_PERSISTENCE_MODULE,
                "SQLITE_DBNAME": self.path,
                "SQLITE_LOCK_TIMEOUT": SQLITE_LOCK_TIMEOUT,
            }
        env = {
            "PERSISTENCE_MODULE": POSTGRES_PERSISTENCE_MODULE,
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": self.port,
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "CREATE_TABLE": "y",
        }
        if self.schema:
            env["POSTGRES_SCHEMA"] = self.schema
        return env

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection to this PostgreSQL store (for set-up and tests)."""
        import psycopg

        if self.kind != "postgres":
            raise StoreConfigurationError("store", f"a {self.kind} store has no connection")
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.dbname,
            autocommit=True,
        )

    @contextmanager
    def setting_up(self) -> Iterator[None]:
        """Hold the store's start-up lock while tables are created.

        eventsourcing creates its PostgreSQL tables and functions with ``CREATE ... IF NOT
        EXISTS`` and ``CREATE OR REPLACE``, which PostgreSQL does not serialise: processes
        starting at the same moment fail with "tuple concurrently updated" or a duplicate key
        in ``pg_type``. A session-level advisory lock, keyed by database and schema, makes
        starts queue behind each other; the schema itself is created under the same lock.
        SQLite serialises DDL through its write lock, but not the switch to WAL mode, which
        eventsourcing makes on first connection; it is made here first, waiting its turn.
        """
        if self.kind == "sqlite":
            self._use_wal()
        if self.kind != "postgres":
            yield
            return
        from psycopg import sql

        with self.connect() as connection:
            connection.execute("SELECT pg_advisory_lock(%s)", (self._startup_lock_key(),))
            try:
                if self.schema:
                    connection.execute(
                        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            sql.Identifier(self.schema)
                        )
                    )
                yield
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", (self._startup_lock_key(),))

    def _use_wal(self) -> None:
        # Changing the journal mode needs an exclusive lock and does not wait on the busy
        # timeout, so processes opening a new file at the same moment see "database is locked".
        if self.path == ":memory:" or "mode=memory" in self.path:
            return
        deadline = time.monotonic() + float(SQLITE_LOCK_TIMEOUT)
        while True:
            try:
                with closing(
                    sqlite3.connect(self.path, uri=True, timeout=float(SQLITE_LOCK_TIMEOUT))
                ) as connection:
                    connection.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise StoreConfigurationError(
                        "store", f"cannot open SQLite file {self.path!r}: {error}"
                    ) from error
                time.sleep(random.uniform(0.005, 0.05))

    def _startup_lock_key(self) -> int:
        digest = hashlib.blake2b(
            f"acctdomain-startup:{self.dbname}:{self.schema}".encode(), digest_size=8
        ).digest()
        return int.from_bytes(digest, "big", signed=True)


def parse_store(url: str | None = None) -> StoreSpec:
    """Parse a store URL or path; ``None`` reads ``ACCTDOMAIN_STORE``, then the default file."""
    if url is None:
        url = os.environ.get(STORE_ENV_VAR) or DEFAULT_STORE
    if not isinstance(url, str) or not url.strip():
        raise StoreConfigurationError("store", "expected a URL or a file path")
    if url in ("memory:", "memory://"):
        return StoreSpec(kind="memory")
    if "://" not in url:
        return StoreSpec(kind="sqlite", path=url)
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if parts.netloc or not path:
            raise StoreConfigurationError(
                "store", f"expected sqlite:///relative.db or sqlite:////absolute.db, got {url!r}"
            )
        return StoreSpec(kind="sqlite", path=path)
    if parts.scheme in ("postgresql", "postgres"):
        dbname = unquote(parts.path.lstrip("/"))
        if not parts.hostname or not dbname:
            raise StoreConfigurationError(
                "store", f"a PostgreSQL URL needs a host and a database name, got {url!r}"
            )
        query = parse_qs(parts.query)
        unknown = set(query) - {"schema"}
        if unknown:
            raise StoreConfigurationError(
                "store", f"unknown PostgreSQL URL option(s): {', '.join(sorted(unknown))}"
            )
        return StoreSpec(
            kind="postgres",
            host=parts.hostname,
            port=str(parts.port or 5432),
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            dbname=dbname,
            schema=query.get("schema", [""])[0],
        )
    raise StoreConfigurationError(
        "store", f"unsupported scheme {parts.scheme!r}: use memory:, sqlite:/// or postgresql://"
    )
