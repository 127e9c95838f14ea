"""Scale-out: one projection run by several workers, each applying one part of the accounts.

On every backend in one process (the logic), and on PostgreSQL with two worker processes
(tests/partition_worker.py). "No event twice" is checked with a ledger that counts how many
times each event was applied, and "nothing missed" by comparing with a whole rebuild.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acctdomain import AccountService, account_id_for
from acctdomain.errors import InvalidValue
from acctdomain.plugins import PluginHost
from acctdomain.plugins.types import DeadLetter, Projection, Rows
from acctdomain.projections import Partition, ProjectionRunner, ReadModelKey
from acctdomain.projections.store import LayoutConflict, PositionConflict
from tests.pg import drop_schema, new_schema_url
from tests.projection_fixtures import (
    AccountLedger,
    ContactCounts,
    Ledger,
    contact,
    dump,
    open_active,
)

ROOT = Path(__file__).resolve().parent.parent


class AccountLedgerV2(AccountLedger):
    version = 2


class Picky(AccountLedger):
    """Fails on every event of the accounts in ``refused`` (parked by its policy)."""

    name = "picky"
    on_failure = DeadLetter()
    refused: set[UUID] = set()

    def apply(self, event: Any, rows: Rows) -> None:
        if event.originator_id in self.refused:
            raise RuntimeError("refused")
        super().apply(event, rows)


HALVES = (Partition(0, 2), Partition(1, 2))


@pytest.fixture
def runners(service: AccountService) -> Iterator[list[ProjectionRunner]]:
    made: list[ProjectionRunner] = []
    yield made
    for runner in made:
        runner.close()


def runner_of(
    service: AccountService,
    made: list[ProjectionRunner],
    *projections: Projection,
    **options: Any,
) -> ProjectionRunner:
    runner = ProjectionRunner(service, projections or [AccountLedger()], **options)
    made.append(runner)
    return runner


def book(service: AccountService, accounts: int = 6, contacts: int = 2) -> list[UUID]:
    """Accounts that alternate between the two halves (random keys could all land in one half:
    one run in 32 for six accounts)."""
    ids = [open_active(service, _key_in(HALVES[index % 2], index)) for index in range(accounts)]
    for account in ids:
        for _ in range(contacts):
            contact(service, account)
    return ids


def _key_in(half: Partition, index: int) -> str:
    """A fresh external key whose account the partition ``half`` owns."""
    while True:
        key = f"k{index}-{uuid4().hex[:6]}"
        if half.owns(account_id_for(key)):
            return key


def ledger_rows(runner: ProjectionRunner, name: str = "account_ledger") -> dict[str, Any]:
    return dict(runner.read_model(name).scan("events"))


def rebuilt(service: AccountService, *projections: Projection) -> dict[str, Any]:
    """The tables of a clean whole rebuild, in a store of its own (memory)."""
    clean = AccountService("memory:", plugins=PluginHost(entry_points=False))
    try:
        for notification in service.recorder.select_notifications(start=None, limit=10**9):
            clean.recorder.insert_events([notification])
        with ProjectionRunner(clean, projections or [AccountLedger()]) as runner:
            runner.catch_up()
            return dump(runner)
    finally:
        clean.close()


# --- the value ----------------------------------------------------------------------------------


def test_a_partition_is_parsed_and_checked() -> None:
    assert Partition.parse(" 1 / 3 ") == Partition(1, 3)
    assert str(Partition(0, 2)) == "0/2"
    for text in ("", "1", "1/", "a/2", "-1/2", "2/2", "0/0", "1/2/3"):
        with pytest.raises(InvalidValue) as raised:
            Partition.parse(text)
        assert raised.value.field.startswith("partition")
    for index, count in ((2, 2), (-1, 2), (0, 0), (True, 2), (0, True)):
        with pytest.raises(InvalidValue):
            Partition(index, count)
    with pytest.raises(InvalidValue):
        Partition.parse(12)  # type: ignore[arg-type]


@given(st.uuids(), st.integers(min_value=1, max_value=16))
def test_every_account_is_in_exactly_one_partition(account: UUID, count: int) -> None:
    owners = [index for index in range(count) if Partition(index, count).owns(account)]
    assert len(owners) == 1


def test_a_projection_without_account_share_cannot_be_split(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    with pytest.raises(InvalidValue, match="account_share"):
        runner_of(service, runners, Ledger(), partition=HALVES[0])
    with pytest.raises(InvalidValue, match="Partition"):
        runner_of(service, runners, partition="0/2")


# --- workers in one process, every backend ----------------------------------------------------


def test_two_workers_apply_every_event_once(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    book(service)
    workers = [runner_of(service, runners, partition=part) for part in HALVES]
    for worker in workers:
        worker.catch_up()
    book(service, accounts=3)  # more events after the split
    for worker in reversed(workers):
        worker.catch_up()
    rows = ledger_rows(workers[0])
    assert all(row["times"] == 1 for row in rows.values())
    assert {"account_ledger": {"events": list(rows.items())}} == rebuilt(service)
    head = service.recorder.max_notification_id()
    for worker, part in zip(workers, HALVES, strict=True):
        [status] = worker.status()
        assert (status.partitions, status.partition, status.position) == (2, str(part), head)


def test_each_worker_applies_only_its_own_accounts(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    ids = book(service)
    worker = runner_of(service, runners, partition=HALVES[0])
    worker.catch_up()
    applied = {UUID(key.split("/")[0]) for key in ledger_rows(worker)}
    assert applied == {account for account in ids if HALVES[0].owns(account)}


def test_a_whole_runner_hands_over_to_workers_at_its_position(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    book(service, accounts=4)
    whole = runner_of(service, runners)
    whole.catch_up()
    handed_over_at = service.recorder.max_notification_id()
    workers = [runner_of(service, runners, partition=part) for part in HALVES]
    workers[0].catch_up()
    book(service, accounts=2)
    # The whole runner leaves a split projection to its workers: it applies nothing now.
    assert whole.catch_up() == 0
    [observed] = whole.status()
    assert observed.partitions == 2
    assert observed.position == handed_over_at  # the lowest part: the second worker's
    workers[1].catch_up()
    workers[0].catch_up()
    rows = ledger_rows(whole)
    assert all(row["times"] == 1 for row in rows.values())
    assert {"account_ledger": {"events": list(rows.items())}} == rebuilt(service)
    assert whole.status()[0].position == service.recorder.max_notification_id()


def test_a_batch_of_the_whole_started_before_the_split_cannot_commit(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    store = runner_of(service, runners).store
    key = ReadModelKey.of(AccountLedger())

    def commit_across_the_split() -> None:
        with store.batch(key) as batch:
            store.partition(key.part(HALVES[0]))
            batch.put("events", "x", {"times": 1})
            batch.advance(5)

    with pytest.raises(PositionConflict):
        commit_across_the_split()
    assert store.tracking(key).partitions == 2
    with pytest.raises(LayoutConflict), store.batch(key):
        pass
    with pytest.raises(LayoutConflict), store.batch(key.part(Partition(0, 3))):
        pass
    assert list(store.fetch_all("rm_account_ledger__v1__events")) == []


def test_a_store_refuses_a_split_of_another_count(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    store = runner_of(service, runners).store
    key = ReadModelKey.of(AccountLedger())
    store.partition(key.part(HALVES[0]))
    store.partition(key.part(HALVES[1]))  # split already: nothing to do
    with pytest.raises(LayoutConflict) as raised:
        store.partition(key.part(Partition(2, 3)))
    assert (raised.value.partitions, raised.value.expected) == (2, 3)
    assert "rebuild" in str(raised.value)
    with pytest.raises(ValueError, match="partition"):
        store.partition(key)


def test_after_a_whole_rebuild_the_workers_take_it_over_from_there(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    book(service, accounts=4)
    workers = [runner_of(service, runners, partition=part) for part in HALVES]
    for worker in workers:
        worker.catch_up()
    whole = runner_of(service, runners)
    whole.rebuild("account_ledger")
    assert whole.status()[0].partitions == 1
    rebuilt_to = service.recorder.max_notification_id()
    book(service, accounts=2)
    workers[0].catch_up()  # split again, each part starting where the rebuild got to
    assert whole.catch_up() == 0
    [observed] = whole.status()
    assert (observed.partitions, observed.position) == (2, rebuilt_to)
    workers[1].catch_up()
    rows = ledger_rows(whole)
    assert all(row["times"] == 1 for row in rows.values())
    assert {"account_ledger": {"events": list(rows.items())}} == rebuilt(service)


def test_a_worker_of_another_split_stops_and_says_why(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    book(service, accounts=2)
    runner_of(service, runners, partition=HALVES[0]).catch_up()
    third = runner_of(service, runners, partition=Partition(0, 3))
    third.catch_up()
    [status] = third.status()
    assert status.state == "failed"
    assert status.last_error is not None
    assert "LayoutConflict" in status.last_error.error
    assert "in 2 partitions" in status.last_error.error


def test_a_worker_rebuilds_shares_of_its_own_accounts_only(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    ids = book(service, accounts=6)
    worker = runner_of(service, runners, partition=HALVES[0])
    worker.catch_up()
    mine = next(account for account in ids if HALVES[0].owns(account))
    theirs = next(account for account in ids if not HALVES[0].owns(account))
    before = ledger_rows(worker)
    worker.rebuild("account_ledger", account_id=mine)
    assert ledger_rows(worker) == before
    with pytest.raises(InvalidValue, match="not in partition 0/2"):
        worker.rebuild("account_ledger", account_id=theirs)
    with pytest.raises(InvalidValue, match="share only"):
        worker.rebuild("account_ledger")


def test_a_worker_replays_and_purges_dead_letters_of_its_own_accounts(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    ids = book(service, accounts=8)
    mine = [account for account in ids if HALVES[0].owns(account)]
    theirs = [account for account in ids if not HALVES[0].owns(account)]
    assert mine
    assert theirs
    Picky.refused = {mine[0], theirs[0]}
    try:
        workers = [runner_of(service, runners, Picky(), partition=part) for part in HALVES]
        for worker in workers:
            worker.catch_up()
        assert {p.account_id for p in workers[0].dead_letters("picky")} == {mine[0], theirs[0]}
        Picky.refused = set()
        with pytest.raises(InvalidValue, match="not in partition"):
            workers[0].replay_dead_letters("picky", account_id=theirs[0])
        replayed = workers[0].replay_dead_letters("picky")
        assert replayed.replayed
        assert not replayed.failed
        # Its own account's letters are applied; the other worker's wait for it.
        assert {p.account_id for p in workers[0].dead_letters("picky")} == {theirs[0]}
        with pytest.raises(InvalidValue, match="not in partition"):
            workers[0].purge_dead_letters("picky", account_id=theirs[0])
        assert workers[0].purge_dead_letters("picky") == 0
        assert workers[1].purge_dead_letters("picky") == 4  # opened, started, two contacts
        assert workers[1].dead_letters("picky") == []
    finally:
        Picky.refused = set()


def test_a_new_version_built_by_workers_is_served_once_every_part_caught_up(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    book(service, accounts=4)
    old = runner_of(service, runners)
    old.catch_up()
    workers = [runner_of(service, runners, AccountLedgerV2(), partition=p) for p in HALVES]
    workers[0].catch_up()
    assert old.status()[0].serving_version == 1  # the other part is not there yet
    workers[1].catch_up()
    assert workers[1].status()[0].serving_version == 2
    rows = ledger_rows(workers[1])
    assert all(row["times"] == 1 for row in rows.values())
    assert {"account_ledger": {"events": list(rows.items())}} == rebuilt(service, AccountLedgerV2())


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["write", "whole", "w0", "w1"]), min_size=1, max_size=14))
def test_any_interleaving_of_writes_and_workers_equals_a_rebuild(steps: list[str]) -> None:
    service = AccountService("memory:", plugins=PluginHost(entry_points=False))
    made: list[ProjectionRunner] = []
    try:
        whole = runner_of(service, made, AccountLedger(), ContactCounts())
        workers = [runner_of(service, made, AccountLedger(), partition=part) for part in HALVES]
        for step in steps:
            if step == "write":
                book(service, accounts=1, contacts=1)
            elif step == "whole":
                whole.catch_up()
            else:
                workers[int(step[1])].catch_up()
        for runner in (whole, *workers):
            runner.catch_up()
        rows = ledger_rows(whole)
        assert all(row["times"] == 1 for row in rows.values())
        assert dump(whole) == rebuilt(service, AccountLedger(), ContactCounts())
    finally:
        for runner in made:
            runner.close()
        service.close()


# --- two worker processes on PostgreSQL ---------------------------------------------------------


def test_two_worker_processes_split_one_projection_on_postgres() -> None:
    url, schema = new_schema_url()
    service = AccountService(url, plugins=PluginHost(entry_points=False))
    workers: list[subprocess.Popen[str]] = []
    try:
        book(service, accounts=10)
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.partition_worker", url, str(part)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for part in HALVES
        ]
        for worker in workers:  # both following
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        book(service, accounts=10)  # written while they follow
        head = service.recorder.max_notification_id()
        reports = []
        for worker in workers:
            assert worker.stdin is not None
            assert worker.stdout is not None
            worker.stdin.write(f"wait {head}\n")
            worker.stdin.flush()
            reports.append(worker.stdout.readline().split())
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("quit\n")
            worker.stdin.flush()
            assert worker.wait(timeout=60) == 0
        applied = [int(report[2]) for report in reports]
        assert [report[:2] for report in reports] == [["caught-up", str(head)]] * 2
        # Each worker applied only its part, and together every event, once.
        with ProjectionRunner(service, [AccountLedger()]) as observer:
            rows = ledger_rows(observer)
            assert observer.status()[0].partitions == 2
        assert all(row["times"] == 1 for row in rows.values())
        assert sum(applied) == len(rows) == head
        assert all(applied)
        assert {"account_ledger": {"events": list(rows.items())}} == rebuilt(service)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        service.close()
        drop_schema(schema)


def test_the_engine_s_conflicts_are_acctdomain_errors() -> None:
    from acctdomain.errors import AcctDomainError

    assert issubclass(PositionConflict, AcctDomainError)
    assert issubclass(LayoutConflict, AcctDomainError)
    error = LayoutConflict("accounts", 2, 3, 1)
    assert "in 3 partitions" in str(error)
    assert "a whole runner" in str(error)
    import pickle

    assert str(pickle.loads(pickle.dumps(error))) == str(error)
