"""Following the event store live: catch up, then react to each new event as it is recorded.

A :class:`StoreFollower` subscribes to the service's recorder (in memory; an SQLite file,
through :mod:`acctdomain.application.sqlite_persistence`, also when another process writes;
PostgreSQL, through LISTEN/NOTIFY) and, on every wake-up, lets its runners catch up. The
runners do the real work, exactly once, in batches: the subscription is only an alarm clock,
so notifications that arrive while a catch-up runs cost nothing more.

>>> from acctdomain import AccountService
>>> service = AccountService("memory:")
>>> with StoreFollower.for_service(service) as follower:
...     follower.wait_until(timeout=10)
0
"""

from __future__ import annotations

import logging
import math
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Self

import attrs
from eventsourcing.persistence import ApplicationRecorder, Subscription

from acctdomain.errors import InvalidValue
from acctdomain.projections.policies import PolicyRunner
from acctdomain.projections.runner import ProjectionRunner

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = ["FollowerCrash", "StoreFollower"]

log = logging.getLogger(__name__)

# The longest wait between two attempts after the loop failed again and again.
MAX_RETRY_DELAY = 30.0


@attrs.frozen
class FollowerCrash:
    """The follow loop failed (the store went away, a runner raised): ``error`` is the repr
    of the exception, ``count`` how many times the loop has failed in this follower. It starts
    again after ``retry_in`` seconds."""

    error: str
    count: int
    retry_in: float


