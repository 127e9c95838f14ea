"""Following the store live (StoreFollower) and read models made current by each command.

Every backend is real: memory, an SQLite file and a PostgreSQL schema. The cross-process tests
run a writer in a process of its own (tests/follow_worker.py) and check that the follower in
this process sees each write while the writer is still alive. Waits are generous upper bounds:
only a failure ever waits that long.
"""

from __future__ import annotations

import math
import select
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from uuid import UUID, uuid4

import pytest

from acctdomain import AccountService, NpsScore
from acctdomain.domain import events as ev
from acctdomain.errors import InvalidValue
from acctdomain.plugins import PluginHost
from acctdomain.plugins.hookspecs import hookimpl
from acctdomain.plugins.types import Policy, Projection, Rows
from acctdomain.projections import Cancel, PolicyRunner, ProjectionRunner
from acctdomain.projections.follow import FollowerCrash, StoreFollower
from acctdomain.testing.projection import ProjectionPlugin
from tests.conftest import FakeClock
from tests.pg import drop_schema, new_schema_url
from tests.projection_fixtures import AccountHistory, Ledger, contact, follow_up_policy, open_active

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0


# --- helpers -------------------------------------------------------------------------------------


def open_account(service: AccountService, key: str) -> UUID:
    return service.open_account(
        name=f"Company {key}",
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        external_key=key,
        actor="amy",
    ).account_id


def account_keys(runner: ProjectionRunner) -> set[str]:
    return {key for key, _ in runner.read_model("accounts").scan("accounts")}


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def make_service(store_url: str, clock: FakeClock, *plugins: Any, **options: Any) -> AccountService:
    host = PluginHost(entry_points=False, plugins=plugins)
    return AccountService(store_url, clock=clock, plugins=host, **options)


@pytest.fixture
def services(store_url: str, clock: FakeClock) -> Iterator[Callable[..., AccountService]]:
    """Builds services on the test's store (all three backends) and closes them after."""
    built: list[AccountService] = []

    def build(*plugins: Any, **options: Any) -> AccountService:
        service = make_service(store_url, clock, *plugins, **options)
        built.append(service)
        return service

    yield build
    for service in reversed(built):
        service.close()


class PoliciesPlugin:
    def __init__(self, *policies: Policy) -> None:
        self.policies = policies

    @hookimpl
    def acctdomain_register_policies(self, register: Callable[[Policy], None]) -> None:
        for policy in self.policies:
            register(policy)


