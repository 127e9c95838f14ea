"""Fixtures shared by the whole suite: one service per backend, all three backends real.

Services here load the built-in plugins only: what happens to be installed in the virtual
environment (the commissions plugin, a plugin under development) must not change a test's
outcome. Tests of discovery build their own ``PluginHost``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acctdomain import AccountService
from acctdomain.plugins import PluginHost
from tests.pg import drop_schema, new_schema_url

BACKENDS = ("memory", "sqlite", "postgres")


class FakeClock:
    """A recorded-time clock the test moves by hand."""

    def __init__(self, start: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store of each kind."""
    if request.param == "memory":
        yield "memory:"
    elif request.param == "sqlite":
        yield str(tmp_path / "events.db")
    else:
        url, schema = new_schema_url()
        try:
            yield url
        finally:
            drop_schema(schema)


@pytest.fixture
def service(store_url: str, clock: FakeClock) -> Iterator[AccountService]:
    """An AccountService on each backend, with a hand-moved clock."""
    app = AccountService(store_url, clock=clock, plugins=PluginHost(entry_points=False))
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def memory_service(clock: FakeClock) -> Iterator[AccountService]:
    """An in-memory AccountService, for tests of pure behaviour."""
    app = AccountService("memory:", clock=clock, plugins=PluginHost(entry_points=False))
    try:
        yield app
    finally:
        app.close()
