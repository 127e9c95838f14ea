"""The read-model store: a projection's rows and its position, committed together.

Backends implement a few primitives (read a position, fetch rows, commit a batch, reset);
this base class turns them into the API the runners use. A commit checks that the position
is still the one the batch started from, so two runners of one projection (two processes)
never both apply the same events: the second gets :class:`PositionConflict`.

A tracking row is never deleted: a reset sets its position to 0 and bumps its ``epoch``, so a
batch that started before a reset cannot commit even when the rebuild has come back to the
position it started from (its reads may straddle the reset).

Beside tracking, every store keeps two small tables keyed like it, by projection and version:
``rm_dead_letters`` (events a projection parked, written in the transaction of the batch that
parked them; a reset empties them with the tables), ``rm_paused`` (a row per paused
projection, so every runner on the store honours a pause) and ``rm_failures`` (the failure a
projection stopped on, so every process sees it stopped, until a resume or a rebuild).
``rm_serving`` says, per projection name, which version queries read (and its tables), so a
new version can be built beside the old one and take over in one write.

Partitions: workers in separate processes can share one projection version, each applying
the events of one part of the accounts (:class:`Partition`) and tracking its own position
(``<name>#<index>/<count>`` in ``rm_tracking``). ``rm_partitions`` records how many parts a
projection version is split into (no row: one, the whole). Taking up a partitioning
(:meth:`ReadModelStore.partition`) starts every part at the whole's position and moves the
whole's epoch, in one transaction; from then on a batch of the whole, or of a partitioning of
another count, is refused with :class:`LayoutConflict` (checked with the position, so a batch
started before the change cannot commit either). A reset or a version switch goes back to one
part.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import attrs

from acctdomain.errors import AcctDomainError
from acctdomain.plugins.types import Projection, ReadModel
from acctdomain.projections.batch import Batch, Changes, ShareBatch, StoreReader
from acctdomain.projections.codec import RowCodec
from acctdomain.projections.keys import Partition, ReadModelKey, key_of
from acctdomain.projections.status import Failure, ParkedEvent

__all__ = [
    "DEAD_LETTER_TABLE",
    "FAILURES_TABLE",
    "PARTITIONS_TABLE",
    "PAUSED_TABLE",
    "SERVING_TABLE",
    "TRACKING_TABLE",
    "Claim",
    "LayoutConflict",
    "LetterFilter",
    "PositionConflict",
    "ReadModelStore",
    "Tracking",
    "parked_from_row",
    "parked_to_row",
]

TRACKING_TABLE = "rm_tracking"
DEAD_LETTER_TABLE = "rm_dead_letters"
PAUSED_TABLE = "rm_paused"
SERVING_TABLE = "rm_serving"
PARTITIONS_TABLE = "rm_partitions"
FAILURES_TABLE = "rm_failures"


@attrs.frozen
class Tracking:
    """A tracked position in its epoch, with the number of parts its projection version is
    split into (1: run whole) and whether it is stopped on a failure (for a key without
    partition: it or any of its partitions; see :meth:`ReadModelStore.failure`)."""

    position: int
    epoch: int
    partitions: int = 1
    stopped: bool = False


@attrs.frozen
class LetterFilter:
    """Which dead letters of a projection version: all, one account's, or one position."""

    account_id: UUID | None = None
    position: int | None = None

    def matches(self, parked: ParkedEvent) -> bool:
        """Whether ``parked`` is selected."""
        return (self.account_id is None or parked.account_id == self.account_id) and (
            self.position is None or parked.position == self.position
        )


@attrs.frozen
class Claim:
    """A batch's move of its position: from ``start`` in ``epoch`` to ``end``."""

    start: int
    epoch: int
    end: int

    @property
    def next_epoch(self) -> int:
        """The epoch after the commit. A commit that changes rows without moving the position
        (a replay of dead letters, one account's rebuild) bumps it, so that a batch read
        before it, which would otherwise still find its (position, epoch), cannot commit
        rows computed from what it replaced."""
        return self.epoch + 1 if self.end == self.start else self.epoch


