"""The recorders we run on pass the conformance suites that ship inside eventsourcing.

``eventsourcing.tests.persistence`` holds eventsourcing's own test cases for recorders. They
run here against the recorders our stores configure: the SQLite factory of
``acctdomain.application.sqlite_persistence`` (on files, as the service uses them, with its
subscription and hash chain), and the factory of ``acctdomain.application.postgres_persistence``
(with its hash chain) with the environment ``StoreSpec`` builds, in a throwaway schema. The
suite's module is imported whole, not its classes, so that pytest does not collect the abstract
cases.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    Notification,
    ProcessRecorder,
    StoredEvent,
    TrackingRecorder,
)
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder, SQLiteTrackingRecorder
from eventsourcing.tests import persistence as conformance
from eventsourcing.utils import Environment

from acctdomain.application import postgres_persistence, sqlite_persistence
from acctdomain.application.postgres_persistence import (
    ChainedPostgresApplicationRecorder,
    ChainedPostgresFactory,
    ChainedPostgresProcessRecorder,
)
from acctdomain.application.sqlite_persistence import (
    SQLiteSubscription,
    SubscribableSQLiteApplicationRecorder,
    SubscribableSQLiteFactory,
    SubscribableSQLiteProcessRecorder,
)
from acctdomain.application.stores import parse_store
from acctdomain.errors import StoreConfigurationError
from tests.pg import drop_schema, new_schema_url

APP_NAME = "acctdomain"
WAIT = 30.0  # generous: only a failure ever waits this long


# --- SQLite --------------------------------------------------------------------------------------


class ClosesFactories:
    """Closes the factories a test made, once the threads the test started have ended.

    Some cases of the suite leave their reader threads to finish on their own; closing the
    connections under a thread still reading crashes SQLite's C library, not the test.
    """

    def setUp(self) -> None:
        self._threads_before = set(threading.enumerate())
        super().setUp()  # type: ignore[misc]

    def close_later(self, factory: InfrastructureFactory[Any]) -> None:
        self.addCleanup(self._close, factory)  # type: ignore[attr-defined]

    def _close(self, factory: InfrastructureFactory[Any]) -> None:
        for thread in set(threading.enumerate()) - self._threads_before:
            if not thread.daemon:  # the suite's readers (connection pools run daemon threads)
                thread.join(WAIT)
        factory.close()


class SQLiteFiles(ClosesFactories):
    """A fresh database file per test, opened through the factory our stores configure."""

    path: str

    def setUp(self) -> None:
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)  # type: ignore[attr-defined]
        self.path = str(Path(directory.name) / "events.db")
        super().setUp()

    def factory(self, **settings: str) -> SubscribableSQLiteFactory:
        env = Environment(APP_NAME, {**parse_store(self.path).environment(), **settings})
        factory = InfrastructureFactory.construct(env)
        assert isinstance(factory, SubscribableSQLiteFactory)
        self.close_later(factory)
        return factory


class TestSQLiteAggregateRecorder(SQLiteFiles, conformance.AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        recorder = self.factory().aggregate_recorder("snapshots")
        assert type(recorder) is SQLiteAggregateRecorder
        return recorder


class TestSQLiteApplicationRecorder(
    SQLiteFiles, conformance.ApplicationRecorderTestCase[ApplicationRecorder]
):
    def create_recorder(self) -> ApplicationRecorder:
        recorder = self.factory().application_recorder()
        assert isinstance(recorder, SubscribableSQLiteApplicationRecorder)
        return recorder

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()

    def test_insert_subscribe_after_existing_events(self) -> None:
        recorder = self.create_recorder()
        recorder.insert_events([_stored_event() for _ in range(3)])
        self.optional_test_insert_subscribe(initial_position=3)


class TestSQLiteProcessRecorder(SQLiteFiles, conformance.ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        recorder = self.factory().process_recorder()
        assert isinstance(recorder, SubscribableSQLiteProcessRecorder)
        return recorder


class TestSQLiteProcessRecorderSubscribes(
    SQLiteFiles, conformance.ApplicationRecorderTestCase[ApplicationRecorder]
):
    """The process recorder is an application recorder too: the same suite, subscribe
    included."""

    def create_recorder(self) -> ApplicationRecorder:
        recorder = self.factory().process_recorder()
        assert isinstance(recorder, SubscribableSQLiteProcessRecorder)
        return recorder

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestSQLiteTrackingRecorder(SQLiteFiles, conformance.TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        recorder = self.factory().tracking_recorder()
        assert type(recorder) is SQLiteTrackingRecorder
        return recorder


class TestSQLiteNonInterleavingNotificationIds(
    SQLiteFiles, conformance.NonInterleavingNotificationIDsBaseCase
):
    def create_recorder(self) -> ApplicationRecorder:
        return self.factory().application_recorder()


class TestSubscribableSQLiteFactory(
    conformance.InfrastructureFactoryTestCase[SubscribableSQLiteFactory]
):
    class TrackingRecorderSubclass(SQLiteTrackingRecorder):
        pass

    def setUp(self) -> None:
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.env = Environment("TestCase")
        self.env.update(parse_store(str(Path(directory.name) / "events.db")).environment())
        super().setUp()

    def expected_factory_class(self) -> type[SubscribableSQLiteFactory]:
        return SubscribableSQLiteFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return SQLiteAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return SubscribableSQLiteApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return SQLiteTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return self.TrackingRecorderSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return SubscribableSQLiteProcessRecorder


# --- what the suites do not cover: other connections, other processes, settings -----------------


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return parse_store(str(tmp_path / "events.db")).environment()


def _factory(env: dict[str, str]) -> SubscribableSQLiteFactory:
    factory = InfrastructureFactory.construct(Environment(APP_NAME, env))
    assert isinstance(factory, SubscribableSQLiteFactory)
    return factory


def _stored_event() -> StoredEvent:
    return StoredEvent(originator_id=uuid4(), originator_version=1, topic="t", state=b"{}")


class Collector:
    """Iterates a subscription in a thread of its own, as a follower does."""

    def __init__(self, subscription: Any) -> None:
        self.subscription = subscription
        self.received: list[Notification] = []
        self.error: BaseException | None = None
        self.arrived = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with self.subscription:
                for notification in self.subscription:
                    with self.arrived:
                        self.received.append(notification)
                        self.arrived.notify_all()
        except BaseException as error:
            self.error = error

    def wait_for(self, count: int) -> list[int]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received) >= count, WAIT)
            return [n.id for n in self.received]

    def stop(self) -> None:
        self.subscription.stop()
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the subscription did not stop"
        assert self.error is None


def test_a_subscription_sees_commits_of_another_recorder_on_the_same_file(
    sqlite_env: dict[str, str],
) -> None:
    reader, writer = _factory(sqlite_env), _factory(sqlite_env)
    try:
        collector = Collector(reader.application_recorder().subscribe(gt=0))
        writer.application_recorder().insert_events([_stored_event(), _stored_event()])
        assert collector.wait_for(2) == [1, 2]
        collector.stop()
    finally:
        reader.close()
        writer.close()


def test_a_subscription_sees_commits_made_outside_eventsourcing(
    sqlite_env: dict[str, str],
) -> None:
    # Another process writes through a connection this process knows nothing of: only the
    # data_version poll can see it. A plain connection stands in for that process here;
    # tests/test_follow.py runs a real second process.
    factory = _factory(sqlite_env)
    try:
        recorder = factory.application_recorder()
        collector = Collector(recorder.subscribe(gt=None, topics=["t"]))
        with sqlite3.connect(sqlite_env["SQLITE_DBNAME"], isolation_level=None) as other:
            other.execute(
                "INSERT INTO stored_events VALUES (?, 1, 'ignored', x'7b7d')", (uuid4().hex,)
            )
            other.execute("INSERT INTO stored_events VALUES (?, 1, 't', x'7b7d')", (uuid4().hex,))
        other.close()
        assert collector.wait_for(1) == [2]
        collector.stop()
    finally:
        factory.close()


def test_stop_from_another_thread_ends_a_waiting_iteration(sqlite_env: dict[str, str]) -> None:
    factory = _factory(sqlite_env)
    try:
        subscription = factory.application_recorder().subscribe(gt=0)
        assert isinstance(subscription, SQLiteSubscription)
        collector = Collector(subscription)
        collector.stop()  # asserts the blocked iteration ended
        assert collector.received == []
        assert list(subscription) == []  # stays stopped
    finally:
        factory.close()


def test_the_poll_interval_is_a_setting(sqlite_env: dict[str, str]) -> None:
    factory = _factory({**sqlite_env, "SQLITE_POLL_INTERVAL": "0.5"})
    try:
        assert factory.poll_interval == 0.5
        application = factory.application_recorder()
        process = factory.process_recorder()
        assert isinstance(application, SubscribableSQLiteApplicationRecorder)
        assert isinstance(process, SubscribableSQLiteApplicationRecorder)
        assert application.poll_interval == process.poll_interval == 0.5
    finally:
        factory.close()
    default = _factory({**sqlite_env, "SQLITE_POLL_INTERVAL": " "})
    assert default.poll_interval == sqlite_persistence.DEFAULT_POLL_INTERVAL
    default.close()


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf"])
def test_a_bad_poll_interval_is_refused(sqlite_env: dict[str, str], value: str) -> None:
    with pytest.raises(StoreConfigurationError) as refused:
        _factory({**sqlite_env, "SQLITE_POLL_INTERVAL": value})
    assert refused.value.field == "SQLITE_POLL_INTERVAL"
    assert repr(value) in refused.value.reason


def test_the_sqlite_store_uses_the_subscribable_factory(tmp_path: Path) -> None:
    env = parse_store(str(tmp_path / "book.db")).environment()
    assert env["PERSISTENCE_MODULE"] == sqlite_persistence.PERSISTENCE_MODULE
    assert env["SQLITE_LOCK_TIMEOUT"] == "30"


# --- PostgreSQL ----------------------------------------------------------------------------------


class PostgresSchema(ClosesFactories):
    """A throwaway schema per test, opened through the environment StoreSpec builds."""

    env: Environment

    def setUp(self) -> None:
        url, schema = new_schema_url()
        spec = parse_store(url)
        with spec.setting_up():  # creates the schema, as the service does
            pass
        self.addCleanup(drop_schema, schema)  # type: ignore[attr-defined]
        self.env = Environment(APP_NAME, spec.environment())
        super().setUp()

    def factory(self) -> ChainedPostgresFactory:
        factory = InfrastructureFactory.construct(self.env)
        assert isinstance(factory, ChainedPostgresFactory)
        self.close_later(factory)
        return factory


@pytest.mark.postgres
class TestPostgresAggregateRecorder(PostgresSchema, conformance.AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        recorder = self.factory().aggregate_recorder("snapshots")
        assert type(recorder) is PostgresAggregateRecorder
        return recorder


@pytest.mark.postgres
class TestPostgresApplicationRecorder(
    PostgresSchema, conformance.ApplicationRecorderTestCase[ApplicationRecorder]
):
    def create_recorder(self) -> ApplicationRecorder:
        recorder = self.factory().application_recorder()
        assert type(recorder) is ChainedPostgresApplicationRecorder
        return recorder

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


@pytest.mark.postgres
class TestPostgresProcessRecorder(PostgresSchema, conformance.ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        recorder = self.factory().process_recorder()
        assert type(recorder) is ChainedPostgresProcessRecorder
        return recorder


@pytest.mark.postgres
class TestPostgresProcessRecorderAsApplicationRecorder(
    PostgresSchema, conformance.ApplicationRecorderTestCase[ApplicationRecorder]
):
    """The process recorder writes the chain too: the application suite on it."""

    def create_recorder(self) -> ApplicationRecorder:
        recorder = self.factory().process_recorder()
        assert isinstance(recorder, ChainedPostgresProcessRecorder)
        return recorder


@pytest.mark.postgres
class TestPostgresTrackingRecorder(PostgresSchema, conformance.TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        recorder = self.factory().tracking_recorder()
        assert type(recorder) is PostgresTrackingRecorder
        return recorder


@pytest.mark.postgres
class TestPostgresNonInterleavingNotificationIds(
    PostgresSchema, conformance.NonInterleavingNotificationIDsBaseCase
):
    def create_recorder(self) -> ApplicationRecorder:
        return self.factory().application_recorder()


@pytest.mark.postgres
class TestChainedPostgresFactory(conformance.InfrastructureFactoryTestCase[ChainedPostgresFactory]):
    class TrackingRecorderSubclass(PostgresTrackingRecorder):
        pass

    def setUp(self) -> None:
        url, schema = new_schema_url()
        spec = parse_store(url)
        with spec.setting_up():
            pass
        self.addCleanup(drop_schema, schema)
        self.env = Environment("TestCase")
        self.env.update(spec.environment())
        super().setUp()

    def expected_factory_class(self) -> type[ChainedPostgresFactory]:
        return ChainedPostgresFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return PostgresAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return ChainedPostgresApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return PostgresTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return self.TrackingRecorderSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return ChainedPostgresProcessRecorder


@pytest.mark.postgres
def test_the_postgres_store_uses_the_chained_factory() -> None:
    env = parse_store("postgresql://u@h/db").environment()
    assert env["PERSISTENCE_MODULE"] == postgres_persistence.PERSISTENCE_MODULE
