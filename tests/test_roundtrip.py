"""Every event type survives a round trip through every store with its exact types."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any
from uuid import uuid4

import attrs
import pytest
from hypothesis import HealthCheck, given, settings

from acctdomain import AccountService
from acctdomain.domain import events as ev
from tests.strategies import events_of


def assert_identical(original: Any, decoded: Any, path: str = "event") -> None:
    """Equal, and of the same type all the way down (a str enum equals its plain string,
    a tuple does not equal a list: both must come back as they went in)."""
    assert type(decoded) is type(original), f"{path}: {type(original)} -> {type(decoded)}"
    if isinstance(original, tuple | list):
        assert len(decoded) == len(original), path
        for index, (a, b) in enumerate(zip(original, decoded, strict=True)):
            assert_identical(a, b, f"{path}[{index}]")
    elif attrs.has(type(original)) or dataclasses.is_dataclass(original):
        names = (
            [f.name for f in attrs.fields(type(original))]
            if attrs.has(type(original))
            else [f.name for f in dataclasses.fields(original)]
        )
        for name in names:
            assert_identical(getattr(original, name), getattr(decoded, name), f"{path}.{name}")
    elif isinstance(original, Enum):
        assert decoded is original, path
    else:
        assert decoded == original, path
        if hasattr(original, "tzinfo"):
            assert decoded.utcoffset() == original.utcoffset(), path


@pytest.mark.parametrize("event_class", ev.ACCOUNT_EVENT_TYPES, ids=lambda c: c.__name__)
def test_every_event_round_trips_through_every_store(
    service: AccountService, event_class: type[ev.AccountEvent]
) -> None:
    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(event=events_of(event_class))
    def round_trip(event: ev.AccountEvent) -> None:
        # Hypothesis repeats ids across examples; the store needs each position once.
        event = dataclasses.replace(event, originator_id=uuid4())
        stored = service.mapper.to_stored_event(event)
        service.recorder.insert_events([stored])
        [selected] = service.recorder.select_events(
            event.originator_id,
            gt=event.originator_version - 1,
            lte=event.originator_version,
        )
        decoded = service.mapper.to_domain_event(selected)
        assert_identical(event, decoded)
        assert decoded == event

    round_trip()
