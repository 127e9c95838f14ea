"""Given / when / then for the :class:`~acctdomain.domain.Account` aggregate, without a store.

A scenario holds one account. ``given`` builds its past from events (collected earlier, or read
from a service's ``history``) or from commands run on the aggregate; ``when`` runs the command
under test; ``then`` checks the events it decided, ``then_refused`` that it was refused and
changed nothing. Commands are callables ``(account, ctx)``: the scenario builds the
:class:`~acctdomain.domain.EventContext`, one ``step`` (a day) later for every command.

>>> from acctdomain.domain import events as ev
>>> scenario = AccountScenario()
>>> [logged] = scenario.when(
...     lambda account, ctx: account.log_contact(
...         channel="phone", direction="outbound", summary="kick-off",
...         stakeholder_ids=(), duration_minutes=30, ctx=ctx,
...     )
... ).then((ev.ContactLogged, {"summary": "kick-off"}))
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Self, TypeVar
from uuid import UUID, uuid4

import attrs

from acctdomain.domain.account import Account, EventContext
from acctdomain.domain.events import AccountEvent, AccountOpened
from acctdomain.domain.state import AccountState
from acctdomain.domain.values import require_aware
from acctdomain.testing.defaults import ACCOUNT_DEFAULTS, ACTOR, START

__all__ = ["AccountScenario", "Command", "Expected", "describe_event"]

Command = Callable[[Account, EventContext], object]
"""A command run on the aggregate: ``lambda account, ctx: account.renew(..., ctx=ctx)``."""

Expected = type[AccountEvent] | tuple[type[AccountEvent], Mapping[str, object]]
"""An expected event: its class, or its class and the values of some of its fields."""

E = TypeVar("E", bound=BaseException)

# Fields every event has; left out when an event is described.
_COMMON = frozenset(
    {
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
        "effective_at",
        "actor",
        "correlation_id",
        "causation_id",
    }
)


def describe_event(event: object) -> str:
    """``Renewed(term_end=..., lines=...)``: the class and the event's own fields."""
    if not dataclasses.is_dataclass(event):
        return repr(event)
    fields = ", ".join(
        f"{field.name}={getattr(event, field.name)!r}"
        for field in dataclasses.fields(event)
        if field.name not in _COMMON
    )
    return f"{type(event).__name__}({fields})"


def _collect(account: Account) -> list[AccountEvent]:
    """The account's pending events (an Account only triggers AccountEvents)."""
    return [event for event in account.collect_events() if isinstance(event, AccountEvent)]


def _describe_expected(expected: Expected) -> str:
    cls, fields = expected if isinstance(expected, tuple) else (expected, {})
    shown = ", ".join(f"{name}={value!r}" for name, value in fields.items())
    return f"{cls.__name__}({shown})"


def _numbered(items: list[str]) -> str:
    return "\n".join(f"  {number}. {item}" for number, item in enumerate(items, 1)) or "  (none)"


def _refusal(error: BaseException) -> str:
    field = getattr(error, "field", None)
    where = f" on {field!r}" if field else ""
    reason = getattr(error, "reason", None) or str(error)
    return f"{type(error).__name__}{where}: {reason}"


