"""Checking a store against its hash chain: :func:`verify`."""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import attrs

from acctdomain.audit.chain import GENESIS, HEADER, link
from acctdomain.audit.parallel_verify import (
    Source,
    auto_workers,
    postgres_source,
    quick_pass,
    sqlite_source,
)
from acctdomain.audit.readers import (
    DEFAULT_PAGE_SIZE,
    ChainReader,
    PostgresChainReader,
    Row,
    SQLiteChainReader,
)
from acctdomain.errors import InvalidValue, StoreConfigurationError

if TYPE_CHECKING:
    from acctdomain.application.stores import StoreSpec

__all__ = ["Problem", "ProblemKind", "Progress", "VerifyReport", "verify"]

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)``: events checked so far, events in the store."""


class ProblemKind(StrEnum):
    """What is wrong at the first bad position."""

    MODIFIED = "modified"
    """The event there is not the one the chain recorded (a changed byte of its state, topic,
    version or originator), or, at the very end of the store, it or its chain row changed."""
    MISSING = "missing"
    """The chain records an event there that the store no longer has (it was deleted)."""
    INSERTED = "inserted"
    """The store has an event there that the chain does not cover: the chain runs on past it
    as if it were not there. At the end of the store (no chain row after it to tell) this is
    also what a deleted last chain row looks like."""
    REORDERED = "reordered"
    """The event there is one the chain recorded at another (later) position: events were
    swapped or moved."""
    CHAIN_ROW_MISSING = "chain row missing"
    """The event is sound but its chain row was deleted: the chain runs on through its hash."""
    CHAIN_ROW_MODIFIED = "chain row modified"
    """The event is sound but the hash stored for it was changed: the chain runs on from the
    hash the event really has."""
    CHAIN_ROW_INSERTED = "chain row inserted"
    """A chain row with no event, which the chain runs on past as if it were not there."""
    NO_CHAIN = "no chain"
    """The store has events but no chain at all: it was written before the chain existed and
    not opened since by a version that builds it."""


@attrs.frozen(kw_only=True)
class Problem:
    """The first thing found wrong."""

    position: int
    """The notification id where it is."""
    kind: ProblemKind
    detail: str
    """A sentence saying what was found there."""


@attrs.frozen(kw_only=True)
class VerifyReport:
    """What :func:`verify` found."""

    ok: bool
    """True when every event matched its link of the chain."""
    checked: int
    """Events whose link matched, in order, before the first problem (all of them if ok)."""
    total: int
    """Events the store held when the check began."""
    head_position: int
    """Notification id of the last event that checked out (0 if none)."""
    head_hash: bytes
    """Its chain hash (:data:`acctdomain.audit.GENESIS` if none): with ``head_position``, what
    a checkpoint would sign."""
    problem: Problem | None = None
    """The first problem, None when ok."""

    @property
    def head_hex(self) -> str:
        """``head_hash`` in hexadecimal."""
        return self.head_hash.hex()


def verify(
    service_or_store: Any,
    *,
    progress: Progress | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    workers: int | None = None,
) -> VerifyReport:
    """Walk the store's hash chain in notification order and report the first problem.

    ``service_or_store`` is an ``AccountService`` (or any eventsourcing application on one of
    our stores), one of its event recorders, a store URL or :class:`StoreSpec`, or a
    :class:`~acctdomain.audit.readers.SQLiteChainReader` /
    :class:`~acctdomain.audit.readers.PostgresChainReader` on a connection of your own. The
    store is read in pages of ``page_size`` events inside one read transaction, so memory stays
    bounded and writers may go on appending; ``progress(done, total)`` is called after each page.

    Each event is first checked against the stored hash of the one before it, which lets
    ``workers`` processes check contiguous ranges of the store side by side (see
    :mod:`acctdomain.audit.parallel_verify`); only when something does not check out is the
    chain walked from the last sound event on to name the first problem, so the report is the
    same whatever ``workers`` is. ``workers=None`` (the default) uses 2 processes for stores of
    100,000 events or more when there are 2 cores, else 1. Workers need a store they can open by
    themselves: a reader on a connection of your own, an in-memory SQLite database, or
    ``workers=1`` reads in the calling process only.

    In-memory stores keep no chain: they raise :class:`~acctdomain.errors.StoreConfigurationError`,
    as does anything that is not a store.
    """
    _check_options(progress, page_size, workers)
    with _open_source(service_or_store) as (reader, source):
        return _verify(reader, progress, page_size, workers=workers, source=source)


def _check_options(progress: Progress | None, page_size: int, workers: int | None = 1) -> None:
    """Refuse a ``page_size``, ``progress`` or ``workers`` that a walk of the chain cannot use."""
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise InvalidValue("page_size", f"expected a positive number of events, got {page_size!r}")
    if progress is not None and not callable(progress):
        raise InvalidValue("progress", f"expected a callable(done, total), got {progress!r}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise InvalidValue(
            "workers", f"expected a positive number of processes or None, got {workers!r}"
        )


# --- the walk ------------------------------------------------------------------------------------


def _verify(
    reader: ChainReader,
    progress: Progress | None,
    page_size: int,
    *,
    workers: int | None = 1,
    source: Source | None = None,
) -> VerifyReport:
    total = reader.count_events()
    if progress is not None:
        progress(0, total)
    if total and (not reader.has_chain() or reader.count_links() == 0):
        first = reader.first_event()
        assert first is not None
        return VerifyReport(
            ok=False,
            checked=0,
            total=total,
            head_position=0,
            head_hash=GENESIS,
            problem=Problem(
                position=first,
                kind=ProblemKind.NO_CHAIN,
                detail=f"the store holds {total} event(s) but no hash chain: open it once "
                "with this version of acctdomain to build the chain",
            ),
        )
    if not reader.has_chain():
        return VerifyReport(ok=True, checked=0, total=0, head_position=0, head_hash=GENESIS)
    previous, position, checked = GENESIS, 0, 0
    if total:
        prefix = quick_pass(
            reader,
            source,
            total=total,
            page_size=page_size,
            workers=auto_workers(total) if workers is None else workers,
            progress=progress,
        )
        if prefix.complete and prefix.checked == total:
            return VerifyReport(
                ok=True,
                checked=total,
                total=total,
                head_position=prefix.position,
                head_hash=prefix.head,
            )
        if prefix.checked:  # the walk from the genesis would compute these very hashes
            previous, position, checked = prefix.head, prefix.position, prefix.checked
    # The walk that names the problem, from the last event that checked out.
    sha256, pack = hashlib.sha256, HEADER.pack
    for page in reader.pages(position, page_size):
        for row in page:
            notification_id, originator_id, version, topic, state, stored = row
            if originator_id is not None and stored is not None:
                try:
                    digest = sha256(previous)
                    digest.update(
                        pack(notification_id, version, len(originator_id), len(topic), len(state))
                    )
                    digest.update(originator_id)
                    digest.update(topic)
                    digest.update(state)
                    computed = digest.digest()
                except (TypeError, struct.error):  # a value of the wrong type: not as recorded
                    computed = b""
                if computed == stored:
                    previous, position = computed, notification_id
                    checked += 1
                    continue
            problem = _diagnose(reader, previous, row, page_size)
            if progress is not None:
                progress(checked, total)
            return VerifyReport(
                ok=False,
                checked=checked,
                total=total,
                head_position=position,
                head_hash=previous,
                problem=problem,
            )
        if progress is not None:
            progress(checked, total)
    return VerifyReport(
        ok=True, checked=checked, total=total, head_position=position, head_hash=previous
    )


def _link(previous: bytes, row: Row) -> bytes | None:
    """The link of ``row`` after ``previous``; None if a field has a type no recorder writes."""
    notification_id, originator_id, version, topic, state, _ = row
    if originator_id is None:
        return None
    try:
        return link(previous, notification_id, originator_id, version, topic, state)
    except (TypeError, struct.error):
        return None


def _rows_after(reader: ChainReader, position: int, page_size: int) -> Iterator[Row]:
    for page in reader.pages(position, page_size):
        yield from page


def _links_to(previous: bytes, row: Row | None) -> bool:
    """True if ``row`` is a sound event whose stored hash follows from ``previous``."""
    if row is None:
        return False
    stored = row[5]
    return stored is not None and _link(previous, row) == stored


def _diagnose(reader: ChainReader, previous: bytes, row: Row, page_size: int) -> Problem:
    """Name what is wrong at ``row``, the first row that does not follow from ``previous``,
    by looking at the row after it (and, for a moved event, at the rest of the store)."""
    notification_id, originator_id, version, stored = row[0], row[1], row[2], row[5]
    following = next(_rows_after(reader, notification_id, page_size), None)
    at_end = following is None

    def problem(kind: ProblemKind, detail: str) -> Problem:
        return Problem(position=notification_id, kind=kind, detail=detail)

    if originator_id is None:
        assert stored is not None
        if _links_to(stored, following) or at_end:
            return problem(
                ProblemKind.MISSING,
                "the chain records an event here that the store does not have",
            )
        if _links_to(previous, following):
            return problem(
                ProblemKind.CHAIN_ROW_INSERTED,
                "a chain row with no event, which the chain does not link through",
            )
        return problem(
            ProblemKind.MISSING, "the chain records an event here that the store does not have"
        )
    computed = _link(previous, row)
    if stored is None:
        if computed is not None and _links_to(computed, following):
            return problem(
                ProblemKind.CHAIN_ROW_MISSING,
                "the event is sound but its chain row was deleted",
            )
        if at_end:
            return problem(
                ProblemKind.INSERTED,
                "the last event is not covered by the chain (appended without a chain row, "
                "or its chain row was deleted)",
            )
        return problem(
            ProblemKind.INSERTED, "an event the chain does not cover: the chain runs on past it"
        )
    if computed is not None and _links_to(computed, following):
        return problem(
            ProblemKind.CHAIN_ROW_MODIFIED,
            "the event is sound but the hash stored for it was changed",
        )
    moved_from = _recorded_at(reader, row, page_size)
    if moved_from is not None:
        return problem(
            ProblemKind.REORDERED,
            f"this event is the one the chain recorded at position {moved_from}",
        )
    if at_end:
        return problem(
            ProblemKind.MODIFIED,
            "the last event or its chain row was changed after it was recorded",
        )
    return problem(
        ProblemKind.MODIFIED,
        f"the event (originator version {version}) was changed after it was recorded",
    )


def _recorded_at(reader: ChainReader, row: Row, page_size: int) -> int | None:
    """The later position whose chain link this event's content satisfies, if any."""
    before = row[5]
    assert before is not None
    for candidate in _rows_after(reader, row[0], page_size):
        stored = candidate[5]
        if stored is None:
            continue
        if _link(before, (candidate[0], *row[1:5], None)) == stored:
            return candidate[0]
        before = stored
    return None


