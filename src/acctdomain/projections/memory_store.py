"""Read models in process memory, beside the in-memory event store of one service."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from acctdomain.projections.batch import Changes
from acctdomain.projections.codec import RowCodec
from acctdomain.projections.keys import ReadModelKey, table_name
from acctdomain.projections.store import Claim, PositionConflict, ReadModelStore

__all__ = ["MemoryReadModelStore"]


class MemoryReadModelStore(ReadModelStore):
    """Rows are kept as encoded text, as the SQL backends keep them, so a read returns a fresh
    object and a failed batch that changed a row it read cannot change the committed one."""

    def __init__(self, codec: RowCodec) -> None:
        super().__init__(codec)
        self._lock = threading.Lock()
        self._tables: dict[str, dict[str, str]] = {}
        self._tracking: dict[tuple[str, int], tuple[int, int]] = {}

    def fetch(self, table: str, key: str) -> str | None:
        return self._tables[table].get(key)

    def fetch_all(self, table: str) -> Iterator[tuple[str, str]]:
        with self._lock:
            rows = sorted(self._tables[table].items())
        yield from rows

    def _create(self, key: ReadModelKey) -> None:
        with self._lock:
            for table in key.tables:
                self._tables.setdefault(table_name(key, table), {})

    def _read_tracking(self, key: ReadModelKey) -> tuple[int, int]:
        return self._tracking.get((key.name, key.version), (0, 0))

    def _commit(self, key: ReadModelKey, claim: Claim, changes: Changes) -> None:
        with self._lock:
            if self._read_tracking(key) != (claim.start, claim.epoch):
                raise PositionConflict(f"{key.name} v{key.version} moved from {claim.start}")
            for table, rows in changes.puts.items():
                self._tables[table].update(rows)
            for table, keys in changes.deletes.items():
                for row_key in keys:
                    self._tables[table].pop(row_key, None)
            self._tracking[(key.name, key.version)] = (claim.end, claim.epoch)

    def _reset(self, key: ReadModelKey) -> None:
        with self._lock:
            for table in key.tables:
                self._tables[table_name(key, table)] = {}
            epoch = self._read_tracking(key)[1]
            self._tracking[(key.name, key.version)] = (0, epoch + 1)
