"""The read-model store: a projection's rows and its position, committed together.

Backends implement a few primitives (read a position, fetch rows, commit a batch, reset);
this base class turns them into the API the runners use. A commit checks that the position
is still the one the batch started from, so two runners of one projection (two processes)
never both apply the same events: the second gets :class:`PositionConflict`.

A tracking row is never deleted: a reset sets its position to 0 and bumps its ``epoch``, so a
batch that started before a reset cannot commit even when the rebuild has come back to the
position it started from (its reads may straddle the reset).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import contextmanager

import attrs

from acctdomain.plugins.types import Projection, ReadModel
from acctdomain.projections.batch import Batch, Changes, StoreReader
from acctdomain.projections.codec import RowCodec
from acctdomain.projections.keys import ReadModelKey, key_of

__all__ = ["TRACKING_TABLE", "Claim", "PositionConflict", "ReadModelStore"]

TRACKING_TABLE = "rm_tracking"


@attrs.frozen
class Claim:
    """A batch's move of its position: from ``start`` in ``epoch`` to ``end``."""

    start: int
    epoch: int
    end: int


class PositionConflict(Exception):
    """The position moved since the batch started (another runner committed, or a reset):
    the batch was discarded; read the position again."""


class ReadModelStore(abc.ABC):
    """Read-model tables and tracking positions on one backend."""

    def __init__(self, codec: RowCodec) -> None:
        self.codec = codec
        self._ready: set[ReadModelKey] = set()

    def position(self, subject: Projection | ReadModelKey) -> int:
        """The last notification id applied (0 when never run)."""
        return self._read_tracking(self._prepared(subject))[0]

    @contextmanager
    def batch(self, subject: Projection | ReadModelKey) -> Iterator[Batch]:
        """A batch of writes, committed with the position set by ``Batch.advance`` in one
        transaction when the block exits normally; an exception discards both."""
        key = self._prepared(subject)
        start, epoch = self._read_tracking(key)
        batch = Batch(self, self.codec, key, start)
        yield batch
        self._commit(key, Claim(start, epoch, batch.end), batch.changes())

    def reader(self, subject: Projection | ReadModelKey) -> ReadModel:
        """Read access to the committed tables, for queries."""
        return StoreReader(self, self.codec, self._prepared(subject))

    def reset(self, subject: Projection | ReadModelKey) -> None:
        """Empty the tables of this projection version and forget its position (rebuild)."""
        self._reset(self._prepared(subject))

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
    def fetch_all(self, table: str) -> Iterator[tuple[str, str]]:
        """Every committed row, in key order."""

    @abc.abstractmethod
    def _create(self, key: ReadModelKey) -> None:
        """Create the key's tables and the tracking table if missing (safe when racing)."""

    @abc.abstractmethod
    def _read_tracking(self, key: ReadModelKey) -> tuple[int, int]:
        """The committed position and epoch, (0, 0) if none."""

    @abc.abstractmethod
    def _commit(self, key: ReadModelKey, claim: Claim, changes: Changes) -> None:
        """Write ``changes`` and move the position as claimed, atomically, or raise
        PositionConflict if the tracking row is no longer the one the batch started from."""

    @abc.abstractmethod
    def _reset(self, key: ReadModelKey) -> None:
        """Empty the key's tables, set its position to 0 and bump its epoch, atomically."""
