"""Hypothesis strategies for every value type and every Account event."""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from eventsourcing.utils import get_topic
from hypothesis import strategies as st

from acctdomain.domain import Account
from acctdomain.domain import events as ev
from acctdomain.domain.values import CesScore, CsatScore, Money, NpsScore, ProductLine

CURRENCIES = ("EUR", "USD", "GBP", "JPY", "CHF")

# Anything storable: every code point but lone surrogates.
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
non_blank_texts = texts.filter(lambda text: bool(text.strip()))

offsets = st.integers(min_value=-12 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.one_of(st.just(UTC), offsets),
)
amounts = st.decimals(
    min_value=Decimal("-1e12"),
    max_value=Decimal("1e12"),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)
moneys = st.builds(Money, amounts, st.sampled_from(CURRENCIES))
product_lines = st.builds(
    ProductLine,
    non_blank_texts,
    st.builds(Money, amounts.map(abs), st.sampled_from(CURRENCIES)),
)

st.register_type_strategy(datetime, aware_datetimes)
st.register_type_strategy(Money, moneys)
st.register_type_strategy(ProductLine, product_lines)
st.register_type_strategy(NpsScore, st.builds(NpsScore, st.integers(0, 10)))
st.register_type_strategy(CsatScore, st.builds(CsatScore, st.integers(1, 5)))
st.register_type_strategy(CesScore, st.builds(CesScore, st.integers(1, 7)))
st.register_type_strategy(str, texts)


def events_of(event_class: type[ev.AccountEvent]) -> st.SearchStrategy[ev.AccountEvent]:
    """Events of one class with arbitrary (storable) field values."""
    hints = typing.get_type_hints(event_class)
    fields: dict[str, st.SearchStrategy[Any]] = {
        field.name: st.from_type(hints[field.name])
        for field in dataclasses.fields(event_class)  # type: ignore[arg-type]
    }
    fields["originator_id"] = st.uuids()
    fields["originator_version"] = st.integers(min_value=1, max_value=2**31 - 1)
    if "originator_topic" in fields:
        fields["originator_topic"] = st.just(get_topic(Account))
    return st.fixed_dictionaries(fields).map(lambda kwargs: event_class(**kwargs))
