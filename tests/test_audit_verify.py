"""verify(): the happy paths, every kind of problem it names, and what it accepts.

Stores here are real SQLite files and PostgreSQL schemas; tampering is done with plain SQL on a
connection of the test's own, the way someone with write access to the database would.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    StoredEvent,
)
from eventsourcing.utils import Environment

from acctdomain import AccountService
from acctdomain.application.stores import StoreSpec, parse_store
from acctdomain.audit import (
    GENESIS,
    PostgresChainReader,
    ProblemKind,
    SQLiteChainReader,
    VerifyReport,
    verify,
)
from acctdomain.errors import InvalidValue, StoreConfigurationError
from acctdomain.plugins import PluginHost
from tests.pg import drop_schema, new_schema_url

APP_NAME = "acctdomain"
TOPICS = ("acctdomain.domain.events:ContactLogged", "acctdomain.domain.events:IssueRaised")


def stored_event(rng: random.Random, originator_id: UUID, version: int) -> StoredEvent:
    state = b'{"summary":"' + bytes(rng.randrange(97, 123) for _ in range(rng.randrange(5, 60)))
    return StoredEvent(
        originator_id=originator_id,
        originator_version=version,
        topic=rng.choice(TOPICS),
        state=state + b'"}',
    )


class Store:
    """A chained store on one backend, and plain SQL access to its tables for tampering."""

    def __init__(self, kind: str, spec: StoreSpec, schema: str = "") -> None:
        self.kind = kind
        self.spec = spec
        self.schema = schema
        self.factory: InfrastructureFactory[Any] | None = None
        self.streams: dict[UUID, int] = {}

    # --- writing through the recorders --------------------------------------------------------

    def open(self) -> ApplicationRecorder:
        with self.spec.setting_up():
            self.factory = InfrastructureFactory.construct(
                Environment(APP_NAME, self.spec.environment())
            )
            return self.factory.application_recorder()

    def close(self) -> None:
        if self.factory is not None:
            self.factory.close()
            self.factory = None

    def append(self, recorder: ApplicationRecorder, rng: random.Random, count: int) -> None:
        batch = []
        for _ in range(count):
            if not self.streams or rng.random() < 0.3:
                self.streams[uuid4()] = 0
            originator_id = rng.choice(list(self.streams))
            self.streams[originator_id] += 1
            batch.append(stored_event(rng, originator_id, self.streams[originator_id]))
        recorder.insert_events(batch)

    def burn_ids(self, recorder: ApplicationRecorder) -> None:
        """A rolled-back insert: on PostgreSQL it leaves a gap in the notification ids."""
        taken = next(iter(self.streams))
        clash = StoredEvent(originator_id=taken, originator_version=1, topic="t", state=b"{}")
        with pytest.raises(IntegrityError):
            recorder.insert_events([StoredEvent(uuid4(), 1, "t", b"{}"), clash])

    # --- plain SQL ------------------------------------------------------------------------------

    @property
    def events(self) -> str:
        return "stored_events" if self.kind == "sqlite" else f'"{self.schema}".acctdomain_events'

    @property
    def chain(self) -> str:
        if self.kind == "sqlite":
            return "stored_events_chain"
        return f'"{self.schema}".acctdomain_events_chain'

    @property
    def id_column(self) -> str:
        return "rowid" if self.kind == "sqlite" else "notification_id"

    @contextmanager
    def tampering(self) -> Iterator[Tampering]:
        """A connection in a transaction that is rolled back at the end."""
        if self.kind == "sqlite":
            connection = sqlite3.connect(self.spec.path, isolation_level=None)
            try:
                connection.execute("BEGIN")
                yield Tampering(self, connection, SQLiteChainReader(connection))
            finally:
                connection.execute("ROLLBACK")
                connection.close()
        else:
            with self.spec.connect() as pg, pg.transaction(force_rollback=True):
                reader = PostgresChainReader(pg, schema=self.schema)
                yield Tampering(self, pg, reader)


class Tampering:
    """Plain SQL on a store's tables, inside a transaction that is rolled back."""

    def __init__(self, store: Store, connection: Any, reader: Any) -> None:
        self.store = store
        self.connection = connection
        self.reader = reader

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        store = self.store
        statement = statement.format(events=store.events, chain=store.chain, id=store.id_column)
        if store.kind == "postgres":
            statement = statement.replace("?", "%s")
        cursor = self.connection.execute(statement, params)
        return list(cursor.fetchall()) if cursor.description else []

    def event_ids(self) -> list[int]:
        return [row[0] for row in self.sql("SELECT {id} FROM {events} ORDER BY {id}")]

    def chain_ids(self) -> list[int]:
        return [row[0] for row in self.sql("SELECT notification_id FROM {chain} ORDER BY 1")]

    def row(self, position: int) -> tuple[Any, ...]:
        return self.sql(
            "SELECT originator_id, originator_version, topic, state FROM {events} WHERE {id} = ?",
            position,
        )[0]

    def verify(self, page_size: int = 1000) -> VerifyReport:
        return verify(self.reader, page_size=page_size)

    # --- single mutations -----------------------------------------------------------------------

    def set_state(self, position: int, state: bytes) -> None:
        self.sql("UPDATE {events} SET state = ? WHERE {id} = ?", state, position)

    def set_topic(self, position: int, topic: str) -> None:
        self.sql("UPDATE {events} SET topic = ? WHERE {id} = ?", topic, position)

    def shift_version(self, position: int, by: int) -> None:
        self.sql(
            "UPDATE {events} SET originator_version = originator_version + ? WHERE {id} = ?",
            by,
            position,
        )

    def set_originator(self, position: int, originator_id: UUID) -> None:
        value: Any = originator_id.hex if self.store.kind == "sqlite" else originator_id
        self.sql("UPDATE {events} SET originator_id = ? WHERE {id} = ?", value, position)

    def delete_event(self, position: int) -> None:
        self.sql("DELETE FROM {events} WHERE {id} = ?", position)

    def delete_link(self, position: int) -> None:
        self.sql("DELETE FROM {chain} WHERE notification_id = ?", position)

    def set_link(self, position: int, digest: bytes) -> None:
        self.sql("UPDATE {chain} SET hash = ? WHERE notification_id = ?", digest, position)

    def link_of(self, position: int) -> bytes:
        return bytes(self.sql("SELECT hash FROM {chain} WHERE notification_id = ?", position)[0][0])

    def swap_events(self, first: int, second: int) -> None:
        one, two = self.row(first), self.row(second)
        # Out of the primary key's way first, then each takes the other's content.
        self.sql("UPDATE {events} SET originator_version = -1 WHERE {id} = ?", first)
        self._set_row(second, one)
        self._set_row(first, two)

    def _set_row(self, position: int, row: tuple[Any, ...]) -> None:
        self.sql(
            "UPDATE {events} SET originator_id = ?, originator_version = ?, topic = ?, state = ? "
            "WHERE {id} = ?",
            *row,
            position,
        )

    def swap_links(self, first: int, second: int) -> None:
        one, two = self.link_of(first), self.link_of(second)
        self.set_link(first, two)
        self.set_link(second, one)

    def insert_event(self, position: int, originator_id: UUID) -> None:
        value: Any = originator_id.hex if self.store.kind == "sqlite" else originator_id
        self.sql(
            "INSERT INTO {events} ({id}, originator_id, originator_version, topic, state) "
            "VALUES (?, ?, 1, 'forged', ?)",
            position,
            value,
            b"{}",
        )

    def insert_link(self, position: int, digest: bytes) -> None:
        self.sql("INSERT INTO {chain} (notification_id, hash) VALUES (?, ?)", position, digest)


