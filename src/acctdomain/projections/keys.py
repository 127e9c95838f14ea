"""What the read-model stores track: a projection version's tables, or a policy's position."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import attrs

from acctdomain.errors import InvalidValue
from acctdomain.plugins.types import Projection, check_name

__all__ = [
    "Partition",
    "ReadModelKey",
    "check_sql_table",
    "check_table_prefixes",
    "key_of",
    "prefix_bounds",
    "table_name",
]

# PostgreSQL truncates longer identifiers silently, which could make two tables one.
_MAX_IDENTIFIER = 63


def _check_version(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidValue("projection.version", f"expected an integer >= 0, got {value!r}")


def _check_count(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValue("partition.count", f"expected an integer >= 1, got {value!r}")


@attrs.frozen
class Partition:
    """Part ``index`` of ``count`` of a projection's accounts: the accounts whose id, as an
    integer, leaves ``index`` when divided by ``count`` (account ids are random, so the parts
    are about equal). Workers of one projection in separate processes each take one part."""

    index: int
    count: int = attrs.field(validator=_check_count)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int):
            raise InvalidValue("partition.index", f"expected an integer, got {self.index!r}")
        if not 0 <= self.index < self.count:
            raise InvalidValue(
                "partition.index",
                f"expected 0 <= index < {self.count}, got {self.index!r}",
            )

    @classmethod
    def parse(cls, text: str) -> Partition:
        """``"1/4"`` as ``Partition(1, 4)`` (InvalidValue if malformed)."""
        found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text) if isinstance(text, str) else None
        if found is None:
            raise InvalidValue("partition", f"expected INDEX/COUNT like 0/2, got {text!r}")
        return cls(int(found[1]), int(found[2]))

    def owns(self, account_id: UUID) -> bool:
        """Whether the account's events are this part's."""
        return account_id.int % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@attrs.frozen
class ReadModelKey:
    """One tracked position: ``name`` and ``version`` of a projection with its ``tables``, or
    a policy (``policy:<name>``, version 0, no tables). With a ``partition``, the position of
    the workers of that part of the accounts: the tables are the whole projection's."""

    name: str
    version: int = attrs.field(validator=_check_version)
    tables: tuple[str, ...] = ()
    partition: Partition | None = None

    def __attrs_post_init__(self) -> None:
        if not self.name:
            raise InvalidValue("projection.name", "expected a name")
        if self.tables:
            # These names become SQL identifiers.
            check_name("projection", self.name)
            for table in self.tables:
                check_name("projection.table", table)

    @property
    def tracking_name(self) -> str:
        """The name its position is tracked under: the projection's, or for a partition
        ``<name>#<index>/<count>`` (``#`` never appears in a projection's name)."""
        return self.name if self.partition is None else f"{self.name}#{self.partition}"

    @property
    def whole(self) -> ReadModelKey:
        """The key of the whole projection version (without a partition)."""
        return self if self.partition is None else attrs.evolve(self, partition=None)

    def part(self, partition: Partition | None) -> ReadModelKey:
        """The key of one partition of this projection version (None: the whole)."""
        return attrs.evolve(self, partition=partition)

    @classmethod
    def of(cls, projection: Projection) -> ReadModelKey:
        """The key of a projection's current version."""
        tables: Any = projection.tables
        if isinstance(tables, str) or not isinstance(tables, tuple | list):
            raise InvalidValue("projection.tables", f"expected a tuple of names, got {tables!r}")
        return cls(check_name("projection", projection.name), projection.version, tuple(tables))

    @classmethod
    def for_policy(cls, name: str) -> ReadModelKey:
        """The key of a policy's position (the colon keeps it apart from projection names)."""
        return cls(f"policy:{check_name('policy', name)}", 0)


def key_of(subject: Projection | ReadModelKey) -> ReadModelKey:
    """``subject`` as a key."""
    return subject if isinstance(subject, ReadModelKey) else ReadModelKey.of(subject)


def table_name(key: ReadModelKey, table: str) -> str:
    """The SQL table of one of the key's tables: ``rm_<projection>__v<version>__<table>`` (names
    have no ``__`` of their own, so two keys never share a table)."""
    if table not in key.tables:
        raise InvalidValue("table", f"projection {key.name!r} has no table {table!r}")
    name = f"rm_{key.name}__v{key.version}__{table}"
    if len(name) <= _MAX_IDENTIFIER:
        return name
    digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    return f"{name[: _MAX_IDENTIFIER - 9]}_{digest}"


def check_table_prefixes(key: ReadModelKey, share: object) -> dict[str, str]:
    """``share`` (what ``Projection.account_share`` returned) as a dict of table to key
    prefix, if every table is the key's and every prefix a non-empty string (an empty one
    would claim every account's rows); else InvalidValue."""
    if not isinstance(share, Mapping):
        raise InvalidValue(
            "projection.account_share", f"{key.name!r}: expected a mapping, got {share!r}"
        )
    checked: dict[str, str] = {}
    for table, prefix in share.items():
        if table not in key.tables:
            raise InvalidValue(
                "projection.account_share", f"{key.name!r} declares no table {table!r}"
            )
        if not isinstance(prefix, str) or not prefix:
            raise InvalidValue(
                "projection.account_share",
                f"{key.name!r}: expected a non-empty key prefix for {table!r}, got {prefix!r}",
            )
        checked[table] = prefix
    return checked


def prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """The keys starting with ``prefix`` as a range in code point order: from ``prefix``
    (included) to the returned upper bound (excluded; None: no bound, for ""). A prefix ending
    in the last code point has no string right after its range: its bound is shortened."""
    if not isinstance(prefix, str):
        raise InvalidValue("prefix", f"expected text, got {prefix!r}")
    head = prefix.rstrip(chr(0x10FFFF))
    if not head:
        return prefix, None
    return prefix, head[:-1] + chr(ord(head[-1]) + 1)


_SQL_TABLE = re.compile(r"rm_[a-z0-9_]{1,60}")


def check_sql_table(table: str) -> str:
    """``table`` if it is a name :func:`table_name` can make, else InvalidValue: the stores put
    it into SQL as an identifier, so nothing else may get there."""
    if not isinstance(table, str) or not _SQL_TABLE.fullmatch(table):
        raise InvalidValue("table", f"not a read-model table: {table!r}")
    return table
