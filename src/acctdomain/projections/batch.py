"""A projection's tables inside one batch, and read access to them for queries."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any, NoReturn, Protocol
from uuid import UUID

import attrs

from acctdomain.errors import InvalidValue
from acctdomain.projections.codec import RowCodec
from acctdomain.projections.keys import ReadModelKey, table_name
from acctdomain.projections.status import ParkedEvent

__all__ = ["Batch", "Changes", "RowCache", "RowSource", "ShareBatch", "StoreReader"]


class RowSource(Protocol):
    """Committed rows of one SQL (or in-memory) table, as JSON text."""

    def fetch(self, table: str, key: str) -> str | None:
        """The text of one row, or None."""

    def fetch_all(self, table: str, prefix: str = "") -> Iterator[tuple[str, str]]:
        """Every row (whose key starts with ``prefix``), in key order (code point order on
        every backend)."""


@attrs.frozen
class Changes:
    """What a batch writes, by SQL table: encoded rows to insert or replace, keys to delete,
    and key prefixes whose rows go first (an account's share being rebuilt); and the dead
    letters it parks (inserted, or their error updated), removes by position, or removes for
    a whole account (first, before the others). A store applies them in that order."""

    puts: dict[str, dict[str, str]]
    deletes: dict[str, set[str]]
    clears: dict[str, str] = attrs.field(factory=dict)
    park: tuple[ParkedEvent, ...] = ()
    unpark: frozenset[int] = frozenset()
    unpark_account: UUID | None = None


class StoreReader:
    """Read-only access to a projection's committed tables (a ``ReadModel``)."""

    def __init__(self, source: RowSource, codec: RowCodec, key: ReadModelKey) -> None:
        self._source = source
        self._codec = codec
        self._key = key

    def get(self, table: str, key: str) -> dict[str, Any] | None:
        """The row stored under ``key``, or None."""
        text = self._source.fetch(table_name(self._key, table), _check_key(key))
        return None if text is None else self._codec.loads(text)

    def scan(self, table: str, prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
        """Every row of the table (whose key starts with ``prefix``: a range of the index,
        not a filter), in key order."""
        loads = self._codec.loads
        for key, text in self._source.fetch_all(table_name(self._key, table), prefix):
            yield key, loads(text)


class RowCache:
    """Decoded rows of one projection version, kept from one of its batches to the next within
    a run, so a row that many batches touch is read and decoded once.

    It holds what the batches committed: the rows they put (or deleted), as the objects they
    put, and rows known to be absent. It only serves a batch that starts where the last one it
    absorbed ended, in the same epoch (:meth:`Batch.use_cache`: a reset, a replay of dead
    letters or an account's rebuild by any runner bumps the epoch, as they write rows without
    moving the position); a batch that fails must :meth:`clear` it (its projection may have
    changed the rows it handed out). At most ``limit`` rows per table
    (those written longest ago go first): memory follows the number of rows, not of events.
    """

    def __init__(self, limit: int = 100_000) -> None:
        if limit < 1:
            raise InvalidValue("limit", f"expected an integer >= 1, got {limit!r}")
        self.limit = limit
        self.end: int | None = None
        """The position of the last batch absorbed (None: nothing to serve)."""
        self.epoch: int | None = None
        """The tracking epoch of the last batch absorbed."""
        self._tables: dict[str, dict[str, dict[str, Any] | None]] = {}

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._tables.values())

    def clear(self) -> None:
        """Forget every row."""
        self._tables.clear()
        self.end = self.epoch = None

    def table(self, table: str) -> dict[str, dict[str, Any] | None]:
        """The cached rows of ``table``: key -> row, None for a known absence."""
        try:
            return self._tables[table]
        except KeyError:
            rows: dict[str, dict[str, Any] | None] = {}
            self._tables[table] = rows
            return rows

    def absorb(self, batch: Batch) -> None:
        """Take the rows of ``batch``, just committed."""
        batch.give_rows(self)
        self.end, self.epoch = batch.end, batch.epoch
        for rows in self._tables.values():
            excess = len(rows) - self.limit
            if excess > 0:
                for key in list(islice(rows, excess)):
                    del rows[key]


class Batch:
    """The ``Rows`` a projection writes during one batch.

    Rows read or written are cached (read-your-writes), so a batch of many events for few
    keys costs one read per key and one write per changed key at commit. ``get`` returns the
    batch's own object: change it, then ``put`` it back. Nothing is stored until the batch
    commits, together with the position set by :meth:`advance`.
    """

    def __init__(self, source: RowSource, codec: RowCodec, key: ReadModelKey, start: int) -> None:
        self.key = key
        self.start = start
        """The position the batch started from (the committed one)."""
        self.end = start
        """The position committed with the rows."""
        self._source = source
        self._codec = codec
        self._sql_tables = {table: table_name(key, table) for table in key.tables}
        # Per table: key -> row, None for a known absence or a deletion.
        self._rows: dict[str, dict[str, dict[str, Any] | None]] = {t: {} for t in key.tables}
        self._dirty: dict[str, set[str]] = {table: set() for table in key.tables}
        self._changes: Changes | None = None
        self._clears: dict[str, str] = {}
        self._park: dict[int, ParkedEvent] = {}
        self._unpark: set[int] = set()
        self._unpark_account: UUID | None = None
        # Rows put since the last check_rows(), when watching.
        self._recent: set[tuple[str, str]] | None = None
        # Per table, the rows of a RowCache (see use_cache), the keys whose row it lent, and
        # those read from the store.
        self._cached: dict[str, dict[str, dict[str, Any] | None]] | None = None
        self._lent: dict[str, set[str]] = {}
        self._fetched: dict[str, set[str]] = {}
        self.epoch: int | None = None
        """The tracking epoch the batch started in, when it uses a cache."""

    def use_cache(self, cache: RowCache, epoch: int) -> None:
        """Read rows from ``cache`` before the store: it must hold what was committed up to
        this batch's start, in tracking ``epoch`` (read after the batch began: if it moved
        meanwhile, the commit fails anyway); if it ended elsewhere (another runner committed,
        replayed or rebuilt rows meanwhile), it is emptied first. Call before any read;
        :meth:`RowCache.absorb` after the commit."""
        if cache.end != self.start or cache.epoch != epoch:
            cache.clear()
        self.epoch = epoch
        self._cached = {table: cache.table(table) for table in self.key.tables}
        self._lent = {table: set() for table in self.key.tables}
        self._fetched = {table: set() for table in self.key.tables}

    def held(self) -> int:
        """How many rows the batch holds (read or written)."""
        return sum(len(rows) for rows in self._rows.values())

    def give_rows(self, cache: RowCache) -> None:
        """Leave the committed rows in ``cache``: those put or deleted that were read (rows only
        ever written, a log say, are not read again); a row lent by the cache and not put
        back leaves it (the projection may have changed it without putting it)."""
        for table, keys in self._dirty.items():
            cached, rows = cache.table(table), self._rows[table]
            lent, fetched = self._lent.get(table, set()), self._fetched.get(table, set())
            for key in keys:
                if key in lent or key in fetched or key in cached:
                    cached.pop(key, None)  # to the end: the oldest rows leave a full cache first
                    cached[key] = rows[key]
        for table, keys in self._lent.items():
            cached, dirty = cache.table(table), self._dirty[table]
            for key in keys:
                if key not in dirty:
                    cached.pop(key, None)

    def get(self, table: str, key: str) -> dict[str, Any] | None:
        """The row under ``key`` as this batch sees it, or None."""
        rows = self._table(table)
        try:
            return rows[key]
        except KeyError:
            pass
        if self._cached is not None:
            cached = self._cached[table]
            if key in cached:
                row = rows[key] = cached[key]
                if row is not None:
                    self._lent[table].add(key)
                return row
        text = self._source.fetch(self._sql_tables[table], _check_key(key))
        if text is None:
            rows[key] = None
            if self._cached is not None:
                self._cached[table][key] = None
            return None
        row = rows[key] = self._codec.loads(text)
        if self._cached is not None:
            self._fetched[table].add(key)
        return row

    def put(self, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace the row under ``key``."""
        self._check_open()
        if not isinstance(value, dict):
            raise TypeError(f"a row must be a dict, got {type(value).__name__}")
        self._table(table)[_check_key(key)] = value
        self._dirty[table].add(key)
        if self._recent is not None:
            self._recent.add((table, key))

    def delete(self, table: str, key: str) -> None:
        """Remove the row under ``key`` (no error if there is none)."""
        self._check_open()
        self._table(table)[_check_key(key)] = None
        self._dirty[table].add(key)

    def scan(self, table: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every row as this batch sees it, in key order."""
        rows = self._table(table)
        for key, text in self._source.fetch_all(self._sql_tables[table]):
            if key not in rows:
                rows[key] = self._codec.loads(text)
        for key in sorted(rows):
            row = rows[key]
            if row is not None:
                yield key, row

    def advance(self, position: int) -> None:
        """Set the position committed with the rows."""
        if position < self.start:
            raise InvalidValue("position", f"cannot move back from {self.start} to {position}")
        self.end = position

    def park(self, parked: ParkedEvent) -> None:
        """Park an event in the dead letters (or update the error of a parked one)."""
        self._check_open()
        self._park[parked.position] = parked

    def unpark(self, position: int) -> None:
        """Remove the dead letter at ``position`` (it was replayed)."""
        self._check_open()
        self._unpark.add(position)

    def unpark_account(self, account_id: UUID) -> None:
        """Remove every dead letter of ``account_id`` before the other changes (its share is
        being rebuilt, parking again what still fails)."""
        self._check_open()
        self._unpark_account = account_id

    def watch(self) -> None:
        """Note the rows put from now on, so :meth:`check_rows` can find the event that wrote
        an unencodable one (encoding every row after every event is not free)."""
        self._recent = set()

    def check_rows(self) -> None:
        """Encode the rows put since the last check: raises if one cannot be stored."""
        recent, self._recent = self._recent or set(), set()
        for table, key in recent:
            row = self._rows[table][key]
            if row is not None:
                self._codec.dumps(row)

    def changes(self) -> Changes:
        """The changed rows, encoded (an unencodable value raises here, before any write),
        and the dead letters to park or remove.

        The first call closes the batch to writes; later calls return the same changes.
        """
        if self._changes is not None:
            return self._changes
        puts: dict[str, dict[str, str]] = {}
        deletes: dict[str, set[str]] = {}
        for table, keys in self._dirty.items():
            rows, sql_table = self._rows[table], self._sql_tables[table]
            for key in keys:
                row = rows[key]
                if row is None:
                    deletes.setdefault(sql_table, set()).add(key)
                else:
                    puts.setdefault(sql_table, {})[key] = self._codec.dumps(row)
        self._changes = Changes(
            puts,
            deletes,
            clears=dict(self._clears),
            park=tuple(self._park[position] for position in sorted(self._park)),
            unpark=frozenset(self._unpark),
            unpark_account=self._unpark_account,
        )
        return self._changes

    def _check_open(self) -> None:
        if self._changes is not None:
            raise InvalidValue("batch", "the batch is closed: its changes were taken")

    def _table(self, table: str) -> dict[str, dict[str, Any] | None]:
        try:
            return self._rows[table]
        except KeyError:
            raise InvalidValue(
                "table", f"projection {self.key.name!r} declares no table {table!r}"
            ) from None


class ShareBatch(Batch):
    """A batch that rebuilds one account's share of a projection from nothing: its rows (the
    keys under ``prefixes``, per table) are deleted at commit before the batch's own writes,
    and the batch reads as if they were gone already. Touching a row outside the share, or
    scanning a table, raises :class:`InvalidValue`: such a projection's rows depend on other
    accounts, and replaying only this account's events could not rebuild them."""

    def __init__(
        self,
        source: RowSource,
        codec: RowCodec,
        key: ReadModelKey,
        start: int,
        prefixes: Mapping[str, str],
    ) -> None:
        super().__init__(source, codec, key, start)
        self._prefixes = dict(prefixes)
        self._clears = {self._sql_tables[t]: prefix for t, prefix in self._prefixes.items()}

    def get(self, table: str, key: str) -> dict[str, Any] | None:
        """The row under ``key`` as rebuilt so far, or None."""
        return self._table(self._inside(table, key)).get(key)

    def put(self, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace the row under ``key`` (inside the share)."""
        super().put(self._inside(table, key), key, value)

    def delete(self, table: str, key: str) -> None:
        """Remove the row under ``key`` (inside the share)."""
        super().delete(self._inside(table, key), key)

    def scan(self, table: str) -> NoReturn:
        """Refused: a scan reads other accounts' rows."""
        raise InvalidValue(
            "account_share",
            f"projection {self.key.name!r} scans table {table!r}, which reads other accounts' "
            "rows: rebuild it whole",
        )

    def _inside(self, table: str, key: str) -> str:
        self._table(table)
        prefix = self._prefixes.get(table)
        if prefix is None or not _check_key(key).startswith(prefix):
            raise InvalidValue(
                "account_share",
                f"projection {self.key.name!r} touched row {key!r} of table {table!r}, "
                "outside the share it declared for the account",
            )
        return table


def _check_key(key: object) -> str:
    if type(key) is not str:
        raise TypeError(f"a row key must be a str, got {type(key).__name__}")
    return key
