"""The feed's Decoder builds events itself where the mapper would only pass the state
through: whatever the path, it gives the very events (or errors) of ``mapper.to_domain_event``."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Notification
from hypothesis import given, settings
from hypothesis import strategies as st

from acctdomain import AccountService
from acctdomain.domain import events as ev
from acctdomain.plugins import PluginHost
from acctdomain.projections.feed import Decoded, Decoder
from tests.strategies import events_of

CONTACT_TOPIC = "acctdomain.domain.events:ContactLogged"


@pytest.fixture(scope="module")
def app() -> Iterator[AccountService]:
    service = AccountService("memory:", plugins=PluginHost(entry_points=False))
    yield service
    service.close()


def notify(app: AccountService, *events: Any) -> list[Notification]:
    notifications = []
    for position, event in enumerate(events, start=1):
        stored = app.mapper.to_stored_event(event)
        notifications.append(Notification(id=position, **vars(stored)))
    return notifications


def everything(cls: type) -> bool:
    return True


def assert_same_event(left: Any, right: Any) -> None:
    assert type(left) is type(right)
    assert vars(left) == vars(right)
    assert {k: type(v) for k, v in vars(left).items()} == {
        k: type(v) for k, v in vars(right).items()
    }


@settings(max_examples=60, deadline=None)
@given(event=st.sampled_from(ev.ACCOUNT_EVENT_TYPES).flatmap(events_of))
def test_events_are_those_of_the_mapper(app: AccountService, event: Any) -> None:
    (notification,) = notify(app, event)
    (decoded,) = Decoder(app).decode([notification], everything)
    assert decoded.error is None
    assert_same_event(decoded.event, app.mapper.to_domain_event(notification))
    assert_same_event(decoded.event, event)


@settings(max_examples=5, deadline=None)
@given(event=events_of(ev.ContactLogged))
def test_an_older_class_version_is_upcast_by_the_mapper(app: AccountService, event: Any) -> None:
    (notification,) = notify(app, event)
    state = app.mapper.transcoder.decode(notification.state)
    del state["class_version"], state["duration_minutes"]  # as version 1 stored it
    old = Notification(
        id=1,
        originator_id=notification.originator_id,
        originator_version=notification.originator_version,
        topic=notification.topic,
        state=app.mapper.transcoder.encode(state),
    )
    (decoded,) = Decoder(app).decode([old], everything)
    assert decoded.event.duration_minutes is None
    assert_same_event(decoded.event, app.mapper.to_domain_event(old))


@settings(max_examples=5, deadline=None)
@given(event=events_of(ev.ContactLogged))
def test_a_plugin_upcaster_or_a_compressor_leaves_it_to_the_mapper(
    app: AccountService, event: Any
) -> None:
    (notification,) = notify(app, event)
    mapper = app.mapper
    upcasters = getattr(mapper, "upcasters", None)
    try:
        # (version 2 is current: the upcaster runs for no event, but its topic is the
        # mapper's business)
        mapper.upcasters = {(CONTACT_TOPIC, 1): lambda state: None}  # type: ignore[attr-defined]
        (decoded,) = Decoder(app).decode([notification], everything)
        assert_same_event(decoded.event, mapper.to_domain_event(notification))
    finally:
        mapper.upcasters = upcasters  # type: ignore[attr-defined]
    compressed = Notification(
        id=1,
        originator_id=notification.originator_id,
        originator_version=notification.originator_version,
        topic=notification.topic,
        state=zlib.compress(notification.state),
    )
    try:
        mapper.compressor = zlib  # type: ignore[assignment]
        (decoded,) = Decoder(app).decode([compressed], everything)
        assert_same_event(decoded.event, event)
    finally:
        mapper.compressor = None


@settings(max_examples=5, deadline=None)
@given(event=events_of(ev.IssueRaised))
def test_an_id_that_is_not_a_uuid_is_converted_by_the_mapper(
    app: AccountService, event: Any
) -> None:
    (notification,) = notify(app, event)
    as_text = Notification(
        id=1,
        originator_id=str(notification.originator_id),
        originator_version=notification.originator_version,
        topic=notification.topic,
        state=notification.state,
    )
    (decoded,) = Decoder(app).decode([as_text], everything)
    assert isinstance(decoded.event.originator_id, UUID)
    assert_same_event(decoded.event, app.mapper.to_domain_event(as_text))


@pytest.mark.parametrize(
    "state",
    [b"not json", b"[1, 2]", b'{"timestamp": {"_type_": "no_such_type", "_data_": 1}}'],
)
def test_a_state_that_fails_fails_with_the_mappers_error(app: AccountService, state: bytes) -> None:
    broken = Notification(
        id=7, originator_id=uuid4(), originator_version=1, topic=CONTACT_TOPIC, state=state
    )
    (decoded,) = Decoder(app).decode([broken], everything)
    with pytest.raises(Exception) as raised:  # noqa: PT011 (whatever the mapper raises)
        app.mapper.to_domain_event(broken)
    assert decoded == Decoded(7, cls=ev.ContactLogged, error=decoded.error)
    assert type(decoded.error) is type(raised.value)
    assert str(decoded.error) == str(raised.value)


@settings(max_examples=5, deadline=None)
@given(wanted=events_of(ev.Upsold), unwanted=events_of(ev.ContactLogged))
def test_unwanted_events_are_not_parsed(app: AccountService, wanted: Any, unwanted: Any) -> None:
    notifications = notify(app, unwanted, wanted, unwanted)
    parsed: list[bytes] = []
    transcoder = app.mapper.transcoder
    decode = transcoder.decode

    def counting(data: bytes) -> Any:
        parsed.append(data)
        return decode(data)

    transcoder.decode = counting  # type: ignore[method-assign]
    try:
        decoded = Decoder(app).decode(notifications, lambda cls: cls is ev.Upsold)
    finally:
        del transcoder.decode  # (the instance attribute: back to the method)
    assert [entry.position for entry in decoded] == [2]
    assert parsed == [notifications[1].state]
