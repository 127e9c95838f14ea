"""What the runners report: where each projection or policy is, what went wrong, and the
events parked in dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import attrs

from acctdomain.plugins.types import FailurePolicy

__all__ = [
    "Failure",
    "ParkedEvent",
    "ParkedEventDetail",
    "PolicyRefusal",
    "ProjectionStatus",
    "ReplayResult",
    "State",
]

State = Literal["running", "failed", "paused", "rebuilding", "superseded"]


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
    (``head``), the ``lag`` between them in events (an upper bound where ids have gaps) and in
    seconds of recorded time (``lag_seconds``: the head event's minus that of the event at the
    position; None when either is unknown), its state, its last error (also kept after a
    resume, or when the event was parked or a retry succeeded), how many events of unknown
    type it skipped in this process, how many events it has parked and its failure policy.

    ``version`` is the version this runner builds; ``serving_version`` the one queries read.
    They differ while a new version is built beside the old one (see
    :meth:`~acctdomain.projections.ProjectionRunner.catch_up`).

    ``partitions`` is the number of parts the version is split into for workers in separate
    processes (1: run whole); ``partition`` the part this runner applies (None: all), whose
    position and lag are then its own. A runner without partition reports a split version's
    lowest position."""

    name: str
    version: int
    position: int
    head: int
    lag: int
    lag_seconds: float | None
    state: State
    last_error: Failure | None
    unknown_events: int
    dead_letters: int
    on_failure: FailurePolicy
    serving_version: int | None = None
    partitions: int = 1
    partition: str | None = None


@attrs.frozen
class ParkedEvent:
    """A dead letter: an event a projection did not apply, kept to be replayed or purged.

    ``error`` is the repr of what the event raised, or None when it did not fail itself but
    waits behind an earlier dead letter of the same ``account_id``. ``parked_at`` is the
    service clock's time when it was parked.
    """

    projection: str
    version: int
    position: int
    account_id: UUID
    originator_version: int
    topic: str
    error: str | None
    parked_at: datetime


@attrs.frozen
class ParkedEventDetail:
    """A dead letter with its event read back from the store: ``event`` is None when it cannot
    be decoded (then ``decode_error`` says why)."""

    parked: ParkedEvent
    event: Any
    decode_error: str | None = None


@attrs.frozen
class ReplayResult:
    """What a replay of dead letters did: the positions applied and removed, in order, and the
    dead letters that failed again (kept, with their new error; the later ones of the same
    account were not tried)."""

    replayed: tuple[int, ...]
    failed: tuple[ParkedEvent, ...]


@attrs.frozen
class PolicyRefusal:
    """A reaction the service refused: it is not retried, the policy went on."""

    policy: str
    event_id: UUID
    position: int
    command: str
    account_id: UUID
    error: str
