"""What the runners report: where each projection or policy is, and what went wrong."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

import attrs

__all__ = ["Failure", "PolicyRefusal", "ProjectionStatus", "State"]

State = Literal["running", "failed", "paused"]


@attrs.frozen
class Failure:
    """Why a projection or policy stopped: ``position`` is the notification id of the event it
    failed on (the last of its batch when the rows could not be written); ``error`` the repr
    of the exception."""

    name: str
    position: int
    error: str


@attrs.frozen
class ProjectionStatus:
    """One projection: its committed ``position``, the store's last notification id
    (``head``), the ``lag`` between them (an upper bound where ids have gaps), its state, its
    last failure and how many events of unknown type it skipped in this process."""

    name: str
    version: int
    position: int
    head: int
    lag: int
    state: State
    last_error: Failure | None
    unknown_events: int


@attrs.frozen
class PolicyRefusal:
    """A reaction the service refused: it is not retried, the policy went on."""

    policy: str
    event_id: UUID
    position: int
    command: str
    account_id: UUID
    error: str
