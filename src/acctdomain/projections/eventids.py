"""Stable identifiers of stored events, for causation ids and idempotency keys."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from acctdomain.domain.identifiers import EVENT_NAMESPACE, event_id_for

__all__ = ["EVENT_NAMESPACE", "event_id"]


def event_id(event: Any) -> UUID:
    """The id of a stored event: its own ``id`` if its class defines one (``AccountEvent``
    does), else the id derived from its aggregate id and version, so every process gives the
    same event the same id."""
    own = getattr(event, "id", None)
    if isinstance(own, UUID):
        return own
    return event_id_for(event.originator_id, event.originator_version)