class StoreFollower:
    """Keeps ``projections`` (and ``policies``, if given) current with ``service``'s store.

    :meth:`run` follows in the calling thread until :meth:`stop`; :meth:`start` runs it in a
    thread of its own (as does ``with follower:``). The runners are used from that thread
    only, so give the follower runners of its own, not ``service.projections`` (which the
    service uses from the caller's thread): :meth:`for_service` builds them. Runners in other
    threads or processes may follow the same store: the runners commit each batch once.

    Besides each wake-up of the subscription, the follower compares the store's last
    notification id with its position after ``recheck_interval`` idle seconds, so a wake-up
    lost by a subscription delays an event by that much at most.

    When the loop fails it does not die silently: the error is logged and kept in
    :attr:`last_crash`, and the loop starts again (catch-up first) after ``retry_delay``
    seconds, doubling with each failure in a row up to 30 seconds.
    """

    def __init__(
        self,
        service: AccountService,
        projections: ProjectionRunner,
        policies: PolicyRunner | None = None,
        *,
        retry_delay: float = 0.5,
        recheck_interval: float = 1.0,
    ) -> None:
        if not isinstance(projections, ProjectionRunner):
            raise InvalidValue("projections", f"expected a ProjectionRunner, got {projections!r}")
        if policies is not None and not isinstance(policies, PolicyRunner):
            raise InvalidValue("policies", f"expected a PolicyRunner or None, got {policies!r}")
        self._retry_delay = _seconds("retry_delay", retry_delay)
        self._recheck_interval = _seconds("recheck_interval", recheck_interval)
        self._service = service
        self.projections = projections
        """The runner of the projections this follower keeps current."""
        self.policies = policies
        """The runner of the policies this follower feeds, if any."""
        self._owned: tuple[ProjectionRunner | PolicyRunner, ...] = ()
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._position = 0
        self._crashes = 0
        self._crashes_in_a_row = 0
        self._last_crash: FollowerCrash | None = None

    @classmethod
    def for_service(
        cls,
        service: AccountService,
        *,
        with_policies: bool = True,
        retry_delay: float = 0.5,
        recheck_interval: float = 1.0,
    ) -> Self:
        """A follower with runners of its own for every projection (and, with
        ``with_policies``, every policy) registered with ``service``; :meth:`close` closes
        them."""
        if not isinstance(with_policies, bool):
            raise InvalidValue("with_policies", f"expected True or False, got {with_policies!r}")
        projection_runner = ProjectionRunner(service, service.plugins.projections().values())
        policy_runner = None
        try:
            if with_policies:
                policy_runner = PolicyRunner(service, service.plugins.policies().values())
            follower = cls(
                service,
                projection_runner,
                policy_runner,
                retry_delay=retry_delay,
                recheck_interval=recheck_interval,
            )
        except BaseException:
            projection_runner.close()
            if policy_runner is not None:
                policy_runner.close()
            raise
        follower._owned = (projection_runner,) + ((policy_runner,) if policy_runner else ())
        return follower

    # --- state -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the follow loop is running (in :meth:`run`, or in the follower's thread)."""
        with self._lock:
            return self._running

    @property
    def position(self) -> int:
        """The store's last notification id when the latest complete catch-up began: every
        runner has handled the events up to it (except projections or policies that are
        failed or paused; their runners' status says which)."""
        with self._lock:
            return self._position

    @property
    def crashes(self) -> int:
        """How many times the follow loop has failed."""
        with self._lock:
            return self._crashes

    @property
    def last_crash(self) -> FollowerCrash | None:
        """The latest failure of the follow loop, or None."""
        with self._lock:
            return self._last_crash

    # --- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Follow in a background thread until :meth:`stop`."""
        with self._lock:
            if self._running or self._thread is not None:
                raise RuntimeError("the follower is running already")
            self._stopping.clear()
            self._running = True  # before the thread starts, so wait_until() waits for it
            self._thread = threading.Thread(
                target=self._loop, name="acctdomain-follower", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop following and wait up to ``timeout`` seconds for the loop to end (a catch-up
        in progress finishes its batch first). Stopping a stopped follower does nothing."""
        timeout = _seconds("timeout", timeout)
        self._stopping.set()
        self._wake.set()  # the loop stops its subscription itself
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"the follower did not stop within {timeout} seconds")
            with self._lock:
                self._thread = None

    def close(self) -> None:
        """Stop, then close the runners the follower made (see :meth:`for_service`), also
        when stopping timed out."""
        try:
            self.stop()
        finally:
            for runner in self._owned:
                runner.close()
            self._owned = ()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def run(self) -> None:
        """Follow in this thread until :meth:`stop` is called from another one."""
        with self._lock:
            if self._running:
                raise RuntimeError("the follower is running already")
            self._running = True
            self._stopping.clear()
        self._loop()

    def wait_until(self, position: int | None = None, *, timeout: float = 10.0) -> int:
        """Wait until a catch-up has covered notification id ``position`` (default: the
        store's last one now), and return :attr:`position`. Raises TimeoutError after
        ``timeout`` seconds, and RuntimeError if the follower is not running."""
        if position is None:
            position = self._service.recorder.max_notification_id() or 0
        elif isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise InvalidValue("position", f"expected an integer >= 0, got {position!r}")
        timeout = _seconds("timeout", timeout)
        with self._progress:
            self._progress.wait_for(
                lambda: self._position >= position or not self._running, timeout
            )
            if self._position >= position:
                return self._position
            crash = f"; last crash: {self._last_crash.error}" if self._last_crash else ""
            if not self._running:
                raise RuntimeError(
                    f"the follower is not running (at {self._position}, not {position}){crash}"
                )
            raise TimeoutError(
                f"the follower reached {self._position}, not {position}, "
                f"within {timeout} seconds{crash}"
            )

    # --- the loop --------------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self._follow()
                except Exception as error:
                    delay = self._crashed(error)
                    self._stopping.wait(delay)
        finally:
            with self._progress:
                self._running = False
                self._progress.notify_all()
            with self._lock:  # a stop() that timed out left it set: start() may run again
                if self._thread is threading.current_thread():
                    self._thread = None

    def _follow(self) -> None:
        """Catch up, subscribe, then catch up on each wake-up until stopped.

        A thread of its own iterates the subscription and only sets :attr:`_wake`, so that
        this one can also look at the store when nothing woke it for ``recheck_interval``
        seconds: eventsourcing's in-memory and PostgreSQL subscriptions start listening a
        moment after their first read, and a commit in between wakes nobody.
        """
        reached = self._catch_up()
        subscription = self._service.recorder.subscribe(gt=reached)
        with subscription:
            listener = _Listener(subscription, self._wake)
            self._wake.set()  # once more now that the subscription listens
            try:
                while not self._stopping.is_set():
                    woken = self._wake.wait(self._recheck_interval)
                    self._wake.clear()
                    listener.raise_error()
                    if self._stopping.is_set():
                        break
                    if woken or (self._service.recorder.max_notification_id() or 0) > reached:
                        reached = self._catch_up()
            finally:
                subscription.stop()
                listener.join()

    def _catch_up(self) -> int:
        head = self._service.recorder.max_notification_id() or 0
        self.projections.catch_up(cancel=self._stopping)
        if self._stopping.is_set():
            return self._position
        if self.policies is not None:
            self.policies.run()
        with self._progress:
            self._position = max(self._position, head)
            self._crashes_in_a_row = 0
            self._progress.notify_all()
        return head

    def _crashed(self, error: Exception) -> float:
        with self._progress:
            self._crashes += 1
            self._crashes_in_a_row += 1
            exponent = min(self._crashes_in_a_row - 1, 16)
            delay = min(self._retry_delay * 2.0**exponent, MAX_RETRY_DELAY)
            self._last_crash = FollowerCrash(repr(error), self._crashes, delay)
            self._progress.notify_all()
        log.error("following the store failed; again in %.1f s: %r", delay, error, exc_info=error)
        return delay


class _Listener:
    """Iterates a subscription in a thread, turning each notification into a wake-up."""

    def __init__(self, subscription: Subscription[ApplicationRecorder], wake: threading.Event):
        self._subscription = subscription
        self._wake = wake
        self._error: Exception | None = None
        self._thread = threading.Thread(
            target=self._listen, name="acctdomain-follower-listener", daemon=True
        )
        self._thread.start()

    def _listen(self) -> None:
        try:
            for _ in self._subscription:
                self._wake.set()
        except Exception as error:
            self._error = error
        finally:
            self._wake.set()  # an ended subscription (error or stop) must not go unnoticed

    def raise_error(self) -> None:
        """Raise what ended the subscription, if it failed."""
        if self._error is not None:
            raise self._error

    def join(self) -> None:
        self._thread.join()


def _seconds(field: str, value: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidValue(field, f"expected a number of seconds > 0, got {value!r}")
    return float(value)
