"""Read models in process memory, beside the in-memory event store of one service."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from uuid import UUID

import attrs

from acctdomain.projections.batch import Changes
from acctdomain.projections.codec import RowCodec
from acctdomain.projections.keys import ReadModelKey, table_name
from acctdomain.projections.status import Failure, ParkedEvent
from acctdomain.projections.store import (
    Claim,
    LayoutConflict,
    LetterFilter,
    PositionConflict,
    ReadModelStore,
    Tracking,
)

__all__ = ["MemoryReadModelStore"]


class MemoryReadModelStore(ReadModelStore):
    """Rows are kept as encoded text, as the SQL backends keep them, so a read returns a fresh
    object and a failed batch that changed a row it read cannot change the committed one."""

    def __init__(self, codec: RowCodec) -> None:
        super().__init__(codec)
        self._lock = threading.RLock()
        self._tables: dict[str, dict[str, str]] = {}
        # By tracking name (a partition's has its own) and version.
        self._tracking: dict[tuple[str, int], tuple[int, int]] = {}
        self._partitions: dict[tuple[str, int], int] = {}
        self._failures: dict[tuple[str, int], Failure] = {}  # by tracking name, version
        self._letters: dict[tuple[str, int], dict[int, ParkedEvent]] = {}
        self._paused: set[tuple[str, int]] = set()
        self._serving: dict[str, tuple[int, tuple[str, ...]]] = {}

    def fetch(self, table: str, key: str) -> str | None:
        return self._tables[table].get(key)

    def fetch_all(self, table: str, prefix: str = "") -> Iterator[tuple[str, str]]:
        with self._lock:
            rows = sorted(
                (key, value) for key, value in self._tables[table].items() if key.startswith(prefix)
            )
        yield from rows

    def _create(self, key: ReadModelKey) -> None:
        with self._lock:
            for table in key.tables:
                self._tables.setdefault(table_name(key, table), {})

    def _read_tracking(self, key: ReadModelKey) -> Tracking:
        with self._lock:
            position, epoch = self._tracking.get((key.tracking_name, key.version), (0, 0))
            partitions = self._partitions.get((key.name, key.version), 1)
            stopped = any(name in self._failures for name in self._failure_names(key))
            return Tracking(position, epoch, partitions, stopped)

    def _partition(self, key: ReadModelKey, count: int) -> None:
        with self._lock:
            current = self._partitions.get((key.name, key.version), 1)
            if current == count:
                return
            if current != 1:
                raise LayoutConflict(key.name, key.version, current, count)
            position, epoch = self._tracking.get((key.name, key.version), (0, 0))
            self._tracking[(key.name, key.version)] = (position, epoch + 1)
            for name in self._partition_names(key, count):
                kept = self._tracking.get((name, key.version), (0, 0))[1]
                self._tracking[(name, key.version)] = (position, kept + 1)
            self._partitions[(key.name, key.version)] = count

    def _partition_names(self, key: ReadModelKey, count: int | None = None) -> list[str]:
        """Tracking names of the key's partitions: of ``count`` parts, or every one known."""
        if count is not None:
            return [f"{key.name}#{index}/{count}" for index in range(count)]
        return [n for n, v in self._tracking if v == key.version and n.startswith(f"{key.name}#")]

    def _restart_tracking(self, key: ReadModelKey) -> None:
        """Position 0 in a new epoch for the whole and every partition; run whole again,
        without failures."""
        for name in [key.name, *self._partition_names(key)]:
            epoch = self._tracking.get((name, key.version), (0, 0))[1]
            self._tracking[(name, key.version)] = (0, epoch + 1)
        self._partitions.pop((key.name, key.version), None)
        self._clear_failures(key)

    def _failure_names(self, key: ReadModelKey) -> list[tuple[str, int]]:
        if key.partition is not None:
            return [(key.tracking_name, key.version)]
        prefix = f"{key.name}#"
        return [
            (name, version)
            for name, version in self._failures
            if version == key.version and (name == key.name or name.startswith(prefix))
        ]

    def _read_failure(self, key: ReadModelKey) -> Failure | None:
        with self._lock:
            found = [self._failures[k] for k in self._failure_names(key) if k in self._failures]
        return min(found, key=lambda failure: failure.position, default=None)

    def _write_failure(self, key: ReadModelKey, failure: Failure) -> None:
        with self._lock:
            self._failures[(key.tracking_name, key.version)] = failure

    def _clear_failures(self, key: ReadModelKey) -> None:
        with self._lock:
            for name in self._failure_names(key.whole):
                del self._failures[name]

    def _commit(self, key: ReadModelKey, claim: Claim, changes: Changes) -> None:
        with self._lock:
            tracked = self._read_tracking(key)
            if (tracked.position, tracked.epoch) != (claim.start, claim.epoch):
                raise PositionConflict(f"{key.name} v{key.version} moved from {claim.start}")
            for table, prefix in changes.clears.items():
                rows = self._tables[table]
                for row_key in [k for k in rows if k.startswith(prefix)]:
                    del rows[row_key]
            for table, puts in changes.puts.items():
                self._tables[table].update(puts)
            for table, keys in changes.deletes.items():
                for row_key in keys:
                    self._tables[table].pop(row_key, None)
            letters = self._letters.setdefault((key.name, key.version), {})
            if changes.unpark_account is not None:
                account = changes.unpark_account
                for position in [p for p, e in letters.items() if e.account_id == account]:
                    del letters[position]
            for position in changes.unpark:
                letters.pop(position, None)
            for parked in changes.park:
                kept = letters.get(parked.position)
                # As in SQL: a parked event keeps the time it was first parked.
                letters[parked.position] = (
                    parked if kept is None else attrs.evolve(parked, parked_at=kept.parked_at)
                )
            self._tracking[(key.tracking_name, key.version)] = (claim.end, claim.next_epoch)

    def _reset(self, key: ReadModelKey) -> None:
        with self._lock:
            for table in key.tables:
                self._tables[table_name(key, table)] = {}
            self._restart_tracking(key)
            if self._serving.get(key.name, (None,))[0] == key.version:
                # Rebuilt from its code: queries read the tables the code declares now.
                self._serving[key.name] = (key.version, key.tables)
            self._letters.pop((key.name, key.version), None)

    def _select_letters(self, key: ReadModelKey, selection: LetterFilter) -> list[ParkedEvent]:
        with self._lock:
            letters = self._letters.get((key.name, key.version), {})
            return [letters[p] for p in sorted(letters) if selection.matches(letters[p])]

    def _count_letters(self, key: ReadModelKey) -> int:
        return len(self._letters.get((key.name, key.version), {}))

    def _blocked_accounts(self, key: ReadModelKey) -> set[UUID]:
        with self._lock:
            return {e.account_id for e in self._letters.get((key.name, key.version), {}).values()}

    def _delete_letters(self, key: ReadModelKey, selection: LetterFilter) -> int:
        with self._lock:
            letters = self._letters.get((key.name, key.version), {})
            selected = [p for p, parked in letters.items() if selection.matches(parked)]
            for position in selected:
                del letters[position]
            return len(selected)

    def _read_paused(self, key: ReadModelKey) -> bool:
        return (key.name, key.version) in self._paused

    def _write_paused(self, key: ReadModelKey, paused: bool) -> None:
        with self._lock:
            if paused:
                self._paused.add((key.name, key.version))
            else:
                self._paused.discard((key.name, key.version))

    def _read_serving(self, name: str) -> tuple[int, tuple[str, ...]] | None:
        return self._serving.get(name)

    def _write_serving(self, key: ReadModelKey) -> None:
        with self._lock:
            self._serving.setdefault(key.name, (key.version, key.tables))

    def _switch(self, old: ReadModelKey, new: ReadModelKey) -> bool:
        with self._lock:
            if self._serving.get(old.name, (None,))[0] != old.version:
                return False
            self._serving[new.name] = (new.version, new.tables)
            for table in old.tables:
                self._tables.pop(table_name(old, table), None)
            self._restart_tracking(old)
            self._letters.pop((old.name, old.version), None)
            self._paused.discard((old.name, old.version))
            return True
