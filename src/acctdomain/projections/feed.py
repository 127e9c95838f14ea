"""Reading the application's notification log: batches after a position, decoded once.

Notification ids only grow but may have gaps (PostgreSQL burns sequence values on rolled-back
inserts), so a position is always the id of the last notification seen, never a count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from eventsourcing.persistence import Notification
from eventsourcing.utils import TopicError, resolve_topic

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
    """Decodes notifications with the service's mapper, skipping what nobody wants."""

    def __init__(self, service: AccountService) -> None:
        self._mapper = service.mapper
        self._unknown_topics: set[str] = set()

    def decode(
        self, notifications: Sequence[Notification], wanted: Callable[[type], bool]
    ) -> list[Decoded]:
        """The notifications whose class is unknown, or ``wanted``, decoded (``wanted`` is
        asked once per class)."""
        decoded: list[Decoded] = []
        append = decoded.append
        to_domain_event = self._mapper.to_domain_event
        topics: dict[str, tuple[type | None, bool]] = {}  # topic -> (class, wanted)
        for notification in notifications:
            topic = notification.topic
            try:
                cls, want = topics[topic]
            except KeyError:
                cls = self._resolve(topic)
                want = cls is not None and wanted(cls)
                topics[topic] = cls, want
            if cls is None:
                append(Decoded(notification.id, unknown=True))
            elif want:
                try:
                    event = to_domain_event(notification)
                except Exception as error:
                    append(Decoded(notification.id, cls=cls, error=error))
                else:
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


def lowest(positions: dict[str, int]) -> tuple[int, list[str]]:
    """The lowest position and every name at it: they share one read and decode of a batch."""
    low = min(positions.values())
    return low, [name for name, position in positions.items() if position == low]
