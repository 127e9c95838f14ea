"""Projection versions: a new version is built beside the old one, queries keep reading the old
one until the new one has caught up, then switch in one write; the old tables are dropped.

On every backend: memory, SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any, ClassVar

import psycopg
import pytest

from acctdomain import AccountService
from acctdomain.domain import events as ev
from acctdomain.errors import InvalidValue
from acctdomain.plugins.types import DeadLetter, Projection, Rows
from acctdomain.projections import ProjectionRunner, ReadModelKey, table_name
from tests.projection_fixtures import contact, open_active


class Counts(Projection):
    """Version 1: contacts per account."""

    name = "versioned_counts"
    tables = ("per_account",)
    event_types: ClassVar[tuple[type, ...]] = (ev.ContactLogged,)

    def apply(self, event: Any, rows: Rows) -> None:
        key = event.originator_id.hex
        row = rows.get("per_account", key) or {"count": 0}
        rows.put("per_account", key, {"count": row["count"] + 1, "version": self.version})


class CountsV2(Counts):
    """Version 2: the same table, now also counting per channel."""

    version = 2

    def apply(self, event: Any, rows: Rows) -> None:
        key = event.originator_id.hex
        row = rows.get("per_account", key) or {"count": 0, "channels": {}}
        channels = dict(row["channels"])
        channels[event.channel.value] = channels.get(event.channel.value, 0) + 1
        rows.put(
            "per_account",
            key,
            {"count": row["count"] + 1, "channels": channels, "version": self.version},
        )


class BrokenV3(Counts):
    """A version 3 that cannot be built."""

    version = 3

    def apply(self, event: Any, rows: Rows) -> None:
        raise RuntimeError("version 3 is broken")


@pytest.fixture
def runners(service: AccountService) -> Iterator[list[ProjectionRunner]]:
    made: list[ProjectionRunner] = []
    yield made
    for runner in made:
        runner.close()


def runner_of(
    service: AccountService, runners: list[ProjectionRunner], projection: Projection, **options: Any
) -> ProjectionRunner:
    runner = ProjectionRunner(service, [projection], **options)
    runners.append(runner)
    return runner


def count(runner: ProjectionRunner, account_hex: str) -> dict[str, Any]:
    row = runner.read_model("versioned_counts").get("per_account", account_hex)
    assert row is not None
    return row


def table_exists(runner: ProjectionRunner, key: ReadModelKey) -> bool:
    try:
        list(runner.store.fetch_all(table_name(key, "per_account")))
    except (KeyError, sqlite3.OperationalError, psycopg.errors.UndefinedTable):
        return False
    return True


def test_queries_read_the_old_version_until_the_new_one_has_caught_up(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account_id = open_active(service, "crm:1")
    account = account_id.hex
    contact(service, account_id)
    v1 = runner_of(service, runners, Counts())
    v1.catch_up()
    assert count(v1, account) == {"count": 1, "version": 1}
    contact(service, account_id)

    # The upgraded code: a runner of version 2. Nothing built yet, version 1 is served.
    v2 = runner_of(service, runners, CountsV2(), batch_size=1)
    [status] = v2.status()
    assert (status.version, status.serving_version, status.position) == (2, 1, 0)
    assert count(v2, account) == {"count": 1, "version": 1}

    # Built half-way (a rebuild cancelled after its first batch): still version 1.
    batches = 0

    def cancel_after_one() -> bool:
        nonlocal batches
        batches += 1
        return batches > 1

    v2.rebuild(cancel=cancel_after_one)
    assert 0 < v2.status()[0].position < v2.status()[0].head
    assert count(v2, account) == {"count": 1, "version": 1}
    assert v2.status()[0].serving_version == 1

    # Caught up: version 2 is served, version 1's tables and position are gone.
    v2.catch_up()
    [status] = v2.status()
    assert (status.version, status.serving_version) == (2, 2)
    assert count(v2, account) == {"count": 2, "channels": {"phone": 2}, "version": 2}
    old = ReadModelKey.of(Counts())
    assert not table_exists(v2, old)
    assert v2.store.position(old) == 0
    # A runner of the old code now reads what is served (same table names).
    assert count(v1, account)["version"] == 2


def test_a_new_version_that_fails_is_never_served(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account_id = open_active(service, "crm:1")
    account = account_id.hex
    contact(service, account_id)
    v1 = runner_of(service, runners, Counts())
    v1.catch_up()
    v3 = runner_of(service, runners, BrokenV3())
    v3.catch_up()
    [status] = v3.status()
    assert (status.state, status.version, status.serving_version) == ("failed", 3, 1)
    assert count(v3, account)["version"] == 1
    assert table_exists(v3, ReadModelKey.of(Counts()))


def test_a_paused_new_version_is_not_switched_to(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account_id = open_active(service, "crm:1")
    account = account_id.hex
    contact(service, account_id)
    runner_of(service, runners, Counts()).catch_up()
    v2 = runner_of(service, runners, CountsV2())
    v2.catch_up()  # caught up and switched
    contact(service, account_id)

    class CountsV4(CountsV2):
        version = 4

    v4 = runner_of(service, runners, CountsV4())
    v4.pause("versioned_counts")
    v4.catch_up()
    assert v4.status()[0].serving_version == 2
    v4.resume("versioned_counts")
    v4.catch_up()
    assert v4.status()[0].serving_version == 4
    assert count(v4, account) == {"count": 2, "channels": {"phone": 2}, "version": 4}


def test_a_full_rebuild_of_a_new_version_switches_when_done(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account_id = open_active(service, "crm:1")
    account = account_id.hex
    contact(service, account_id)
    runner_of(service, runners, Counts()).catch_up()
    progress: list[tuple[int, int]] = []
    v2 = runner_of(service, runners, CountsV2())
    v2.rebuild(progress=lambda done, total: progress.append((done, total)))
    assert progress[-1][0] == progress[-1][1]
    assert v2.status()[0].serving_version == 2
    assert count(v2, account)["version"] == 2


def test_events_recorded_during_the_build_are_in_the_new_version_when_it_is_served(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    for _ in range(5):
        contact(service, account)
    runner_of(service, runners, Counts()).catch_up()
    v2 = runner_of(service, runners, CountsV2(), batch_size=2)
    written = 0

    def write_while_building(done: int, total: int) -> None:
        nonlocal written
        if 0 < done < total and written < 5:  # between two batches of the build
            contact(service, account)
            written += 1

    v2.rebuild(progress=write_while_building)
    assert written > 0
    assert v2.status()[0].serving_version == 2
    assert count(v2, account.hex)["count"] == 5 + written


def test_an_old_process_in_a_rolling_upgrade_neither_builds_nor_takes_back_its_version(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    contact(service, account)
    old_code = runner_of(service, runners, Counts())
    old_code.catch_up()
    new_code = runner_of(service, runners, CountsV2())
    new_code.catch_up()
    assert new_code.status()[0].serving_version == 2

    contact(service, account)
    assert old_code.catch_up() == 0  # nothing read for a superseded version
    [status] = old_code.status()
    assert (status.state, status.version, status.serving_version) == ("superseded", 1, 2)
    with pytest.raises(InvalidValue, match="superseded"):
        old_code.rebuild("versioned_counts")
    new_code.catch_up()
    assert old_code.status()[0].serving_version == 2
    assert count(old_code, account.hex)["count"] == 2


def test_a_new_version_with_dead_letters_is_not_served(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    contact(service, account)
    runner_of(service, runners, Counts()).catch_up()

    class ParkingV2(CountsV2):
        on_failure = DeadLetter()

        def apply(self, event: Any, rows: Rows) -> None:
            raise RuntimeError("cannot count this one")

    v2 = runner_of(service, runners, ParkingV2())
    v2.catch_up()
    [status] = v2.status()
    assert (status.dead_letters, status.position, status.serving_version) == (1, status.head, 1)
    assert count(v2, account.hex)["version"] == 1


def test_reading_never_chooses_the_served_version(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    runner = runner_of(service, runners, Counts())
    runner.status()
    assert runner.read_model("versioned_counts").get("per_account", "nobody") is None
    assert runner.store.serving(Counts()) is None  # only a catch-up or rebuild records it
    runner.catch_up()
    assert runner.store.serving(Counts()) == ReadModelKey.of(Counts())


def test_two_runners_switching_at_once_switch_once(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    contact(service, account)
    runner_of(service, runners, Counts()).catch_up()
    first = runner_of(service, runners, CountsV2())
    second = runner_of(service, runners, CountsV2())
    first.catch_up()
    second.catch_up()
    old = ReadModelKey.of(Counts())
    assert not second.store.switch(old, CountsV2())  # v1 is no longer served
    assert count(second, account.hex)["count"] == 1
    assert count(second, account.hex)["version"] == 2


def test_a_superseded_version_leaves_its_dropped_tables_dropped(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    contact(service, account)
    old_code = runner_of(service, runners, Counts())
    old_code.catch_up()
    runner_of(service, runners, CountsV2()).catch_up()
    fresh_old_process = runner_of(service, runners, Counts())
    fresh_old_process.catch_up()
    fresh_old_process.status()
    fresh_old_process.read_model("versioned_counts")
    assert not table_exists(fresh_old_process, ReadModelKey.of(Counts()))


class CountsWithTotals(Counts):
    """Version 1 still, but with a second table: a change that should have bumped the
    version."""

    tables = ("per_account", "totals")

    def apply(self, event: Any, rows: Rows) -> None:
        super().apply(event, rows)
        total = rows.get("totals", "all") or {"count": 0}
        rows.put("totals", "all", {"count": total["count"] + 1})


def test_tables_changed_without_a_new_version_stop_it_until_a_rebuild(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    contact(service, account)
    runner_of(service, runners, Counts()).catch_up()
    changed = runner_of(service, runners, CountsWithTotals())
    contact(service, account)
    changed.catch_up()
    [status] = changed.status()
    assert status.state == "failed"
    assert status.last_error is not None
    assert "bump its version, or rebuild it" in status.last_error.error
    assert count(changed, account.hex)["count"] == 1  # queries still read what was served
    changed.resume("versioned_counts")
    changed.rebuild("versioned_counts")  # the same version, rebuilt with its new tables
    assert changed.status()[0].state == "running"
    assert changed.read_model("versioned_counts").get("totals", "all") == {"count": 2}
    assert count(changed, account.hex)["count"] == 2
    contact(service, account)
    changed.catch_up()
    assert changed.read_model("versioned_counts").get("totals", "all") == {"count": 3}
