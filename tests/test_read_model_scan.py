"""Scanning a read-model table by key prefix: a range of the index, on every backend, paged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from acctdomain import AccountService
from acctdomain.domain import events as ev
from acctdomain.errors import InvalidValue
from acctdomain.plugins.types import Projection, Rows
from acctdomain.projections import ProjectionRunner
from acctdomain.projections.keys import prefix_bounds

KEYS = ["2026-01:a", "2026-01:b", "2026-010", "2026-02:a", "2026-0", "2025-12:z", "\U0010ffff"]


class Fixed(Projection):
    """Writes the rows it was given on the first event it sees."""

    name = "fixed_rows"
    tables = ("rows",)
    event_types: ClassVar[tuple[type, ...]] = (ev.AccountOpened,)
    keys: ClassVar[list[str]] = []

    def apply(self, event: Any, rows: Rows) -> None:
        for key in self.keys:
            rows.put("rows", key, {"key": key})


@pytest.fixture
def runner(service: AccountService) -> Iterator[ProjectionRunner]:
    Fixed.keys = [*KEYS, *(f"page:{n:05d}" for n in range(1205))]
    service.open_account(
        name="Acme", segment="smb", industry="retail", currency="EUR", manager="amy",
        manager_type="sales", actor="amy",
    )  # fmt: skip
    with ProjectionRunner(service, [Fixed()]) as made:
        made.catch_up()
        yield made


def keys(runner: ProjectionRunner, prefix: str) -> list[str]:
    return [key for key, _ in runner.read_model("fixed_rows").scan("rows", prefix)]


def test_a_prefix_selects_its_keys_in_order(runner: ProjectionRunner) -> None:
    assert keys(runner, "2026-01:") == ["2026-01:a", "2026-01:b"]
    assert keys(runner, "2026-01") == ["2026-010", "2026-01:a", "2026-01:b"]  # "0" < ":"
    assert keys(runner, "2026-0") == ["2026-0", "2026-010", "2026-01:a", "2026-01:b", "2026-02:a"]
    assert keys(runner, "2027") == []
    assert keys(runner, "\U0010ffff") == ["\U0010ffff"]
    everything = keys(runner, "")
    assert everything == sorted(everything)
    assert len(everything) == len(KEYS) + 1205


def test_a_prefix_scan_pages_through_many_rows(runner: ProjectionRunner) -> None:
    found = keys(runner, "page:")
    assert found == [f"page:{n:05d}" for n in range(1205)]
    assert keys(runner, "page:011") == [f"page:{n:05d}" for n in range(1100, 1200)]


def test_prefix_bounds() -> None:
    assert prefix_bounds("") == ("", None)
    assert prefix_bounds("ab") == ("ab", "ac")
    assert prefix_bounds("a\U0010ffff") == ("a\U0010ffff", "b")
    assert prefix_bounds("\U0010ffff") == ("\U0010ffff", None)
    with pytest.raises(InvalidValue):
        prefix_bounds(3)  # type: ignore[arg-type]