def parked_to_row(parked: ParkedEvent) -> tuple[Any, ...]:
    """A dead letter as the columns of the SQL stores' ``rm_dead_letters`` (text ids and an
    ISO time, so both backends store and return exactly the same)."""
    return (
        parked.projection,
        parked.version,
        parked.position,
        str(parked.account_id),
        parked.originator_version,
        parked.topic,
        parked.error,
        parked.parked_at.isoformat(),
    )


def parked_from_row(row: tuple[Any, ...]) -> ParkedEvent:
    """A dead letter from the columns written by :func:`parked_to_row`."""
    name, version, position, account, originator_version, topic, error, parked_at = row
    return ParkedEvent(
        projection=str(name),
        version=int(version),
        position=int(position),
        account_id=UUID(str(account)),
        originator_version=int(originator_version),
        topic=str(topic),
        error=None if error is None else str(error),
        parked_at=datetime.fromisoformat(str(parked_at)),
    )


class PositionConflict(AcctDomainError):
    """The position moved since the batch started (another runner committed, or a reset):
    the batch was discarded; read the position again."""


class LayoutConflict(AcctDomainError):
    """A projection version is split into ``partitions`` parts, and a runner of another
    split (``expected`` parts; 1: whole) tried to apply events to it. Nothing was written."""

    def __init__(self, projection: str, version: int, partitions: int, expected: int) -> None:
        split = "whole" if partitions == 1 else f"in {partitions} partitions"
        mine = "a whole runner" if expected == 1 else f"a runner of {expected} partitions"
        super().__init__(
            f"projection {projection!r} v{version} is run {split}, not by {mine}: "
            "stop the other workers and rebuild it to change how it is split"
        )
        self.projection = projection
        self.version = version
        self.partitions = partitions
        self.expected = expected

    def __reduce__(self) -> tuple[type[Exception], tuple[object, ...]]:
        return type(self), (self.projection, self.version, self.partitions, self.expected)


