"""Races between two services on one store, staged deterministically in one process.

The cross-process tests (tests/test_concurrency.py) show that nothing is lost under load; these
stage the exact interleavings that matter, so each outcome is checked every run: another
writer gets in between this service's checks and its save.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from acctdomain import AccountService, CommandResult
from acctdomain.domain import Account
from acctdomain.errors import AccountAlreadyExists, ConcurrencyConflict
from tests.conftest import FakeClock
from tests.pg import drop_schema, new_schema_url
from tests.test_service import event_count, open_active


@pytest.fixture(params=("sqlite", "postgres"))
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "shared.db")
    else:
        url, schema = new_schema_url()
        try:
            yield url
        finally:
            drop_schema(schema)


class Interrupted(AccountService):
    """A service that lets another writer in once, right after it loads (or checks) the
    account: the interleaving a second process produces by bad luck."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.interloper: Callable[[], object] | None = None
        # Decide on what was read before the other writer (the save then collides), or on a
        # fresh read after it (the decision then sees the other writer's change).
        self.decide_on_stale = False

    def _cut_in(self) -> None:
        interloper, self.interloper = self.interloper, None
        if interloper is not None:
            interloper()

    def _load(self, account_id: UUID) -> Account:
        account = super()._load(account_id)
        if self.interloper is None:
            return account
        self._cut_in()
        return account if self.decide_on_stale else super()._load(account_id)

    def _exists(self, account_id: UUID) -> bool:
        self._cut_in()
        return super()._exists(account_id)


@pytest.fixture
def pair(shared_url: str, clock: FakeClock) -> Iterator[tuple[Interrupted, AccountService]]:
    mine = Interrupted(shared_url, clock=clock)
    other = AccountService(shared_url, clock=clock)
    try:
        yield mine, other
    finally:
        mine.close()
        other.close()


def test_a_subclass_keeps_the_service_name_and_so_its_tables() -> None:
    assert Interrupted.name == AccountService.name

    class Renamed(AccountService):
        name = "elsewhere"

    assert Renamed.name == "elsewhere"


def test_a_keyed_command_refused_because_its_twin_ran_first_replays_the_twin(
    pair: tuple[Interrupted, AccountService],
) -> None:
    mine, other = pair
    account_id = open_active(other)
    issue = other.raise_issue(
        account_id, title="Sync", severity="high", category="integration", actor="amy"
    )
    assert issue.entity_id is not None

    def resolve(service: AccountService) -> CommandResult:
        return service.resolve_issue(
            account_id,
            issue_id=issue.entity_id,
            resolution="fixed",
            actor="amy",
            idempotency_key="resolve-1",
        )

    # The twin resolves the issue after this service checked the key and before it decides:
    # resolving again is refused, and the refusal is recognised as the twin's success.
    mine.interloper = lambda: resolve(other)
    before = event_count(other)
    result = resolve(mine)
    assert result == resolve(other)
    assert event_count(other) == before + 2  # the twin's event and its idempotency record


def test_a_keyed_command_with_an_expected_version_that_loses_to_its_twin_replays_it(
    pair: tuple[Interrupted, AccountService],
) -> None:
    mine, other = pair
    account_id = open_active(other)

    def log(service: AccountService) -> CommandResult:
        return service.log_contact(
            account_id,
            channel="email",
            direction="outbound",
            actor="amy",
            idempotency_key="mail-7",
            expected_version=2,
        )

    mine.interloper = lambda: log(other)
    mine.decide_on_stale = True
    result = log(mine)
    assert result == CommandResult(account_id, 3)
    assert other.get_account(account_id).contact_count == 1


def test_an_unkeyed_command_with_an_expected_version_that_loses_is_a_conflict(
    pair: tuple[Interrupted, AccountService],
) -> None:
    mine, other = pair
    account_id = open_active(other)
    mine.interloper = lambda: other.log_contact(
        account_id, channel="phone", direction="inbound", actor="bo"
    )
    mine.decide_on_stale = True
    with pytest.raises(ConcurrencyConflict, match="expected version 2, another writer won"):
        mine.log_contact(
            account_id, channel="email", direction="outbound", actor="amy", expected_version=2
        )
    assert other.get_account(account_id).contact_count == 1


def test_opening_with_a_key_while_the_twin_opens_replays_the_twin(
    pair: tuple[Interrupted, AccountService],
) -> None:
    mine, other = pair
    arguments: dict[str, Any] = dict(
        name="Acme",
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        actor="amy",
        idempotency_key="open-acme",
    )
    mine.interloper = lambda: other.open_account(**arguments)
    result = mine.open_account(**arguments)
    assert result == other.open_account(**arguments)
    assert event_count(other) == 2  # one AccountOpened, one idempotency record


def test_opening_without_a_key_while_another_opens_the_same_external_key_is_refused(
    pair: tuple[Interrupted, AccountService],
) -> None:
    mine, other = pair
    arguments: dict[str, Any] = dict(
        name="Acme",
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        actor="amy",
        external_key="crm:55",
    )
    mine.interloper = lambda: other.open_account(**arguments)
    with pytest.raises(AccountAlreadyExists, match="exists already"):
        mine.open_account(**arguments)
    assert event_count(other) == 1
