"""Reading the application's notification log: batches after a position, decoded once.

Notification ids only grow but may have gaps (PostgreSQL burns sequence values on rolled-back
inserts), so a position is always the id of the last notification seen, never a count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs
from eventsourcing.persistence import (
    Mapper,
    Notification,
    find_id_convertor,
    pass_through_convertor,
)
from eventsourcing.utils import TopicError, resolve_topic

from acctdomain.application.upcasting import UpcastingMapper
from acctdomain.plugins.types import Projection

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = ["Decoded", "Decoder", "fetch_after", "lowest", "may_want"]

log = logging.getLogger(__name__)


@attrs.frozen
class Decoded:
    """One notification of a batch: its event, or why there is none.

    ``unknown``: the topic names no class here (a plugin not installed, a removed class);
    ``error``: the class is known but the state could not be decoded.
    """

    position: int
    event: Any = None
    cls: type | None = None
    unknown: bool = False
    error: Exception | None = None


def fetch_after(
    service: AccountService, position: int, limit: int, stop: int | None = None
) -> Sequence[Notification]:
    """Up to ``limit`` notifications with ids above ``position`` (and at most ``stop``)."""
    return service.recorder.select_notifications(
        start=position, limit=limit, stop=stop, inclusive_of_start=False
    )


def may_want(projection: Projection, cls: type) -> bool:
    """Whether ``projection`` could want events of ``cls``, judged without decoding one: only
    a projection that keeps the default ``wants`` can be asked by class."""
    if type(projection).wants is not Projection.wants:
        return True
    return not projection.event_types or issubclass(cls, projection.event_types)


class Decoder:
    """Decodes notifications with the service's mapper, skipping what nobody wants.

    Events are built as the mapper builds them, without its per-event work that a batch
    does not need (resolving the topic again, looking for plugin upcasters, choosing how to
    convert the originator id): the state decoded by the mapper's transcoder, the
    originator's id and version added, and the instance made with ``object.__new__``. An
    event that needs more (a cipher or a compressor, an upcaster, an id that is not a UUID,
    a mapper of another kind) or whose state fails to decode goes through the mapper itself,
    so it is built, or fails, exactly as the mapper says.
    """

    def __init__(self, service: AccountService) -> None:
        self._mapper = service.mapper
        self._unknown_topics: set[str] = set()

    def decode(
        self, notifications: Sequence[Notification], wanted: Callable[[type], bool]
    ) -> list[Decoded]:
        """The notifications whose class is unknown, or ``wanted``, decoded (``wanted`` is
        asked once per class; the others are skipped before their state is parsed)."""
        decoded: list[Decoded] = []
        append = decoded.append
        mapper = self._mapper
        to_domain_event = mapper.to_domain_event
        plain = _plain_mapper(mapper)
        upcast_topics = {topic for topic, _ in getattr(mapper, "upcasters", None) or ()}
        decode_state = mapper.transcoder.decode
        new, set_attribute, uuid = object.__new__, object.__setattr__, UUID
        # topic -> (class, wanted, class version: 0 if the mapper must build its events)
        topics: dict[str, tuple[type | None, bool, int]] = {}
        for notification in notifications:
            topic = notification.topic
            try:
                cls, want, class_version = topics[topic]
            except KeyError:
                cls = self._resolve(topic)
                want = cls is not None and wanted(cls)
                class_version = 0
                if cls is not None and plain and topic not in upcast_topics:
                    class_version = _class_version(cls)
                topics[topic] = cls, want, class_version
            if cls is None:
                append(Decoded(notification.id, unknown=True))
            elif want:
                event: Any = None
                if class_version:
                    try:
                        state = decode_state(notification.state)
                        originator_id = notification.originator_id
                        if (
                            type(originator_id) is uuid
                            and state.pop("class_version", 1) == class_version
                        ):
                            state["originator_id"] = originator_id
                            state["originator_version"] = notification.originator_version
                            event = new(cls)
                            set_attribute(event, "__dict__", state)
                    except Exception:  # the mapper says how it fails
                        event = None
                if event is None:
                    try:
                        event = to_domain_event(notification)
                    except Exception as error:
                        append(Decoded(notification.id, cls=cls, error=error))
                        continue
                append(Decoded(notification.id, event, cls))
        return decoded

    def _resolve(self, topic: str) -> type | None:
        if topic in self._unknown_topics:  # resolving again would retry the import each time
            return None
        try:
            cls = resolve_topic(topic)
        except TopicError:
            log.warning("events of unknown topic %r are skipped", topic)
            self._unknown_topics.add(topic)
            return None
        return cls if isinstance(cls, type) else None


def _plain_mapper(mapper: Mapper[Any]) -> bool:
    """Whether ``mapper`` builds events from states as eventsourcing's ``Mapper`` does (with
    no cipher nor compressor, and its ``to_domain_event`` not replaced, on its class or on
    it), so that the decoder may build them itself."""
    method = mapper.to_domain_event
    return (
        getattr(method, "__self__", None) is mapper
        and getattr(method, "__func__", None)
        in (Mapper.to_domain_event, UpcastingMapper.to_domain_event)
        and not mapper.cipher
        and not mapper.compressor
    )


def _class_version(cls: type) -> int:
    """The class version of ``cls``, or 0 if the mapper does more than pass a UUID through
    as its events' originator id (or cannot build them at all)."""
    try:
        convertor = find_id_convertor(cls, UUID)
    except Exception:
        return 0
    version = getattr(cls, "class_version", 1)
    if convertor is not pass_through_convertor or type(version) is not int or version < 1:
        return 0
    return version


def lowest(positions: dict[str, int]) -> tuple[int, list[str]]:
    """The lowest position and every name at it: they share one read and decode of a batch."""
    low = min(positions.values())
    return low, [name for name, position in positions.items() if position == low]
