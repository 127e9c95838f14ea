"""Choosing a store by URL, path or environment variable; bad locations are typed errors."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from acctdomain import AccountService, parse_store
from acctdomain.application.stores import DEFAULT_STORE, STORE_ENV_VAR
from acctdomain.errors import StoreConfigurationError
from tests.pg import drop_schema, new_schema_url


def test_memory_store() -> None:
    assert parse_store("memory:").kind == "memory"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("book.db", "book.db"),
        ("sqlite:///data/book.db", "data/book.db"),
        ("sqlite:////var/lib/book.db", "/var/lib/book.db"),
    ],
)
def test_sqlite_file_by_path_or_url(url: str, path: str) -> None:
    spec = parse_store(url)
    assert (spec.kind, spec.path) == ("sqlite", path)
    assert spec.environment()["SQLITE_DBNAME"] == path


def test_postgres_url_with_schema() -> None:
    spec = parse_store("postgresql://bob:s%40cret@db.internal:6543/crm?schema=acct")
    assert (
        spec.kind,
        spec.host,
        spec.port,
        spec.user,
        spec.password,
        spec.dbname,
        spec.schema,
    ) == ("postgres", "db.internal", "6543", "bob", "s@cret", "crm", "acct")
    assert spec.environment()["POSTGRES_SCHEMA"] == "acct"


def test_default_store_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_ENV_VAR, "memory:")
    assert parse_store().kind == "memory"
    monkeypatch.delenv(STORE_ENV_VAR)
    assert parse_store().path == DEFAULT_STORE


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "expected a URL"),
        ("mysql://x/y", "unsupported scheme"),
        ("postgresql:///nodb", "needs a host"),
        ("postgresql://h/", "needs a host"),
        ("postgresql://h/db?sslmode=require", "unknown PostgreSQL URL option"),
        ("sqlite://host/file.db", "sqlite:///"),
    ],
)
def test_bad_store_locations_are_refused(url: str, message: str) -> None:
    with pytest.raises(StoreConfigurationError, match=message):
        parse_store(url)


def test_store_errors_name_the_field_and_reason() -> None:
    with pytest.raises(StoreConfigurationError) as caught:
        parse_store("ftp://host/x")
    assert caught.value.field == "store"
    assert str(caught.value).startswith("store: unsupported scheme 'ftp'")


def test_an_sqlite_file_that_cannot_be_opened_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(StoreConfigurationError, match="cannot open SQLite file") as caught:
        AccountService(str(tmp_path / "no-such-directory" / "book.db"))
    assert caught.value.field == "store"


def test_a_new_sqlite_file_is_switched_to_wal_before_eventsourcing_connects(
    tmp_path: Path,
) -> None:
    path = tmp_path / "book.db"
    with parse_store(str(path)).setting_up(), closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_postgres_start_ups_queue_on_one_advisory_lock() -> None:
    """While one start-up holds the lock, another session cannot take it; after, it can."""
    url, schema = new_schema_url()
    spec = parse_store(url)
    try:
        with spec.setting_up(), spec.connect() as other:
            key = spec._startup_lock_key()
            taken = other.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            assert taken == (False,)
            assert other.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)
            ).fetchone() == (1,)
        with spec.connect() as other:
            key = spec._startup_lock_key()
            assert other.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone() == (True,)
    finally:
        drop_schema(schema)
