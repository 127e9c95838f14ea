"""Several OS processes writing to the same accounts at once, on SQLite and on PostgreSQL.

Four processes (multiprocessing, "spawn") each build their own AccountService on one shared
store, meet at a barrier and then issue commands against the same few accounts. Afterwards the
parent reads the store back and proves that no event was lost or duplicated, and that every
lost race was either retried (the command succeeded later) or reported (ConcurrencyConflict,
nothing appended). The workers live in tests/concurrency_worker.py.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import AggregateNotFoundError

from acctdomain import AccountService, CommandResult
from acctdomain.application.idempotency import IdempotencyRecord, record_id_for
from acctdomain.domain import events as ev
from tests import concurrency_worker as worker
from tests.concurrency_worker import Outcome
from tests.pg import drop_schema, new_schema_url

pytestmark = pytest.mark.slow

WORKERS = 4
CONCURRENT_BACKENDS = ("sqlite", "postgres")


@pytest.fixture(params=CONCURRENT_BACKENDS)
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store that several processes can open at once."""
    if request.param == "sqlite":
        yield str(tmp_path / "shared.db")
    else:
        url, schema = new_schema_url()
        try:
            yield url
        finally:
            drop_schema(schema)


@pytest.fixture
def parent(shared_store: str) -> Iterator[AccountService]:
    """The parent's own service: opens the accounts before and reads the store after."""
    service = AccountService(shared_store)
    try:
        yield service
    finally:
        service.close()


def open_accounts(service: AccountService, count: int) -> list[UUID]:
    """Open ``count`` accounts, each with one contact logged already (two events each)."""
    account_ids = []
    for n in range(count):
        opened = service.open_account(
            name=f"Shared {n}",
            segment="enterprise",
            industry="logistics",
            currency="EUR",
            manager="amy",
            manager_type="strategic",
            external_key=f"crm:shared-{n}",
            actor="parent",
        )
        service.log_contact(
            opened.account_id,
            channel="phone",
            direction="inbound",
            summary=f"initial {n}",
            actor="parent",
        )
        account_ids.append(opened.account_id)
    return account_ids


def run_workers(function: Callable[..., list[Outcome]], *arguments: Any) -> list[Outcome]:
    """Run ``function(store, worker_id, ...)`` in WORKERS spawned processes, all at once.

    ``arguments`` holds, per worker, the tuple of its arguments. Any exception in a worker
    other than the ConcurrencyConflict the worker records is raised here.
    """
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    with ProcessPoolExecutor(
        max_workers=WORKERS,
        mp_context=context,
        initializer=worker.init_worker,
        initargs=(barrier,),
    ) as pool:
        futures = [pool.submit(function, *args) for args in arguments]
        _, running = wait(futures, timeout=120)
        assert not running, "the workers did not finish within 120 s"
    failures = [error for future in futures if (error := future.exception()) is not None]
    # Report the worker that failed first-hand, not those it left at a broken barrier.
    failures.sort(key=lambda error: isinstance(error, threading.BrokenBarrierError))
    if failures:
        raise failures[0]
    return [outcome for future in futures for outcome in future.result()]


def checked_history(service: AccountService, account_id: UUID) -> list[ev.AccountEvent]:
    """The account's history, after checking its versions run 1..N with no gap or repeat."""
    history = service.history(account_id)
    assert [event.originator_version for event in history] == list(range(1, len(history) + 1))
    assert all(event.originator_id == account_id for event in history)
    return list(history)


def summaries(history: list[ev.AccountEvent]) -> Counter[str]:
    return Counter(event.summary for event in history if isinstance(event, ev.ContactLogged))