class ReadModelStore(abc.ABC):
    """Read-model tables and tracking positions on one backend."""

    def __init__(self, codec: RowCodec) -> None:
        self.codec = codec
        self._ready: set[ReadModelKey] = set()

    def position(self, subject: Projection | ReadModelKey) -> int:
        """The last notification id applied (0 when never run). For a projection version run
        in partitions, asked without one: the lowest of the partitions' positions (every
        event up to it is applied)."""
        key = self._prepared(subject)
        tracked = self._read_tracking(key)
        if key.partition is not None or tracked.partitions == 1:
            return tracked.position
        parts = (Partition(index, tracked.partitions) for index in range(tracked.partitions))
        return min(self._read_tracking(key.part(part)).position for part in parts)

    def tracking(self, subject: Projection | ReadModelKey) -> Tracking:
        """The position, epoch and partitioning of the key, read together."""
        return self._read_tracking(self._prepared(subject))

    def partition(self, key: ReadModelKey) -> None:
        """Run ``key``'s projection version in ``key.partition.count`` partitions from now on,
        unless it is already: each partition starts at the position of the whole, whose
        epoch moves (a batch of the whole still running cannot commit). LayoutConflict if it
        runs in another number of partitions (rebuild it first)."""
        if key.partition is None:
            raise ValueError("partition() needs a key with a partition")
        self._partition(self._prepared(key.whole), key.partition.count)

    @contextmanager
    def batch(
        self, subject: Projection | ReadModelKey, *, share: Mapping[str, str] | None = None
    ) -> Iterator[Batch]:
        """A batch of writes, committed with the position set by ``Batch.advance`` in one
        transaction when the block exits normally; an exception discards both. With
        ``share`` (key prefix per table), a :class:`ShareBatch` rebuilding those rows.
        LayoutConflict if the key's partitioning is not the projection version's."""
        key = self._prepared(subject)
        tracked = self._read_tracking(key)
        expected = 1 if key.partition is None else key.partition.count
        if tracked.partitions != expected:
            raise LayoutConflict(key.name, key.version, tracked.partitions, expected)
        start, epoch = tracked.position, tracked.epoch
        if share is None:
            batch = Batch(self, self.codec, key, start)
        else:
            batch = ShareBatch(self, self.codec, key, start, share)
        yield batch
        self._commit(key, Claim(start, epoch, batch.end), batch.changes())

    def reader(self, subject: Projection | ReadModelKey) -> ReadModel:
        """Read access to the committed tables, for queries."""
        return StoreReader(self, self.codec, self._prepared(subject))

    def reset(self, subject: Projection | ReadModelKey) -> None:
        """Empty the tables and dead letters of this projection version and forget its
        position (rebuild); if it is the version served, queries read the tables it declares
        now."""
        self._reset(self._prepared(subject))

    def dead_letters(
        self, subject: Projection | ReadModelKey, selection: LetterFilter | None = None
    ) -> list[ParkedEvent]:
        """The parked events of this projection version (all, or those selected), by
        position."""
        return self._select_letters(self._prepared(subject), selection or LetterFilter())

    def dead_letter_count(self, subject: Projection | ReadModelKey) -> int:
        """How many events this projection version has parked."""
        return self._count_letters(self._prepared(subject))

    def blocked_accounts(self, subject: Projection | ReadModelKey) -> set[UUID]:
        """The accounts with dead letters: their later events must be parked too."""
        return self._blocked_accounts(self._prepared(subject))

    def purge(self, subject: Projection | ReadModelKey, selection: LetterFilter) -> int:
        """Delete the selected dead letters without applying them; how many there were."""
        return self._delete_letters(self._prepared(subject), selection)

    def is_paused(self, subject: Projection | ReadModelKey) -> bool:
        """Whether some runner paused this projection version."""
        return self._read_paused(self._prepared(subject))

    def set_paused(self, subject: Projection | ReadModelKey, paused: bool) -> None:
        """Pause (or resume) this projection version for every runner on the store."""
        self._write_paused(self._prepared(subject), paused)

    def failure(self, subject: Projection | ReadModelKey) -> Failure | None:
        """What this projection version stopped on (for a key without partition, also what
        any of its partitions stopped on: the earliest), or None if it is not stopped."""
        return self._read_failure(self._prepared(subject))

    def set_failure(self, subject: Projection | ReadModelKey, failure: Failure) -> None:
        """Record that the key (the whole, or one partition) stopped on ``failure``."""
        self._write_failure(self._prepared(subject), failure)

    def clear_failures(self, subject: Projection | ReadModelKey) -> None:
        """Forget the failures of the projection version, and of all its partitions."""
        self._clear_failures(self._prepared(subject))

    def serving(self, subject: Projection | ReadModelKey) -> ReadModelKey | None:
        """The version of this projection that queries read (None before any is chosen)."""
        key = key_of(subject)
        # The bookkeeping tables only: a superseded version's own tables stay dropped.
        self._prepared(ReadModelKey(key.name, 0))
        found = self._read_serving(key.name)
        if found is None:
            return None
        version, tables = found
        return ReadModelKey(key.name, version, tables)

    def serve(self, subject: Projection | ReadModelKey) -> None:
        """Serve this version if no version of the projection is served yet (the first one);
        after that only :meth:`switch` changes it, so two runners cannot race it backwards."""
        self._write_serving(self._prepared(subject))

    def switch(self, old: ReadModelKey, new: Projection | ReadModelKey) -> bool:
        """Serve ``new`` in place of ``old`` and drop ``old`` (its tables, dead letters and
        pause; its position goes back to 0 in a new epoch, so a batch of it still running
        elsewhere cannot commit), in one transaction. False, and nothing done, if ``old`` is
        no longer the version served (another runner switched first)."""
        key = self._prepared(new)
        switched = self._switch(old, key)
        if switched:
            self._ready.discard(old)
        return switched

    def close(self) -> None:
        """Release connections (the store cannot be used afterwards)."""
        self._ready.clear()

    def _prepared(self, subject: Projection | ReadModelKey) -> ReadModelKey:
        key = key_of(subject)
        if key not in self._ready:
            self._create(key)
            self._ready.add(key)
        return key

    # --- backend primitives ------------------------------------------------------------------

    @abc.abstractmethod
    def fetch(self, table: str, key: str) -> str | None:
        """The committed text of one row, or None."""

    @abc.abstractmethod
    def fetch_all(self, table: str, prefix: str = "") -> Iterator[tuple[str, str]]:
        """Every committed row (whose key starts with ``prefix``), in key order."""

    @abc.abstractmethod
    def _create(self, key: ReadModelKey) -> None:
        """Create the key's tables and the tracking table if missing (safe when racing)."""

    @abc.abstractmethod
    def _read_tracking(self, key: ReadModelKey) -> Tracking:
        """The committed position and epoch of the key's tracking name ((0, 0) if none), how
        many partitions its projection version runs in (1 if none) and whether it is stopped
        (what :meth:`_read_failure` would find), in one read."""

    @abc.abstractmethod
    def _partition(self, key: ReadModelKey, count: int) -> None:
        """Atomically: nothing if the version runs in ``count`` partitions; if it runs whole,
        record ``count`` and set every partition's position to the whole's (in a new epoch),
        and move the whole's epoch; else raise LayoutConflict."""

    @abc.abstractmethod
    def _commit(self, key: ReadModelKey, claim: Claim, changes: Changes) -> None:
        """Write ``changes`` and move the position as claimed, atomically, or raise
        PositionConflict if the tracking row is no longer the one the batch started from."""

    @abc.abstractmethod
    def _reset(self, key: ReadModelKey) -> None:
        """Empty the key's tables and dead letters, set its position to 0 and bump its epoch,
        atomically; the same for every partition's position, and the version runs whole
        again, without failures."""

    @abc.abstractmethod
    def _select_letters(self, key: ReadModelKey, selection: LetterFilter) -> list[ParkedEvent]:
        """The key's selected dead letters, by position."""

    @abc.abstractmethod
    def _count_letters(self, key: ReadModelKey) -> int:
        """The number of the key's dead letters."""

    @abc.abstractmethod
    def _blocked_accounts(self, key: ReadModelKey) -> set[UUID]:
        """The accounts of the key's dead letters."""

    @abc.abstractmethod
    def _delete_letters(self, key: ReadModelKey, selection: LetterFilter) -> int:
        """Delete the key's selected dead letters; how many."""

    @abc.abstractmethod
    def _read_paused(self, key: ReadModelKey) -> bool:
        """Whether the key is paused."""

    @abc.abstractmethod
    def _write_paused(self, key: ReadModelKey, paused: bool) -> None:
        """Pause or resume the key (idempotent)."""

    @abc.abstractmethod
    def _read_failure(self, key: ReadModelKey) -> Failure | None:
        """The failure recorded for the key's tracking name; for a key without partition,
        the earliest of it and its partitions'."""

    @abc.abstractmethod
    def _write_failure(self, key: ReadModelKey, failure: Failure) -> None:
        """Record (or replace) the failure of the key's tracking name."""

    @abc.abstractmethod
    def _clear_failures(self, key: ReadModelKey) -> None:
        """Delete the failures of the key's version, the whole's and its partitions'."""

    @abc.abstractmethod
    def _read_serving(self, name: str) -> tuple[int, tuple[str, ...]] | None:
        """The served version of projection ``name`` and its tables, if one was chosen."""

    @abc.abstractmethod
    def _write_serving(self, key: ReadModelKey) -> None:
        """Serve ``key`` for its projection name unless one is served already."""

    @abc.abstractmethod
    def _switch(self, old: ReadModelKey, new: ReadModelKey) -> bool:
        """If ``old`` is served: serve ``new``, drop ``old``'s tables, delete its dead letters,
        pause, failures and partitioning, reset its positions (the whole's and its
        partitions') in a new epoch; atomically. Whether it was."""
