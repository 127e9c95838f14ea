"""Runs projections: catch-up from each one's position, exactly-once batches, isolation of
failures, pause and resume, rebuild.

A batch of notifications is read and decoded once for every projection at the same position,
then applied to each projection in a batch of its own, committed with its new position in one
transaction. A projection whose ``apply`` raises has its batch discarded and is marked failed
(it stops until :meth:`ProjectionRunner.resume`); the others go on. Policies never run here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self

import attrs
from eventsourcing.persistence import Notification

from acctdomain.errors import InvalidValue
from acctdomain.plugins.types import Projection, ReadModel
from acctdomain.projections.factory import read_model_store_for
from acctdomain.projections.feed import Decoded, Decoder, fetch_after, lowest, may_want
from acctdomain.projections.keys import ReadModelKey
from acctdomain.projections.status import Failure, ProjectionStatus, State
from acctdomain.projections.store import PositionConflict, ReadModelStore

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = ["ProjectionRunner"]

log = logging.getLogger(__name__)


@attrs.define
class _Progress:
    state: State = "running"
    failure: Failure | None = None
    unknown: int = 0


def _wanted_by(group: list[Projection]) -> Callable[[type], bool]:
    return lambda cls: any(may_want(projection, cls) for projection in group)


class _EventFailed(Exception):
    def __init__(self, position: int, error: Exception) -> None:
        super().__init__(position, error)
        self.position = position
        self.error = error


class ProjectionRunner:
    """Keeps ``projections`` up to date with ``service``'s events in ``store`` (default: the
    store beside the events, see :func:`read_model_store_for`). Not thread-safe: one runner
    per thread; several processes may each run one (a commit that lost a race is discarded)."""

    def __init__(
        self,
        service: AccountService,
        projections: Iterable[Projection],
        *,
        store: ReadModelStore | None = None,
        batch_size: int = 500,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidValue("batch_size", f"expected an integer >= 1, got {batch_size!r}")
        self._projections: dict[str, Projection] = {}
        for projection in projections:
            name = ReadModelKey.of(projection).name
            if name in self._projections:
                raise InvalidValue("projection.name", f"two projections are named {name!r}")
            self._projections[name] = projection
        self._service = service
        self._owns_store = store is None
        self.store = store if store is not None else read_model_store_for(service)
        self._batch_size = batch_size
        self._decoder = Decoder(service)
        self._progress = {name: _Progress() for name in self._projections}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the store if this runner opened it."""
        if self._owns_store:
            self.store.close()

    @property
    def names(self) -> list[str]:
        """The projections' names, in registration order."""
        return list(self._projections)

    def projection(self, name: str) -> Projection:
        """The projection called ``name``."""
        return self._get(name)

    def catch_up(self) -> int:
        """Apply every event recorded after each running projection's position; returns the
        number of notifications read."""
        return self._run(list(self._projections.values()))

    def rebuild(
        self, name: str | None = None, *, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Empty one projection's tables (or every projection's) and replay all events into
        them, reporting ``progress(done, total)`` in notification ids after each batch. A
        rebuilt projection starts afresh: running, without failure. Returns as catch_up."""
        selected = list(self._projections.values()) if name is None else [self._get(name)]
        for projection in selected:
            self.store.reset(projection)
            self._progress[projection.name] = _Progress()
        total = self._service.recorder.max_notification_id() or 0

        def report(done: int) -> None:
            if progress is not None:
                progress(done, total)

        report(0)
        # Up to the head seen at the start, with progress; then whatever came meanwhile.
        return self._run(selected, stop=total, report=report) + self._run(selected)

    def pause(self, name: str) -> None:
        """Stop applying events to ``name`` until :meth:`resume`."""
        self._progress[self._get(name).name].state = "paused"

    def resume(self, name: str) -> None:
        """Run ``name`` again (after a pause, or a failure once its cause is fixed); its last
        failure stays in the status for the record."""
        self._progress[self._get(name).name].state = "running"

    def status(self) -> list[ProjectionStatus]:
        """Where every projection is, in registration order."""
        head = self._service.recorder.max_notification_id() or 0
        statuses = []
        for name, projection in self._projections.items():
            progress = self._progress[name]
            position = self.store.position(projection)
            statuses.append(
                ProjectionStatus(
                    name=name,
                    version=projection.version,
                    position=position,
                    head=head,
                    lag=max(head - position, 0),
                    state=progress.state,
                    last_error=progress.failure,
                    unknown_events=progress.unknown,
                )
            )
        return statuses

    def read_model(self, name: str) -> ReadModel:
        """Read access to the committed tables of ``name``."""
        return self.store.reader(self._get(name))

    # --- the loop ------------------------------------------------------------------------------

    def _get(self, name: str) -> Projection:
        try:
            return self._projections[name]
        except KeyError:
            raise InvalidValue("projection", f"no projection named {name!r}") from None

    def _run(
        self,
        projections: Sequence[Projection],
        *,
        stop: int | None = None,
        report: Callable[[int], None] | None = None,
    ) -> int:
        positions = {
            p.name: self.store.position(p)
            for p in projections
            if self._progress[p.name].state == "running"
        }
        read = 0
        while positions:
            start, names = lowest(positions)
            notifications: Sequence[Notification] = ()
            if stop is None or start < stop:
                notifications = fetch_after(self._service, start, self._batch_size, stop)
            if not notifications:
                for name in names:
                    del positions[name]
                continue
            read += len(notifications)
            group = [self._projections[name] for name in names]
            decoded = self._decoder.decode(notifications, _wanted_by(group))
            end = notifications[-1].id
            for projection in group:
                reached = self._apply(projection, start, end, decoded)
                if reached is None:
                    del positions[projection.name]
                else:
                    positions[projection.name] = reached
            if report is not None:
                report(end)
        return read

    def _apply(
        self, projection: Projection, start: int, end: int, decoded: list[Decoded]
    ) -> int | None:
        """Apply one batch to one projection; its new position, or None if it failed."""
        unknown = 0
        try:
            with self.store.batch(projection) as batch:
                if batch.start != start:
                    raise PositionConflict(f"{projection.name} is at {batch.start}, not {start}")
                for entry in decoded:
                    if entry.unknown:
                        unknown += 1
                    elif entry.error is not None:
                        assert entry.cls is not None
                        if may_want(projection, entry.cls):
                            raise _EventFailed(entry.position, entry.error)
                    else:
                        try:
                            if projection.wants(entry.event):
                                projection.apply(entry.event, batch)
                        except Exception as error:
                            raise _EventFailed(entry.position, error) from error
                batch.advance(end)
                try:
                    batch.changes()  # an unencodable row is the projection's failure
                except Exception as error:
                    raise _EventFailed(end, error) from error
        except PositionConflict:
            # Another runner (another process) committed this batch first: go on from there.
            return self.store.position(projection)
        except _EventFailed as failed:
            self._fail(projection.name, failed.position, failed.error)
            return None
        self._progress[projection.name].unknown += unknown
        return end

    def _fail(self, name: str, position: int, error: Exception) -> None:
        log.error(
            "projection %s failed at notification %s: %r",
            name,
            position,
            error,
            exc_info=error,
        )
        progress = self._progress[name]
        progress.state = "failed"
        progress.failure = Failure(name, position, repr(error))
