"""verify(workers=...): worker processes checking ranges of the store side by side give the very
report the walk in one process gives, on sound and on tampered stores, on both backends.

Workers read the store through connections of their own, so the mutations here are committed
(each to its own copy of a store: a copied SQLite file, or copied tables in a new PostgreSQL
schema), unlike the rolled-back ones of the mutation campaign.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from acctdomain.application.stores import parse_store
from acctdomain.audit import ProblemKind, SQLiteChainReader, VerifyReport, verify
from acctdomain.audit import parallel_verify as parallel
from acctdomain.audit.chain import GENESIS
from acctdomain.audit.verify_worker import Prefix
from acctdomain.errors import InvalidValue
from tests.pg import POSTGRES_URL, drop_schema, new_schema_url
from tests.test_audit_mutations import MUTATORS
from tests.test_audit_verify import Store, Tampering, write_legacy_sqlite

EVENTS = 150
WORKERS = (2, 3)


class Original:
    """A sound store on one backend, and committed copies of it to tamper with."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.copies = 0
        self.schemas: list[str] = []
        rng = random.Random(99)
        if kind == "sqlite":
            # Older events with gaps (chained on first open), then the live recorder's.
            path = tmp_path / "original.db"
            ids = sorted(rng.sample(range(1, EVENTS), EVENTS // 2))
            streams = write_legacy_sqlite(path, rng, ids)
            self.store = Store("sqlite", parse_store(str(path)))
            self.store.streams = streams
        else:
            url, schema = new_schema_url()
            self.schemas.append(schema)
            self.store = Store("postgres", parse_store(url), schema)
        recorder = self.store.open()
        while len(self.store.streams) < 3 or sum(self.store.streams.values()) < EVENTS:
            self.store.append(recorder, rng, rng.randrange(1, 5))
            if kind == "postgres" and rng.random() < 0.2:
                self.store.burn_ids(recorder)  # gaps in the notification ids
        self.store.close()  # SQLite: everything in the file itself, nothing left in the WAL

    @contextmanager
    def copy(self) -> Iterator[Tampering]:
        """A copy of the store, and committing SQL on it."""
        self.copies += 1
        if self.kind == "sqlite":
            path = self.tmp_path / f"copy-{self.copies}.db"
            assert self.store.spec.path is not None
            shutil.copyfile(self.store.spec.path, path)
            store = Store("sqlite", parse_store(str(path)))
            connection = sqlite3.connect(path, isolation_level=None)  # autocommit
            try:
                yield Tampering(store, connection, SQLiteChainReader(connection))
            finally:
                connection.close()
            return
        url, schema = new_schema_url()
        self.schemas.append(schema)
        with parse_store(POSTGRES_URL).connect() as pg:
            pg.autocommit = True
            pg.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            for table in ("acctdomain_events", "acctdomain_events_chain"):
                source = sql.Identifier(self.store.schema, table)
                target = sql.Identifier(schema, table)
                pg.execute(
                    sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(target, source)
                )
                pg.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(target, source))
            store = Store("postgres", parse_store(url), schema)
            yield Tampering(store, pg, None)

    def drop(self) -> None:
        for schema in self.schemas:
            drop_schema(schema)


@pytest.fixture(params=["sqlite", "postgres"])
def original(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Original]:
    made = Original(request.param, tmp_path)
    try:
        yield made
    finally:
        made.drop()


def target(t: Tampering) -> str:
    """The store URL (or path) of a copy: what workers can open by themselves."""
    spec = t.store.spec
    if spec.kind == "sqlite":
        assert spec.path is not None
        return spec.path
    return f"{POSTGRES_URL}?schema={t.store.schema}"


def reports(where: str, page_size: int) -> list[VerifyReport]:
    return [verify(where, page_size=page_size, workers=n) for n in (1, *WORKERS)]


# --- sound stores --------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1, 7, 2000])
def test_a_sound_store_verifies_the_same_with_workers(original: Original, page_size: int) -> None:
    with original.copy() as t:
        ids = t.event_ids()
        one, *others = reports(target(t), page_size)
        assert one.head_hash == t.link_of(ids[-1])
    assert one.ok, one.problem
    assert (one.checked, one.total, one.head_position) == (len(ids), len(ids), ids[-1])
    assert all(other == one for other in others)


def test_progress_with_workers_rises_to_the_total(original: Original) -> None:
    with original.copy() as t:
        seen: list[tuple[int, int]] = []
        report = verify(target(t), page_size=3, workers=2, progress=lambda *a: seen.append(a))
    assert report.ok
    total = report.total
    assert seen[0] == (0, total)
    assert seen[-1] == (total, total)
    assert {t for _, t in seen} == {total}
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert len(seen) > 2


def test_an_empty_store_verifies_with_workers(tmp_path: Path) -> None:
    store = Store("sqlite", parse_store(str(tmp_path / "empty.db")))
    store.open()
    store.close()
    assert verify(str(tmp_path / "empty.db"), workers=2) == VerifyReport(
        ok=True, checked=0, total=0, head_position=0, head_hash=GENESIS
    )


# --- tampered stores -----------------------------------------------------------------------------


def test_every_mutation_is_found_at_the_same_position_with_workers(original: Original) -> None:
    rng = random.Random(f"parallel-{original.kind}")
    rounds = 4 if original.kind == "sqlite" else 2
    for number in range(rounds * len(MUTATORS)):
        mutate = MUTATORS[number % len(MUTATORS)]
        page_size = rng.choice([5, 64, 1000])
        with original.copy() as t:
            position, kind = mutate(t, rng)
            one, *others = reports(target(t), page_size)
        context = (number, mutate.__name__, page_size)
        assert not one.ok, context
        assert one.problem is not None
        assert (one.problem.position, one.problem.kind) == (position, kind), (context, one)
        assert one.head_position < position
        for other in others:
            assert other == one, (context, other, one)


def test_a_problem_in_the_first_range_stops_the_other_workers_early(original: Original) -> None:
    with original.copy() as t:
        first = t.event_ids()[1]
        t.delete_event(first)
        one, *others = reports(target(t), 4)
    assert one.problem is not None
    assert (one.problem.position, one.problem.kind) == (first, ProblemKind.MISSING)
    assert one.checked == 1
    assert all(other == one for other in others)


def test_a_problem_in_the_last_range_is_named_after_a_sound_first(original: Original) -> None:
    with original.copy() as t:
        ids = t.event_ids()
        last = ids[-3]
        t.set_state(last, b'{"forged": true}')
        one, *others = reports(target(t), 10)
    assert one.problem is not None
    assert (one.problem.position, one.problem.kind) == (last, ProblemKind.MODIFIED)
    assert one.checked == len(ids) - 3
    assert all(other == one for other in others)


def test_a_chain_row_without_an_event_in_a_sound_prefix_is_found(original: Original) -> None:
    with original.copy() as t:
        ids = t.event_ids()
        gaps = [n for n in range(ids[0], ids[-1]) if n not in set(ids)]
        gap = gaps[len(gaps) // 2]
        t.insert_link(gap, b"\x01" * 32)
        one, *others = reports(target(t), 2000)
    assert one.problem is not None
    assert (one.problem.position, one.problem.kind) == (gap, ProblemKind.CHAIN_ROW_INSERTED)
    assert all(other == one for other in others)


# --- where workers cannot go, or fail ------------------------------------------------------------


def test_a_reader_of_your_own_is_read_in_its_own_transaction(tmp_path: Path) -> None:
    original = Original("sqlite", tmp_path)
    assert original.store.spec.path is not None
    connection = sqlite3.connect(original.store.spec.path, isolation_level=None)
    try:
        connection.execute("BEGIN")
        position = connection.execute("SELECT max(rowid) FROM stored_events").fetchone()[0] // 2
        connection.execute("UPDATE stored_events SET state = x'00' WHERE rowid >= ?", (position,))
        # Uncommitted: a worker with a connection of its own would not see it.
        report = verify(SQLiteChainReader(connection), workers=3, page_size=4)
        assert report.problem is not None
        assert report.problem.kind == ProblemKind.MODIFIED
        assert report.problem.position >= position
    finally:
        connection.execute("ROLLBACK")
        connection.close()
    assert verify(original.store.spec.path, workers=3).ok


def test_an_in_memory_sqlite_database_has_no_source_for_workers() -> None:
    connection = sqlite3.connect(":memory:")
    assert parallel.sqlite_source(connection, "stored_events") is None
    connection.close()


def broken_worker(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "no interpreter":
        monkeypatch.setattr(sys, "executable", "/nonexistent/python")
        return
    real = parallel.SQLiteSource.task

    def task(self: parallel.SQLiteSource) -> dict[str, Any]:
        return {**real(self), "path": "/nonexistent/folder/store.db"}  # it cannot open it

    monkeypatch.setattr(parallel.SQLiteSource, "task", task)


@pytest.mark.parametrize("how", ["no interpreter", "a worker that fails"])
def test_a_worker_that_cannot_check_leaves_its_range_to_the_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    original = Original("sqlite", tmp_path)
    with original.copy() as t:
        where = target(t)
        sound = verify(where, workers=1)
        with monkeypatch.context() as patch:
            broken_worker(patch, how)
            assert verify(where, workers=2) == sound
        position = t.event_ids()[-5]
        t.delete_link(position)
        tampered = verify(where, workers=1)
        broken_worker(monkeypatch, how)
        assert verify(where, workers=2) == tampered
    assert sound.ok
    assert tampered.problem is not None
    assert (tampered.problem.position, tampered.problem.kind) == (
        position,
        ProblemKind.CHAIN_ROW_MISSING,
    )


@pytest.mark.parametrize("workers", [0, -1, True, 1.5, "2"])
def test_a_bad_number_of_workers_is_refused(tmp_path: Path, workers: Any) -> None:
    with pytest.raises(InvalidValue) as refused:
        verify(str(tmp_path / "x.db"), workers=workers)
    assert refused.value.field == "workers"


# --- the pieces ----------------------------------------------------------------------------------


def test_ranges_cover_the_ids_once_the_callers_first_and_widest() -> None:
    for upto, workers in [(100_000, 2), (100_000, 3), (10, 2), (4, 2), (7, 3), (1_000, 4)]:
        bounds = parallel._bounds(upto, workers)
        assert (bounds[0], bounds[-1], len(bounds)) == (0, upto, workers + 1)
        assert bounds == sorted(bounds)
        widths = [high - low for low, high in itertools.pairwise(bounds)]
        assert widths[0] == max(widths)
    assert parallel._bounds(100_000, 2) == [0, 57_000, 100_000]


def test_joined_prefixes_stop_at_the_first_incomplete_range() -> None:
    a = Prefix(3, 30, b"a", True)
    empty = Prefix(0, 0, b"", True)
    b = Prefix(2, 50, b"b", False)
    c = Prefix(4, 90, b"c", True)
    assert parallel._joined([a, empty, c]) == Prefix(7, 90, b"c", True)
    assert parallel._joined([a, b, c]) == Prefix(5, 50, b"b", False)
    assert parallel._joined([a, Prefix(0, 0, b"", False), c]) == Prefix(3, 30, b"a", False)
    assert parallel._joined([Prefix(0, 0, b"", False)]) == Prefix(0, 0, GENESIS, False)


def test_auto_uses_workers_only_for_large_stores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1, 2, 3}, raising=False)
    assert parallel.auto_workers(parallel.AUTO_MIN_EVENTS - 1) == 1
    assert parallel.auto_workers(parallel.AUTO_MIN_EVENTS) == parallel.AUTO_MAX_WORKERS == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0}, raising=False)
    assert parallel.auto_workers(10 * parallel.AUTO_MIN_EVENTS) == 1


# --- the command line ----------------------------------------------------------------------------


def test_the_command_takes_workers(original: Original) -> None:
    from tests.test_cli_audit import as_json, audit

    with original.copy() as t:
        where = target(t)
        sound = [as_json(audit("verify", "--db", where, "--json", "--workers", n)) for n in "123"]
        t.delete_event(t.event_ids()[-10])
        broken = [audit("verify", "--db", where, "--json", "--workers", n) for n in "12"]
        refused = audit("verify", "--db", where, "--workers", "0")
    assert sound[0]["ok"] is True
    assert sound[0] == sound[1] == sound[2]
    assert [result.exit_code for result in broken] == [1, 1]
    first, second = (json.loads(result.stdout) for result in broken)
    assert first == second
    assert first["problem"]["kind"] == "missing"
    assert refused.exit_code != 0
    assert "--workers" in refused.output
