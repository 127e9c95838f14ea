"""The fast paths of ``ExactJSONTranscoder`` write the very bytes, and decode the very values,
of the plain implementation they replaced (kept here as the reference): stored events and
read-model rows written before them load the same, and what they write loads the same."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum, Flag, IntEnum
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import JSONTranscoder, Transcoding, TranscodingNotRegisteredError
from hypothesis import given, settings
from hypothesis import strategies as st

from acctdomain import AccountService
from acctdomain.application.transcoding import ExactJSONTranscoder
from acctdomain.domain import ENUM_TYPES, Money
from acctdomain.domain import events as ev
from acctdomain.plugins import PluginHost
from acctdomain.projections import RowCodec
from tests.strategies import events_of

_PLAIN = (str, int, float, bool, type(None))


class ReferenceTranscoder(JSONTranscoder):
    """The exact transcoder as it was: a recursive walk that tags, then eventsourcing's own
    object hook to decode."""

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
                "_type_": "dict_items",
                "_data_": [[self._tag(k), self._tag(v)] for k, v in obj.items()],
            }
        if kind is list:
            return [self._tag(item) for item in obj]
        if kind is tuple:
            return {"_type_": "tuple", "_data_": [self._tag(i) for i in obj]}
        try:
            transcoding = self.types[kind]
        except KeyError:
            msg = f"Object of type {kind.__module__}.{kind.__qualname__} is not serializable"
            raise TranscodingNotRegisteredError(msg) from None
        return {"_type_": transcoding.name, "_data_": self._tag(transcoding.encode(obj))}


class Level(IntEnum):
    LOW = 1
    HIGH = 2


class Shade(Enum):
    DARK = ("dark", 1)  # a tuple value: encoded as a tagged tuple
    LIGHT = "light"


class Access(Flag):
    READ = 1
    WRITE = 2


@pytest.fixture(scope="module")
def transcoders() -> tuple[ExactJSONTranscoder, ReferenceTranscoder]:
    service = AccountService("memory:", plugins=PluginHost(entry_points=False))
    fast = service.mapper.transcoder
    assert isinstance(fast, ExactJSONTranscoder)
    for enum_class in (Level, Shade, Access):
        from acctdomain.application.transcoding import EnumTranscoding

        fast.register(EnumTranscoding(enum_class))
    reference = ReferenceTranscoder()
    for transcoding in fast.names.values():
        reference.register(transcoding)
    service.close()
    return fast, reference


def same(left: Any, right: Any) -> bool:
    """Equal, and of the same types all the way down (1 == 1.0 == True, "a" == StrEnum)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(
            same(k1, k2) and same(left[k1], right[k2]) for k1, k2 in zip(left, right, strict=True)
        )
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, float) and left != left:
        return right != right
    if isinstance(left, Money):
        return same(left.amount, right.amount) and left.currency == right.currency
    if isinstance(left, Decimal) and left.is_nan():
        return right.is_nan()
    if isinstance(left, datetime):
        return left == right and left.utcoffset() == right.utcoffset()
    return bool(left == right)


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
offsets = st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    st.uuids(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.datetimes(timezones=st.one_of(st.none(), st.just(UTC), offsets)),
    st.dates(),
    st.sampled_from([member for enum_class in ENUM_TYPES for member in enum_class]),
    st.sampled_from([*Level, *Shade]),
    st.builds(
        Money,
        st.decimals(min_value=-(10**9), max_value=10**9, places=2),
        st.sampled_from(["EUR", "USD", "JPY"]),
    ),
)
keys = st.one_of(texts, st.integers(), st.uuids(), st.sampled_from([*Level]), st.booleans())
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(texts, inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=25,
)
rows = st.dictionaries(texts, values, max_size=8)


@settings(max_examples=400, deadline=None)
@given(value=values)
def test_encoding_writes_the_bytes_of_the_reference(
    transcoders: tuple[ExactJSONTranscoder, ReferenceTranscoder], value: Any
) -> None:
    fast, reference = transcoders
    assert fast.encode(value) == reference.encode(value)
    assert fast.encode_text(value) == reference.encode(value).decode("utf8")