def assert_nothing_lost_or_duplicated(
    service: AccountService,
    account_ids: list[UUID],
    initial: dict[UUID, list[ev.AccountEvent]],
    outcomes: list[Outcome],
) -> None:
    """Every success is in the store exactly once, where its result says; no report is."""
    by_account: dict[UUID, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_account[outcome.account_id].append(outcome)
    for account_id in account_ids:
        history = checked_history(service, account_id)
        succeeded = [o for o in by_account[account_id] if o.result is not None]
        reported = [o for o in by_account[account_id] if o.result is None]
        # Nothing lost and nothing extra: the initial events, then one event per success.
        assert len(history) == len(initial[account_id]) + len(succeeded)
        assert history[: len(initial[account_id])] == initial[account_id]
        found = summaries(history[len(initial[account_id]) :])
        assert found == Counter(o.summary for o in succeeded)
        assert not {o.summary for o in reported} & set(found)
        for outcome in succeeded:
            assert outcome.result is not None
            assert outcome.result.account_id == account_id
            event = history[outcome.result.version - 1]
            assert isinstance(event, ev.ContactLogged)
            assert event.summary == outcome.summary
            assert event.actor == outcome.actor


def assert_idempotency_records(service: AccountService, outcomes: list[Outcome]) -> None:
    """A success left its key's record (repeating it appends nothing); a report left none."""
    stored_before = service.recorder.max_notification_id()
    for outcome in outcomes:
        assert outcome.key is not None
        if outcome.result is None:
            with pytest.raises(AggregateNotFoundError):
                service.repository.get(record_id_for(outcome.key))
            continue
        record: object = service.repository.get(record_id_for(outcome.key))
        assert isinstance(record, IdempotencyRecord)
        assert (record.account_id, record.account_version) == (
            outcome.account_id,
            outcome.result.version,
        )
        again = service.log_contact(
            outcome.account_id,
            channel="email",
            direction="outbound",
            summary=outcome.summary,
            actor=outcome.actor,
            idempotency_key=outcome.key,
        )
        assert again == outcome.result
    assert service.recorder.max_notification_id() == stored_before


def hammer(
    parent: AccountService, store: str, accounts: int, commands: int, max_attempts: list[int]
) -> list[Outcome]:
    account_ids = open_accounts(parent, accounts)
    initial = {account_id: checked_history(parent, account_id) for account_id in account_ids}
    outcomes = run_workers(
        worker.hammer,
        *[(store, w, account_ids, commands, max_attempts[w]) for w in range(WORKERS)],
    )
    assert len(outcomes) == WORKERS * commands
    # Every lost race was retried or reported: a success needed fewer collisions than the
    # worker's attempts allow (each collision one retry), a report used up every attempt.
    for outcome in outcomes:
        if outcome.result is None:
            assert outcome.collisions == max_attempts[outcome.worker], outcome
            assert "gave up after" in outcome.conflict
        else:
            assert outcome.collisions < max_attempts[outcome.worker], outcome
    assert_nothing_lost_or_duplicated(parent, account_ids, initial, outcomes)
    assert_idempotency_records(parent, outcomes)
    return outcomes


def test_patient_writers_lose_no_event_and_retry_every_collision(
    parent: AccountService, shared_store: str
) -> None:
    """Four processes, 3 shared accounts, 50 keyed commands each, 8 attempts per command."""
    outcomes = hammer(parent, shared_store, accounts=3, commands=50, max_attempts=[8] * WORKERS)
    # The race really happened, and the service retried its way through it.
    retried = [o for o in outcomes if o.result is not None and o.collisions]
    assert retried, "no command ever collided: the test did not exercise concurrency"


def test_impatient_writers_report_conflicts_and_append_nothing_for_them(
    parent: AccountService, shared_store: str
) -> None:
    """Four processes, 2 shared accounts, 40 commands each, with 1 or 2 attempts only."""
    outcomes = hammer(parent, shared_store, accounts=2, commands=40, max_attempts=[1, 1, 2, 2])
    reported = [o for o in outcomes if o.result is None]
    assert reported, "no ConcurrencyConflict was reported: lower max_attempts or add workers"
    assert any(o.result is not None for o in outcomes)


def test_the_same_idempotency_key_from_several_processes_appends_once(
    parent: AccountService, shared_store: str
) -> None:
    """In each of 15 rounds all four processes issue the same keyed command at once."""
    rounds = 15
    (account_id,) = open_accounts(parent, 1)
    initial = checked_history(parent, account_id)
    outcomes = run_workers(
        worker.repeat_same_key, *[(shared_store, w, account_id, rounds) for w in range(WORKERS)]
    )
    assert all(o.result is not None for o in outcomes), "a repeat must never be a conflict"
    assert_idempotency_records(parent, outcomes)
    history = checked_history(parent, account_id)
    assert len(history) == len(initial) + rounds
    found = summaries(history[len(initial) :])
    for seq in range(rounds):
        callers = [o for o in outcomes if o.seq == seq]
        assert len(callers) == WORKERS
        results = {o.result for o in callers}
        assert len(results) == 1, f"round {seq}: callers got different results {results}"
        (result,) = results
        assert isinstance(result, CommandResult)
        assert found[f"same key r{seq}"] == 1
        event = history[result.version - 1]
        assert isinstance(event, ev.ContactLogged)
        assert event.summary == f"same key r{seq}"
    # Some callers lost the race at the database and then found the winner's record.
    assert any(o.collisions for o in outcomes), "no round ever collided"


def test_expected_version_lets_exactly_one_process_win(
    parent: AccountService, shared_store: str
) -> None:
    """In each of 15 rounds all four processes expect the same version: one wins."""
    rounds = 15
    (account_id,) = open_accounts(parent, 1)
    initial = checked_history(parent, account_id)
    first_version = len(initial)
    outcomes = run_workers(
        worker.race_expected_version,
        *[(shared_store, w, account_id, first_version, rounds) for w in range(WORKERS)],
    )
    history = checked_history(parent, account_id)
    assert len(history) == first_version + rounds
    assert history[:first_version] == initial
    for seq in range(rounds):
        callers = [o for o in outcomes if o.seq == seq]
        assert len(callers) == WORKERS
        winners = [o for o in callers if o.result is not None]
        assert len(winners) == 1, f"round {seq}: {len(winners)} winners"
        (winner,) = winners
        assert winner.result == CommandResult(account_id, first_version + seq + 1)
        event = history[first_version + seq]
        assert isinstance(event, ev.ContactLogged)
        assert event.summary == winner.summary
        for loser in callers:
            if loser is not winner:
                assert "expected version" in loser.conflict
                assert loser.collisions <= 1  # Never retried: an expected version is final.
    found = summaries(history[first_version:])
    assert found == Counter(o.summary for o in outcomes if o.result is not None)
    # Some losers got as far as the database (lost the insert), not just the version check.
    assert any(o.collisions for o in outcomes), "no loser ever reached the database"


def test_processes_starting_at_once_on_a_new_store_all_start(shared_store: str) -> None:
    """Four services built at the same moment on a store with no tables yet: every start
    succeeds (PostgreSQL start-ups queue on an advisory lock) and every account is there."""
    outcomes = run_workers(worker.start_together, *[(shared_store, w) for w in range(WORKERS)])
    assert sorted(o.worker for o in outcomes) == list(range(WORKERS))
    service = AccountService(shared_store)
    try:
        for outcome in outcomes:
            assert service.get_account(outcome.account_id).name == f"Started {outcome.worker}"
    finally:
        service.close()
