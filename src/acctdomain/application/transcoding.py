"""A JSON transcoder under which every value type round-trips exactly.

eventsourcing's ``JSONTranscoder`` only sees objects that ``json`` cannot encode natively, so
tuples come back as lists and ``str`` enums as plain strings. This transcoder walks the
object first and tags tuples, enums, dicts with non-string keys and every registered type,
then lets ``json`` encode plain data. Decoding reads the same tagged format as eventsourcing's
object hook (``{"_type_": name, "_data_": data}``, exactly two keys), with one lookup per
tagged object and faster constructors for the built-in transcodings (UUID, enum members);
what it returns is what eventsourcing's hook returns.

Both directions run in every event load and in every read-model row read or written, so the
walk is kept tight: plain values are not recursed into, each registered type has its tagger
and decoder resolved once, at registration.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID, SafeUUID

import attrs
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Transcoding,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)

__all__ = [
    "AttrsTranscoding",
    "DateAsISO",
    "EnumTranscoding",
    "ExactJSONTranscoder",
]

_PLAIN = frozenset({str, int, float, bool, type(None)})
_WALKED = _PLAIN | {dict, list, tuple}
_TUPLE = "tuple"
_ITEMS_DICT = "dict_items"

_Tagger = Callable[[Any], Any]
_Decoder = Callable[[Any], Any]


class ExactJSONTranscoder(JSONTranscoder):
    """JSON transcoder that preserves tuples, enums, non-string dict keys and custom types.

    ``encode_text`` and ``decode_text`` are ``encode`` and ``decode`` on ``str`` (read-model
    rows are text: no round trip through bytes).
    """

    def __init__(self) -> None:
        super().__init__()
        self._taggers: dict[type, _Tagger] = {}
        self._decoders: dict[str, _Decoder] = {}
        self._tag = _make_tag(self._taggers)
        self.decoder = json.JSONDecoder(object_hook=_make_hook(self._decoders))
        self._encode_plain = self.encoder.encode
        self._decode_str = self.decoder.decode
        # Without a tag, the hook changes nothing: the C decoder alone gives the same objects.
        self._decode_untagged = json.JSONDecoder().decode
        self.register(_TupleTranscoding())
        self.register(_ItemsDictTranscoding())

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        if transcoding.type not in _WALKED:  # (the walk handles these itself)
            self._taggers[transcoding.type] = _tagger_for(transcoding, self._tag, self._taggers)
        self._decoders[transcoding.name] = _decoder_for(transcoding)

    def encode(self, obj: Any) -> bytes:
        return self._encode_plain(self._tag(obj)).encode("utf8")

    def decode(self, data: bytes) -> Any:
        return self._decode_str(data.decode("utf8"))

    def encode_text(self, obj: Any) -> str:
        """``obj`` as JSON text (``encode`` without the UTF-8 step)."""
        return self._encode_plain(self._tag(obj))

    def decode_text(self, text: str) -> Any:
        """The object of JSON text written by :meth:`encode_text` (text without a type tag,
        such as a read-model row of plain values, skips the object hook)."""
        if _TAG_KEY not in text:
            return self._decode_untagged(text)
        return self._decode_str(text)


# How a tagged value's key appears in the text the encoder writes (it never escapes it).
_TAG_KEY = '"_type_"'


def _make_tag(taggers: dict[type, _Tagger]) -> _Tagger:
    """The walk that turns an object into plain JSON data, tagging what JSON would lose.

    Inside containers, a plain item is taken as it is and an item of a registered type goes
    straight to its tagger (``taggers`` holds no plain or container type)."""
    plain = _PLAIN
    tagger_of = taggers.get

    def tag(obj: Any) -> Any:
        kind = type(obj)
        if kind in plain:
            return obj
        if kind is dict:
            out = {}
            for key, value in obj.items():
                if type(key) is not str:
                    return {
                        "_type_": _ITEMS_DICT,
                        "_data_": [[tag(k), tag(v)] for k, v in obj.items()],
                    }
                out[key] = value if (t := type(value)) in plain else (tagger_of(t) or tag)(value)
            return out
        if kind is list:
            return [
                item if (t := type(item)) in plain else (tagger_of(t) or tag)(item) for item in obj
            ]
        if kind is tuple:
            return {
                "_type_": _TUPLE,
                "_data_": [
                    item if (t := type(item)) in plain else (tagger_of(t) or tag)(item)
                    for item in obj
                ],
            }
        try:
            tagger = taggers[kind]
        except KeyError:
            msg = (
                f"Object of type {kind.__module__}.{kind.__qualname__} is not serializable: "
                "register a Transcoding for it with the application."
            )
            raise TranscodingNotRegisteredError(msg) from None
        return tagger(obj)

    return tag


def _tagger_for(transcoding: Transcoding, tag: _Tagger, taggers: dict[type, _Tagger]) -> _Tagger:
    """How to tag an object of ``transcoding.type``: ``{"_type_": name, "_data_": ...}`` with
    the transcoding's encoding, itself walked (built-in encodings that give a string need not
    be)."""
    name = transcoding.name
    kind = type(transcoding)
    if kind is UUIDAsHex:
        return lambda obj: {"_type_": name, "_data_": obj.hex}
    if kind is DecimalAsStr:
        return lambda obj: {"_type_": name, "_data_": str(obj)}
    if kind is DatetimeAsISO or kind is DateAsISO:
        return lambda obj: {"_type_": name, "_data_": obj.isoformat()}
    if kind is AttrsTranscoding:
        assert isinstance(transcoding, AttrsTranscoding)
        fields = transcoding.fields
        plain, tagger_of = _PLAIN, taggers.get

        def tag_fields(obj: Any) -> Any:
            data = {}
            for field in fields:
                value = getattr(obj, field)
                data[field] = value if (t := type(value)) in plain else (tagger_of(t) or tag)(value)
            return {"_type_": name, "_data_": data}

        return tag_fields
    encode = transcoding.encode
    if kind is EnumTranscoding:
        return _member_tagger(transcoding, name, encode, tag)
    return lambda obj: {"_type_": name, "_data_": tag(encode(obj))}


def _member_tagger(
    transcoding: Transcoding, name: str, encode: Callable[[Any], Any], tag: _Tagger
) -> _Tagger:
    """Tags enum members from a table made on first use: a member whose value is plain data
    always tags the same (the encoder only reads what tagging gives it, so one dict serves
    every time). Other members, and values that are not members of the class (a combination
    of flags), are tagged each time."""
    members = {id(m): m for m in getattr(transcoding.type, "__members__", {}).values()}
    tagged: dict[int, dict[str, Any]] = {}
    plain = _PLAIN

    def tag_member(obj: Any) -> Any:
        try:
            return tagged[id(obj)]
        except KeyError:
            pass
        data = encode(obj)
        if type(data) not in plain:
            return {"_type_": name, "_data_": tag(data)}
        result = {"_type_": name, "_data_": data}
        if members.get(id(obj)) is obj:
            tagged[id(obj)] = result
        return result

    return tag_member


def _decoder_for(transcoding: Transcoding) -> _Decoder:
    """How to decode the ``_data_`` of ``transcoding.name``: its own ``decode``, or the same
    result by a shorter way for the built-in transcodings."""
    kind = type(transcoding)
    decode = transcoding.decode
    if kind is UUIDAsHex:
        return _uuid_decoder(decode)
    if kind is DecimalAsStr:
        return Decimal
    if kind is DateAsISO:
        return date.fromisoformat
    if kind is DatetimeAsISO:
        return _datetime_decoder(decode)
    if kind is _TupleTranscoding:
        return tuple
    if kind is EnumTranscoding:
        return _enum_decoder(transcoding.type, decode)
    return decode


def _uuid_decoder(fallback: _Decoder) -> _Decoder:
    new, set_attribute, unknown = object.__new__, object.__setattr__, SafeUUID.unknown

    def decode(data: Any) -> Any:
        # What UUID(hex) does for the 32 hex digits ``.hex`` writes, without its parsing:
        # no separators to strip, and 32 base-16 digits are always in range.
        if type(data) is str and len(data) == 32 and data.isalnum():
            value = int(data, 16)
            uuid = new(UUID)
            set_attribute(uuid, "int", value)
            set_attribute(uuid, "is_safe", unknown)
            return uuid
        return fallback(data)

    return decode


def _datetime_decoder(fallback: _Decoder) -> _Decoder:
    fromisoformat = datetime.fromisoformat

    def decode(data: Any) -> Any:
        if type(data) is str:
            return fromisoformat(data)
        return fallback(data)

    return decode


def _enum_decoder(enum_class: type[Enum], fallback: _Decoder) -> _Decoder:
    # The lookup Enum.__new__ starts with; anything else (a missing value, _missing_, an
    # unhashable one) goes the whole way.
    members = enum_class._value2member_map_

    def decode(data: Any) -> Any:
        try:
            return members[data]
        except (KeyError, TypeError):
            return fallback(data)

    return decode


def _make_hook(decoders: dict[str, _Decoder]) -> Callable[[dict[str, Any]], Any]:
    """The object hook: a dict of exactly ``_type_`` and ``_data_`` is decoded by the
    transcoding of that name (an unknown name raises, as eventsourcing's hook does); any other
    dict is returned as it is."""

    def hook(obj: dict[str, Any]) -> Any:
        if len(obj) != 2:
            return obj
        try:
            name = obj["_type_"]
            data = obj["_data_"]
        except KeyError:
            return obj
        decode = decoders.get(name)
        if decode is None:
            msg = (
                f"Data serialized with name '{name}' is not deserializable. Please register "
                "a custom transcoding for this type."
            )
            raise TranscodingNotRegisteredError(msg)
        return decode(data)

    return hook


class _TupleTranscoding(Transcoding):
    type = tuple
    name = _TUPLE

    def encode(self, obj: tuple[Any, ...]) -> list[Any]:
        return list(obj)

    def decode(self, data: list[Any]) -> tuple[Any, ...]:
        return tuple(data)


class _ItemsDictTranscoding(Transcoding):
    """Dicts whose keys are not all strings (UUID keys, say), as a list of pairs."""

    type = dict
    name = _ITEMS_DICT

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
            self.fields = tuple(f.name for f in attrs.fields(cls) if f.init)
        elif dataclasses.is_dataclass(cls):
            self.fields = tuple(f.name for f in dataclasses.fields(cls) if f.init)
        else:
            msg = f"{cls!r} is neither an attrs class nor a dataclass"
            raise TypeError(msg)

    def encode(self, obj: Any) -> dict[str, Any]:
        return {name: getattr(obj, name) for name in self.fields}

    def decode(self, data: dict[str, Any]) -> Any:
        return self.type(**data)
