"""A JSON transcoder under which every value type round-trips exactly.

eventsourcing's ``JSONTranscoder`` only sees objects that ``json`` cannot encode natively, so
tuples come back as lists and ``str`` enums as plain strings. This transcoder walks the
object first and tags tuples, enums, dicts with non-string keys and every registered type,
then lets ``json`` encode plain data. Decoding is eventsourcing's own object hook.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from enum import Enum
from typing import Any

import attrs
from eventsourcing.persistence import (
    JSONTranscoder,
    Transcoding,
    TranscodingNotRegisteredError,
)

__all__ = [
    "AttrsTranscoding",
    "DateAsISO",
    "EnumTranscoding",
    "ExactJSONTranscoder",
]

_PLAIN = (str, int, float, bool, type(None))


class ExactJSONTranscoder(JSONTranscoder):
    """JSON transcoder that preserves tuples, enums, non-string dict keys and custom types."""

    def __init__(self) -> None:
        super().__init__()
        self.register(_TupleTranscoding())
        self.register(_ItemsDictTranscoding())

    def encode(self, obj: Any) -> bytes:
        return self.encoder.encode(self._tag(obj)).encode("utf8")

    def _tag(self, obj: Any) -> Any:
        kind = type(obj)
        if kind in _PLAIN:
            return obj
        if kind is dict:
            if all(type(key) is str for key in obj):
                return {key: self._tag(value) for key, value in obj.items()}
            return {
                "_type_": _ItemsDictTranscoding.name,
                "_data_": [[self._tag(k), self._tag(v)] for k, v in obj.items()],
            }
        if kind is list:
            return [self._tag(item) for item in obj]
        if kind is tuple:
            return {"_type_": _TupleTranscoding.name, "_data_": [self._tag(i) for i in obj]}
        try:
            transcoding = self.types[kind]
        except KeyError:
            msg = (
                f"Object of type {kind.__module__}.{kind.__qualname__} is not serializable: "
                "register a Transcoding for it with the application."
            )
            raise TranscodingNotRegisteredError(msg) from None
        return {"_type_": transcoding.name, "_data_": self._tag(transcoding.encode(obj))}


class _TupleTranscoding(Transcoding):
    type = tuple
    name = "tuple"

    def encode(self, obj: tuple[Any, ...]) -> list[Any]:
        return list(obj)

    def decode(self, data: list[Any]) -> tuple[Any, ...]:
        return tuple(data)


class _ItemsDictTranscoding(Transcoding):
    """Dicts whose keys are not all strings (UUID keys, say), as a list of pairs."""

    type = dict
    name = "dict_items"

    def encode(self, obj: dict[Any, Any]) -> list[list[Any]]:
        return [[key, value] for key, value in obj.items()]

    def decode(self, data: list[list[Any]]) -> dict[Any, Any]:
        return dict(data)


class DateAsISO(Transcoding):
    """``datetime.date`` as an ISO string (eventsourcing registers only ``datetime``)."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class EnumTranscoding(Transcoding):
    """One enum class, by member value, under the name ``enum:<module>.<qualname>``."""

    def __init__(self, enum_class: type[Enum]) -> None:
        self.type = enum_class
        self.name = f"enum:{enum_class.__module__}.{enum_class.__qualname__}"

    def encode(self, obj: Enum) -> Any:
        return obj.value

    def decode(self, data: Any) -> Enum:
        member: Enum = self.type(data)
        return member


class AttrsTranscoding(Transcoding):
    """One attrs (or dataclass) value class, as a dict of its init fields.

    Decoding calls the class, so its validators run again on the way out of the store.
    """

    def __init__(self, cls: type[Any]) -> None:
        self.type = cls
        self.name = f"{cls.__module__}.{cls.__qualname__}"
        if attrs.has(cls):
            self._fields = tuple(f.name for f in attrs.fields(cls) if f.init)
        elif dataclasses.is_dataclass(cls):
            self._fields = tuple(f.name for f in dataclasses.fields(cls) if f.init)
        else:
            msg = f"{cls!r} is neither an attrs class nor a dataclass"
            raise TypeError(msg)

    def encode(self, obj: Any) -> dict[str, Any]:
        return {name: getattr(obj, name) for name in self._fields}

    def decode(self, data: dict[str, Any]) -> Any:
        return self.type(**data)
