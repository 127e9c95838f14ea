"""Choosing a store by URL, path or environment variable; bad locations are typed errors."""

from __future__ import annotations

import pytest

from acctdomain import parse_store
from acctdomain.application.stores import DEFAULT_STORE, STORE_ENV_VAR
from acctdomain.errors import StoreConfigurationError


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
