"""Read models as known at a recorded time: :func:`read_models_as_known_at`.

The registered projections are built again, in a throwaway in-memory read-model store, from
the events recorded at or before a moment T only: what every read model said, or would have
said, at T, whatever was recorded later (backdated or not). Policies never run.

An event counts as known at T when it was recorded at or before T and so was every earlier
event of its account (the rule of ``AccountService.get_account_as_known_at``). Recorded times
come from the clock of the process that wrote the event, before the write, so notification
order does not imply recorded-time order (two writers, or a clock that was set back): the whole
log is read and each event judged, rather than stopping at the first one recorded after T. An
account's events are in notification order, so "every earlier event" is one set of accounts
already cut off.

The events selected are copied, still encoded, into an in-memory recorder; the runner decodes
them with the service's own mapper (so plugin value types and upcasters apply) and writes the
read models to memory. Memory therefore follows the number of events up to T.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, cast

import attrs
from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from acctdomain.domain.state import AccountState
from acctdomain.domain.values import moment_of
from acctdomain.errors import InvalidValue
from acctdomain.plugins.types import Projection, ReadModel
from acctdomain.projections.codec import RowCodec
from acctdomain.projections.memory_store import MemoryReadModelStore
from acctdomain.projections.runner import ProjectionRunner
from acctdomain.projections.status import Failure, ProjectionStatus

if TYPE_CHECKING:
    from collections.abc import Callable
    from uuid import UUID

    from eventsourcing.persistence import Mapper

    from acctdomain.application.service import AccountService

__all__ = ["AsOfReadModels", "read_models_as_known_at", "recorded_time"]

_PAGE = 1_000


def recorded_time(mapper: Mapper[Any], notification: StoredEvent) -> datetime | None:
    """When the stored event was recorded (its ``timestamp``), read from its state without
    resolving its class; None if the state cannot be read or has no aware timestamp."""
    state: Any = notification.state
    try:
        if mapper.cipher:
            state = mapper.cipher.decrypt(state)
        if mapper.compressor:
            state = mapper.compressor.decompress(state)
        decoded = mapper.transcoder.decode(state)
    except Exception:
        return None
    timestamp = decoded.get("timestamp") if isinstance(decoded, dict) else None
    if not isinstance(timestamp, datetime) or timestamp.utcoffset() is None:
        return None
    return timestamp


def _moment(t: object) -> datetime:
    return moment_of("t", t, end=True)


def _chosen(service: AccountService, names: object) -> list[Projection]:
    registered = service.plugins.projections()
    if names is None:
        return list(registered.values())
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise InvalidValue("names", f"expected a sequence of projection names, got {names!r}")
    chosen: list[Projection] = []
    for name in names:
        if not isinstance(name, str) or name not in registered:
            raise InvalidValue(
                "names", f"no projection named {name!r}; registered: {sorted(registered)}"
            )
        if registered[name] not in chosen:
            chosen.append(registered[name])
    if not chosen:
        raise InvalidValue("names", "an empty selection builds nothing; pass None for all")
    return chosen


def _pages(service: AccountService) -> Iterator[Sequence[Notification]]:
    """The service's notification log, a page at a time, in order."""
    position = 0
    while True:
        page = service.recorder.select_notifications(
            start=position, limit=_PAGE, inclusive_of_start=False
        )
        if not page:
            return
        yield page
        position = page[-1].id


@attrs.define
class _Source:
    """What a :class:`ProjectionRunner` reads of a service: the recorder (here, the events
    known at T), the mapper that decodes them, the clock that dates dead letters."""

    recorder: POPOApplicationRecorder
    mapper: Mapper[Any]
    clock: Callable[[], datetime]


@attrs.frozen(kw_only=True)
class AsOfReadModels:
    """Read models built from the events known at ``known_at``.

    ``position``: the notification id of the last event included (0: none); ``events``: how
    many were included; ``left_out``: how many were not (recorded after ``known_at``, or after
    an earlier event of their account that was left out); ``unreadable``: the notification
    ids of events whose recorded time could not be read (a state that does not decode), left
    out with the rest of their aggregate's events.
    """

    known_at: datetime
    position: int
    events: int
    left_out: int
    unreadable: tuple[int, ...]
    _runner: ProjectionRunner = attrs.field(repr=False, alias="runner")
    _service: AccountService = attrs.field(repr=False, alias="service")

    @property
    def names(self) -> list[str]:
        """The projections built, in registration order."""
        return self._runner.names

    def read_model(self, name: str) -> ReadModel:
        """Read access (``get``, ``scan``) to the tables of the projection ``name``."""
        if not isinstance(name, str) or name not in self._runner.names:
            raise InvalidValue("name", f"no projection named {name!r} here; built: {self.names}")
        return self._runner.read_model(name)

    def status(self) -> list[ProjectionStatus]:
        """Each projection's status after the build (a failed one stopped at its event)."""
        return self._runner.status()

    @property
    def failures(self) -> dict[str, Failure]:
        """The projections that failed while being built, with why (empty: none did)."""
        found: dict[str, Failure] = {}
        for name in self._runner.names:
            failure = self._runner.store.failure(self._runner.projection(name))
            if failure is not None:
                found[name] = failure
        return found

    def account(self, account_id: UUID) -> AccountState:
        """The account as known at the same moment (``get_account_as_known_at``)."""
        return self._service.get_account_as_known_at(account_id, self.known_at)


def read_models_as_known_at(
    service: AccountService, t: date | datetime, names: Iterable[str] | None = None
) -> AsOfReadModels:
    """Every registered projection of ``service`` (or those ``names``d) built from the
    events known at recorded time ``t`` (a date: the end of that day, UTC), in memory.

    Raises ``InvalidValue`` naming ``t`` or ``names``. A projection that fails is reported in
    :attr:`AsOfReadModels.failures` (its failure policy applies, as in any runner).
    """
    moment = _moment(t)
    projections = _chosen(service, names)
    mapper = service.mapper
    recorder = POPOApplicationRecorder()
    cut: set[Any] = set()  # aggregates with an event left out: the rest of theirs goes too
    position = events = left_out = 0
    unreadable: list[int] = []
    for page in _pages(service):
        known: list[Notification] = []
        for notification in page:
            originator = notification.originator_id
            recorded = None if originator in cut else recorded_time(mapper, notification)
            if recorded is not None and recorded <= moment:
                known.append(notification)
                continue
            if originator not in cut:
                cut.add(originator)
                if recorded is None:
                    unreadable.append(notification.id)
            left_out += 1
        if known:
            recorder.insert_events(known)
            position, events = known[-1].id, events + len(known)
    source = _Source(recorder, mapper, service.clock)
    runner = ProjectionRunner(
        cast("AccountService", source),
        projections,
        store=MemoryReadModelStore(RowCodec(mapper.transcoder)),
    )
    runner.catch_up()
    return AsOfReadModels(
        known_at=moment,
        position=position,
        events=events,
        left_out=left_out,
        unreadable=tuple(unreadable),
        runner=runner,
        service=service,
    )
