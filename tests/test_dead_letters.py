"""Failure policies (Stop, Retry, DeadLetter) and the dead letters they leave, on every
backend: parking keeps each account's events in order, in the batch's transaction; dead letters
are listed, inspected, replayed and purged; a property test shows that replaying them with the
fault removed ends where a clean rebuild does."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import attrs
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acctdomain import AccountService
from acctdomain.domain import events as ev
from acctdomain.errors import AcctDomainError, InvalidValue
from acctdomain.plugins.types import Projection, Rows
from acctdomain.projections import (
    DeadLetter,
    ParkedEvent,
    PostgresReadModelStore,
    ProjectionRunner,
    Retry,
    SQLiteReadModelStore,
    Stop,
)
from tests.conftest import FakeClock
from tests.pg import drop_schema, new_schema_url
from tests.projection_fixtures import (
    AccountHistory,
    Boom,
    Crash,
    Ledger,
    Sleeps,
    TopicTotals,
    contact,
    dump,
    eur,
    insert_unknown_event,
    notification_id_of,
    of,
    open_active,
)


@pytest.fixture
def runners(service: AccountService) -> Iterator[list[ProjectionRunner]]:
    """Runners made by a test, closed after it."""
    made: list[ProjectionRunner] = []
    yield made
    for runner in made:
        runner.close()


def new_runner(
    service: AccountService,
    runners: list[ProjectionRunner],
    projections: list[Projection],
    **options: Any,
) -> ProjectionRunner:
    runner = ProjectionRunner(service, projections, **options)
    runners.append(runner)
    return runner


@contextmanager
def fresh_service(backend: str) -> Iterator[AccountService]:
    if backend == "memory":
        app = AccountService("memory:", clock=FakeClock())
        try:
            yield app
        finally:
            app.close()
    elif backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            app = AccountService(str(Path(directory) / "events.db"), clock=FakeClock())
            try:
                yield app
            finally:
                app.close()
    else:
        url, schema = new_schema_url()
        app = AccountService(url, clock=FakeClock())
        try:
            yield app
        finally:
            app.close()
            drop_schema(schema)


def clean_rebuild(service: AccountService, projections: list[Projection]) -> dict[str, Any]:
    """The tables ``projections`` make from every event, in a store of their own."""
    with ProjectionRunner(service, projections, store=_fresh_store(service)) as runner:
        runner.rebuild()
        tables = dump(runner)
        runner.store.close()
    return tables


def _fresh_store(service: AccountService) -> Any:
    from acctdomain.projections import MemoryReadModelStore, RowCodec

    return MemoryReadModelStore(RowCodec(service.mapper.transcoder))


def positions(letters: list[ParkedEvent]) -> list[int]:
    return [letter.position for letter in letters]


def status_of(runner: ProjectionRunner, name: str) -> Any:
    return {s.name: s for s in runner.status()}[name]


class Flaky(Ledger):
    """A ledger whose ``apply`` raises Boom the next ``failures`` times it is called."""

    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures

    def apply(self, event: Any, rows: Rows) -> None:
        if self.failures:
            self.failures -= 1
            raise Boom("the service it calls is down")
        super().apply(event, rows)


# --- the policy types -----------------------------------------------------------------------


def test_retry_backs_off_exponentially_up_to_its_maximum() -> None:
    retry = Retry(5, backoff_seconds=1, max_backoff=3)
    assert [retry.delay(n) for n in range(1, 6)] == [1.0, 2.0, 3.0, 3.0, 3.0]
    assert Retry(1).then == Stop()
    assert Retry(10**6, 0.5, 60).delay(10**6) == 60.0


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"attempts": 0}, "retry.attempts"),
        ({"attempts": True}, "retry.attempts"),
        ({"attempts": 1.5}, "retry.attempts"),
        ({"attempts": 1, "backoff_seconds": -1}, "retry.backoff_seconds"),
        ({"attempts": 1, "backoff_seconds": float("nan")}, "retry.backoff_seconds"),
        ({"attempts": 1, "max_backoff": "1"}, "retry.max_backoff"),
        ({"attempts": 1, "backoff_seconds": 2, "max_backoff": 1}, "retry.max_backoff"),
        ({"attempts": 1, "then": Retry(1)}, "retry.then"),
        ({"attempts": 1, "then": "stop"}, "retry.then"),
    ],
)
def test_a_malformed_retry_is_refused(arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        Retry(**arguments)
    assert refused.value.field == field


def test_the_policy_is_declared_on_the_projection_and_overridable_per_runner(
    memory_service: AccountService,
) -> None:
    class Patient(Ledger):
        name = "patient"
        on_failure = Retry(2, then=DeadLetter())

    with ProjectionRunner(memory_service, [Ledger(), Patient()]) as runner:
        assert runner.failure_policy("ledger") == Stop()
        assert runner.failure_policy("patient") == Retry(2, then=DeadLetter())
        runner.set_failure_policy("ledger", DeadLetter())
        assert status_of(runner, "ledger").on_failure == DeadLetter()
    with ProjectionRunner(
        memory_service, [Ledger(), Patient()], on_failure={"patient": Stop()}
    ) as runner:
        assert runner.failure_policy("patient") == Stop()


def test_bad_failure_policies_are_refused(memory_service: AccountService) -> None:
    class Wrong(Ledger):
        name = "wrong"
        on_failure = "retry"  # type: ignore[assignment]

    with pytest.raises(InvalidValue) as refused:
        ProjectionRunner(memory_service, [Wrong()])
    assert refused.value.field == "projection.on_failure"
    assert "'wrong'" in refused.value.reason
    with pytest.raises(InvalidValue, match="no projection named 'nope'"):
        ProjectionRunner(memory_service, [Ledger()], on_failure={"nope": Stop()})
    with pytest.raises(InvalidValue) as refused:
        ProjectionRunner(memory_service, [Ledger()], on_failure={"ledger": "stop"})  # type: ignore[dict-item]
    assert refused.value.field == "on_failure"
    with pytest.raises(InvalidValue, match="mapping"):
        ProjectionRunner(memory_service, [Ledger()], on_failure=[Stop()])  # type: ignore[arg-type]
    with pytest.raises(InvalidValue) as refused:
        ProjectionRunner(memory_service, [Ledger()], sleep=1)  # type: ignore[arg-type]
    assert refused.value.field == "sleep"
    with pytest.raises(InvalidValue) as refused:
        ProjectionRunner(memory_service, [Ledger()], batch_size=0)
    assert refused.value.field == "batch_size"
    with ProjectionRunner(memory_service, [Ledger()]) as runner:
        with pytest.raises(InvalidValue):
            runner.set_failure_policy("ledger", None)  # type: ignore[arg-type]
        with pytest.raises(InvalidValue, match="no projection named"):
            runner.failure_policy("nope")


# --- Stop and Retry ---------------------------------------------------------------------------


def test_stop_is_the_default_and_parks_nothing(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    good, bad = open_active(service, "crm:1"), open_active(service, "crm:2")
    contact(service, bad)
    contact(service, good)
    history = AccountHistory(fails=of(bad, 3))
    runner = new_runner(service, runners, [history])
    runner.catch_up()
    status = status_of(runner, "account_history")
    assert (status.state, status.dead_letters, status.on_failure) == ("failed", 0, Stop())
    assert status.last_error.position == notification_id_of(service, bad, 3)
    assert status.position < notification_id_of(service, bad, 3)
    assert runner.dead_letters("account_history") == []


def test_retry_applies_the_batch_again_after_a_backoff(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    contact(service, account)
    sleeps = Sleeps()
    flaky = Flaky(failures=2)
    runner = new_runner(
        service,
        runners,
        [flaky],
        on_failure={"flaky": Retry(3, backoff_seconds=0.5, max_backoff=0.75)},
        sleep=sleeps,
    )
    runner.catch_up()
    assert sleeps.delays == [0.5, 0.75]
    status = status_of(runner, "flaky")
    assert (status.state, status.lag, status.dead_letters) == ("running", 0, 0)
    assert "is down" in status.last_error.error
    rows = dict(runner.read_model("flaky").scan("events"))
    assert len(rows) == 3
    assert {row["times"] for row in rows.values()} == {1}  # the discarded tries left nothing


def test_retry_stops_when_its_attempts_are_spent(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    open_active(service, "crm:1")
    sleeps = Sleeps()
    runner = new_runner(
        service, runners, [Flaky(failures=10)], on_failure={"flaky": Retry(2)}, sleep=sleeps
    )
    runner.catch_up()
    assert sleeps.delays == [0.1, 0.2]
    status = status_of(runner, "flaky")
    assert (status.state, status.position, status.dead_letters) == ("failed", 0, 0)


def test_retry_then_dead_letter_parks_the_event_once_the_attempts_are_spent(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    good, bad = open_active(service, "crm:1"), open_active(service, "crm:2")
    sleeps = Sleeps()
    policy = Retry(2, backoff_seconds=1, then=DeadLetter())
    runner = new_runner(
        service,
        runners,
        [AccountHistory(fails=of(bad, 2))],
        on_failure={"account_history": policy},
        sleep=sleeps,
    )
    runner.catch_up()
    assert sleeps.delays == [1.0, 2.0]
    [parked] = runner.dead_letters("account_history")
    assert (parked.account_id, parked.originator_version) == (bad, 2)
    assert "Boom" in (parked.error or "")
    assert status_of(runner, "account_history").state == "running"
    accounts = dict(runner.read_model("account_history").scan("accounts"))
    assert accounts == {good.hex: {"versions": (1, 2)}, bad.hex: {"versions": (1,)}}


# --- DeadLetter ---------------------------------------------------------------------------------


def test_a_dead_letter_parks_the_accounts_later_events_and_others_go_on(
    service: AccountService, runners: list[ProjectionRunner], clock: FakeClock
) -> None:
    good, bad = open_active(service, "crm:1"), open_active(service, "crm:2")
    contact(service, bad)  # v3: fails
    contact(service, good)
    contact(service, bad)  # v4: would succeed, but must wait behind v3
    history = AccountHistory(fails=of(bad, 3))
    runner = new_runner(
        service, runners, [history], on_failure={"account_history": DeadLetter()}, batch_size=2
    )
    runner.catch_up()

    status = status_of(runner, "account_history")
    assert (status.state, status.lag, status.dead_letters) == ("running", 0, 2)
    assert status.last_error.position == notification_id_of(service, bad, 3)
    first, second = runner.dead_letters("account_history")
    assert (first.account_id, first.originator_version) == (bad, 3)
    assert "Boom" in (first.error or "")
    assert (second.account_id, second.originator_version, second.error) == (bad, 4, None)
    assert first.topic == get_topic(ev.ContactLogged)
    assert first.parked_at == clock.now
    accounts = dict(runner.read_model("account_history").scan("accounts"))
    assert accounts == {good.hex: {"versions": (1, 2, 3)}, bad.hex: {"versions": (1, 2)}}

    # Later, in another runner (another process): the account is still held back.
    contact(service, bad)
    contact(service, good)
    later = new_runner(
        service, runners, [AccountHistory()], on_failure={"account_history": DeadLetter()}
    )
    later.catch_up()
    assert [p.originator_version for p in later.dead_letters("account_history")] == [3, 4, 5]
    assert later.dead_letters("account_history", account_id=good) == []
    assert row_versions(later, good) == (1, 2, 3, 4)


def row_versions(runner: ProjectionRunner, account: UUID) -> tuple[int, ...]:
    row = runner.read_model("account_history").get("accounts", account.hex)
    return () if row is None else tuple(row["versions"])


def test_an_account_stays_held_back_after_the_policy_changes(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    runner = new_runner(
        service,
        runners,
        [AccountHistory(fails=of(account, 2))],
        on_failure={"account_history": DeadLetter()},
    )
    runner.catch_up()
    contact(service, account)
    stopping = new_runner(service, runners, [AccountHistory()])  # Stop, the default
    stopping.catch_up()
    assert positions(stopping.dead_letters("account_history")) == [
        notification_id_of(service, account, 2),
        notification_id_of(service, account, 3),
    ]
    assert status_of(stopping, "account_history").state == "running"


def test_undecodable_events_and_failing_wants_are_parked(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    class Picky(AccountHistory):
        def wants(self, event: object) -> bool:
            if isinstance(event, ev.ContactLogged) and event.channel.value == "qbr":
                raise Boom("wants() is broken too")
            return True

    account = open_active(service, "crm:1")
    broken = uuid4()
    service.recorder.insert_events(
        [StoredEvent(broken, 1, get_topic(ev.ContactLogged), b"not json")]
    )
    service.log_contact(account, channel="qbr", direction="inbound", actor="amy")
    insert_unknown_event(service)  # counted, never parked
    runner = new_runner(service, runners, [Picky()], on_failure={"account_history": DeadLetter()})
    runner.catch_up()
    undecodable, picky = runner.dead_letters("account_history")
    assert (undecodable.account_id, undecodable.originator_version) == (broken, 1)
    assert "MapperDeserialisationError" in (undecodable.error or "")
    assert picky.position == notification_id_of(service, account, 3)
    assert "wants() is broken" in (picky.error or "")
    status = status_of(runner, "account_history")
    assert (status.unknown_events, status.lag, status.state) == (1, 0, "running")
    detail = runner.inspect_dead_letter("account_history", undecodable.position)
    assert detail.event is None
    assert "MapperDeserialisationError" in (detail.decode_error or "")


def test_the_event_that_wrote_an_unencodable_row_is_the_one_parked(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    class Unencodable(AccountHistory):
        def apply(self, event: Any, rows: Rows) -> None:
            super().apply(event, rows)
            if isinstance(event, ev.ContactLogged):
                rows.put("accounts", event.originator_id.hex, {"set": {1, 2}})

    first, second = open_active(service, "crm:1"), open_active(service, "crm:2")
    contact(service, second)
    runner = new_runner(
        service, runners, [Unencodable()], on_failure={"account_history": DeadLetter()}
    )
    runner.catch_up()
    [parked] = runner.dead_letters("account_history")
    assert parked.position == notification_id_of(service, second, 3)
    assert "TypeError" in (parked.error or "") or "set" in (parked.error or "")
    assert row_versions(runner, first) == (1, 2)
    assert row_versions(runner, second) == (1, 2)
    assert status_of(runner, "account_history").lag == 0


@pytest.fixture(params=("sqlite", "postgres"))
def sql_service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AccountService]:
    """A service on SQLite or PostgreSQL: stores whose commit can fail half-way (the memory
    store commits with a few assignments under a lock, so it has no half-way)."""
    with fresh_service(request.param) as app:
        yield app


def test_a_crash_while_parking_leaves_neither_dead_letters_nor_position(
    sql_service: AccountService, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = sql_service
    account = open_active(service, "crm:1")
    runner = ProjectionRunner(
        service,
        [AccountHistory(fails=of(account, 2))],
        on_failure={"account_history": DeadLetter()},
    )
    store = runner.store
    assert isinstance(store, SQLiteReadModelStore | PostgresReadModelStore)
    write_letters = store._write_letters

    def crash_after_parking(*args: Any) -> None:
        write_letters(*args)
        raise Crash("power cut")

    monkeypatch.setattr(store, "_write_letters", crash_after_parking)
    with pytest.raises(Crash):
        runner.catch_up()
    assert store.position(AccountHistory()) == 0
    assert runner.dead_letters("account_history") == []
    assert dump(runner)["account_history"] == {"accounts": [], "events": []}
    monkeypatch.undo()
    runner.catch_up()
    assert len(runner.dead_letters("account_history")) == 1
    runner.close()


# --- inspect, replay, purge -----------------------------------------------------------------------


@pytest.fixture
def parked(
    service: AccountService, runners: list[ProjectionRunner]
) -> tuple[ProjectionRunner, AccountHistory, UUID, UUID]:
    """Two accounts with three dead letters each (their versions 3, 4, 5), one without."""
    first, second, fine = (open_active(service, f"crm:{n}") for n in range(3))
    for _ in range(3):
        for account in (first, second, fine):
            contact(service, account)
    history = AccountHistory(fails=lambda e: e.originator_id != fine and e.originator_version == 3)
    runner = new_runner(
        service,
        runners,
        [history, TopicTotals(fails=of(first, 3))],
        on_failure={"account_history": DeadLetter(), "topic_totals": DeadLetter()},
        batch_size=4,
    )
    runner.catch_up()
    assert len(runner.dead_letters("account_history")) == 6
    return runner, history, first, second


def test_inspect_shows_the_event_error_position_account_and_time(
    service: AccountService,
    parked: tuple[ProjectionRunner, AccountHistory, UUID, UUID],
    clock: FakeClock,
) -> None:
    runner, _, first, _ = parked
    position = notification_id_of(service, first, 3)
    detail = runner.inspect_dead_letter("account_history", position)
    assert detail.decode_error is None
    assert isinstance(detail.event, ev.ContactLogged)
    assert (detail.event.originator_id, detail.event.originator_version) == (first, 3)
    letter = detail.parked
    assert (letter.projection, letter.version, letter.position) == ("account_history", 1, position)
    assert (letter.account_id, letter.originator_version) == (first, 3)
    assert letter.error == f"Boom('cannot handle {first} v3')"
    assert letter.parked_at == clock.now
    with pytest.raises(InvalidValue, match="no dead letter at 1"):
        runner.inspect_dead_letter("account_history", 1)


def test_replaying_an_account_applies_its_letters_in_order_and_removes_them(
    service: AccountService, parked: tuple[ProjectionRunner, AccountHistory, UUID, UUID]
) -> None:
    runner, history, first, second = parked
    history.fails = None
    result = runner.replay_dead_letters("account_history", account_id=first)
    assert result.failed == ()
    assert result.replayed == tuple(notification_id_of(service, first, v) for v in (3, 4, 5))
    assert row_versions(runner, first) == (1, 2, 3, 4, 5)
    assert runner.dead_letters("account_history", account_id=first) == []
    assert len(runner.dead_letters("account_history", account_id=second)) == 3

    contact(service, first)  # no longer held back
    runner.catch_up()
    assert row_versions(runner, first) == (1, 2, 3, 4, 5, 6)
    assert runner.replay_dead_letters("account_history", account_id=first).replayed == ()


def test_replaying_everything_with_the_fault_removed_equals_a_clean_rebuild(
    service: AccountService, parked: tuple[ProjectionRunner, AccountHistory, UUID, UUID]
) -> None:
    runner, history, _, _ = parked
    history.fails = None
    totals = runner.projection("topic_totals")
    assert isinstance(totals, TopicTotals)
    totals.fails = None
    assert len(runner.replay_dead_letters("account_history").replayed) == 6
    assert len(runner.replay_dead_letters("topic_totals").replayed) == 3
    assert all(s.dead_letters == 0 for s in runner.status())
    assert dump(runner) == clean_rebuild(service, [AccountHistory(), TopicTotals()])


def test_a_letter_that_fails_again_is_kept_with_its_new_error(
    service: AccountService,
    parked: tuple[ProjectionRunner, AccountHistory, UUID, UUID],
    clock: FakeClock,
) -> None:
    runner, history, first, _ = parked
    parked_at = clock.now
    clock.advance(hours=1)
    history.fails = lambda event: event.originator_version == 4  # v3 is fixed, v4 is not
    result = runner.replay_dead_letters("account_history", account_id=first)
    assert result.replayed == (notification_id_of(service, first, 3),)
    [again] = result.failed
    assert again.position == notification_id_of(service, first, 4)
    assert again.error == f"Boom('cannot handle {first} v4')"
    assert again.parked_at == parked_at
    kept = runner.dead_letters("account_history", account_id=first)
    assert kept == [again, *kept[1:]]
    assert [(k.originator_version, k.error is None) for k in kept] == [(4, False), (5, True)]
    assert row_versions(runner, first) == (1, 2, 3)
    assert status_of(runner, "account_history").last_error.position == again.position


def test_one_letter_is_replayed_only_at_the_head_of_its_account(
    service: AccountService, parked: tuple[ProjectionRunner, AccountHistory, UUID, UUID]
) -> None:
    runner, history, first, _ = parked
    history.fails = None
    with pytest.raises(InvalidValue, match="comes before"):
        runner.replay_dead_letters(
            "account_history", position=notification_id_of(service, first, 4)
        )
    head = notification_id_of(service, first, 3)
    assert runner.replay_dead_letters("account_history", position=head).replayed == (head,)
    assert row_versions(runner, first) == (1, 2, 3)
    assert len(runner.dead_letters("account_history")) == 5
    with pytest.raises(InvalidValue, match="no dead letter"):
        runner.replay_dead_letters("account_history", position=head)


def test_purge_drops_letters_by_position_account_or_all(
    service: AccountService, parked: tuple[ProjectionRunner, AccountHistory, UUID, UUID]
) -> None:
    runner, _, first, _ = parked
    last = notification_id_of(service, first, 5)
    assert runner.purge_dead_letters("account_history", position=last) == 1
    assert runner.purge_dead_letters("account_history", position=last) == 0
    assert runner.purge_dead_letters("account_history", account_id=first) == 2
    assert runner.dead_letters("account_history", account_id=first) == []
    contact(service, first)  # applied: nothing holds the account back any more
    runner.catch_up()
    assert row_versions(runner, first) == (1, 2, 6)
    assert runner.purge_dead_letters("topic_totals") == 4  # first's v6 too: still held there
    assert runner.purge_dead_letters("account_history") == 3
    assert all(s.dead_letters == 0 for s in runner.status())


def test_a_rebuild_forgets_dead_letters_and_parks_what_still_fails(
    service: AccountService, parked: tuple[ProjectionRunner, AccountHistory, UUID, UUID]
) -> None:
    runner, history, first, second = parked
    history.fails = of(second, 4)
    runner.rebuild("account_history")
    letters = runner.dead_letters("account_history")
    assert [(p.account_id, p.originator_version) for p in letters] == [(second, 4), (second, 5)]
    assert row_versions(runner, first) == (1, 2, 3, 4, 5)


def test_replay_starts_again_when_another_runner_moved_the_projection(
    service: AccountService, parked: tuple[ProjectionRunner, AccountHistory, UUID, UUID]
) -> None:
    runner, history, _, second = parked
    contact(service, second)
    other = ProjectionRunner(
        service, [AccountHistory()], on_failure={"account_history": DeadLetter()}
    )
    moved = [False]

    def fails(event: Any) -> bool:
        if not moved[0]:
            moved[0] = True
            other.catch_up()  # parks second's v6 and moves the position
        return False

    history.fails = fails
    try:
        result = runner.replay_dead_letters("account_history", account_id=second)
    finally:
        other.close()
    assert result.replayed == tuple(notification_id_of(service, second, v) for v in (3, 4, 5, 6))
    assert row_versions(runner, second) == (1, 2, 3, 4, 5, 6)


def test_letters_no_longer_wanted_are_dropped_and_a_missing_event_is_reported(
    service: AccountService, parked: tuple[ProjectionRunner, AccountHistory, UUID, UUID]
) -> None:
    runner, history, first, second = parked
    gone = attrs.evolve(
        runner.dead_letters("account_history", account_id=second)[0], position=10**9
    )
    with runner.store.batch(history) as batch:  # a letter whose event is not in the store
        batch.park(gone)
    history.event_types = (ev.AccountOpened,)  # the contacts are no longer wanted

    detail = runner.inspect_dead_letter("account_history", gone.position)
    assert (detail.event, detail.decode_error) == (None, "the event is not in the store")
    result = runner.replay_dead_letters("account_history")
    assert len(result.replayed) == 6  # dropped, not applied
    assert row_versions(runner, first) == (1, 2)
    assert result.failed == (attrs.evolve(gone, error="the event is not in the store"),)
    assert runner.dead_letters("account_history") == [gone]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda r: r.dead_letters("nope"), "projection"),
        (lambda r: r.dead_letters("account_history", account_id="x"), "account_id"),
        (lambda r: r.purge_dead_letters("account_history", position=0), "position"),
        (lambda r: r.purge_dead_letters("account_history", position=True), "position"),
        (lambda r: r.replay_dead_letters("account_history", position="3"), "position"),
        (
            lambda r: r.replay_dead_letters("account_history", account_id=uuid4(), position=3),
            "position",
        ),
        (lambda r: r.inspect_dead_letter("account_history", -1), "position"),
    ],
)
def test_bad_dead_letter_arguments_are_refused(
    memory_service: AccountService, call: Callable[[ProjectionRunner], Any], field: str
) -> None:
    with ProjectionRunner(memory_service, [AccountHistory()]) as runner:
        with pytest.raises(InvalidValue) as refused:
            call(runner)
        assert refused.value.field == field


# --- the property -------------------------------------------------------------------------------

COMMANDS = ("open", "contact", "upsell", "churn")
command = st.tuples(st.sampled_from(COMMANDS), st.integers(0, 4))
catch_up = st.tuples(st.just("catch_up"), st.integers(1, 6))
step = st.one_of(command, command, command, catch_up)
EXAMPLES = {"memory": 60, "sqlite": 15, "postgres": 6}


@pytest.mark.parametrize("backend", list(EXAMPLES))
def test_replaying_dead_letters_without_the_fault_equals_a_clean_rebuild(backend: str) -> None:
    @settings(
        max_examples=EXAMPLES[backend],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        steps=st.lists(step, min_size=3, max_size=30),
        faults=st.sets(st.tuples(st.integers(0, 4), st.integers(1, 8)), max_size=6),
    )
    def check(steps: list[Any], faults: set[tuple[int, int]]) -> None:
        with fresh_service(backend) as service:
            accounts = [open_active(service, "crm:first")]

            def fails(event: Any) -> bool:
                index = accounts.index(event.originator_id)
                return (index, event.originator_version) in faults

            projections: list[Projection] = [AccountHistory(fails), TopicTotals(fails)]
            policies = {p.name: DeadLetter() for p in projections}
            for kind, value in steps:
                if kind == "catch_up":
                    with ProjectionRunner(
                        service, projections, batch_size=value, on_failure=policies
                    ) as runner:
                        runner.catch_up()
                elif kind == "open":
                    accounts.append(open_active(service, f"crm:{len(accounts)}"))
                else:
                    account = accounts[value % len(accounts)]
                    with suppress(AcctDomainError):
                        if kind == "contact":
                            contact(service, account)
                        elif kind == "upsell":
                            service.upsell(account, product="core", added_arr=eur(1), actor="a")
                        else:
                            service.churn(account, reason="price", actor="a")
            with ProjectionRunner(service, projections, on_failure=policies) as runner:
                runner.catch_up()
                assert {s.state for s in runner.status()} == {"running"}
                for projection in projections:
                    for letter in runner.dead_letters(projection.name):
                        event = runner.inspect_dead_letter(projection.name, letter.position).event
                        assert letter.error is None or fails(event)
                faults.clear()  # the fault is fixed
                for projection in projections:
                    assert runner.replay_dead_letters(projection.name).failed == ()
                assert {s.dead_letters for s in runner.status()} == {0}
                assert dump(runner) == clean_rebuild(service, [AccountHistory(), TopicTotals()])

    check()


class RunningTotal(Projection):
    """One row for the whole book: a read-modify-write that a lost update would show."""

    name = "running_total"
    tables = ("total",)
    event_types = (ev.ContactLogged,)
    on_failure = DeadLetter()
    failing: UUID | None = None
    meanwhile: Callable[[], object] | None = None

    def apply(self, event: Any, rows: Rows) -> None:
        if event.originator_id == self.failing:
            raise RuntimeError("boom")
        row = rows.get("total", "book") or {"n": 0}
        if self.meanwhile is not None:  # another runner commits after this batch read the row
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        rows.put("total", "book", {"n": row["n"] + 1})


def test_a_replay_committed_while_a_batch_runs_is_not_overwritten_by_it(
    service: AccountService,
) -> None:
    """The replay does not move the position, so it bumps the epoch: the batch that read the
    row before the replay must not commit (it starts again from the new row)."""
    x, y = open_active(service, "crm:x"), open_active(service, "crm:y")
    projection = RunningTotal()
    projection.failing = x
    with (
        ProjectionRunner(service, [projection]) as first,
        ProjectionRunner(service, [RunningTotal()]) as second,
    ):
        contact(service, y)
        contact(service, x)
        first.catch_up()
        assert len(first.dead_letters("running_total")) == 1
        projection.failing = None
        contact(service, y)
        projection.meanwhile = lambda: second.replay_dead_letters("running_total")
        first.catch_up()
        assert first.dead_letters("running_total") == []
        assert first.read_model("running_total").get("total", "book") == {"n": 3}