@settings(max_examples=400, deadline=None)
@given(value=values)
def test_decoding_gives_the_values_of_the_reference_and_round_trips(
    transcoders: tuple[ExactJSONTranscoder, ReferenceTranscoder], value: Any
) -> None:
    fast, reference = transcoders
    stored = reference.encode(value)
    decoded = fast.decode(stored)
    assert same(decoded, reference.decode(stored))
    assert same(decoded, value)
    assert same(fast.decode_text(stored.decode("utf8")), value)


@settings(max_examples=200, deadline=None)
@given(row=rows)
def test_rows_round_trip_through_the_row_codec(
    transcoders: tuple[ExactJSONTranscoder, ReferenceTranscoder], row: dict[str, Any]
) -> None:
    fast, reference = transcoders
    codec = RowCodec(fast)
    text = codec.dumps(row)
    assert text == reference.encode(row).decode("utf8")
    assert same(codec.loads(text), row)
    # A transcoder without the text methods goes through bytes, to the same rows.
    assert same(RowCodec(reference).loads(text), row)


@settings(max_examples=60, deadline=None)
@given(
    event=st.sampled_from([ev.ContactLogged, ev.Renewed, ev.StakeholderAdded, ev.IssueRaised])
    .flatmap(events_of)
    .filter(lambda event: True)
)
def test_stored_events_encode_and_decode_as_with_the_reference(
    transcoders: tuple[ExactJSONTranscoder, ReferenceTranscoder], event: Any
) -> None:
    fast, reference = transcoders
    state = dict(vars(event))
    stored = reference.encode(state)
    assert fast.encode(state) == stored
    assert same(fast.decode(stored), reference.decode(stored))


@pytest.mark.parametrize(
    "text",
    [
        "0123456789abcdef0123456789ABCDEF",  # upper case
        "12345678-1234-5678-1234-567812345678",
        "{12345678123456781234567812345678}",
        "urn:uuid:12345678-1234-5678-1234-567812345678",
        "١٢٣٤٥٦٧٨١٢٣٤٥٦٧٨١٢٣٤٥٦٧٨١٢٣٤٥٦٧٨",  # non-ASCII digits: int() reads them too
        "0x345678123456781234567812345678",
        "1234_678123456781234567812345678",
        "not a uuid",
        "g" * 32,
        " " + "a" * 31,
        "",
    ],
)
def test_uuids_in_any_form_decode_as_uuid_does(
    transcoders: tuple[ExactJSONTranscoder, ReferenceTranscoder], text: str
) -> None:
    fast, reference = transcoders
    stored = json.dumps({"_type_": "uuid_hex", "_data_": text}).encode()
    try:
        expected: Any = reference.decode(stored)
    except Exception as error:
        with pytest.raises(type(error)):
            fast.decode(stored)
    else:
        decoded = fast.decode(stored)
        assert type(decoded) is UUID
        assert decoded == expected
        assert decoded.is_safe == expected.is_safe
        assert hash(decoded) == hash(expected)
        assert str(decoded) == str(expected)


@pytest.mark.parametrize(
    "stored",
    [
        {"_type_": "enum:acctdomain.domain.values.Channel", "_data_": "pigeon"},
        {"_type_": "enum:acctdomain.domain.values.Channel", "_data_": ["phone"]},
        {"_type_": "no_such_type", "_data_": 1},
        {"_type_": ["unhashable"], "_data_": 1},
        {"_type_": "datetime_iso", "_data_": "yesterday"},
        {"_type_": "decimal_str", "_data_": "a lot"},
    ],
)
def test_bad_tagged_values_fail_as_with_the_reference(
    transcoders: tuple[ExactJSONTranscoder, ReferenceTranscoder], stored: dict[str, Any]
) -> None:
    fast, reference = transcoders
    data = json.dumps(stored).encode()
    try:
        reference.decode(data)
    except Exception as error:
        expected = type(error)
    else:
        raise AssertionError("the reference decoded it")
    with pytest.raises(expected):
        fast.decode(data)