def write_legacy_sqlite(path: Path, rng: random.Random, ids: list[int]) -> dict[UUID, int]:
    """An SQLite store as eventsourcing's own recorder leaves it (no chain), with the given
    notification ids (gaps included, as deletions before this change could leave)."""
    streams: dict[UUID, int] = {}
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, "
            "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
        )
        for notification_id in ids:
            originator_id = (
                uuid4() if not streams or rng.random() < 0.3 else rng.choice(list(streams))
            )
            streams[originator_id] = streams.get(originator_id, 0) + 1
            event = stored_event(rng, originator_id, streams[originator_id])
            connection.execute(
                "INSERT INTO stored_events (rowid, originator_id, originator_version, topic, "
                "state) VALUES (?, ?, ?, ?, ?)",
                (
                    notification_id,
                    originator_id.hex,
                    event.originator_version,
                    event.topic,
                    event.state,
                ),
            )
    connection.close()
    return streams


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty chained store on each backend that keeps a chain."""
    if request.param == "sqlite":
        chained = Store("sqlite", parse_store(str(tmp_path / "events.db")))
        yield chained
        chained.close()
    else:
        url, schema = new_schema_url()
        chained = Store("postgres", parse_store(url), schema)
        try:
            yield chained
        finally:
            chained.close()
            drop_schema(schema)


def filled(store: Store, count: int, seed: int = 7) -> ApplicationRecorder:
    recorder = store.open()
    rng = random.Random(seed)
    while count > 0:
        size = min(count, rng.randrange(1, 6))
        store.append(recorder, rng, size)
        count -= size
    return recorder


# --- the happy paths -----------------------------------------------------------------------------


def test_an_empty_store_verifies(store: Store) -> None:
    store.open()
    with store.tampering() as t:
        report = t.verify()
    assert report == VerifyReport(
        ok=True, checked=0, total=0, head_position=0, head_hash=GENESIS, problem=None
    )


def test_one_event_verifies(store: Store) -> None:
    filled(store, 1)
    with store.tampering() as t:
        report = t.verify()
        assert report.ok
        assert (report.checked, report.total) == (1, 1)
        assert report.head_position == t.event_ids()[0]
        assert report.head_hash == t.link_of(report.head_position)
        assert report.head_hex == report.head_hash.hex()
        assert len(report.head_hash) == 32


@pytest.mark.parametrize("page_size", [1, 7, 1000])
def test_many_events_with_gaps_verify_in_pages(store: Store, page_size: int) -> None:
    recorder = filled(store, 40)
    store.burn_ids(recorder)
    store.append(recorder, random.Random(1), 5)
    seen: list[tuple[int, int]] = []
    with store.tampering() as t:
        ids = t.event_ids()
        report = verify(t.reader, page_size=page_size, progress=lambda *a: seen.append(a))
    assert report.ok, report.problem
    assert report.checked == report.total == 45
    assert report.head_position == ids[-1]
    if store.kind == "postgres":
        assert ids != list(range(ids[0], ids[0] + len(ids)))  # a gap, and the chain spans it
    assert seen[0] == (0, 45)
    assert seen[-1] == (45, 45)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert len(seen) >= 45 // page_size


def test_the_chain_is_written_with_the_events_and_only_then(store: Store) -> None:
    recorder = filled(store, 3)
    store.burn_ids(recorder)  # the failed insert wrote no chain row either
    with store.tampering() as t:
        assert t.chain_ids() == t.event_ids()


def test_concurrent_writers_keep_one_chain(store: Store) -> None:
    import threading

    recorder = store.open()
    errors: list[BaseException] = []

    def write(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(15):
                recorder.insert_events(
                    [stored_event(rng, uuid4(), 1) for _ in range(rng.randrange(1, 4))]
                )
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with store.tampering() as t:
        report = t.verify()
    assert report.ok, report.problem
    assert report.checked == report.total >= 60


# --- every kind of problem -----------------------------------------------------------------------


def _middle_and_last(t: Tampering) -> tuple[int, int]:
    ids = t.event_ids()
    return ids[len(ids) // 2], ids[-1]


def test_a_changed_state_byte_is_modified(store: Store) -> None:
    filled(store, 20)
    with store.tampering() as t:
        middle, _ = _middle_and_last(t)
        state = bytearray(t.row(middle)[3])
        state[3] ^= 0x01
        t.set_state(middle, bytes(state))
        report = t.verify()
        assert not report.ok
        assert report.problem is not None
        assert (report.problem.position, report.problem.kind) == (middle, ProblemKind.MODIFIED)
        previous = t.event_ids()[t.event_ids().index(middle) - 1]
        assert report.head_position == previous
        assert report.head_hash == t.link_of(previous)
        assert report.checked == t.event_ids().index(middle)


def test_a_changed_topic_version_or_originator_is_modified(store: Store) -> None:
    filled(store, 20)
    for change in ("topic", "version", "originator"):
        with store.tampering() as t:
            middle, _ = _middle_and_last(t)
            if change == "topic":
                t.set_topic(middle, "acctdomain.domain.events:Other")
            elif change == "version":
                t.shift_version(middle, 1000)
            else:
                t.set_originator(middle, uuid4())
            problem = t.verify().problem
            assert problem is not None
            assert (problem.position, problem.kind) == (middle, ProblemKind.MODIFIED), change


def test_a_deleted_event_is_missing(store: Store) -> None:
    filled(store, 20)
    with store.tampering() as t:
        middle, last = _middle_and_last(t)
        t.delete_event(middle)
        problem = t.verify(page_size=3).problem
        assert problem is not None
        assert (problem.position, problem.kind) == (middle, ProblemKind.MISSING)
    with store.tampering() as t:
        t.delete_event(last)
        problem = t.verify().problem
        assert problem is not None
        assert (problem.position, problem.kind) == (last, ProblemKind.MISSING)


def test_a_swapped_pair_is_reordered(store: Store) -> None:
    filled(store, 20)
    with store.tampering() as t:
        ids = t.event_ids()
        t.swap_events(ids[4], ids[11])
        problem = t.verify(page_size=4).problem
        assert problem is not None
        assert (problem.position, problem.kind) == (ids[4], ProblemKind.REORDERED)
        assert f"position {ids[11]}" in problem.detail


def test_an_inserted_event_is_inserted(store: Store) -> None:
    recorder = filled(store, 10)
    with store.tampering() as t:
        last = t.event_ids()[-1]
        t.insert_event(last + 1, uuid4())
        problem = t.verify().problem
        assert problem is not None
        assert (problem.position, problem.kind) == (last + 1, ProblemKind.INSERTED)
    if store.kind == "postgres":  # a gap in the middle, filled by a forger
        store.burn_ids(recorder)
        store.append(recorder, random.Random(3), 3)
        with store.tampering() as t:
            ids = t.event_ids()
            gap = next(a + 1 for a, b in itertools.pairwise(ids) if b > a + 1)
            t.insert_event(gap, uuid4())
            problem = t.verify().problem
            assert problem is not None
            assert (problem.position, problem.kind) == (gap, ProblemKind.INSERTED)


def test_a_deleted_chain_row_is_chain_row_missing(store: Store) -> None:
    filled(store, 10)
    with store.tampering() as t:
        middle, last = _middle_and_last(t)
        t.delete_link(middle)
        problem = t.verify().problem
        assert problem is not None
        assert (problem.position, problem.kind) == (middle, ProblemKind.CHAIN_ROW_MISSING)
    with store.tampering() as t:  # at the end, it looks like an event appended unchained
        t.delete_link(last)
        problem = t.verify().problem
        assert problem is not None
        assert (problem.position, problem.kind) == (last, ProblemKind.INSERTED)


def test_a_changed_chain_row_is_chain_row_modified(store: Store) -> None:
    filled(store, 10)
    with store.tampering() as t:
        middle, last = _middle_and_last(t)
        t.set_link(middle, bytes(32))
        problem = t.verify().problem
        assert problem is not None
        assert (problem.position, problem.kind) == (middle, ProblemKind.CHAIN_ROW_MODIFIED)
    with store.tampering() as t:
        t.set_link(last, bytes(32))
        problem = t.verify().problem
        assert problem is not None
        assert (problem.position, problem.kind) == (last, ProblemKind.MODIFIED)


def test_an_inserted_chain_row_is_chain_row_inserted(store: Store) -> None:
    recorder = filled(store, 10)
    with store.tampering() as t:
        last = t.event_ids()[-1]
        t.insert_link(last + 5, bytes(32))  # after the end: a deleted last event looks alike
        problem = t.verify().problem
        assert problem is not None
        assert (problem.position, problem.kind) == (last + 5, ProblemKind.MISSING)
    if store.kind == "postgres":
        store.burn_ids(recorder)
        store.append(recorder, random.Random(3), 3)
        with store.tampering() as t:
            ids = t.event_ids()
            gap = next(a + 1 for a, b in itertools.pairwise(ids) if b > a + 1)
            t.insert_link(gap, bytes(32))
            problem = t.verify(page_size=2).problem
            assert problem is not None
            assert (problem.position, problem.kind) == (gap, ProblemKind.CHAIN_ROW_INSERTED)


def test_swapped_chain_rows_are_found_at_the_first(store: Store) -> None:
    filled(store, 10)
    with store.tampering() as t:
        ids = t.event_ids()
        t.swap_links(ids[2], ids[6])
        problem = t.verify().problem
        assert problem is not None
        assert (problem.position, problem.kind) == (ids[2], ProblemKind.CHAIN_ROW_MODIFIED)


# --- stores without a chain, and what verify accepts ---------------------------------------------


def test_an_old_sqlite_store_gets_its_chain_when_first_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    write_legacy_sqlite(path, random.Random(5), [1, 2, 3, 7, 8, 20])
    before = verify(str(path))
    assert not before.ok
    assert before.problem is not None
    assert before.problem.kind is ProblemKind.NO_CHAIN
    assert before.problem.position == 1
    assert "no hash chain" in before.problem.detail
    store = Store("sqlite", parse_store(str(path)))
    recorder = store.open()
    try:
        store.streams = {uuid4(): 0}
        store.append(recorder, random.Random(6), 3)
    finally:
        store.close()
    report = verify(str(path))
    assert report.ok, report.problem
    assert report.checked == 9
    assert report.head_position == 23


@pytest.mark.postgres
def test_an_old_postgres_store_gets_its_chain_when_first_opened() -> None:
    url, schema = new_schema_url()
    spec = parse_store(url)
    try:
        env = {**spec.environment(), "PERSISTENCE_MODULE": "eventsourcing.postgres"}
        with spec.setting_up():
            old = InfrastructureFactory.construct(Environment(APP_NAME, env))
        recorder = old.application_recorder()
        recorder.insert_events([StoredEvent(uuid4(), 1, "t", b"{}") for _ in range(5)])
        old.close()
        before = verify(url)
        assert before.problem is not None
        assert before.problem.kind is ProblemKind.NO_CHAIN
        service = AccountService(url, plugins=PluginHost(entry_points=False))
        try:
            report = verify(service)
            assert report.ok, report.problem
            assert report.checked == 5
        finally:
            service.close()
    finally:
        drop_schema(schema)


def test_a_store_with_no_tables_verifies_empty(tmp_path: Path) -> None:
    assert verify(str(tmp_path / "nothing-yet.db")).ok


def test_verify_takes_a_service_its_recorder_a_url_or_a_spec(tmp_path: Path) -> None:
    path = str(tmp_path / "book.db")
    service = AccountService(path, plugins=PluginHost(entry_points=False))
    try:
        service.open_account(
            name="Acme",
            segment="enterprise",
            industry="logistics",
            currency="EUR",
            manager="amy",
            manager_type="strategic",
            actor="amy",
        )
        reports = [
            verify(service),
            verify(service.recorder),
            verify(path),
            verify(parse_store(path)),
        ]
    finally:
        service.close()
    assert all(r.ok and r.checked == r.total == 1 for r in reports)
    assert len({r.head_hash for r in reports}) == 1


def test_an_in_memory_store_has_no_chain() -> None:
    service = AccountService("memory:", plugins=PluginHost(entry_points=False))
    try:
        with pytest.raises(StoreConfigurationError, match="in-memory store keeps no hash chain"):
            verify(service)
    finally:
        service.close()
    with pytest.raises(StoreConfigurationError, match="in-memory"):
        verify("memory:")


def test_something_that_is_not_a_store_is_refused() -> None:
    with pytest.raises(StoreConfigurationError, match="expected an application"):
        verify(object())
    with pytest.raises(StoreConfigurationError):
        verify("ftp://example.com/store")


def test_an_unreadable_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreConfigurationError, match="cannot read SQLite file"):
        verify(str(path))


@pytest.mark.parametrize("page_size", [0, -1, 1.5, True, "10"])
def test_a_bad_page_size_is_refused(tmp_path: Path, page_size: Any) -> None:
    with pytest.raises(InvalidValue) as refused:
        verify(str(tmp_path / "x.db"), page_size=page_size)
    assert refused.value.field == "page_size"


def test_a_progress_that_is_not_callable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue) as refused:
        verify(str(tmp_path / "x.db"), progress=42)  # type: ignore[arg-type]
    assert refused.value.field == "progress"


def test_a_value_of_another_type_is_modified_not_a_crash(tmp_path: Path) -> None:
    # SQLite stores whatever it is given: text in the state column, text in the version.
    store = Store("sqlite", parse_store(str(tmp_path / "events.db")))
    filled(store, 6)
    store.close()
    for statement in (
        "UPDATE {events} SET state = 'plain text' WHERE {id} = 3",
        "UPDATE {events} SET originator_version = 'two' WHERE {id} = 3",
        "UPDATE {events} SET originator_id = NULL WHERE {id} = 3",
        "UPDATE {chain} SET hash = 'text' WHERE notification_id = 3",
    ):
        with store.tampering() as t:
            t.sql(statement)
            problem = t.verify().problem
            assert problem is not None
            assert problem.position == 3, statement
            assert problem.kind in (ProblemKind.MODIFIED, ProblemKind.CHAIN_ROW_MODIFIED)