# --- what to read --------------------------------------------------------------------------------


@contextmanager
def _open_source(target: Any) -> Iterator[tuple[ChainReader, Source | None]]:
    """The reader for ``target``, and where worker processes can read the same store (None for
    a reader of the caller's, whose transaction they could not share, or an in-memory file)."""
    with _open_reader(target) as reader:
        source: Source | None = None
        if reader is not target and isinstance(reader, SQLiteChainReader):
            source = sqlite_source(reader.connection, reader.events_table)
        elif reader is not target and isinstance(reader, PostgresChainReader):
            source = postgres_source(reader.connection, reader.schema, reader.events_table)
        yield reader, source


@contextmanager
def _open_reader(target: Any) -> Iterator[ChainReader]:
    if isinstance(target, (SQLiteChainReader, PostgresChainReader)):
        yield target
        return
    from acctdomain.application.stores import StoreSpec, parse_store

    if isinstance(target, str):
        target = parse_store(target)
    if isinstance(target, StoreSpec):
        with _reader_for_spec(target) as reader:
            yield reader
        return
    recorder = getattr(target, "recorder", target)
    with _reader_for_recorder(recorder) as reader:
        yield reader


def _no_chain(what: str) -> StoreConfigurationError:
    return StoreConfigurationError(
        "store", f"{what} keeps no hash chain (only SQLite and PostgreSQL stores do)"
    )


