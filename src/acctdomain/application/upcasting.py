"""A mapper that also applies upcasters registered by plugins.

eventsourcing upcasts a stored event through ``upcast_vN_vN+1`` methods on its class. Plugins
may instead register :class:`~acctdomain.plugins.Upcaster` functions for their event classes;
for a (topic, version) with a registered upcaster, it is used in place of the class method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import resolve_topic

__all__ = ["UpcastingMapper"]


class UpcastingMapper(Mapper[UUID]):
    """Mapper whose ``upcasters`` map (topic, from_version) to an in-place state change."""

    upcasters: dict[tuple[str, int], Callable[[dict[str, Any]], None]]

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        upcasters = getattr(self, "upcasters", None)
        if not upcasters or not any(topic == stored_event.topic for topic, _ in upcasters):
            return super().to_domain_event(stored_event)
        cls = resolve_topic(stored_event.topic)
        state = stored_event.state
        try:
            if self.cipher:
                state = self.cipher.decrypt(state)
            if self.compressor:
                state = self.compressor.decompress(state)
            event_state: dict[str, Any] = self.transcoder.decode(state)
        except Exception as error:
            raise MapperDeserialisationError(
                f"Failed to deserialise stored event {stored_event.topic} "
                f"{stored_event.originator_id} v{stored_event.originator_version}: {error}"
            ) from error
        event_state["originator_id"] = cast(UUID, stored_event.originator_id)
        if not isinstance(event_state["originator_id"], UUID):
            event_state["originator_id"] = UUID(str(stored_event.originator_id))
        event_state["originator_version"] = stored_event.originator_version
        class_version = getattr(cls, "class_version", 1)
        version = event_state.pop("class_version", 1)
        while version < class_version:
            upcast = upcasters.get((stored_event.topic, version))
            if upcast is None:
                upcast = getattr(cls, f"upcast_v{version}_v{version + 1}")
            upcast(event_state)
            version += 1
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", event_state)
        return event
