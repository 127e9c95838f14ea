"""Rebuild and catch-up in long transactions fed a page at a time, and rows kept decoded from one
batch to the next: the read models, positions and dead letters are those of a runner that
applies one event per transaction, whatever fails where."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date
from typing import Any, ClassVar
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acctdomain import AccountService, Money, ProductLine
from acctdomain.builtin.accounts import AccountsProjection
from acctdomain.plugins import PluginHost
from acctdomain.plugins.types import DeadLetter, FailurePolicy, Projection, Retry, Rows, Stop
from acctdomain.projections import ProjectionRunner, ReadModelKey
from acctdomain.projections.batch import Batch, RowCache
from acctdomain.projections.codec import RowCodec
from acctdomain.projections.memory_store import MemoryReadModelStore
from tests.projection_fixtures import Boom, Crash, Ledger, Sleeps, dump

# --- projections that change rows in place ---------------------------------------------------


class Tally(Projection):
    """Per account: a count and the versions seen (a list changed in place), and a shared
    total; changes the row in place *before* a failure, so a discarded batch that leaked
    into the cache would show. Fails on the events ``fails`` picks, ``times`` times each."""

    name = "tally"
    tables = ("accounts", "totals")
    cache_rows: ClassVar[bool] = True

    def __init__(self, fails: Any = None, times: int = 1_000_000) -> None:
        self.fails = fails
        self.times = times
        self.failures: dict[tuple[UUID, int], int] = {}

    def apply(self, event: Any, rows: Rows) -> None:
        key = event.originator_id.hex
        row = rows.get("accounts", key)
        if row is None:
            row = {"count": 0, "versions": [], "last": None}
        row["count"] += 1
        row["versions"].append(event.originator_version)
        total = rows.get("totals", "all") or {"count": 0}
        total["count"] += 1
        identity = (event.originator_id, event.originator_version)
        if self.fails is not None and self.fails(event):
            failed = self.failures.get(identity, 0)
            if failed < self.times:
                self.failures[identity] = failed + 1
                raise Boom(f"tally fails on v{event.originator_version}")
        row["last"] = event.effective_at
        rows.put("accounts", key, row)
        rows.put("totals", "all", total)


class Untouched(Tally):
    """Reads every row but puts back only some: a lent row that is not put back must not stay
    in the cache with changes the store never saw."""

    name = "untouched"

    def apply(self, event: Any, rows: Rows) -> None:
        key = event.originator_id.hex
        row = rows.get("accounts", key)
        if row is not None:
            row["count"] += 100  # changed, never put back unless the version is even
        if row is None or event.originator_version % 2 == 0:
            fresh = {"count": 0 if row is None else row["count"] - 100 + 1, "versions": []}
            rows.put("accounts", key, fresh)


def history(service: AccountService, accounts: int, steps: list[tuple[int, str]]) -> list[UUID]:
    ids: list[UUID] = []
    for number in range(accounts):
        opened = service.open_account(
            name=f"Company {number}",
            segment="smb",
            industry="retail",
            currency="EUR",
            manager="amy",
            manager_type="sales",
            external_key=f"span:{number}",
            actor="amy",
        )
        service.start_contract(
            opened.account_id,
            term_end=date(2027, 1, 6),
            lines=[ProductLine("core", Money(1000, "EUR"))],
            actor="amy",
        )
        ids.append(opened.account_id)
    for account, kind in steps:
        account_id = ids[account % accounts]
        if kind == "contact":
            service.log_contact(account_id, channel="email", direction="outbound", actor="amy")
        else:
            service.upsell(account_id, product="core", added_arr=Money(10, "EUR"), actor="amy")
    return ids


def fail_version_seen(service: AccountService) -> list[int]:
    return [n.originator_version for n in service.recorder.select_notifications(0, 10_000)]


def letters(runner: ProjectionRunner) -> dict[str, list[tuple[int, str | None]]]:
    return {
        name: [(p.position, p.error) for p in runner.dead_letters(name)] for name in runner.names
    }


def state(runner: ProjectionRunner) -> tuple[Any, ...]:
    statuses = {s.name: (s.position, s.state) for s in runner.status()}
    return dump(runner), letters(runner), statuses


@pytest.fixture
def memory() -> Iterator[AccountService]:
    service = AccountService("memory:", plugins=PluginHost(entry_points=False))
    yield service
    service.close()


histories = st.tuples(
    st.integers(min_value=1, max_value=3),
    st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(["contact", "contact", "upsell"])),
        max_size=20,
    ),
)
policies = st.sampled_from([Stop(), DeadLetter(), Retry(1), Retry(1, then=DeadLetter())])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=histories,
    batch=st.integers(1, 6),
    span=st.integers(1, 40),
    fail_version=st.integers(1, 8),
    times=st.integers(1, 2),
    policy=policies,
    cached=st.booleans(),
)
def test_rebuild_in_spans_equals_one_event_per_transaction(
    steps: tuple[int, list[tuple[int, str]]],
    batch: int,
    span: int,
    fail_version: int,
    times: int,
    policy: FailurePolicy,
    cached: bool,
) -> None:
    accounts, moves = steps

    def projections() -> list[Projection]:
        tally = Tally(fails=lambda e: e.originator_version == fail_version, times=times)
        tally.cache_rows = cached  # type: ignore[misc]
        return [tally, Untouched(), Ledger()]

    def run(batch_size: int, span_size: int) -> tuple[Any, ...]:
        with ProjectionRunner(
            service,
            projections(),
            batch_size=batch_size,
            rebuild_batch_size=span_size,
            on_failure={"tally": policy},
            sleep=Sleeps(),
        ) as runner:
            runner.rebuild()
            return state(runner)

    service = AccountService("memory:", plugins=PluginHost(entry_points=False))
    try:
        history(service, accounts, moves)
        fed = run(batch, span)
        # The same as reading the whole span at once (how it was before pages were fed) ...
        assert fed == run(span, span)
        # ... and, where no batch is given up, as one event per transaction (but for the
        # projection that changes rows without putting them back: a batch sees its own rows).
        if policy == DeadLetter() or fail_version > max(fail_version_seen(service)):
            single = run(1, 1)
            for tables in (fed[0], single[0]):
                del tables["untouched"]
            assert fed == single
    finally:
        service.close()


def test_catch_up_after_a_crash_mid_span_equals_a_rebuild(service: AccountService) -> None:
    ids = history(service, 3, [(n % 3, "contact") for n in range(30)])

    def crash(event: Any) -> bool:
        if event.originator_id == ids[1] and event.originator_version == 9:
            raise Crash("power cut")
        return False

    crashing = Tally(fails=crash)
    with (
        ProjectionRunner(
            service, [crashing, Ledger()], batch_size=4, rebuild_batch_size=20
        ) as runner,
        contextlib.suppress(Crash),
    ):
        runner.rebuild()
    with ProjectionRunner(service, [Tally(), Ledger()], batch_size=4) as resumed:
        before = {s.name: s.position for s in resumed.status()}
        resumed.catch_up()
        after = dump(resumed)
        resumed.rebuild()
        assert dump(resumed) == after
    # Spans of 20 were committed before the crash, nothing of the one it happened in.
    assert before["tally"] == before["ledger"]
    assert before["tally"] % 20 == 0 or before["tally"] == 0


def test_a_projection_failing_mid_span_leaves_the_others_their_span(
    memory: AccountService,
) -> None:
    ids = history(memory, 2, [(n % 2, "contact") for n in range(20)])
    failing = Tally(fails=lambda e: e.originator_id == ids[0] and e.originator_version == 5)
    with ProjectionRunner(memory, [failing, Ledger()], batch_size=3, rebuild_batch_size=50) as r:
        r.rebuild()
        statuses = {s.name: s for s in r.status()}
        head = memory.recorder.max_notification_id()
        assert statuses["ledger"].position == head
        assert statuses["tally"].state == "failed"
        failed_at = statuses["tally"].last_error
        assert failed_at is not None
        assert failed_at.position < (head or 0)
        # Stopped in its span: nothing of it committed, so it starts over from 0.
        assert statuses["tally"].position == 0
        assert len(list(r.read_model("ledger").scan("events"))) == head


def test_one_read_and_decode_per_page_for_the_whole_group(
    memory: AccountService, monkeypatch: pytest.MonkeyPatch
) -> None:
    history(memory, 3, [(n % 3, "contact") for n in range(40)])
    head = memory.recorder.max_notification_id() or 0
    limits: list[int] = []
    decoded = [0]
    select = memory.recorder.select_notifications
    to_domain_event = memory.mapper.to_domain_event

    def counting_select(*args: Any, **kwargs: Any) -> Any:
        limits.append(kwargs["limit"])
        return select(*args, **kwargs)

    def counting_decode(notification: Any) -> Any:
        decoded[0] += 1
        return to_domain_event(notification)

    with ProjectionRunner(
        memory, [Tally(), Untouched(), Ledger()], batch_size=8, rebuild_batch_size=1_000
    ) as runner:
        monkeypatch.setattr(memory.recorder, "select_notifications", counting_select)
        monkeypatch.setattr(memory.mapper, "to_domain_event", counting_decode)
        runner.rebuild()
        monkeypatch.undo()
        assert decoded[0] == head  # once for the three projections
        assert max(limits) == 8  # a page at a time, not the span
        assert runner.status()[0].position == head


def test_a_cancelled_span_commits_what_it_applied(memory: AccountService) -> None:
    history(memory, 2, [(n % 2, "contact") for n in range(30)])
    calls = [0]

    def cancel() -> bool:
        calls[0] += 1
        return calls[0] > 3  # the run's check, then two pages of the span, then stop

    with ProjectionRunner(
        memory, [Tally(), Ledger()], batch_size=5, rebuild_batch_size=1_000
    ) as runner:
        runner.rebuild(cancel=cancel)
        position = runner.store.position(Ledger())
        assert position == 15
        rows = dict(runner.read_model("ledger").scan("events"))
        assert len(rows) == 15
        runner.catch_up()
        assert len(list(runner.read_model("ledger").scan("events"))) == 34


def test_catch_up_keeps_small_batches_and_rebuild_takes_long_ones(
    memory: AccountService, monkeypatch: pytest.MonkeyPatch
) -> None:
    history(memory, 2, [(n % 2, "contact") for n in range(30)])
    runner = ProjectionRunner(memory, [Ledger()], batch_size=4, rebuild_batch_size=100)
    commits: list[int] = []
    original = runner.store._commit

    def counting(*args: Any) -> None:
        commits.append(args[1].end)
        original(*args)

    monkeypatch.setattr(runner.store, "_commit", counting)
    with runner:
        runner.catch_up()
        assert len(commits) == 9  # 34 events, 4 a batch
        commits.clear()
        runner.rebuild()
        assert len(commits) == 1
    with pytest.raises(Exception, match="rebuild_batch_size"):
        ProjectionRunner(memory, [Ledger()], rebuild_batch_size=0)


# --- the row cache -----------------------------------------------------------------------------


class CountingSource(MemoryReadModelStore):
    def __init__(self) -> None:
        super().__init__(RowCodec(AccountService("memory:").mapper.transcoder))
        self.fetched: list[str] = []

    def fetch(self, table: str, key: str) -> str | None:
        self.fetched.append(key)
        return super().fetch(table, key)


KEY = ReadModelKey("cached", 1, ("rows",))


def commit(store: CountingSource, cache: RowCache, change: Any) -> Batch:
    with store.batch(KEY) as batch:
        batch.use_cache(cache, store.tracking(KEY).epoch)
        change(batch)
        batch.advance(batch.start + 1)
    cache.absorb(batch)
    return batch


def test_the_cache_serves_committed_rows_and_known_absences() -> None:
    store, cache = CountingSource(), RowCache()
    commit(store, cache, lambda b: (b.get("rows", "a"), b.put("rows", "a", {"n": 1})))
    assert store.fetched == ["a"]
    commit(store, cache, _bump)
    commit(store, cache, _bump)
    assert store.fetched == ["a", "gone"]  # once each: later batches read the cache
    assert store.reader(KEY).get("rows", "a") == {"n": 3}
    assert cache.end == 3


def _bump(batch: Batch) -> None:
    row = batch.get("rows", "a")
    assert row is not None
    assert batch.get("rows", "gone") is None
    batch.put("rows", "a", {"n": row["n"] + 1})


def test_a_lent_row_not_put_back_leaves_the_cache() -> None:
    store, cache = CountingSource(), RowCache()
    commit(store, cache, lambda b: (b.get("rows", "a"), b.put("rows", "a", {"n": 1})))

    def mutate_only(batch: Batch) -> None:
        row = batch.get("rows", "a")
        assert row is not None
        row["n"] = 99  # never put back: the store keeps 1

    commit(store, cache, mutate_only)
    commit(store, cache, _bump)
    assert store.reader(KEY).get("rows", "a") == {"n": 2}


def test_a_batch_from_elsewhere_or_a_failed_one_empties_the_cache() -> None:
    store, cache = CountingSource(), RowCache()
    commit(store, cache, lambda b: (b.get("rows", "a"), b.put("rows", "a", {"n": 1})))
    assert len(cache) == 1
    with store.batch(KEY) as other:  # another runner moves the projection on
        other.put("rows", "a", {"n": 10})
        other.advance(5)
    store.fetched.clear()
    commit(store, cache, _bump)
    assert store.fetched == ["a", "gone"]
    assert store.reader(KEY).get("rows", "a") == {"n": 11}
    cache.clear()
    assert len(cache) == 0
    assert cache.end is None


def test_rows_written_without_moving_the_position_empty_the_cache() -> None:
    # A replay of dead letters or an account's rebuild by another runner: rows change, the
    # position does not, the epoch does.
    store, cache = CountingSource(), RowCache()
    commit(store, cache, _bump_or_start)
    with store.batch(KEY) as replay:
        replay.put("rows", "a", {"n": 10})
        replay.advance(replay.start)
    store.fetched.clear()
    commit(store, cache, _bump_or_start)
    assert store.fetched == ["a"]
    assert store.reader(KEY).get("rows", "a") == {"n": 11}


def _bump_or_start(batch: Batch) -> None:
    row = batch.get("rows", "a") or {"n": 0}
    batch.put("rows", "a", {"n": row["n"] + 1})


def test_the_cache_keeps_at_most_its_limit_of_rows() -> None:
    store, cache = CountingSource(), RowCache(limit=3)
    commit(store, cache, lambda b: [b.get("rows", str(n)) for n in range(5)])
    assert list(cache.table("rows")) == ["2", "3", "4"]  # known absences, the last three

    def rewrite(batch: Batch) -> None:
        for n in range(5):
            batch.get("rows", str(n))
            batch.put("rows", str(n), {"n": n})

    commit(store, cache, rewrite)
    assert len(cache) == 3
    assert all(row is not None for row in cache.table("rows").values())


def test_rows_only_ever_written_are_not_kept() -> None:
    store, cache = CountingSource(), RowCache()
    commit(store, cache, lambda b: [b.put("rows", f"log/{n}", {"n": n}) for n in range(5)])
    commit(store, cache, lambda b: b.put("rows", "a", {"n": 1}))
    assert len(cache) == 0
    commit(store, cache, _bump)  # read once from the store, then kept
    commit(store, cache, _bump)
    assert store.fetched == ["a", "gone"]
    assert store.reader(KEY).get("rows", "a") == {"n": 3}
    with pytest.raises(Exception, match="limit"):
        RowCache(limit=0)


def test_a_retried_batch_never_sees_the_changes_of_the_failed_one(
    memory: AccountService,
) -> None:
    ids = history(memory, 2, [(n % 2, "contact") for n in range(12)])
    flaky = Tally(fails=lambda e: e.originator_id == ids[0] and e.originator_version == 6, times=1)
    with ProjectionRunner(
        memory, [flaky], batch_size=3, on_failure={"tally": Retry(2)}, sleep=Sleeps()
    ) as runner:
        runner.catch_up()
        row = runner.read_model("tally").get("accounts", ids[0].hex)
        assert row is not None
        assert row["count"] == 8
        assert row["versions"] == list(range(1, 9))
        assert flaky.failures == {(ids[0], 6): 1}


def test_the_accounts_read_model_is_the_same_with_and_without_the_cache(
    memory: AccountService, monkeypatch: pytest.MonkeyPatch
) -> None:
    history(memory, 4, [(n % 4, "upsell" if n % 3 == 0 else "contact") for n in range(40)])
    tables = []
    for cached in (True, False):
        monkeypatch.setattr(AccountsProjection, "cache_rows", cached)
        with ProjectionRunner(
            memory, [AccountsProjection()], batch_size=3, rebuild_batch_size=7
        ) as runner:
            runner.rebuild()
            tables.append(dump(runner))
    assert tables[0] == tables[1]


def test_a_rebuild_batch_also_ends_at_its_budget_of_rows(
    memory: AccountService, monkeypatch: pytest.MonkeyPatch
) -> None:
    history(memory, 6, [(n % 6, "contact") for n in range(12)])
    runner = ProjectionRunner(
        memory, [Tally()], batch_size=2, rebuild_batch_size=1_000, rebuild_rows=4
    )
    ends: list[int] = []
    original = runner.store._commit

    def counting(*args: Any) -> None:
        ends.append(args[1].end)
        original(*args)

    monkeypatch.setattr(runner.store, "_commit", counting)
    with runner:
        runner.rebuild()
        assert len(ends) > 1
        assert ends[-1] == memory.recorder.max_notification_id()
        rows = dict(runner.read_model("tally").scan("accounts"))
        assert sum(row["count"] for row in rows.values()) == ends[-1]


def test_a_failure_to_read_mid_span_keeps_what_was_applied(
    memory: AccountService, monkeypatch: pytest.MonkeyPatch
) -> None:
    history(memory, 2, [(n % 2, "contact") for n in range(20)])
    select = memory.recorder.select_notifications
    calls = [0]

    def failing_select(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            raise OSError("the disk went away")
        return select(*args, **kwargs)

    with ProjectionRunner(
        memory, [Tally(), Ledger()], batch_size=5, rebuild_batch_size=1_000
    ) as runner:
        monkeypatch.setattr(memory.recorder, "select_notifications", failing_select)
        with pytest.raises(OSError, match="disk"):
            runner.rebuild()
        monkeypatch.undo()
        # Both committed the two pages they were given, nothing more, nothing less.
        assert runner.store.position(Tally()) == runner.store.position(Ledger()) == 10
        assert len(list(runner.read_model("ledger").scan("events"))) == 10
        runner.catch_up()
        after = dump(runner)
        runner.rebuild()
        assert dump(runner) == after


def test_a_progress_report_that_raises_stops_after_the_commit(memory: AccountService) -> None:
    history(memory, 2, [(n % 2, "contact") for n in range(20)])

    def progress(done: int, total: int) -> None:
        if done >= 10:
            raise RuntimeError("the progress bar broke")

    with ProjectionRunner(
        memory, [Tally(), Ledger()], batch_size=5, rebuild_batch_size=1_000
    ) as runner:
        with pytest.raises(RuntimeError, match="progress"):
            runner.rebuild(progress=progress)
        assert runner.store.position(Tally()) == runner.store.position(Ledger()) == 10