@contextmanager
def _reader_for_spec(spec: StoreSpec) -> Iterator[ChainReader]:
    if spec.kind == "memory":
        raise _no_chain("an in-memory store")
    if spec.kind == "sqlite":
        with _sqlite_snapshot(spec.path, "stored_events") as reader:
            yield reader
        return
    from acctdomain.application.service import AccountService

    with spec.connect() as connection, _postgres_snapshot(connection):
        yield PostgresChainReader(
            connection, schema=spec.schema, events_table=f"{AccountService.name}_events"
        )


@contextmanager
def _reader_for_recorder(recorder: Any) -> Iterator[ChainReader]:
    from eventsourcing.postgres import PostgresApplicationRecorder
    from eventsourcing.sqlite import SQLiteApplicationRecorder

    if isinstance(recorder, SQLiteApplicationRecorder):
        db_name = recorder.datastore.pool.db_name
        with _sqlite_snapshot(db_name, recorder.events_table_name) as reader:
            yield reader
        return
    if isinstance(recorder, PostgresApplicationRecorder):
        datastore = recorder.datastore
        with datastore.get_connection() as connection, _postgres_snapshot(connection):
            yield PostgresChainReader(
                connection, schema=datastore.schema, events_table=recorder.events_table_name
            )
        return
    from eventsourcing.popo import POPORecorder

    if isinstance(recorder, POPORecorder):
        raise _no_chain("an in-memory store")
    raise StoreConfigurationError(
        "store",
        "expected an application, an event recorder, a store URL or StoreSpec, or a chain "
        f"reader, got {type(recorder).__name__}",
    )


@contextmanager
def _sqlite_snapshot(db_name: str, events_table: str) -> Iterator[SQLiteChainReader]:
    try:
        connection = sqlite3.connect(db_name, uri=True, isolation_level=None)
    except sqlite3.Error as error:
        raise StoreConfigurationError(
            "store", f"cannot open SQLite file {db_name!r}: {error}"
        ) from error
    with closing(connection):
        try:
            connection.execute("BEGIN")  # one snapshot for every page
            yield SQLiteChainReader(connection, events_table=events_table)
        except sqlite3.DatabaseError as error:
            raise StoreConfigurationError(
                "store", f"cannot read SQLite file {db_name!r}: {error}"
            ) from error
        finally:
            if connection.in_transaction:
                connection.execute("ROLLBACK")


@contextmanager
def _postgres_snapshot(connection: Any) -> Iterator[None]:
    with connection.transaction(force_rollback=True):
        # One snapshot for every page, as SQLite's read transaction gives.
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield
