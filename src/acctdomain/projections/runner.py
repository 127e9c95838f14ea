"""Runs projections: catch-up from each one's position, exactly-once batches, failure
policies and dead letters, pause and resume, rebuild (whole or one account's share).

A batch of notifications is read and decoded once for every projection at the same position,
then applied to each projection in a batch of its own, committed with its new position in one
transaction. A projection whose ``apply`` raises has its batch discarded; then its failure
policy decides (see :mod:`acctdomain.plugins.types`): ``Stop`` marks it failed (it stops until
:meth:`ProjectionRunner.resume`), ``Retry`` applies the batch again after a backoff, and
``DeadLetter`` applies the batch again without the failing event, which it parks, together with
every later event of that account while the account has dead letters, so that each account's
events are applied in order. The parked events are written in the batch's transaction. The
other projections go on in every case. Policies (side effects) never run here, so neither a
rebuild nor a replay of dead letters fires them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self, TypeAlias
from uuid import UUID

import attrs
from eventsourcing.persistence import Notification

from acctdomain.errors import InvalidValue
from acctdomain.plugins.types import (
    FailurePolicy,
    Projection,
    ReadModel,
    Retry,
    Stop,
    check_failure_policy,
)
from acctdomain.projections.batch import Batch, RowCache
from acctdomain.projections.factory import read_model_store_for
from acctdomain.projections.feed import Decoded, Decoder, fetch_after, lowest, may_want
from acctdomain.projections.keys import Partition, ReadModelKey, check_table_prefixes
from acctdomain.projections.status import (
    Failure,
    ParkedEvent,
    ParkedEventDetail,
    ProjectionStatus,
    ReplayResult,
    State,
)
from acctdomain.projections.store import (
    LayoutConflict,
    LetterFilter,
    PositionConflict,
    ReadModelStore,
)

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = ["Cancel", "ProjectionRunner", "keeps_accounts_apart"]

log = logging.getLogger(__name__)

Cancel: TypeAlias = Callable[[], bool] | threading.Event
"""What stops a rebuild between two batches: a callable returning True, or a set Event."""

# An event of a job, with the notification it came from (its account, topic and version).
_Entry = tuple[Decoded, Notification]


@attrs.define
class _Progress:
    # (whether a projection is stopped is in the store, for every process to see)
    failure: Failure | None = None
    unknown: int = 0
    rebuilding: bool = False


@attrs.frozen
class _Job:
    """Events to apply to one projection in one transaction, from ``start`` to ``end``.

    ``catch_up``: a batch of the log; ``share``: every event of ``account`` up to the position,
    into the emptied share (``share``: key prefix per table); ``replay``: the ``letters`` of
    one account, in order, without moving the position.
    """

    mode: Literal["catch_up", "share", "replay"]
    start: int
    end: int
    entries: Callable[[], Iterable[_Entry]]
    share: Mapping[str, str] | None = None
    account: UUID | None = None
    letters: Mapping[int, ParkedEvent] = attrs.field(factory=dict)


@attrs.frozen
class _Done:
    end: int
    replayed: tuple[int, ...] = ()
    failed: tuple[ParkedEvent, ...] = ()


def _wanted_by(group: list[Projection]) -> Callable[[type], bool]:
    return lambda cls: any(may_want(projection, cls) for projection in group)


def _account_of(notification: Notification) -> UUID:
    return UUID(str(notification.originator_id))


class _EventFailed(Exception):
    """The projection failed on the event at ``position`` (None: while its rows were encoded,
    not known for which event)."""

    def __init__(self, position: int | None, error: Exception) -> None:
        super().__init__(position, error)
        self.position = position
        self.error = error


class _Cancelled(Exception):
    """A rebuild was cancelled between two batches."""


class ProjectionRunner:
    """Keeps ``projections`` up to date with ``service``'s events in ``store`` (default: the
    store beside the events, see :func:`read_model_store_for`). Not thread-safe: one runner
    per thread; several processes may each run one (a commit that lost a race is discarded).

    ``batch_size`` bounds the notifications of one batch (one transaction per projection),
    by default 500; ``rebuild_batch_size`` while rebuilding, by default ``batch_size`` if
    given, else 50,000 (fewer, larger transactions: a row that many events change is decoded
    and written once per batch); such a batch also ends once a projection holds
    ``rebuild_rows`` rows, by default 100,000 (None: no bound), which bounds memory.
    Either way notifications are read and decoded ``batch_size`` at a time: memory follows a
    page and the rows a batch holds (kept decoded from one batch to the next, up to
    ``rebuild_rows``, for projections that declare ``cache_rows``).
    ``on_failure`` overrides the failure policy of projections by name; ``sleep`` is what a
    ``Retry`` waits with (tests pass one that does not sleep).

    With a ``partition`` (a worker of a scale-out), the runner applies only the events of the
    accounts of that part, and tracks its own position: several processes, one per part,
    run the projections together, each event applied once, by the worker of its account.
    Every projection must keep its rows apart by account (declare
    :meth:`Projection.account_share`). The first catch-up splits the projection version
    into ``partition.count`` parts, starting each at the position it had (see
    :meth:`ReadModelStore.partition`); from then on runners without a partition leave it to
    the workers (their status still shows it: the lowest of the parts' positions). Such a
    worker does not rebuild a whole projection (a runner without partition does, and the
    projection runs whole again: the workers fail with :class:`LayoutConflict` until
    resumed); it rebuilds shares and replays dead letters of its own accounts only.
    """

    def __init__(
        self,
        service: AccountService,
        projections: Iterable[Projection],
        *,
        store: ReadModelStore | None = None,
        batch_size: int | None = None,
        rebuild_batch_size: int | None = None,
        rebuild_rows: int | None = 100_000,
        on_failure: Mapping[str, FailurePolicy] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        partition: Partition | None = None,
    ) -> None:
        for label, size in (
            ("batch_size", batch_size),
            ("rebuild_batch_size", rebuild_batch_size),
            ("rebuild_rows", rebuild_rows),
        ):
            if size is not None and (
                isinstance(size, bool) or not isinstance(size, int) or size < 1
            ):
                raise InvalidValue(label, f"expected an integer >= 1, got {size!r}")
        if not callable(sleep):
            raise InvalidValue("sleep", f"expected a callable, got {sleep!r}")
        if on_failure is not None and not isinstance(on_failure, Mapping):
            raise InvalidValue("on_failure", f"expected a mapping of names, got {on_failure!r}")
        if partition is not None and not isinstance(partition, Partition):
            raise InvalidValue("partition", f"expected a Partition or None, got {partition!r}")
        self.partition = partition
        """The part of the accounts this runner applies events of (None: all)."""
        self._projections: dict[str, Projection] = {}
        self._policies: dict[str, FailurePolicy] = {}
        for projection in projections:
            name = ReadModelKey.of(projection).name
            if name in self._projections:
                raise InvalidValue("projection.name", f"two projections are named {name!r}")
            if partition is not None and not keeps_accounts_apart(projection):
                raise InvalidValue(
                    "partition",
                    f"projection {name!r} does not declare its account share "
                    "(account_share): it cannot be split by account",
                )
            self._projections[name] = projection
            self._policies[name] = _declared_policy(name, projection)
        for name, policy in (on_failure or {}).items():
            self.set_failure_policy(name, policy)
        self._service = service
        self._owns_store = store is None
        self.store = store if store is not None else read_model_store_for(service)
        self._batch_size = batch_size or 500
        self._rebuild_batch_size = rebuild_batch_size or batch_size or 50_000
        self._rebuild_rows = rebuild_rows
        self._sleep = sleep
        self._decoder = Decoder(service)
        self._progress = {name: _Progress() for name in self._projections}
        self._wanted: dict[tuple[tuple[type, ...], type], bool] = {}

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

    def failure_policy(self, name: str) -> FailurePolicy:
        """What this runner does when ``name`` fails: its own ``on_failure`` unless overridden."""
        return self._policies[self._get(name).name]

    def set_failure_policy(self, name: str, policy: FailurePolicy) -> None:
        """Override the failure policy of ``name`` in this runner."""
        self._policies[self._get(name).name] = check_failure_policy("on_failure", policy)

    def catch_up(self, *, cancel: Cancel | None = None) -> int:
        """Apply every event recorded after each running projection's position; returns the
        number of notifications read. ``cancel`` is checked between batches (a follower
        stopping); each committed batch stays, and a later catch-up goes on from there.

        A projection whose ``version`` differs from the one queries read (its code was
        upgraded) is built beside the old version, in tables of its own, while queries go on
        reading the old one; once it has caught up with the events recorded when this call
        began, it is served instead (one write) and the old version's tables are dropped.
        """
        cancelled = _cancel_check(cancel)
        head = self._service.recorder.max_notification_id() or 0
        self._split_projections()
        # Read once per catch-up (a command with project_synchronously runs one each time);
        # a switch by another runner meanwhile makes ours a no-op (compare-and-set).
        served = self._serving(self._projections.values())
        current = [p for p in self._projections.values() if not _superseded(p, served[p.name])]
        for projection in list(current):
            old = served[projection.name]
            tables = ReadModelKey.of(projection).tables
            if old is not None and old.version == projection.version and old.tables != tables:
                # Its tables changed without a new version: applying events to the new
                # tables would leave queries reading the old ones.
                current.remove(projection)
                if self.store.failure(self._key(projection)) is None:
                    reason = (
                        f"{projection.name!r} v{projection.version} declares tables {tables}, "
                        f"but the store serves it with {old.tables}: bump its version, or "
                        "rebuild it"
                    )
                    position = self.store.position(self._key(projection))
                    self._fail(projection.name, position, InvalidValue("tables", reason))
        read = self._run(current, cancel=cancelled)
        if not cancelled():
            self._take_over(current, head, served)
        return read

    def _key(self, projection: Projection) -> ReadModelKey:
        """The key this runner tracks the projection's position under."""
        return ReadModelKey.of(projection).part(self.partition)

    def _split_projections(self) -> None:
        """A worker splits each of its projections into its partitions, unless it is split
        already: at its first catch-up, and after a whole rebuild made it whole (the workers
        take it over from where the rebuild got to). Split another way, the projection
        stops with LayoutConflict."""
        if self.partition is None:
            return
        for name, projection in self._projections.items():
            key = self._key(projection)
            tracked = self.store.tracking(key)
            if tracked.partitions == self.partition.count or tracked.stopped:
                continue
            if _superseded(projection, self.store.serving(projection)):
                continue
            try:
                self.store.partition(key)
            except LayoutConflict as error:
                self._fail(name, tracked.position, error)

    def _owns(self, account: UUID) -> bool:
        return self.partition is None or self.partition.owns(account)

    def _mine(self, notifications: Sequence[Notification]) -> Sequence[Notification]:
        """The notifications of this runner's accounts."""
        if self.partition is None:
            return notifications
        owns = self.partition.owns  # the one definition of which accounts are a part's
        return [n for n in notifications if owns(_account_of(n))]

    def _check_owned(self, account: UUID) -> None:
        if not self._owns(account):
            raise InvalidValue(
                "account_id",
                f"account {account} is not in partition {self.partition} of this runner",
            )

    def rebuild(
        self,
        name: str | None = None,
        *,
        account_id: UUID | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancel: Cancel | None = None,
    ) -> int:
        """Empty one projection's tables (or every projection's) and replay all events into
        them, reporting ``progress(done, total)`` in notification ids after each batch. A
        rebuilt projection starts afresh: running, without failure or dead letters. Returns
        the number of notifications read.

        With ``account_id``, only that account's share: its rows (see
        :meth:`Projection.account_share`) and dead letters are replaced, in one transaction,
        by what its events up to the projection's position make (failures follow the
        policy); the position and the other accounts' rows do not change.

        ``cancel`` is checked between batches: a cancelled whole rebuild leaves each
        projection at a position that agrees with its rows (a later catch_up goes on from
        there); a cancelled share rebuild commits nothing. The state is ``rebuilding`` meanwhile.
        A paused projection is not rebuilt (InvalidValue).
        """
        selected = list(self._projections.values()) if name is None else [self._get(name)]
        cancelled = _cancel_check(cancel)
        if progress is not None and not callable(progress):
            raise InvalidValue("progress", f"expected a callable, got {progress!r}")
        if self.partition is not None and account_id is None:
            raise InvalidValue(
                "partition",
                f"a worker of partition {self.partition} rebuilds one account's share only: "
                "stop the workers and rebuild whole with a runner without partition",
            )
        for projection in selected:
            if self.store.is_paused(projection):
                raise InvalidValue(
                    "projection", f"{projection.name!r} is paused: resume it before rebuilding"
                )
            if _superseded(projection, self.store.serving(projection)):
                raise InvalidValue(
                    "projection",
                    f"{projection.name!r} v{projection.version} is superseded by the version "
                    "served: upgrade this code before rebuilding",
                )

        def report(done: int, total: int) -> None:
            if progress is not None:
                progress(done, total)

        if account_id is not None:
            account = _check_account(account_id)
            self._check_owned(account)
            shares = {p.name: self._share_of(p, account) for p in selected}
            return self._rebuild_shares(selected, account, shares, report, cancelled)
        for projection in selected:
            self.store.reset(projection)
            self._progress[projection.name] = _Progress(rebuilding=True)
        total = self._service.recorder.max_notification_id() or 0
        try:
            report(0, total)
            # Up to the head seen at the start, with progress; then whatever came meanwhile.
            read = self._run(
                selected, stop=total, report=lambda done: report(done, total), cancel=cancelled
            )
            if not cancelled():
                read += self._run(selected, cancel=cancelled)
                self._take_over(selected, total, self._serving(selected))
        finally:
            for projection in selected:
                self._progress[projection.name].rebuilding = False
        return read

    def pause(self, name: str) -> None:
        """Stop applying events to ``name`` until :meth:`resume`: recorded in the store, so
        every runner on it (in any process) holds it, from its next batch."""
        self.store.set_paused(self._get(name), True)

    def resume(self, name: str) -> None:
        """Run ``name`` again (after a pause, or a failure once its cause is fixed), in every
        process (and every partition); its last failure stays in this runner's status for
        the record."""
        projection = self._get(name)
        self.store.set_paused(projection, False)
        self.store.clear_failures(projection)

    def status(self) -> list[ProjectionStatus]:
        """Where every projection is, in registration order."""
        head = self._service.recorder.max_notification_id() or 0
        times: dict[int, datetime | None] = {}
        statuses = []
        for name, projection in self._projections.items():
            progress = self._progress[name]
            served = self.store.serving(projection)
            superseded = _superseded(projection, served)
            # A superseded version's tables were dropped: reading its position would make them.
            position = 0 if superseded else self.store.position(self._key(projection))
            partitions = 1 if superseded else self.store.tracking(projection).partitions
            stopped = None if superseded else self.store.failure(self._key(projection))
            state: State = "running"
            if progress.rebuilding:
                state = "rebuilding"
            elif superseded:
                state = "superseded"
            elif self.store.is_paused(projection):
                state = "paused"
            elif stopped is not None:
                state = "failed"
            statuses.append(
                ProjectionStatus(
                    name=name,
                    version=projection.version,
                    position=position,
                    head=head,
                    lag=max(head - position, 0),
                    lag_seconds=self._lag_seconds(position, head, times),
                    state=state,
                    last_error=stopped or progress.failure,
                    unknown_events=progress.unknown,
                    dead_letters=0 if superseded else self.store.dead_letter_count(projection),
                    on_failure=self._policies[name],
                    serving_version=(served or ReadModelKey.of(projection)).version,
                    partitions=partitions,
                    partition=None if self.partition is None else str(self.partition),
                )
            )
        return statuses

    def read_model(self, name: str) -> ReadModel:
        """Read access to the committed tables of ``name``, in the version being served (the
        old one while a new version is built beside it)."""
        return self.store.reader(self._served(self._get(name)))

    # --- versions ------------------------------------------------------------------------------

    def _served(self, projection: Projection) -> ReadModelKey:
        """The version queries read: the one recorded as served, else this code's own."""
        return self.store.serving(projection) or ReadModelKey.of(projection)

    def _serving(self, projections: Iterable[Projection]) -> dict[str, ReadModelKey | None]:
        """The served version of each projection (None where none is yet)."""
        return {projection.name: self.store.serving(projection) for projection in projections}

    def _take_over(
        self,
        projections: Iterable[Projection],
        head: int,
        served: Mapping[str, ReadModelKey | None],
    ) -> None:
        """Serve each projection's own version once it is complete up to ``head`` (caught up,
        running, no dead letters), if it is newer than the one ``served``; the first version
        of a projection is served from the start."""
        for projection in projections:
            old = served[projection.name]
            if old is None:
                self.store.serve(projection)
                continue
            if old.version >= projection.version:
                continue
            if (
                self.store.failure(projection) is not None
                or self.store.is_paused(projection)
                or self.store.dead_letter_count(projection)
                or self.store.position(projection) < head
            ):
                continue
            if self.store.switch(old, projection):
                log.info(
                    "projection %s: version %s served in place of %s, which was dropped",
                    projection.name,
                    projection.version,
                    old.version,
                )

    # --- dead letters --------------------------------------------------------------------------

    def dead_letters(self, name: str, *, account_id: UUID | None = None) -> list[ParkedEvent]:
        """The events ``name`` parked (those of one account), by position."""
        return self.store.dead_letters(self._get(name), _selection(account_id, None))

    def inspect_dead_letter(self, name: str, position: int) -> ParkedEventDetail:
        """One dead letter of ``name``, with its event read back from the store."""
        projection = self._get(name)
        parked = self.store.dead_letters(projection, _selection(None, position))
        if not parked:
            raise InvalidValue("position", f"{name!r} has no dead letter at {position}")
        notification = self._notification(position)
        if notification is None:
            return ParkedEventDetail(parked[0], None, "the event is not in the store")
        try:
            event = self._service.mapper.to_domain_event(notification)
        except Exception as error:
            return ParkedEventDetail(parked[0], None, repr(error))
        return ParkedEventDetail(parked[0], event)

    def replay_dead_letters(
        self, name: str, *, account_id: UUID | None = None, position: int | None = None
    ) -> ReplayResult:
        """Apply the dead letters of ``name`` again: every account's, one account's, or the
        one at ``position`` (which must be its account's first). Each account's are applied in
        order, in one transaction with the removal of those that succeed; the first that fails
        again is kept with its new error, and it and the later ones of its account stay."""
        projection = self._get(name)
        selection = _selection(account_id, position)
        if selection.account_id is not None:
            self._check_owned(selection.account_id)
        letters = self.store.dead_letters(projection, selection)
        if position is not None and letters:
            self._check_owned(letters[0].account_id)
        # A worker replays its own accounts' letters; the other workers, theirs.
        letters = [parked for parked in letters if self._owns(parked.account_id)]
        if position is not None:
            if not letters:
                raise InvalidValue("position", f"{name!r} has no dead letter at {position}")
            first = self.dead_letters(name, account_id=letters[0].account_id)[0]
            if first.position != position:
                raise InvalidValue(
                    "position",
                    f"the dead letter at {first.position} of account {first.account_id} comes "
                    f"before {position}: replay it first, or the whole account",
                )
        replayed: list[int] = []
        failed: list[ParkedEvent] = []
        for account in dict.fromkeys(parked.account_id for parked in letters):
            done = self._replay_account(
                projection, LetterFilter(account_id=account, position=position)
            )
            replayed.extend(done.replayed)
            failed.extend(done.failed)
        return ReplayResult(tuple(replayed), tuple(failed))

    def purge_dead_letters(
        self, name: str, *, account_id: UUID | None = None, position: int | None = None
    ) -> int:
        """Delete dead letters of ``name`` without applying them (every one, one account's, or
        the one at ``position``); returns how many. An account whose dead letters are all gone
        has its later events applied again. A worker of a partition purges its own accounts'
        only."""
        projection = self._get(name)
        selection = _selection(account_id, position)
        if self.partition is None:
            return self.store.purge(projection, selection)
        if selection.account_id is not None:
            self._check_owned(selection.account_id)
        letters = self.store.dead_letters(projection, selection)
        purged = 0
        if position is not None and letters:
            self._check_owned(letters[0].account_id)
        for account in dict.fromkeys(parked.account_id for parked in letters):
            if self._owns(account):
                purged += self.store.purge(projection, attrs.evolve(selection, account_id=account))
        return purged

    # --- the loop ------------------------------------------------------------------------------

    def _get(self, name: str) -> Projection:
        try:
            return self._projections[name]
        except (KeyError, TypeError):
            raise InvalidValue("projection", f"no projection named {name!r}") from None

    def _run(
        self,
        projections: Sequence[Projection],
        *,
        stop: int | None = None,
        report: Callable[[int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> int:
        positions: dict[str, int] = {}
        for p in projections:
            tracked = self.store.tracking(self._key(p))  # (one read: position, split, stop)
            if tracked.stopped:
                continue
            if tracked.partitions == (1 if self.partition is None else self.partition.count):
                positions[p.name] = tracked.position
            # else: split into partitions, whose workers run it (or, for a worker, made
            # whole again by a rebuild since it split it: it splits it again next time)
        # Rows that a projection's batches commit stay decoded for its next batch in this run
        # (projections that declare ``cache_rows``: they neither keep rows nor share objects
        # between rows, so the rows they were handed are the committed ones).
        caches = {
            p.name: RowCache(limit=self._rebuild_rows or 100_000)
            for p in projections
            if getattr(p, "cache_rows", False) is True
        }
        read = 0

        def reread(projection: Projection, after: int, upto: int) -> Callable[[], Iterator[_Entry]]:
            """The notifications after ``after`` up to ``upto``, read again and decoded for
            ``projection`` alone, a page at a time (each call reads them again)."""

            def entries() -> Iterator[_Entry]:
                position = after
                while position < upto:
                    notifications = fetch_after(self._service, position, self._batch_size, upto)
                    if not notifications:
                        return
                    decoded = self._decoder.decode(
                        self._mine(notifications), lambda cls: may_want(projection, cls)
                    )
                    by_id = {notification.id: notification for notification in notifications}
                    for entry in decoded:
                        yield entry, by_id[entry.position]
                    position = notifications[-1].id

            return entries

        def run_span(
            group: list[Projection], start: int, span: int, rows: int | None
        ) -> tuple[dict[str, _Done | Exception], int] | None:
            """Apply up to ``span`` notifications after ``start`` to every projection of
            ``group``, in one transaction each: read and decoded once, a page at a time,
            each page applied to every open batch in turn (memory follows a page and the
            rows, not the span), until a projection holds ``rows`` rows. Each projection's
            outcome, and the last notification read; None if there is none after ``start``."""
            page = min(self._batch_size, span)
            wanted = _wanted_by(group)
            reached, taken = start, 0

            def pages() -> Iterator[tuple[list[_Entry], int]]:
                nonlocal reached, taken, read
                while taken < span and (stop is None or reached < stop):
                    if taken and cancel is not None and cancel():
                        return
                    notifications = fetch_after(
                        self._service, reached, min(page, span - taken), stop
                    )
                    if not notifications:
                        return
                    taken += len(notifications)
                    read += len(notifications)
                    decoded = self._decoder.decode(self._mine(notifications), wanted)
                    by_id = {notification.id: notification for notification in notifications}
                    reached = notifications[-1].id
                    yield [(entry, by_id[entry.position]) for entry in decoded], reached

            feed = pages()
            first = next(feed, None)
            if first is None:
                return None
            reported = start

            def every_page() -> Iterator[tuple[list[_Entry], int]]:
                assert first is not None
                yield first
                yield from feed

            failure: list[Exception] = []  # of reading, or of report or cancel

            def drive(appliers: list[Callable[[list[_Entry]], int]]) -> int:
                nonlocal reported
                live = list(appliers)
                stream = every_page()
                while True:
                    try:
                        entries, end = next(stream, (None, 0))
                    except Exception as error:  # the batches keep the pages applied so far
                        failure.append(error)
                        break
                    if entries is None:
                        break
                    held = 0
                    for apply in list(live):
                        try:
                            held = max(held, apply(entries))
                        except Exception:  # its batch is discarded when the span ends
                            live.remove(apply)
                    if report is not None:
                        try:
                            report(end)
                        except Exception as error:
                            failure.append(error)
                            break
                        reported = end
                    if not live or (rows is not None and held >= rows):
                        break
                return reached

            outcomes: dict[str, _Done | Exception] = {}

            def nest(index: int, appliers: list[Callable[[list[_Entry]], int]]) -> int:
                # Open the batch of group[index], the later ones inside it, then drive the
                # pages through all of them: each commits (or is discarded) on the way out.
                if index == len(group):
                    return drive(appliers)
                projection = group[index]
                joined = False

                def join(apply: Callable[[list[_Entry]], int]) -> int:
                    nonlocal joined
                    joined = True
                    return nest(index + 1, [*appliers, apply])

                job = _Job("catch_up", start, start, partial(iter, ()))
                try:
                    outcomes[projection.name] = self._attempt(
                        projection, job, {}, False, caches.get(projection.name), join
                    )
                except Exception as error:
                    outcomes[projection.name] = error
                if not joined:  # it failed before taking a page: the others go on
                    nest(index + 1, appliers)
                return reached

            nest(0, [])
            if failure:  # each batch committed what it applied (or was discarded)
                raise failure[0]
            if report is not None and reported != reached:
                report(reached)
            return outcomes, reached

        while positions:
            if cancel is not None and cancel():
                break
            start, names = lowest(positions)
            running = []
            for name in names:  # a pause by any runner holds from the next batch
                if self.store.is_paused(self._projections[name]):
                    del positions[name]
                else:
                    running.append(name)
            if not running:
                continue
            group = [self._projections[name] for name in running]
            rebuilding = all(self._progress[name].rebuilding for name in running)
            span = self._rebuild_batch_size if rebuilding else self._batch_size
            ran = run_span(group, start, span, self._rebuild_rows if rebuilding else None)
            if ran is None:  # nothing after the position: the group is up to date
                for name in running:
                    del positions[name]
                continue
            outcomes, reached = ran
            unexpected: Exception | None = None
            for projection in group:
                outcome = outcomes[projection.name]
                done: _Done | None
                if isinstance(outcome, _Done):
                    done = outcome
                elif isinstance(outcome, PositionConflict):
                    # Another runner (another process) committed this batch first.
                    done = _Done(self.store.position(self._key(projection)))
                elif isinstance(outcome, LayoutConflict):
                    # Split (or made whole) by another runner since the positions were read.
                    done = None
                elif isinstance(outcome, _EventFailed):
                    # Its failure policy decides, over the same span read again for it alone.
                    job = _Job("catch_up", start, reached, reread(projection, start, reached))
                    done = self._process(projection, job, caches.get(projection.name), outcome)
                else:
                    unexpected = unexpected or outcome
                    continue
                if done is None:
                    del positions[projection.name]
                else:
                    positions[projection.name] = done.end
            if unexpected is not None:
                raise unexpected
        return read

    def _process(
        self,
        projection: Projection,
        job: _Job,
        cache: RowCache | None = None,
        failure: _EventFailed | None = None,
    ) -> _Done | None:
        """Apply ``job`` under the projection's failure policy: what was done, or None if the
        projection stopped. A catch_up job that lost a race goes on from the winner's
        position; other jobs raise PositionConflict (their caller starts them again). A
        ``cache`` (catch_up jobs only) serves the rows the previous batches committed;
        ``failure``: how a first attempt at the job already failed."""
        name = projection.name
        policy = self._policies[name]
        parked: dict[int, str] = {}  # failing events, with their errors
        attempt = 0
        locate = False
        while True:
            try:
                if failure is not None:
                    failed_before, failure = failure, None
                    raise failed_before
                return self._attempt(projection, job, parked, locate, cache)
            except PositionConflict:
                if job.mode != "catch_up":
                    raise
                # Another runner (another process) committed this batch first.
                return _Done(self.store.position(self._key(projection)))
            except _EventFailed as failed:
                self._progress[name].failure = Failure(
                    name, failed.position or job.end, repr(failed.error)
                )
                if (
                    failed.position is None
                    and not locate
                    and (job.mode == "replay" or _parks(policy))
                ):
                    # Some row cannot be stored: apply again, checking the rows after each
                    # event, to know which event to park.
                    locate = True
                    continue
                if job.mode == "replay":
                    position = failed.position or min(job.letters)
                    parked[position] = repr(failed.error)
                    continue
                if isinstance(policy, Retry) and attempt < policy.attempts:
                    attempt += 1
                    delay = policy.delay(attempt)
                    log.warning(
                        "projection %s failed at notification %s: %r; retry %s of %s in %ss",
                        name,
                        failed.position or job.end,
                        failed.error,
                        attempt,
                        policy.attempts,
                        delay,
                    )
                    self._sleep(delay)
                    continue
                if failed.position is None or not _parks(policy):
                    self._fail(name, failed.position or job.end, failed.error)
                    return None
                log.warning(
                    "projection %s parked notification %s: %r", name, failed.position, failed.error
                )
                parked[failed.position] = repr(failed.error)
                attempt = 0

    def _attempt(
        self,
        projection: Projection,
        job: _Job,
        parked: Mapping[int, str],
        locate: bool,
        cache: RowCache | None = None,
        feed: Callable[[Callable[[list[_Entry]], int]], int] | None = None,
    ) -> _Done:
        """Apply ``job`` once, in one transaction, parking the events in ``parked`` and every
        later one of their accounts (and of accounts that have dead letters already). With a
        ``cache``, rows are read from it first and the committed ones left in it; a failed
        attempt empties it.

        With ``feed`` (catch_up jobs), the events come from the caller a page at a time
        instead of from ``job.entries``: ``feed(apply)`` calls ``apply(page)`` for each page
        in order (``apply`` returns how many rows the batch holds, or raises what applying
        raises; after that, it must not be called again) and returns the position the batch
        ends at. If a page failed, the batch is
        discarded and this raises its error once ``feed`` returns."""
        unknown = 0
        replayed: list[int] = []
        failed: list[ParkedEvent] = []
        end = job.end
        try:
            with self.store.batch(self._key(projection), share=job.share) as batch:
                if cache is not None:
                    # (the epoch: ReadModelStore.batch does not hand it to the batch)
                    batch.use_cache(cache, self.store.tracking(batch.key).epoch)
                if batch.start != job.start:
                    raise PositionConflict(
                        f"{projection.name} is at {batch.start}, not {job.start}"
                    )
                if locate:
                    batch.watch()
                blocked = (
                    self.store.blocked_accounts(projection) if job.mode == "catch_up" else set()
                )
                if job.account is not None:
                    batch.unpark_account(job.account)
                errors: list[BaseException] = []
                stopped = [False]  # a replayed letter failed again: the rest wait behind it

                def apply(entries: Iterable[_Entry]) -> None:
                    nonlocal unknown
                    try:
                        for entry, notification in entries:
                            position = entry.position
                            if position in parked:  # (checked first: wants() may have failed)
                                if job.mode == "replay":
                                    again = attrs.evolve(
                                        job.letters[position], error=parked[position]
                                    )
                                    batch.park(again)
                                    failed.append(again)
                                    stopped[0] = True
                                    return
                                batch.park(self._parked(projection, notification, parked[position]))
                                blocked.add(_account_of(notification))
                                continue
                            if entry.unknown or not self._wants(projection, entry):
                                unknown += entry.unknown
                                if job.mode == "replay":  # nothing to apply: the letter is done
                                    batch.unpark(position)
                                    replayed.append(position)
                                continue
                            if job.mode != "replay" and blocked:
                                account = _account_of(notification)
                                if account in blocked:  # behind a dead letter of its account
                                    batch.park(self._parked(projection, notification, None))
                                    continue
                            self._apply_one(projection, entry, batch, locate)
                            if job.mode == "replay":
                                batch.unpark(position)
                                replayed.append(position)
                    except BaseException as error:
                        errors.append(error)
                        raise

                if feed is None:
                    apply(job.entries())
                else:

                    def apply_page(entries: list[_Entry]) -> int:
                        if not stopped[0]:
                            apply(entries)
                        return batch.held()

                    end = feed(apply_page)
                    if errors:
                        raise errors[0]
                batch.advance(end)
                try:
                    batch.changes()  # an unencodable row is the projection's failure
                except Exception as error:
                    raise _EventFailed(None, error) from error
        except BaseException:
            if cache is not None:
                cache.clear()  # the projection may have changed rows it was lent
            raise
        if cache is not None:
            cache.absorb(batch)
        if job.mode == "catch_up":
            self._progress[projection.name].unknown += unknown
        return _Done(end, tuple(replayed), tuple(failed))

    def _wants(self, projection: Projection, entry: Decoded) -> bool:
        try:
            if entry.error is not None:
                assert entry.cls is not None
                return may_want(projection, entry.cls)
            if type(projection).wants is Projection.wants:
                # The default test depends on the event's class and event_types alone:
                # decide it once per pair.
                key = (projection.event_types, type(entry.event))
                wanted = self._wanted.get(key)
                if wanted is None:
                    wanted = self._wanted[key] = projection.wants(entry.event)
                return wanted
            return projection.wants(entry.event)
        except Exception as error:
            raise _EventFailed(entry.position, error) from error

    @staticmethod
    def _apply_one(projection: Projection, entry: Decoded, batch: Batch, locate: bool) -> None:
        if entry.error is not None:
            raise _EventFailed(entry.position, entry.error)
        try:
            projection.apply(entry.event, batch)
            if locate:
                batch.check_rows()
        except Exception as error:
            raise _EventFailed(entry.position, error) from error

    def _parked(
        self, projection: Projection, notification: Notification, error: str | None
    ) -> ParkedEvent:
        return ParkedEvent(
            projection=projection.name,
            version=projection.version,
            position=notification.id,
            account_id=_account_of(notification),
            originator_version=notification.originator_version,
            topic=notification.topic,
            error=error,
            parked_at=self._service.clock(),
        )

    def _fail(self, name: str, position: int, error: Exception) -> None:
        log.error(
            "projection %s failed at notification %s: %r",
            name,
            position,
            error,
            exc_info=error,
        )
        failure = Failure(name, position, repr(error))
        self._progress[name].failure = failure
        # Recorded in the store: every process sees it stopped, until a resume or a rebuild.
        self.store.set_failure(self._key(self._projections[name]), failure)

    # --- rebuilding one account's share, replaying dead letters ---------------------------------

    def _share_of(self, projection: Projection, account: UUID) -> Mapping[str, str]:
        share = projection.account_share(account)
        if share is None:
            raise InvalidValue(
                "account_id",
                f"projection {projection.name!r} does not declare its account share "
                "(account_share): rebuild it whole",
            )
        return check_table_prefixes(ReadModelKey.of(projection), share)

    def _rebuild_shares(
        self,
        selected: list[Projection],
        account: UUID,
        shares: Mapping[str, Mapping[str, str]],
        report: Callable[[int, int], None],
        cancelled: Callable[[], bool],
    ) -> int:
        read = [0]
        for projection in selected:
            progress = self._progress[projection.name]
            progress.rebuilding = True
            try:
                while True:
                    position = self.store.position(self._key(projection))
                    report(0, position)
                    events = self._account_events(
                        projection, account, position, read, report, cancelled
                    )
                    job = _Job(
                        "share",
                        position,
                        position,
                        events,
                        share=shares[projection.name],
                        account=account,
                    )
                    try:
                        self._process(projection, job)
                    except PositionConflict:
                        continue  # another runner moved it on: start again from there
                    break
            except _Cancelled:
                break
            finally:
                progress.rebuilding = False
        return read[0]

    def _account_events(
        self,
        projection: Projection,
        account: UUID,
        stop: int,
        read: list[int],
        report: Callable[[int, int], None],
        cancelled: Callable[[], bool],
    ) -> Callable[[], Iterator[_Entry]]:
        """The events of ``account`` up to ``stop``, read from the log in batches (only its own
        are decoded); each call reads them again."""
        target = str(account)

        def events() -> Iterator[_Entry]:
            position = 0
            while position < stop:
                if cancelled():
                    raise _Cancelled
                notifications = fetch_after(self._service, position, self._batch_size, stop)
                if not notifications:
                    return
                read[0] += len(notifications)
                mine = [n for n in notifications if str(n.originator_id) == target]
                decoded = self._decoder.decode(mine, lambda cls: may_want(projection, cls))
                by_id = {notification.id: notification for notification in mine}
                for entry in decoded:
                    yield entry, by_id[entry.position]
                position = notifications[-1].id
                report(position, stop)

        return events

    def _replay_account(self, projection: Projection, selection: LetterFilter) -> _Done:
        while True:
            letters = self.store.dead_letters(projection, selection)
            if not letters:
                return _Done(self.store.position(self._key(projection)))
            notifications: list[Notification] = []
            missing = None  # a letter whose event is gone: the account's replay stops there
            for parked in letters:
                notification = self._notification(parked.position)
                if notification is None:
                    missing = attrs.evolve(parked, error="the event is not in the store")
                    break
                notifications.append(notification)
            decoded = self._decoder.decode(notifications, lambda cls: True)
            entries = list(zip(decoded, notifications, strict=True))
            position = self.store.position(self._key(projection))
            job = _Job(
                "replay",
                position,
                position,
                partial(iter, entries),
                letters={parked.position: parked for parked in letters},
            )
            try:
                done = self._process(projection, job)
            except PositionConflict:
                continue  # the projection moved on meanwhile (it may have parked more)
            assert done is not None  # a replay keeps what fails: it never stops
            if missing is not None and not done.failed:
                return attrs.evolve(done, failed=(missing,))
            return done

    def _notification(self, position: int) -> Notification | None:
        found = self._service.recorder.select_notifications(start=position, limit=1)
        return found[0] if found and found[0].id == position else None

    # --- lag in seconds --------------------------------------------------------------------------

    def _lag_seconds(
        self, position: int, head: int, times: dict[int, datetime | None]
    ) -> float | None:
        if position >= head:
            return 0.0
        if position <= 0:
            return None
        newest, oldest = self._recorded_at(head, times), self._recorded_at(position, times)
        if newest is None or oldest is None:
            return None
        return max((newest - oldest).total_seconds(), 0.0)

    def _recorded_at(self, position: int, times: dict[int, datetime | None]) -> datetime | None:
        """When the event at ``position`` was recorded; None if it cannot be read."""
        if position not in times:
            times[position] = None
            notification = self._notification(position)
            if notification is not None:
                try:
                    event = self._service.mapper.to_domain_event(notification)
                    timestamp = getattr(event, "timestamp", None)
                except Exception:
                    return None
                if isinstance(timestamp, datetime):
                    times[position] = timestamp
        return times[position]


def keeps_accounts_apart(projection: Projection) -> bool:
    """Whether the projection says where each account's rows are (it overrides
    :meth:`Projection.account_share`), so that workers of different accounts never write
    the same row."""
    return getattr(type(projection), "account_share", None) is not Projection.account_share


def _declared_policy(name: str, projection: Projection) -> FailurePolicy:
    try:
        return check_failure_policy("projection.on_failure", projection.on_failure)
    except InvalidValue as error:
        raise InvalidValue("projection.on_failure", f"{name!r}: {error.reason}") from None


def _parks(policy: FailurePolicy) -> bool:
    final = policy.then if isinstance(policy, Retry) else policy
    return not isinstance(final, Stop)


def _cancel_check(cancel: Cancel | None) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    if not callable(cancel):
        raise InvalidValue("cancel", f"expected a callable or a threading.Event, got {cancel!r}")
    return lambda: bool(cancel())


def _check_account(account_id: object) -> UUID:
    if not isinstance(account_id, UUID):
        raise InvalidValue("account_id", f"expected a UUID, got {account_id!r}")
    return account_id


def _selection(account_id: object, position: object) -> LetterFilter:
    if account_id is not None and position is not None:
        raise InvalidValue("position", "give an account_id or a position, not both")
    if position is not None and (
        isinstance(position, bool) or not isinstance(position, int) or position < 1
    ):
        raise InvalidValue("position", f"expected a notification id >= 1, got {position!r}")
    return LetterFilter(
        account_id=None if account_id is None else _check_account(account_id),
        position=position,
    )


def _superseded(projection: Projection, served: ReadModelKey | None) -> bool:
    """Whether a newer version than this code's is served (an old process in a rolling
    upgrade): building this one would be wasted, it would never be served."""
    return served is not None and served.version > projection.version