class FlakyRunner(ProjectionRunner):
    """A runner whose first ``failures`` catch-ups fail as if its database went away."""

    def __init__(self, *args: Any, failures: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures = failures

    def catch_up(self, *, cancel: Cancel | None = None) -> int:
        if self.failures:
            self.failures -= 1
            raise OSError("read-model disk gone")
        return super().catch_up(cancel=cancel)


# --- following, on every backend -----------------------------------------------------------------


def test_a_follower_catches_up_then_follows_new_events(service: AccountService) -> None:
    first = open_account(service, "first")
    with StoreFollower.for_service(service) as follower:
        assert follower.running
        assert follower.wait_until(timeout=WAIT) >= 1
        assert account_keys(follower.projections) == {first.hex}
        later = [open_account(service, f"later-{n}") for n in range(3)]
        follower.wait_until(timeout=WAIT)
        assert account_keys(follower.projections) == {first.hex} | {a.hex for a in later}
        assert follower.crashes == 0
        assert follower.last_crash is None
    assert not follower.running
    # The follower's runner wrote the tables the service's queries read.
    assert service.read_model("accounts").get("accounts", first.hex) is not None


def test_a_follower_feeds_policies(services: Callable[..., AccountService]) -> None:
    service = services(PoliciesPlugin(follow_up_policy()))
    account = open_account(service, "unhappy")
    with StoreFollower.for_service(service) as follower:
        assert follower.policies is not None
        service.record_feedback(account, score=NpsScore(3), respondent="cfo", actor="amy")
        eventually(
            lambda: any(isinstance(e, ev.ContactLogged) for e in service.history(account)),
            "the policy's follow-up call",
        )
        follower.wait_until(timeout=WAIT)  # the follow-up itself is projected too
        assert account_keys(follower.projections) == {account.hex}
    without = StoreFollower.for_service(service, with_policies=False)
    assert without.policies is None
    without.close()


def test_the_follower_survives_a_failing_projection(
    services: Callable[..., AccountService],
) -> None:
    broken = AccountHistory(fails=lambda event: getattr(event, "name", "") == "Company boom")
    service = services(ProjectionPlugin(broken))
    with StoreFollower.for_service(service) as follower:
        keys = {open_account(service, key).hex for key in ("a", "boom", "c")}
        follower.wait_until(timeout=WAIT)
        statuses = {status.name: status for status in follower.projections.status()}
        assert statuses["account_history"].state == "failed"
        last_error = statuses["account_history"].last_error
        assert last_error is not None
        assert "cannot handle" in last_error.error
        assert statuses["accounts"].state == "running"
        assert statuses["accounts"].lag == 0
        assert account_keys(follower.projections) == keys
        open_account(service, "d")  # still following
        follower.wait_until(timeout=WAIT)
        assert len(account_keys(follower.projections)) == 4
        assert follower.crashes == 0
        assert follower.running


def test_a_crash_of_the_loop_is_recorded_and_the_loop_starts_again(
    service: AccountService,
) -> None:
    account = open_account(service, "a")
    runner = FlakyRunner(service, service.plugins.projections().values(), failures=2)
    follower = StoreFollower(service, runner, retry_delay=0.01)
    try:
        follower.start()
        follower.wait_until(timeout=WAIT)
        assert account_keys(runner) == {account.hex}
        assert follower.crashes == 2
        assert follower.last_crash == FollowerCrash(
            error="OSError('read-model disk gone')", count=2, retry_in=0.02
        )
        assert follower.running
    finally:
        follower.close()
        runner.close()


def test_a_follower_that_keeps_failing_says_why_and_still_stops(tmp_path: Path) -> None:
    service = AccountService(str(tmp_path / "events.db"), plugins=PluginHost(entry_points=False))
    follower = StoreFollower.for_service(service, retry_delay=0.01)
    try:
        follower.projections.store.close()  # its read-model database is gone for good
        open_account(service, "a")
        with follower:
            eventually(lambda: follower.crashes >= 3, "repeated crashes")
            crash = follower.last_crash
            assert crash is not None
            assert "closed" in crash.error
            with pytest.raises(TimeoutError, match="last crash"):
                follower.wait_until(timeout=0.2)
        assert not follower.running
    finally:
        service.close()


def test_a_lost_wake_up_delays_an_event_by_the_recheck_interval_at_most(tmp_path: Path) -> None:
    # Another process's commit is seen by the subscription only after its poll interval (an
    # hour here); the follower's own recheck finds it long before.
    path = str(tmp_path / "events.db")
    service = AccountService(
        path, plugins=PluginHost(entry_points=False), env={"SQLITE_POLL_INTERVAL": "3600"}
    )
    try:
        follower = StoreFollower.for_service(service, recheck_interval=0.05)
        with follower:
            follower.wait_until(timeout=WAIT)
            with sqlite3.connect(path, isolation_level=None) as other:
                other.execute(
                    "INSERT INTO stored_events VALUES (?, 1, ?, ?)",
                    (uuid4().hex, "acctdomain_plugin_that_is_gone:Vanished", b"{}"),
                )
            other.close()
            assert follower.wait_until(timeout=WAIT) == 1
            unknown = {
                status.name: status.unknown_events for status in follower.projections.status()
            }
            assert unknown["accounts"] == 1
    finally:
        service.close()


@pytest.mark.postgres
def test_a_follower_whose_listening_connection_dies_listens_again(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libpq names this process's connections, so that only they are killed (other sessions
    # may be using the server).
    application = f"acctdomain-follow-test-{uuid4().hex[:12]}"
    monkeypatch.setenv("PGAPPNAME", application)
    url, schema = new_schema_url()
    service = make_service(url, clock)
    try:
        with StoreFollower.for_service(service, retry_delay=0.01) as follower:
            follower.wait_until(timeout=WAIT)
            eventually(lambda: _terminate_listener(url, application), "the LISTEN connection")
            eventually(lambda: follower.crashes > 0, "the crash to be noticed")
            assert follower.last_crash is not None
            account = open_account(service, "after")
            follower.wait_until(timeout=WAIT)
            assert account_keys(follower.projections) == {account.hex}
            assert follower.running
    finally:
        service.close()
        drop_schema(schema)


def _terminate_listener(url: str, application: str) -> bool:
    """Kill the server side of this process's connection that listens for events."""
    from acctdomain.application.stores import parse_store

    with parse_store(url).connect() as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND query LIKE 'LISTEN %%'",
            (application,),
        ).fetchall()
    return bool(rows)


def test_stop_and_start_again(service: AccountService) -> None:
    follower = StoreFollower.for_service(service)
    try:
        follower.start()
        with pytest.raises(RuntimeError, match="running already"):
            follower.start()
        with pytest.raises(RuntimeError, match="running already"):
            follower.run()
        first = open_account(service, "first")
        follower.wait_until(timeout=WAIT)
        follower.stop()
        follower.stop()  # stopping twice does nothing
        assert not follower.running

        second = open_account(service, "second")
        assert account_keys(follower.projections) == {first.hex}  # nobody follows
        with pytest.raises(RuntimeError, match="not running"):
            follower.wait_until(timeout=WAIT)

        follower.start()
        follower.wait_until(timeout=WAIT)
        assert account_keys(follower.projections) == {first.hex, second.hex}
    finally:
        follower.close()
    assert not follower.running


def test_run_follows_in_the_calling_thread_until_stopped(service: AccountService) -> None:
    follower = StoreFollower.for_service(service)
    thread = threading.Thread(target=follower.run)
    thread.start()
    try:
        eventually(lambda: follower.running, "the loop to start")
        account = open_account(service, "a")
        follower.wait_until(timeout=WAIT)
        assert account_keys(follower.projections) == {account.hex}
    finally:
        follower.stop()
        thread.join(WAIT)
        follower.close()
    assert not thread.is_alive()


def test_a_follower_beside_synchronous_commands_applies_each_event_once(
    services: Callable[..., AccountService],
) -> None:
    service = services(ProjectionPlugin(Ledger()), project_synchronously=True)
    with StoreFollower.for_service(service) as follower:
        writers = [
            threading.Thread(
                target=lambda n=n: [open_account(service, f"{n}-{i}") for i in range(5)]
            )
            for n in range(3)
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(WAIT)
        follower.wait_until(timeout=WAIT)
    rows = list(service.read_model("ledger").scan("events"))
    assert len(rows) == 15
    assert {row["times"] for _, row in rows} == {1}


# --- another process writes ----------------------------------------------------------------------


class Writer:
    """tests/follow_worker.py in a process of its own, writing when told to."""

    def __init__(self, store_url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.follow_worker", store_url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._answer() == "ready"

    def open(self, key: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(f"open {key}\n")
        self.process.stdin.flush()
        command, answered, account_hex = self._answer().split()
        assert (command, answered) == ("opened", key)
        return account_hex

    def _answer(self) -> str:
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], WAIT)
        assert readable, "the writer process did not answer"
        return self.process.stdout.readline().strip()

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("quit\n")
        self.process.stdin.close()
        assert self.process.wait(WAIT) == 0


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store two processes can share."""
    if request.param == "sqlite":
        yield str(tmp_path / "shared.db")
        return
    url, schema = new_schema_url()
    try:
        yield url
    finally:
        drop_schema(schema)


@pytest.mark.slow
def test_a_follower_sees_another_processs_writes_while_it_runs(
    shared_store: str, clock: FakeClock
) -> None:
    service = make_service(shared_store, clock)
    try:
        with StoreFollower.for_service(service) as follower, Writer(shared_store) as writer:
            first = writer.open("first")
            eventually(lambda: first in account_keys(follower.projections), "the first write")
            assert writer.process.poll() is None  # the writer is still alive
            second = writer.open("second")
            eventually(lambda: second in account_keys(follower.projections), "the second write")
            assert account_keys(follower.projections) == {first, second}
            assert follower.crashes == 0
    finally:
        service.close()


@pytest.mark.slow
def test_a_subscription_wakes_for_another_processs_commit(shared_store: str) -> None:
    service = AccountService(shared_store, plugins=PluginHost(entry_points=False))
    received: list[int] = []
    subscription = service.recorder.subscribe(gt=0)

    def follow() -> None:
        with subscription:
            for notification in subscription:
                received.append(notification.id)

    thread = threading.Thread(target=follow)
    thread.start()
    try:
        with Writer(shared_store) as writer:
            writer.open("a")
            eventually(lambda: len(received) == 1, "the notification")
    finally:
        subscription.stop()
        thread.join(WAIT)
        service.close()
    assert not thread.is_alive()


# --- read models current before a command returns ------------------------------------------------


def test_with_project_synchronously_a_command_returns_with_read_models_current(
    services: Callable[..., AccountService],
) -> None:
    service = services(project_synchronously=True)
    assert service.project_synchronously
    account = open_account(service, "a")
    assert service.read_model("accounts").get("accounts", account.hex) is not None
    service.reassign_manager(account, manager="bo", manager_type="sales", actor="amy")
    row = service.read_model("accounts").get("accounts", account.hex)
    assert row is not None
    assert row["manager"] == "bo"
    assert {status.lag for status in service.projections.status()} == {0}
    assert service.sync_error is None


def test_by_default_read_models_wait_for_catch_up(service: AccountService) -> None:
    assert not service.project_synchronously
    account = open_account(service, "a")
    assert service.read_model("accounts").get("accounts", account.hex) is None
    service.catch_up()
    assert service.read_model("accounts").get("accounts", account.hex) is not None


def test_a_failing_projection_does_not_fail_the_command(
    services: Callable[..., AccountService],
) -> None:
    broken = AccountHistory(fails=lambda event: True)
    service = services(ProjectionPlugin(broken), project_synchronously=True)
    account = open_account(service, "a")  # does not raise
    assert service.get_account(account).version == 1
    statuses = {status.name: status for status in service.projections.status()}
    assert statuses["account_history"].state == "failed"
    assert statuses["account_history"].last_error is not None
    assert statuses["accounts"].lag == 0
    assert service.read_model("accounts").get("accounts", account.hex) is not None
    assert service.sync_error is None  # the runner recorded the projection's failure


def test_an_error_outside_the_projections_is_kept_not_raised(tmp_path: Path) -> None:
    service = AccountService(
        str(tmp_path / "events.db"),
        plugins=PluginHost(entry_points=False),
        project_synchronously=True,
    )
    try:
        service.projections.store.close()  # the read-model database cannot be used
        account = open_account(service, "a")  # stored all the same
        assert service.get_account(account).version == 1
        assert service.sync_error is not None
        assert "closed" in str(service.sync_error)
    finally:
        service.close()


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_project_synchronously_must_be_true_or_false(value: Any) -> None:
    with pytest.raises(InvalidValue) as refused:
        AccountService("memory:", project_synchronously=value)
    assert refused.value.field == "project_synchronously"


# --- bad arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, "1", True])
def test_a_bad_retry_delay_is_refused(memory_service: AccountService, value: Any) -> None:
    with pytest.raises(InvalidValue) as refused:
        StoreFollower(memory_service, memory_service.projections, retry_delay=value)
    assert refused.value.field == "retry_delay"


def test_the_runners_are_checked(memory_service: AccountService) -> None:
    with pytest.raises(InvalidValue) as refused:
        StoreFollower(memory_service, memory_service.policies)  # type: ignore[arg-type]
    assert refused.value.field == "projections"
    with pytest.raises(InvalidValue) as refused:
        StoreFollower(memory_service, memory_service.projections, memory_service.projections)  # type: ignore[arg-type]
    assert refused.value.field == "policies"
    with pytest.raises(InvalidValue) as refused:
        StoreFollower.for_service(memory_service, with_policies="yes")  # type: ignore[arg-type]
    assert refused.value.field == "with_policies"
    with pytest.raises(InvalidValue) as refused:
        StoreFollower.for_service(memory_service, retry_delay=0)
    assert refused.value.field == "retry_delay"


@pytest.mark.parametrize("position", [-1, 1.5, "3", True])
def test_a_bad_position_is_refused(memory_service: AccountService, position: Any) -> None:
    follower = StoreFollower(memory_service, memory_service.projections)
    with pytest.raises(InvalidValue) as refused:
        follower.wait_until(position)
    assert refused.value.field == "position"


@pytest.mark.parametrize("timeout", [0, -1, math.nan, "5", None])
def test_a_bad_timeout_is_refused(memory_service: AccountService, timeout: Any) -> None:
    follower = StoreFollower(memory_service, memory_service.projections)
    with pytest.raises(InvalidValue) as refused:
        follower.wait_until(0, timeout=timeout)
    assert refused.value.field == "timeout"
    with pytest.raises(InvalidValue) as refused:
        follower.stop(timeout)
    assert refused.value.field == "timeout"


def test_waiting_for_a_position_reached_needs_no_running_follower(
    memory_service: AccountService,
) -> None:
    follower = StoreFollower(memory_service, memory_service.projections)
    assert follower.wait_until(0) == 0
    assert follower.position == 0
    open_account(memory_service, "a")
    with pytest.raises(RuntimeError, match="not running"):
        follower.wait_until(timeout=WAIT)


def test_a_stop_that_times_out_says_so(service: AccountService) -> None:
    # A catch-up that takes long (a slow projection) holds the loop; stop() waits for it.
    release = threading.Event()

    class Slow(ProjectionRunner):
        def catch_up(self, *, cancel: Cancel | None = None) -> int:
            release.wait(WAIT)
            return super().catch_up(cancel=cancel)

    runner = Slow(service, service.plugins.projections().values())
    follower = StoreFollower(service, runner)
    follower.start()
    try:
        with pytest.raises(TimeoutError, match="did not stop"):
            follower.stop(timeout=0.05)
    finally:
        release.set()
        follower.stop()
        runner.close()
    assert not follower.running


def test_policy_runner_may_be_given(memory_service: AccountService) -> None:
    policies = PolicyRunner(memory_service, [])
    follower = StoreFollower(memory_service, memory_service.projections, policies)
    assert follower.policies is policies
    assert follower.projections is memory_service.projections
    follower.close()  # does not close runners it did not make
    assert memory_service.catch_up() == 0


class SlowContacts(Projection):
    """Takes its time over each contact: a follower stopping must not wait for them all."""

    name = "slow_contacts"
    tables = ("seen",)
    event_types = (ev.ContactLogged,)

    def apply(self, event: Any, rows: Rows) -> None:
        time.sleep(0.2)
        rows.put("seen", f"{event.originator_id.hex}:{event.originator_version}", {"seen": True})


def test_stopping_ends_a_long_catch_up_between_batches_and_the_follower_can_start_again(
    memory_service: AccountService,
) -> None:
    account = open_active(memory_service, "crm:1")
    for _ in range(10):
        contact(memory_service, account)
    runner = ProjectionRunner(memory_service, [SlowContacts()], batch_size=1)
    follower = StoreFollower(memory_service, runner)
    follower.start()
    time.sleep(0.5)
    follower.stop(timeout=5.0)  # ten contacts take 2 s: it stopped after the batch under way
    assert not follower.running
    applied = runner.store.position(SlowContacts())
    assert 0 < applied < (memory_service.recorder.max_notification_id() or 0)
    follower.start()  # and it goes on from the committed batches
    follower.wait_until(timeout=30.0)
    follower.stop()
    rows = list(runner.read_model("slow_contacts").scan("seen"))
    assert len(rows) == 10
    runner.close()