class AccountScenario:
    """One account's past (``given``), one command (``when``) and what it decided (``then``).

    ``start`` is the time of the first command; every command (given or when) gets an
    EventContext with ``effective_at`` = ``recorded_at`` = the scenario's :attr:`now`,
    ``actor``, and a fresh correlation id, and moves :attr:`now` on by ``step``. A command
    given before the account exists opens it first with :data:`ACCOUNT_DEFAULTS`
    (or call :meth:`opened` with other values).
    """

    def __init__(
        self, *, start: datetime = START, step: timedelta = timedelta(days=1), actor: str = ACTOR
    ) -> None:
        self.now = require_aware("start", start)
        """The effective and recorded time the next command gets."""
        self.step = step
        self.actor = actor
        self.account_id: UUID = uuid4()
        """The id of the account a scenario opens (events given may bring another)."""
        self._account: Account | None = None
        self._history: list[AccountEvent] = []
        self._ran = False
        self._before: AccountState | None = None
        self._events: tuple[AccountEvent, ...] = ()
        self._error: Exception | None = None

    # --- the clock and the context --------------------------------------------------------

    def at(self, moment: datetime) -> Self:
        """Run the next command at ``moment`` (later ones follow it, one step apart)."""
        self.now = require_aware("moment", moment)
        return self

    def context(self, **changes: Any) -> EventContext:
        """The EventContext the next command would get, with ``changes`` (``actor="bob"``,
        ``causation_id=...``); does not move the clock."""
        ctx = EventContext(
            actor=self.actor, effective_at=self.now, recorded_at=self.now, correlation_id=uuid4()
        )
        return attrs.evolve(ctx, **changes) if changes else ctx

    def _next_context(self) -> EventContext:
        ctx = self.context()
        self.now += self.step
        return ctx

    # --- given ----------------------------------------------------------------------------

    def opened(self, **fields: Any) -> Self:
        """Open the account, with :data:`ACCOUNT_DEFAULTS` updated by ``fields`` (``name``,
        ``segment``, ``currency``, ``account_id``...), as part of the given past."""
        __tracebackhide__ = True
        if self._account is not None:
            raise AssertionError("opened(): the scenario's account is open already")
        self._adopt(self._open(fields))
        return self

    def _open(self, fields: Mapping[str, Any]) -> Account:
        arguments = {**ACCOUNT_DEFAULTS, "account_id": self.account_id, **fields}
        self.account_id = arguments["account_id"]
        return Account.open(**arguments, ctx=self._next_context())

    def given(self, *steps: AccountEvent | Command) -> Self:
        """Build the account's past: each step is an event (applied as stored, in order:
        ``given(*service.history(account_id))`` works) or a command ``(account, ctx)`` run on
        the aggregate. A refused command here is a mistake in the test and fails it."""
        __tracebackhide__ = True
        if self._ran:
            raise AssertionError("given() after when(): a scenario has one command under test")
        for number, step in enumerate(steps, 1):
            if isinstance(step, AccountEvent):
                self._apply(step, number)
                continue
            if self._account is None:
                self._adopt(self._open({}))
            account = self._account
            assert account is not None
            try:
                step(account, self._next_context())
            except Exception as error:
                raise AssertionError(
                    f"given(): step {number} was refused: {_refusal(error)}"
                ) from error
            self._history.extend(_collect(account))
        return self

    def _adopt(self, account: Account) -> None:
        self._account = account
        self._history.extend(_collect(account))

    def _apply(self, event: AccountEvent, number: int) -> None:
        __tracebackhide__ = True
        try:
            if isinstance(event, AccountOpened):
                if self._account is not None:
                    raise ValueError("the account is open already")
                account: Account | None = event.mutate(None)
                assert account is not None
                self._account = account
                self.account_id = account.id
            elif self._account is None:
                raise ValueError("the first event must be AccountOpened")
            else:
                event.mutate(self._account)
        except Exception as error:
            raise AssertionError(
                f"given(): event {number} ({type(event).__name__} v{event.originator_version}) "
                f"cannot be applied: {type(error).__name__}: {error}"
            ) from error
        self._history.append(event)
        self.now = max(self.now, event.effective_at + self.step)

    # --- when -----------------------------------------------------------------------------

    def when(self, command: Command) -> Self:
        """Run the command under test on the account (opened with the defaults if no step
        opened it); whatever it decides or raises is kept for ``then``."""
        __tracebackhide__ = True
        if self._ran:
            raise AssertionError("when() twice: put the earlier commands in given()")
        if self._account is None:
            self._adopt(self._open({}))
        account = self._account
        assert account is not None
        self._run(lambda: command(account, self._next_context()), account)
        return self

    def when_opening(self, **fields: Any) -> Self:
        """The command under test is opening the account (defaults updated by ``fields``)."""
        __tracebackhide__ = True
        if self._ran or self._account is not None:
            raise AssertionError("when_opening(): the account is open already")
        self._ran = True
        try:
            self._account = self._open(fields)
        except Exception as error:
            self._error = error
            return self
        self._events = tuple(_collect(self._account))
        return self

    def _run(self, command: Callable[[], object], account: Account) -> None:
        self._ran = True
        self._before = account.state()
        try:
            command()
        except Exception as error:
            self._error = error
        self._events = tuple(_collect(account))

    # --- then -----------------------------------------------------------------------------

    def then(self, *expected: Expected) -> tuple[AccountEvent, ...]:
        """Check that the command decided exactly these events, in order; each is an event
        class or ``(class, {field: value})``. Returns the events, for further checks."""
        __tracebackhide__ = True
        self._require_ran("then")
        wanted = [_describe_expected(item) for item in expected]
        if self._error is not None:
            raise AssertionError(
                f"then(): expected the events\n{_numbered(wanted)}\n"
                f"but the command raised {_refusal(self._error)}"
            ) from self._error
        got = [describe_event(event) for event in self._events]
        problem = self._first_difference(expected)
        if problem:
            raise AssertionError(
                f"then(): {problem}\nexpected:\n{_numbered(wanted)}\ngot:\n{_numbered(got)}"
            )
        return self._events

    def _first_difference(self, expected: tuple[Expected, ...]) -> str:
        for number, (item, event) in enumerate(zip(expected, self._events, strict=False), 1):
            cls, fields = item if isinstance(item, tuple) else (item, {})
            if not isinstance(event, cls):
                return f"event {number} is {type(event).__name__}, expected {cls.__name__}"
            for name, value in fields.items():
                if not hasattr(event, name):
                    return f"event {number} ({cls.__name__}) has no field {name!r}"
                actual = getattr(event, name)
                if actual != value:
                    return (
                        f"event {number} ({cls.__name__}) field {name!r}: "
                        f"expected {value!r}, got {actual!r}"
                    )
        if len(expected) != len(self._events):
            return f"expected {len(expected)} event(s), the command decided {len(self._events)}"
        return ""

    def then_refused(
        self, error: type[E], *, field: str | None = None, match: str | None = None
    ) -> E:
        """Check that the command raised ``error`` (or a subclass), about ``field`` if given,
        with a reason matching the regular expression ``match`` if given, and that it left the
        account as it was (no event, same state). Returns the error."""
        __tracebackhide__ = True
        self._require_ran("then_refused")
        raised = self._error
        if raised is None:
            got = [describe_event(event) for event in self._events]
            raise AssertionError(
                f"then_refused(): expected {error.__name__}, but the command succeeded with\n"
                f"{_numbered(got)}"
            )
        if not isinstance(raised, error):
            raise AssertionError(
                f"then_refused(): expected {error.__name__}, got {_refusal(raised)}"
            ) from raised
        if field is not None and getattr(raised, "field", None) != field:
            raise AssertionError(
                f"then_refused(): expected a refusal on {field!r}, got {_refusal(raised)}"
            ) from raised
        reason = str(getattr(raised, "reason", None) or raised)
        if match is not None and not re.search(match, reason):
            raise AssertionError(
                f"then_refused(): the reason {reason!r} does not match {match!r}"
            ) from raised
        if self._events:
            got = [describe_event(event) for event in self._events]
            raise AssertionError(
                f"then_refused(): the command was refused but decided events:\n{_numbered(got)}"
            )
        if self._before is not None and self.account.state() != self._before:
            raise AssertionError("then_refused(): the refused command changed the account")
        return raised

    def then_state(self, **expected: object) -> AccountState:
        """Check fields of the account's state after the command (``status=...``,
        ``arr=Money(...)``); returns the state."""
        __tracebackhide__ = True
        state = self.state
        for name, value in expected.items():
            if not hasattr(state, name):
                raise AssertionError(f"then_state(): AccountState has no field {name!r}")
            actual = getattr(state, name)
            if actual != value:
                raise AssertionError(f"then_state(): {name!r} expected {value!r}, got {actual!r}")
        return state

    def _require_ran(self, method: str) -> None:
        __tracebackhide__ = True
        if not self._ran:
            raise AssertionError(f"{method}() before when(): run the command under test first")

    # --- what there is to look at ---------------------------------------------------------

    @property
    def account(self) -> Account:
        """The aggregate (after the command, once it ran)."""
        __tracebackhide__ = True
        if self._account is None:
            raise AssertionError("the scenario has no account yet: give or open one")
        return self._account

    @property
    def state(self) -> AccountState:
        """The account as plain data."""
        return self.account.state()

    @property
    def history(self) -> tuple[AccountEvent, ...]:
        """The given past, as events (feed them to another scenario's ``given``)."""
        return tuple(self._history)

    @property
    def events(self) -> tuple[AccountEvent, ...]:
        """The events the command under test decided (empty if it was refused)."""
        return self._events

    @property
    def error(self) -> Exception | None:
        """What the command under test raised, if anything."""
        return self._error