@pytest.mark.parametrize(
    "stored",
    [
        {"_type_": "tuple"},  # one key
        {"_type_": "tuple", "_data_": [1], "more": 2},  # three keys
        {"_type_": "tuple", "data": [1]},  # not the data key
        {"type": "tuple", "_data_": [1]},
    ],
)
def test_dicts_that_only_look_tagged_stay_dicts(
    transcoders: tuple[ExactJSONTranscoder, ReferenceTranscoder], stored: dict[str, Any]
) -> None:
    fast, reference = transcoders
    data = json.dumps(stored).encode()
    assert fast.decode(data) == reference.decode(data) == stored


def test_a_transcoding_registered_later_or_again_is_the_one_used() -> None:
    transcoder = ExactJSONTranscoder()

    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

    class PointAsInt(Transcoding):
        type = Point
        name = "point"

        def encode(self, obj: Point) -> int:
            return obj.x

        def decode(self, data: int) -> Point:
            return Point(data)

    class PointAsList(PointAsInt):
        def encode(self, obj: Point) -> Any:
            return [obj.x, (obj.x,)]

        def decode(self, data: Any) -> Point:
            return Point(data[0] * 10)

    with pytest.raises(TranscodingNotRegisteredError):
        transcoder.encode(Point(1))
    transcoder.register(PointAsInt())
    assert transcoder.encode(Point(2)) == b'{"_type_":"point","_data_":2}'
    transcoder.register(PointAsList())
    encoded = transcoder.encode({"p": Point(3)})
    assert encoded == (b'{"p":{"_type_":"point","_data_":[3,{"_type_":"tuple","_data_":[3]}]}}')
    assert transcoder.decode(encoded)["p"].x == 30


def test_an_unregistered_type_inside_a_row_fails_to_encode() -> None:
    transcoder = ExactJSONTranscoder()
    with pytest.raises(TranscodingNotRegisteredError, match="complex"):
        transcoder.encode({"ok": [1, (2, {3: complex(1, 2)})]})


def test_dates_and_datetimes_keep_their_types_and_offsets() -> None:
    service = AccountService("memory:", plugins=PluginHost(entry_points=False))
    try:
        transcoder = service.mapper.transcoder
        moment = datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-3)))
        value = {"d": date(2024, 2, 29), "t": moment, "naive": moment.replace(tzinfo=None)}
        decoded = transcoder.decode(transcoder.encode(value))
        assert same(decoded, value)
    finally:
        service.close()


def test_enum_members_encode_alike_every_time_and_flag_combinations_too(
    transcoders: tuple[ExactJSONTranscoder, ReferenceTranscoder],
) -> None:
    # (members with plain values are tagged once, then from a table: combinations of flags
    # are values of the class that are no member of it)
    fast, reference = transcoders
    both = Access.READ | Access.WRITE
    for value in (Access.READ, both, Access.READ, both, Shade.DARK, Shade.DARK, Level.LOW):
        row = {"value": value, "values": [value, (value,)]}
        assert fast.encode(row) == reference.encode(row)
        assert same(fast.decode(fast.encode(row)), row)


plain_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200)
@given(st.dictionaries(st.text(max_size=8), plain_json, max_size=5))
def test_text_without_a_tag_decodes_as_with_the_hook(row: dict[str, Any]) -> None:
    transcoder = ExactJSONTranscoder()
    text = transcoder.encode_text(row)
    assert transcoder.decode_text(text) == row == transcoder.decode(text.encode())


def test_a_tag_written_as_text_or_a_lone_tag_key_is_not_a_tagged_value() -> None:
    transcoder = ExactJSONTranscoder()
    for row in ({"k": '"_type_"'}, {"_type_": "tuple"}, {"a": (1, 2), "b": '"_type_"'}):
        assert transcoder.decode_text(transcoder.encode_text(row)) == row
