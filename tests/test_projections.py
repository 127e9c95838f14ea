"""The projection engine on every backend: catch-up, exactly-once batches, failures, rebuild,
gaps, unknown events, several connections, and policies."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.utils import get_topic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acctdomain import AccountService, Channel, Money, NpsScore, ProductLine
from acctdomain.domain import events as ev
from acctdomain.errors import AcctDomainError, InvalidValue
from acctdomain.plugins import PluginHost
from acctdomain.plugins.types import Policy, Projection, Rows
from acctdomain.projections import (
    DeadLetter,
    PolicyRunner,
    PostgresReadModelStore,
    ProjectionRunner,
    ReadModelKey,
    SQLiteReadModelStore,
    event_id,
    read_model_store_for,
    table_name,
)
from tests.conftest import FakeClock
from tests.pg import drop_schema, new_schema_url
from tests.projection_fixtures import (
    MISSING_CLASS_TOPIC,
    UNKNOWN_TOPIC,
    AccountHistory,
    ArrByAccount,
    Boom,
    ContactCounts,
    Crash,
    Exploding,
    Ledger,
    Spy,
    contact,
    detractor_follow_up,
    dump,
    eur,
    follow_up_policy,
    insert_unknown_event,
    notification_id_of,
    notification_ids,
    of,
    open_active,
    upsell_on_contact,
)


def all_projections() -> list[Projection]:
    return [ContactCounts(), ArrByAccount(), Ledger()]


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
    projections: list[Projection] | None = None,
    **options: Any,
) -> ProjectionRunner:
    runner = ProjectionRunner(
        service, all_projections() if projections is None else projections, **options
    )
    runners.append(runner)
    return runner


def ledger_keys(service: AccountService) -> set[str]:
    """The ledger key of every decodable stored event."""
    return {
        f"{UUID(str(n.originator_id)).hex}/{n.originator_version:06d}"
        for n in service.recorder.select_notifications(start=None, limit=1_000_000)
        if n.topic not in (UNKNOWN_TOPIC, MISSING_CLASS_TOPIC)
    }


def row_of(runner: ProjectionRunner, projection: str, table: str, key: str) -> dict[str, Any]:
    row = runner.read_model(projection).get(table, key)
    assert row is not None, (projection, table, key)
    return row


def assert_applied_once(service: AccountService, runner: ProjectionRunner, name: str) -> None:
    rows = dict(runner.read_model(name).scan("events"))
    assert set(rows) == ledger_keys(service)
    assert all(row["times"] == 1 for row in rows.values())


# --- catch-up and rebuild -----------------------------------------------------------------------


def test_catch_up_fills_the_read_model_with_exact_types(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    first, second = open_active(service, "crm:1"), open_active(service, "crm:2", arr=500)
    contact(service, first)
    service.log_contact(first, channel="qbr", direction="inbound", actor="amy")
    service.upsell(first, product="core", added_arr=eur("250.50"), actor="amy")
    runner = new_runner(service, runners)

    assert runner.catch_up() == len(notification_ids(service))

    contacts = runner.read_model("contact_counts")
    row = contacts.get("per_account", first.hex)
    assert row is not None
    assert row["count"] == 2
    assert row["channels"] == (Channel.PHONE, Channel.QBR)
    assert type(row["channels"][0]) is Channel
    assert row["account_id"] == first
    assert isinstance(row["last"], datetime)
    assert row["last"].tzinfo is not None
    assert contacts.get("per_account", second.hex) == {
        "account_id": second,
        "count": 0,
        "channels": (),
        "last": None,
    }
    arr = runner.read_model("arr")
    first_row = arr.get("accounts", first.hex)
    assert first_row is not None
    assert first_row["arr"] == Money("1250.50", "EUR")
    assert first_row["lines"] == {"core": Money("1250.50", "EUR")}
    assert isinstance(first_row["since"], date)
    assert arr.get("totals", "EUR") == {"arr": Money("1750.50", "EUR"), "changes": 3}
    assert [key for key, _ in arr.scan("accounts")] == sorted([first.hex, second.hex])
    assert_applied_once(service, runner, "ledger")
    assert all(s.position == s.head and s.lag == 0 for s in runner.status())


def test_second_catch_up_is_incremental_and_equals_a_rebuild(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    first = open_active(service, "crm:1")
    contact(service, first)
    runner = new_runner(service, runners, batch_size=3)
    runner.catch_up()
    seen = len(notification_ids(service))

    second = open_active(service, "crm:2")
    contact(service, second)
    service.cross_sell(second, product="analytics", arr=eur(300), actor="amy")
    service.churn(first, reason="price", actor="amy")

    assert runner.catch_up() == len(notification_ids(service)) - seen
    assert runner.catch_up() == 0
    assert runner.read_model("arr").get("accounts", first.hex) is None  # deleted on churn
    incremental = dump(runner)
    progress: list[tuple[int, int]] = []
    runner.rebuild(progress=lambda done, total: progress.append((done, total)))
    assert dump(runner) == incremental
    head = max(notification_ids(service))
    assert progress[0] == (0, head)
    assert progress[-1] == (head, head)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_projections_at_one_position_share_decoding_and_skip_unwanted_events(
    service: AccountService, runners: list[ProjectionRunner], monkeypatch: pytest.MonkeyPatch
) -> None:
    account = open_active(service, "crm:1")
    for _ in range(3):
        contact(service, account)
    decoded: list[str] = []
    original = service.mapper.to_domain_event

    def counting(notification: Any) -> Any:
        decoded.append(notification.topic)
        return original(notification)

    monkeypatch.setattr(service.mapper, "to_domain_event", counting)
    new_runner(service, runners, [ContactCounts(), ArrByAccount()]).catch_up()
    # Opened + started + 3 contacts: each decoded once, though two projections saw them.
    assert len(decoded) == 5
    decoded.clear()

    new_runner(service, runners, [Ledger()]).catch_up()
    assert len(decoded) == len(notification_ids(service))


def test_a_new_version_builds_in_tables_of_its_own(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    class ContactCountsV2(ContactCounts):
        version = 2

    account = open_active(service, "crm:1")
    contact(service, account)
    old = new_runner(service, runners, [ContactCounts()])
    old.catch_up()
    contact(service, account)
    new = new_runner(service, runners, [ContactCountsV2()])
    [status] = new.status()
    assert (status.version, status.position, status.lag) == (2, 0, status.head)

    # Until version 2 has caught up, queries read version 1 (tests/test_versions.py).
    assert row_of(new, "contact_counts", "per_account", account.hex)["count"] == 1
    new.catch_up()
    assert row_of(new, "contact_counts", "per_account", account.hex)["count"] == 2
    key = ReadModelKey.of(ContactCountsV2())
    assert table_name(key, "per_account") == "rm_contact_counts__v2__per_account"


def test_runner_refuses_two_projections_with_one_name(service: AccountService) -> None:
    with pytest.raises(InvalidValue, match="two projections"):
        ProjectionRunner(service, [Ledger(), Ledger()])


# --- failures and exactly-once ------------------------------------------------------------------


def test_a_failing_projection_is_isolated_and_resumes_once_fixed(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    good, bad = open_active(service, "crm:1"), open_active(service, "crm:2")
    runner = new_runner(service, runners, [*all_projections(), exploding := Exploding()])
    runner.catch_up()
    before = dump(runner)["exploding"]
    position_before = runner.store.position(exploding)
    contact(service, good)
    contact(service, bad)  # version 3 of bad: the projection cannot handle it
    contact(service, good)
    exploding.explode_on = lambda event: event.originator_id == bad

    runner.catch_up()

    statuses = {s.name: s for s in runner.status()}
    failed = statuses["exploding"]
    assert failed.state == "failed"
    assert failed.position == position_before
    assert failed.last_error is not None
    assert failed.last_error.position == notification_id_of(service, bad, 3)
    assert "Boom" in failed.last_error.error
    assert dump(runner)["exploding"] == before
    assert all(s.state == "running" and s.lag == 0 for n, s in statuses.items() if n != "exploding")

    contact(service, good)
    runner.catch_up()  # skipped while failed, even with the cause gone
    exploding.explode_on = None
    assert runner.store.position(exploding) == position_before

    runner.resume("exploding")
    runner.catch_up()
    [status] = [s for s in runner.status() if s.name == "exploding"]
    assert (status.state, status.lag) == ("running", 0)
    assert dump(runner)["exploding"] == dump(runner)["ledger"]
    assert_applied_once(service, runner, "exploding")


def test_a_batch_that_fails_midway_leaves_the_last_committed_batch(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    for _ in range(6):
        contact(service, account)
    ids = notification_ids(service)
    exploding = Exploding()
    exploding.arm(at=5)  # the 5th event, in the second batch of three
    runner = new_runner(service, runners, [exploding, Ledger()], batch_size=3)

    runner.catch_up()

    assert runner.store.position(exploding) == ids[2]
    rows = dict(runner.read_model("exploding").scan("events"))
    assert sorted(rows) == [f"{account.hex}/{version:06d}" for version in (1, 2, 3)]
    assert runner.store.position(Ledger()) == ids[-1]

    runner.resume("exploding")
    runner.catch_up()
    tables = dump(runner)
    runner.rebuild()
    assert dump(runner) == tables
    assert_applied_once(service, runner, "exploding")


@pytest.fixture
def transactional_service(shared_url: str, clock: FakeClock) -> Iterator[AccountService]:
    """A service on SQLite or PostgreSQL: stores whose commit can fail half-way (the memory
    store commits with plain assignments under a lock, so it has no half-way)."""
    app = AccountService(shared_url, clock=clock, plugins=PluginHost(entry_points=False))
    try:
        yield app
    finally:
        app.close()


def test_a_crash_during_the_commit_leaves_neither_rows_nor_position(
    transactional_service: AccountService, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = transactional_service
    runners: list[ProjectionRunner] = []
    account = open_active(service, "crm:1")
    runner = new_runner(service, runners, [Ledger()])
    runner.catch_up()
    contact(service, account)
    store = runner.store
    assert isinstance(store, SQLiteReadModelStore | PostgresReadModelStore)
    write_rows = store._write_rows

    def crash_after_writing(*args: Any) -> None:
        write_rows(*args)
        raise Crash("power cut")

    monkeypatch.setattr(store, "_write_rows", crash_after_writing)
    position = store.position(Ledger())
    rows = dump(runner)
    with pytest.raises(Crash):
        runner.catch_up()
    assert store.position(Ledger()) == position
    assert dump(runner) == rows

    monkeypatch.undo()
    runner.catch_up()
    assert_applied_once(service, runner, "ledger")
    runner.close()


def test_a_process_that_dies_mid_batch_is_continued_by_the_next_one(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    for _ in range(5):
        contact(service, account)
    dying = Exploding()
    dying.arm(at=4, error=Crash)
    with pytest.raises(Crash):
        new_runner(service, runners, [dying], batch_size=2).catch_up()
    assert dump(runners[-1])["exploding"]["events"]  # the first batch was committed

    next_process = new_runner(service, runners, [Exploding()], batch_size=2)
    next_process.catch_up()
    assert_applied_once(service, next_process, "exploding")


def test_two_runners_racing_on_one_projection_apply_each_event_once(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    class Racing(Ledger):
        def __init__(self, interloper: ProjectionRunner | None = None) -> None:
            self.interloper = interloper

        def apply(self, event: Any, rows: Rows) -> None:
            interloper, self.interloper = self.interloper, None
            if interloper is not None:
                interloper.catch_up()  # another process commits this very batch first
            super().apply(event, rows)

    account = open_active(service, "crm:1")
    for _ in range(4):
        contact(service, account)
    other = new_runner(service, runners, [Racing()], batch_size=2)
    first = new_runner(service, runners, [Racing(interloper=other)], batch_size=2)

    first.catch_up()

    assert first.store.position(Ledger()) == max(notification_ids(service))
    assert_applied_once(service, first, "ledger")
    assert [s.state for s in first.status()] == ["running"]


class Tolerant(Projection):
    """Counts events per account; runs ``hooks[version]`` before applying that version (to
    stage what another process does meanwhile) and dies on its ``crash_at``-th event."""

    name = "tolerant"
    tables = ("counts",)

    def __init__(
        self, hooks: dict[int, Callable[[], object]] | None = None, crash_at: int | None = None
    ) -> None:
        self.hooks = {} if hooks is None else hooks
        self.crash_at = crash_at
        self.applied = 0

    def apply(self, event: Any, rows: Rows) -> None:
        self.applied += 1
        if self.applied == self.crash_at:
            raise Crash("the other process dies")
        hook = self.hooks.pop(event.originator_version, None)
        if hook is not None:
            hook()
        row = rows.get("counts", event.originator_id.hex) or {"n": 0}
        rows.put("counts", event.originator_id.hex, {"n": row["n"] + 1})


def test_a_batch_that_straddles_a_reset_is_discarded_even_back_at_its_position(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")  # versions 1 and 2
    hooks: dict[int, Callable[[], object]] = {}
    first = new_runner(service, runners, [Tolerant(hooks)], batch_size=2)
    first.catch_up()
    contact(service, account)
    contact(service, account)
    other = new_runner(service, runners, [Tolerant(crash_at=3)], batch_size=2)

    def rebuild_back_to_where_first_started() -> None:
        with suppress(Crash):
            other.catch_up()  # replays (0, 2], then dies

    # While the first runner applies (2, 4]: another process resets the projection before the
    # first runner's read of version 3, and rebuilds it to position 2 before its commit.
    hooks[3] = lambda: other.store.reset(Tolerant())
    hooks[4] = rebuild_back_to_where_first_started
    first.catch_up()

    assert row_of(first, "tolerant", "counts", account.hex) == {"n": 4}
    tables = dump(first)
    first.rebuild()
    assert dump(first) == tables


def test_pause_holds_a_projection_until_resumed(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    runner = new_runner(service, runners)
    runner.pause("ledger")
    runner.catch_up()
    statuses = {s.name: s for s in runner.status()}
    assert (statuses["ledger"].state, statuses["ledger"].position) == ("paused", 0)
    assert statuses["arr"].lag == 0
    runner.resume("ledger")
    contact(service, account)
    runner.catch_up()
    assert_applied_once(service, runner, "ledger")
    with pytest.raises(InvalidValue, match="no projection named"):
        runner.pause("nope")


def test_writing_an_undeclared_table_or_an_unencodable_row_fails_the_projection(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    class Undeclared(Projection):
        name = "undeclared"
        tables = ("mine",)

        def apply(self, event: Any, rows: Rows) -> None:
            rows.put("theirs", "k", {})

    class Unencodable(Projection):
        name = "unencodable"
        tables = ("mine",)

        def apply(self, event: Any, rows: Rows) -> None:
            rows.put("mine", "k", {"set": {1, 2}})

    open_active(service, "crm:1")
    runner = new_runner(service, runners, [Undeclared(), Unencodable(), Ledger()])
    runner.catch_up()
    statuses = {s.name: s for s in runner.status()}
    assert statuses["undeclared"].state == "failed"
    assert "theirs" in repr(statuses["undeclared"].last_error)
    assert statuses["unencodable"].state == "failed"
    assert statuses["unencodable"].position == 0
    assert statuses["ledger"].lag == 0


# --- the notification log -----------------------------------------------------------------------


def test_unknown_event_types_are_counted_not_fatal(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    insert_unknown_event(service)  # a module that is gone
    # A class that is gone from a module that is still there:
    service.recorder.insert_events([StoredEvent(uuid4(), 1, MISSING_CLASS_TOPIC, b"{}")])
    contact(service, account)
    runner = new_runner(service, runners)

    runner.catch_up()

    for status in runner.status():
        assert (status.state, status.lag, status.unknown_events) == ("running", 0, 2)
    assert_applied_once(service, runner, "ledger")
    assert row_of(runner, "contact_counts", "per_account", account.hex)["count"] == 1
    runner.catch_up()
    assert {s.unknown_events for s in runner.status()} == {2}


def test_an_undecodable_event_fails_only_the_projections_that_want_it(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    broken = uuid4()
    service.recorder.insert_events(
        [StoredEvent(broken, 1, get_topic(ev.ContactLogged), b"not json")]
    )
    contact(service, account)
    runner = new_runner(service, runners)

    runner.catch_up()

    statuses = {s.name: s for s in runner.status()}
    assert statuses["arr"].state == "running"  # it does not want contacts
    assert statuses["arr"].lag == 0
    for name in ("contact_counts", "ledger"):
        assert statuses[name].state == "failed"
        failure = statuses[name].last_error
        assert failure is not None
        assert failure.position == notification_id_of(service, broken, 1)
        assert "MapperDeserialisationError" in failure.error


@pytest.fixture
def postgres_service(clock: FakeClock) -> Iterator[AccountService]:
    url, schema = new_schema_url()
    app = AccountService(url, clock=clock)
    try:
        yield app
    finally:
        app.close()
        drop_schema(schema)


def burn_notification_ids(service: AccountService, count: int) -> None:
    """Leave a gap in the notification ids, as rolled-back inserts do."""
    table = f"{service.store.schema}.{service.recorder.events_table_name}"
    with service.store.connect() as connection:
        for _ in range(count):
            connection.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'notification_id'))", (table,)
            )


def test_gaps_in_notification_ids_skip_and_repeat_nothing(
    postgres_service: AccountService,
) -> None:
    service = postgres_service
    account = open_active(service, "crm:1")
    with ProjectionRunner(service, [Ledger(), ContactCounts()], batch_size=2) as runner:
        runner.catch_up()
        burn_notification_ids(service, 3)
        contact(service, account)
        with pytest.raises(IntegrityError):  # a clash burns an id too
            service.recorder.insert_events([StoredEvent(account, 1, UNKNOWN_TOPIC, b"{}")])
        contact(service, account)
        runner.catch_up()
        burn_notification_ids(service, 5)
        for _ in range(3):
            contact(service, account)
            burn_notification_ids(service, 1)
        runner.catch_up()

        ids = notification_ids(service)
        assert len(ids) < ids[-1] - ids[0] + 1, "the ids have gaps"
        assert_applied_once(service, runner, "ledger")
        assert row_of(runner, "contact_counts", "per_account", account.hex)["count"] == 5
        tables = dump(runner)
        runner.rebuild()
        assert dump(runner) == tables


# --- several processes --------------------------------------------------------------------------


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


def test_a_runner_on_a_second_service_sees_what_the_first_wrote(
    shared_url: str, clock: FakeClock
) -> None:
    writer = AccountService(shared_url, clock=clock)
    reader = AccountService(shared_url, clock=clock)
    try:
        account = open_active(writer, "crm:1")
        with ProjectionRunner(reader, all_projections()) as runner:
            runner.catch_up()
            contact(writer, account)
            assert runner.catch_up() == 1
            row = runner.read_model("contact_counts").get("per_account", account.hex)
            assert row is not None
            assert row["count"] == 1
            assert_applied_once(writer, runner, "ledger")
        # The read models live beside the events: the writer's side sees them too.
        with ProjectionRunner(writer, all_projections()) as beside:
            assert beside.catch_up() == 0
            assert row_of(beside, "arr", "totals", "EUR")["arr"] == eur(1000)
    finally:
        writer.close()
        reader.close()


def test_the_memory_store_belongs_to_its_service(memory_service: AccountService) -> None:
    store = read_model_store_for(memory_service)
    assert read_model_store_for(memory_service) is store
    other = AccountService("memory:")
    try:
        assert read_model_store_for(other) is not store
    finally:
        other.close()


# --- the property: however it is interrupted, catch-up ends where a rebuild does -----------------


COMMANDS = ("open", "contact", "upsell", "cross_sell", "downgrade", "churn", "reactivate")

command = st.tuples(st.sampled_from(COMMANDS), st.integers(0, 3), st.integers(1, 400))
keyed_contact = st.tuples(st.just("keyed_contact"), st.integers(0, 3), st.integers(0, 3))
unknown_event = st.tuples(st.just("unknown"), st.just(0), st.just(0))
catch_up = st.tuples(
    st.just("catch_up"),
    st.integers(1, 7),  # batch size
    # Where it is interrupted: the k-th event the exploding projection applies raises a bug
    # (it fails, then is resumed) or kills the process (a new runner takes over).
    st.one_of(st.none(), st.tuples(st.sampled_from(["boom", "crash"]), st.integers(1, 12))),
)
# Mostly commands, so that there are events between the catch-ups.
step = st.sampled_from([command] * 6 + [keyed_contact, catch_up, catch_up, unknown_event]).flatmap(
    lambda strategy: strategy
)

EXAMPLES = {"memory": 100, "sqlite": 30, "postgres": 8}


def run_step(
    service: AccountService, accounts: list[UUID], projections: list[Projection], item: Any
) -> None:
    kind, a, b = item
    if kind == "catch_up":
        exploding = projections[-1]
        assert isinstance(exploding, Exploding)
        if b is not None:
            exploding.arm(at=b[1], error=Boom if b[0] == "boom" else Crash)
        with ProjectionRunner(service, projections, batch_size=a) as runner:
            try:
                runner.catch_up()
            except Crash:
                pass  # the process died; the next runner is a new process
            else:
                runner.resume("exploding")
            finally:
                exploding.at = None  # armed for this run only
        return
    if kind == "unknown":
        insert_unknown_event(service)
        return
    if kind == "open":
        accounts.append(open_active(service, f"crm:{len(accounts)}", arr=b))
        return
    if not accounts:
        return
    account = accounts[a % len(accounts)]
    commands: dict[str, Any] = {
        "contact": lambda: contact(service, account),
        "keyed_contact": lambda: contact(service, account, idempotency_key=f"k{b}"),
        "upsell": lambda: service.upsell(account, product="core", added_arr=eur(b), actor="a"),
        "cross_sell": lambda: service.cross_sell(
            account, product=f"p{b % 3}", arr=eur(b), actor="a"
        ),
        "downgrade": lambda: service.downgrade(
            account, product="core", reduced_by=eur(b), actor="a"
        ),
        "churn": lambda: service.churn(account, reason="price", actor="a"),
        "reactivate": lambda: service.reactivate(
            account, term_end=date(2028, 1, 1), lines=[ProductLine("core", eur(b))], actor="a"
        ),
    }
    # Refused in this state: this is a test of the engine, not of the rules.
    with suppress(AcctDomainError):
        commands[kind]()


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


@pytest.mark.parametrize("backend", list(EXAMPLES))
def test_interrupted_incremental_catch_up_equals_a_full_rebuild(backend: str) -> None:
    @settings(
        max_examples=EXAMPLES[backend],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(steps=st.lists(step, min_size=5, max_size=40))
    def check(steps: list[Any]) -> None:
        with fresh_service(backend) as service:
            accounts = [open_active(service, "crm:first")]
            projections = [*all_projections(), Exploding()]
            for item in steps:
                run_step(service, accounts, projections, item)
            with ProjectionRunner(service, projections) as runner:
                runner.catch_up()
                assert {s.state for s in runner.status()} == {"running"}
                assert {s.lag for s in runner.status()} == {0}
                incremental = dump(runner)
                assert_applied_once(service, runner, "ledger")
                assert_applied_once(service, runner, "exploding")
                runner.rebuild()
                assert dump(runner) == incremental

    check()


# --- policies -----------------------------------------------------------------------------------


def feedback(service: AccountService, account: UUID, score: int) -> None:
    service.record_feedback(account, score=NpsScore(score), actor="amy")


def test_a_reaction_fires_once_with_the_event_as_its_cause(service: AccountService) -> None:
    account = open_active(service, "crm:1")
    feedback(service, account, 3)
    feedback(service, account, 9)  # a promoter: no reaction
    with PolicyRunner(service, [follow_up_policy()]) as runner:
        runner.run()

        history = service.history(account)
        [cause] = [e for e in history if isinstance(e, ev.FeedbackRecorded) and e.score.value == 3]
        [reaction] = [e for e in history if e.actor == "policy:follow_up"]
        assert isinstance(reaction, ev.ContactLogged)
        assert reaction.summary == "detractor follow-up"
        assert reaction.causation_id == event_id(cause)
        assert reaction.correlation_id == cause.correlation_id
        assert runner.position("follow_up") == max(notification_ids(service))

        assert runner.run() == 0
        runner.reset()
        assert runner.run() > 0  # every event seen again...
        assert service.history(account) == history  # ...and nothing issued twice
        assert runner.refusals == ()


def test_a_reaction_issued_just_before_a_crash_is_not_issued_again(
    service: AccountService, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = open_active(service, "crm:1")
    feedback(service, account, 2)
    dying = PolicyRunner(service, [follow_up_policy()])

    def crash(*args: Any) -> int:
        raise Crash("killed before the position moved")

    monkeypatch.setattr(dying, "_advance", crash)
    with pytest.raises(Crash):
        dying.run()
    dying.close()
    assert len([e for e in service.history(account) if e.actor == "policy:follow_up"]) == 1

    with PolicyRunner(service, [follow_up_policy()]) as restarted:
        assert restarted.position("follow_up") == 0
        restarted.run()
        assert len([e for e in service.history(account) if e.actor == "policy:follow_up"]) == 1
        assert restarted.position("follow_up") == max(notification_ids(service))


def test_a_refused_reaction_is_recorded_and_the_policy_goes_on(service: AccountService) -> None:
    onboarding = service.open_account(
        name="New",
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        actor="amy",
    ).account_id
    active = open_active(service, "crm:2")
    contact(service, onboarding)  # no contract yet: an upsell is refused
    contact(service, active)
    policy = Policy(
        name="upsell_on_contact", event_types=(ev.ContactLogged,), react=upsell_on_contact
    )
    with PolicyRunner(service, [policy]) as runner:
        runner.run()

        [refusal] = runner.refusals
        [cause] = [e for e in service.history(onboarding) if isinstance(e, ev.ContactLogged)]
        assert (refusal.policy, refusal.command, refusal.account_id) == (
            "upsell_on_contact",
            "upsell",
            onboarding,
        )
        assert refusal.event_id == event_id(cause)
        assert refusal.position == notification_id_of(service, onboarding, 2)
        assert "AccountNotActive" in refusal.error
        assert service.get_account(active).arr == eur(1010)
        assert runner.failures() == {}
        assert runner.position("upsell_on_contact") == max(notification_ids(service))


def test_a_failing_policy_stops_alone_until_resumed(service: AccountService) -> None:
    account = open_active(service, "crm:1")
    feedback(service, account, 1)
    broken = Spy(lambda event: [])
    fail = [True]

    def react(event: Any) -> list[Any]:
        if fail[0]:
            raise Boom("policy bug")
        return broken(event)

    policies = [Policy(name="broken", event_types=(ev.FeedbackRecorded,), react=react)]
    with PolicyRunner(service, [*policies, follow_up_policy()]) as runner:
        runner.run()
        failure = runner.failures()["broken"]
        assert failure.position == notification_id_of(service, account, 3)
        assert "Boom" in failure.error
        assert runner.position("broken") < failure.position
        assert runner.position("follow_up") == max(notification_ids(service))

        fail[0] = False
        runner.resume("broken")
        runner.run()
        assert broken.calls == 1
        assert runner.failures() == {}
        assert runner.position("broken") == max(notification_ids(service))


def test_rebuilding_read_models_never_runs_policies(service: AccountService) -> None:
    account = open_active(service, "crm:1")
    feedback(service, account, 3)
    spy = Spy(detractor_follow_up)
    with PolicyRunner(service, [follow_up_policy(spy)]) as policies:
        policies.run()
    assert spy.calls == 1
    history = service.history(account)

    with ProjectionRunner(service, all_projections()) as runner:
        runner.catch_up()
        runner.rebuild()
        runner.rebuild("ledger")

    assert spy.calls == 1
    assert service.history(account) == history


def test_closing_the_service_closes_its_read_model_connections(
    transactional_service: AccountService,
) -> None:
    service = transactional_service
    open_active(service, "crm:1")
    service.catch_up()
    store = service.projections.store
    assert isinstance(store, SQLiteReadModelStore | PostgresReadModelStore)
    service.close()
    if isinstance(store, SQLiteReadModelStore):
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            store._connection.execute("SELECT 1")
    else:
        assert store._connection.closed
    assert "projections" not in vars(service)


# --- status: lag in seconds, persisted pause -----------------------------------------------------


def test_lag_is_reported_in_events_and_recorded_seconds(
    service: AccountService, runners: list[ProjectionRunner], clock: FakeClock
) -> None:
    account = open_active(service, "crm:1")
    runner = new_runner(service, runners, [Ledger()])
    [status] = runner.status()
    assert (status.lag, status.lag_seconds) == (2, None)  # no event at position 0
    runner.catch_up()
    [status] = runner.status()
    assert (status.lag, status.lag_seconds, status.state) == (0, 0.0, "running")

    clock.advance(minutes=5)
    contact(service, account)
    clock.advance(hours=1)
    contact(service, account)
    [status] = runner.status()
    assert (status.lag, status.lag_seconds) == (2, 3900.0)

    insert_unknown_event(service)  # the head's recorded time cannot be read
    [status] = runner.status()
    assert (status.lag, status.lag_seconds) == (3, None)
    runner.catch_up()
    [status] = runner.status()
    assert (status.lag, status.lag_seconds, status.unknown_events) == (0, 0.0, 1)


def test_a_pause_is_kept_in_the_store_for_every_runner(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    first = new_runner(service, runners)
    other = new_runner(service, runners)  # another process: its own store connection
    first.pause("ledger")

    other.catch_up()
    statuses = {s.name: s for s in other.status()}
    assert (statuses["ledger"].state, statuses["ledger"].position) == ("paused", 0)
    assert statuses["arr"].lag == 0
    with pytest.raises(InvalidValue, match="paused"):
        other.rebuild("ledger")

    other.resume("ledger")
    assert {s.state for s in first.status()} == {"running"}
    contact(service, account)
    first.catch_up()
    assert_applied_once(service, first, "ledger")


def test_a_pause_by_another_runner_holds_from_the_next_batch(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    for _ in range(4):
        contact(service, account)
    other = new_runner(service, runners, [Ledger()])

    class Pausing(Ledger):
        def apply(self, event: Any, rows: Rows) -> None:
            if event.originator_version == 1:
                other.pause("ledger")
            super().apply(event, rows)

    runner = new_runner(service, runners, [Pausing()], batch_size=2)
    runner.catch_up()
    [status] = runner.status()
    assert (status.state, status.position) == ("paused", notification_ids(service)[1])
    other.resume("ledger")
    runner.catch_up()
    assert_applied_once(service, runner, "ledger")


# --- rebuild: one account's share, cancellation ---------------------------------------------------


def history_runner(
    service: AccountService, runners: list[ProjectionRunner], **options: Any
) -> ProjectionRunner:
    return new_runner(service, runners, [AccountHistory(), ContactCounts()], **options)


def test_rebuilding_one_accounts_share_equals_a_full_rebuild(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    class ContactsByAccount(ContactCounts):
        def account_share(self, account_id: UUID) -> dict[str, str]:
            return {"per_account": account_id.hex}

    first, second = open_active(service, "crm:1"), open_active(service, "crm:2")
    contact(service, first)
    contact(service, second)
    history = AccountHistory()
    runner = new_runner(service, runners, [history, ContactsByAccount()], batch_size=3)
    runner.catch_up()
    # A bug wrote the wrong rows for the first account; the fixed code is deployed.
    with runner.store.batch(history) as batch:
        batch.put("accounts", first.hex, {"versions": (9,)})
        batch.put("events", f"{first.hex}/000099", {"topic": "Bogus"})
        batch.advance(batch.start)
    second_rows = runner.read_model("account_history").get("accounts", second.hex)
    position = runner.store.position(history)
    contact(service, first)  # after the position: not part of the share rebuild
    progress: list[tuple[int, int]] = []

    runner.rebuild(account_id=first, progress=lambda done, total: progress.append((done, total)))

    assert runner.store.position(history) == position
    assert row_versions(runner, first) == (1, 2, 3)
    assert runner.read_model("account_history").get("accounts", second.hex) == second_rows
    assert progress[-1] == (position, position)
    runner.catch_up()
    shared = dump(runner)
    runner.rebuild()
    assert dump(runner) == shared


def row_versions(runner: ProjectionRunner, account: UUID) -> tuple[int, ...]:
    row = runner.read_model("account_history").get("accounts", account.hex)
    return () if row is None else tuple(row["versions"])


def test_a_share_rebuild_replaces_the_accounts_dead_letters(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    first, second = open_active(service, "crm:1"), open_active(service, "crm:2")
    contact(service, first)
    history = AccountHistory(fails=lambda e: e.originator_version == 2)
    runner = new_runner(service, runners, [history], on_failure={"account_history": DeadLetter()})
    runner.catch_up()
    assert len(runner.dead_letters("account_history")) == 3  # first v2, v3; second v2
    history.fails = of(first, 3)

    runner.rebuild("account_history", account_id=first)

    [again] = runner.dead_letters("account_history", account_id=first)
    assert again.originator_version == 3
    assert row_versions(runner, first) == (1, 2)
    assert len(runner.dead_letters("account_history", account_id=second)) == 1


def test_a_share_rebuild_needs_a_declared_share_and_stays_inside_it(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    class Sprawling(AccountHistory):
        def apply(self, event: Any, rows: Rows) -> None:
            super().apply(event, rows)
            rows.put("accounts", "everyone", {"last": event.originator_version})

    class Scanning(AccountHistory):
        name = "scanning"

        def apply(self, event: Any, rows: Rows) -> None:
            super().apply(event, rows)
            list(rows.scan("accounts"))

    account = open_active(service, "crm:1")
    runner = new_runner(service, runners, [Sprawling(), Scanning(), Ledger()])
    runner.catch_up()
    before = dump(runner)
    with pytest.raises(InvalidValue) as refused:
        runner.rebuild(account_id=account)  # the ledger declares no share
    assert (refused.value.field, "'ledger'" in refused.value.reason) == ("account_id", True)
    with pytest.raises(InvalidValue) as refused:
        runner.rebuild("ledger", account_id=str(account))  # type: ignore[arg-type]
    assert refused.value.field == "account_id"

    runner.rebuild("account_history", account_id=account)
    runner.rebuild("scanning", account_id=account)

    statuses = {s.name: s for s in runner.status()}
    assert statuses["account_history"].state == "failed"
    assert "outside the share" in statuses["account_history"].last_error.error
    assert statuses["scanning"].state == "failed"
    assert "scans table" in statuses["scanning"].last_error.error
    assert dump(runner) == before  # nothing of either was committed


@pytest.mark.parametrize(
    ("share", "reason"),
    [
        ("accounts", "expected a mapping"),
        ({"nope": "x"}, "declares no table"),
        ({"accounts": ""}, "non-empty key prefix"),
        ({"accounts": 7}, "non-empty key prefix"),
    ],
)
def test_a_malformed_account_share_is_refused(
    memory_service: AccountService, share: object, reason: str
) -> None:
    class Malformed(AccountHistory):
        def account_share(self, account_id: UUID) -> Any:
            return share

    with ProjectionRunner(memory_service, [Malformed()]) as runner:
        with pytest.raises(InvalidValue, match=reason) as refused:
            runner.rebuild(account_id=uuid4())
        assert refused.value.field == "projection.account_share"


def test_a_share_rebuild_starts_again_when_another_runner_moves_the_projection(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    runner = history_runner(service, runners)
    runner.catch_up()
    contact(service, account)
    other = history_runner(service, runners)
    moved = [False]

    class Racing(AccountHistory):
        def apply(self, event: Any, rows: Rows) -> None:
            if not moved[0]:
                moved[0] = True
                other.catch_up()  # commits v3 before the share rebuild commits
            super().apply(event, rows)

    racing = new_runner(service, runners, [Racing()])
    racing.rebuild(account_id=account)
    assert row_versions(racing, account) == (1, 2, 3)
    assert racing.store.position(Racing()) == max(notification_ids(service))


def test_a_cancelled_rebuild_is_consistent_and_a_catch_up_finishes_it(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    accounts = [open_active(service, f"crm:{n}") for n in range(3)]
    for account in accounts:
        contact(service, account)
    runner = history_runner(service, runners, batch_size=2)
    runner.catch_up()
    full = dump(runner)
    seen: list[set[str]] = []

    def progress(done: int, total: int) -> None:
        seen.append({s.state for s in runner.status()})

    stop_after = [3]

    def cancel() -> bool:
        stop_after[0] -= 1
        return stop_after[0] < 0

    runner.rebuild(progress=progress, cancel=cancel)

    assert seen[0] == {"rebuilding"}
    position = runner.store.position(AccountHistory())
    assert 0 < position < max(notification_ids(service))
    assert {s.state for s in runner.status()} == {"running"}
    # Position and rows agree: exactly the events up to the position are in.
    events = dict(runner.read_model("account_history").scan("events"))
    assert len(events) == len([i for i in notification_ids(service) if i <= position])
    runner.catch_up()
    assert dump(runner) == full


def test_a_set_event_cancels_a_rebuild_and_a_cancelled_share_rebuild_commits_nothing(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    contact(service, account)
    runner = history_runner(service, runners, batch_size=1)
    runner.catch_up()
    before = dump(runner)
    with runner.store.batch(AccountHistory()) as batch:  # rows a share rebuild would fix
        batch.put("accounts", account.hex, {"versions": (9,)})
    corrupted = dump(runner)
    cancelled = threading.Event()
    runner.rebuild(
        "account_history",
        account_id=account,
        progress=lambda done, total: cancelled.set(),
        cancel=cancelled,
    )
    assert dump(runner) == corrupted
    cancelled.clear()
    runner.rebuild(progress=lambda done, total: cancelled.set() if done else None, cancel=cancelled)
    assert runner.store.position(AccountHistory()) == notification_ids(service)[0]
    runner.catch_up()
    assert dump(runner) == before
    with pytest.raises(InvalidValue) as refused:
        runner.rebuild(cancel=5)  # type: ignore[arg-type]
    assert refused.value.field == "cancel"
    with pytest.raises(InvalidValue) as refused:
        runner.rebuild(progress=5)  # type: ignore[arg-type]
    assert refused.value.field == "progress"


# --- side effects only once ----------------------------------------------------------------------


def test_policies_never_fire_during_a_rebuild_or_a_replay_of_dead_letters(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    feedback(service, account, 3)
    spy = Spy(detractor_follow_up)
    with PolicyRunner(service, [follow_up_policy(spy)]) as policies:
        policies.run()
    assert spy.calls == 1
    history = service.history(account)

    projection = AccountHistory(fails=lambda event: isinstance(event, ev.FeedbackRecorded))
    runner = new_runner(
        service,
        runners,
        [projection, *all_projections()],
        on_failure={"account_history": DeadLetter()},
    )
    runner.catch_up()
    assert len(runner.dead_letters("account_history")) == 2  # the feedback, the follow-up
    runner.rebuild()
    runner.rebuild("account_history", account_id=account)
    projection.fails = None
    assert len(runner.replay_dead_letters("account_history").replayed) == 2

    assert spy.calls == 1
    assert service.history(account) == history


def test_projections_work_without_the_postgres_extra(tmp_path: Path) -> None:
    """psycopg is optional: a service on SQLite projects without it installed."""
    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from acctdomain import AccountService\n"
        f"service = AccountService({str(tmp_path / 'events.db')!r})\n"
        "assert service.catch_up() == 0\n"
        "import acctdomain.projections as projections\n"
        "try:\n"
        "    projections.PostgresReadModelStore\n"
        "except ImportError:\n"
        "    print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_table_that_is_not_a_read_model_table_never_reaches_sql(tmp_path: Path) -> None:
    service = AccountService(str(tmp_path / "events.db"), plugins=PluginHost(entry_points=False))
    try:
        store = service.projections.store
        assert isinstance(store, SQLiteReadModelStore)
        for table in ('x" UNION SELECT name, sql FROM sqlite_master --', "sqlite_master"):
            with pytest.raises(InvalidValue, match="not a read-model table"):
                store.fetch(table, "key")
            with pytest.raises(InvalidValue, match="not a read-model table"):
                list(store.fetch_all(table))
    finally:
        service.close()
