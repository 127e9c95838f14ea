"""What a plugin registers: typed, named values handed to the ``register`` callback of a hook.

Every registration has a ``name`` that is unique within its kind; a second registration of the
same name is refused with :class:`~acctdomain.errors.DuplicateRegistration`, naming both plugins.
Names are lower-case words joined by single underscores (at most 48 characters) because some of
them become table names.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeAlias
from uuid import UUID

import attrs

from acctdomain.errors import InvalidValue

if TYPE_CHECKING:
    from eventsourcing.domain import DomainEventProtocol

    from acctdomain.builtin.facts import AccountFacts
    from acctdomain.domain.state import AccountState
    from acctdomain.domain.values import Money

__all__ = [
    "NAME_PATTERN",
    "AuthorizationRequest",
    "CliCommand",
    "DeadLetter",
    "Denial",
    "ExchangeRates",
    "FailurePolicy",
    "HealthSignal",
    "Kpi",
    "KpiContext",
    "KpiValue",
    "Policy",
    "PolicyContext",
    "Projection",
    "Reaction",
    "ReadModel",
    "Retry",
    "Rows",
    "Stop",
    "Upcaster",
    "check_failure_policy",
    "check_name",
]

# Words of lower-case letters and digits joined by single underscores: no "__" and no trailing
# "_", so that "__" can separate a projection, its version and a table in SQL table names.
NAME_PATTERN = re.compile(r"(?=.{1,48}$)[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


def check_name(kind: str, name: object) -> str:
    """``name`` if it is a valid registration name, else InvalidValue naming the kind."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidValue(
            f"{kind}.name",
            "expected lower-case words joined by single underscores, at most 48 characters, "
            f"got {name!r}",
        )
    return name


def _valid_name(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    check_name(type(instance).__name__.lower(), value)


# --- projections ------------------------------------------------------------------------------


class Rows(Protocol):
    """A projection's tables inside one transaction: what ``Projection.apply`` writes to.

    Each table maps a text key to a JSON-like value (a dict of str, int, bool, None, Decimal,
    dates, UUIDs, enums, ``Money``, lists, tuples and nested dicts: what the event store's
    transcoder round-trips). Writes become visible, with the projection's new position, when
    the batch commits; a failed batch leaves neither.
    """

    def get(self, table: str, key: str) -> dict[str, Any] | None:
        """The row stored under ``key``, or None."""

    def put(self, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace the row under ``key``."""

    def delete(self, table: str, key: str) -> None:
        """Remove the row under ``key`` (no error if there is none)."""

    def scan(self, table: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every row of the table, by key."""


class ReadModel(Protocol):
    """Read access to one projection's tables, for queries (KPIs, views, the CLI)."""

    def get(self, table: str, key: str) -> dict[str, Any] | None:
        """The row stored under ``key``, or None."""

    def scan(self, table: str, prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
        """Every row of the table (whose key starts with ``prefix``), by key."""


@attrs.frozen
class Stop:
    """On a failure, stop the projection at the failing event (state ``failed``) until it is
    resumed: nothing after the event is applied, so nothing is lost or reordered."""


@attrs.frozen
class DeadLetter:
    """On a failure, park the failing event in the store's dead letters and go on. Later
    events of the same account are parked behind it while that account has dead letters, so
    each account's events are still applied in order once the dead letters are replayed."""


def _check_attempts(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValue("retry.attempts", f"expected an integer >= 1, got {value!r}")


def _check_seconds(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidValue(f"retry.{attribute.name}", f"expected seconds >= 0, got {value!r}")


def _check_then(
    instance: object, attribute: attrs.Attribute[Stop | DeadLetter], value: object
) -> None:
    if not isinstance(value, Stop | DeadLetter):
        raise InvalidValue("retry.then", f"expected Stop() or DeadLetter(), got {value!r}")


@attrs.frozen
class Retry:
    """On a failure, discard the batch and apply it again, up to ``attempts`` more times,
    sleeping ``backoff_seconds`` before the first retry and twice as long before each next one
    (at most ``max_backoff``); then do what ``then`` says (stop, or park the event)."""

    attempts: int = attrs.field(validator=_check_attempts)
    backoff_seconds: float = attrs.field(default=0.1, validator=_check_seconds)
    max_backoff: float = attrs.field(default=30.0, validator=_check_seconds)
    then: Stop | DeadLetter = attrs.field(factory=Stop, validator=_check_then)

    def __attrs_post_init__(self) -> None:
        if self.max_backoff < self.backoff_seconds:
            raise InvalidValue(
                "retry.max_backoff",
                f"must be >= backoff_seconds ({self.backoff_seconds}), got {self.max_backoff}",
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first)."""
        return float(min(self.backoff_seconds * 2.0 ** min(attempt - 1, 64), self.max_backoff))


FailurePolicy: TypeAlias = Retry | DeadLetter | Stop
"""What a projection runner does when a projection fails on an event."""


def check_failure_policy(field: str, value: object) -> FailurePolicy:
    """``value`` if it is a failure policy, else InvalidValue about ``field``."""
    if not isinstance(value, Retry | DeadLetter | Stop):
        raise InvalidValue(field, f"expected Retry(...), DeadLetter() or Stop(), got {value!r}")
    return value


def check_event_types(field: str, value: object) -> tuple[type, ...]:
    """``value`` if it is a tuple of classes, else InvalidValue about ``field``."""
    if not isinstance(value, tuple) or not all(isinstance(cls, type) for cls in value):
        raise InvalidValue(field, f"expected a tuple of event classes, got {value!r}")
    return value


def _valid_event_types(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_event_types(attribute.name, value)


class Projection(abc.ABC):
    """A read model built from events: a pure processor plus the tables it owns.

    Subclasses set ``name`` (unique), ``tables`` (the table names it writes), optionally
    ``version`` (bump it when the tables' meaning changes: the read model is rebuilt),
    ``event_types`` (the event classes it wants; empty means every event) and ``on_failure``
    (what the runner does when :meth:`apply` raises; default :class:`Stop`), and implement
    :meth:`apply`. Override :meth:`account_share` to allow rebuilding one account's rows.
    """

    name: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]
    version: ClassVar[int] = 1
    event_types: ClassVar[tuple[type, ...]] = ()
    description: ClassVar[str] = ""
    on_failure: ClassVar[FailurePolicy] = Stop()

    def wants(self, event: object) -> bool:
        """Whether :meth:`apply` should see ``event``."""
        return not self.event_types or isinstance(event, self.event_types)

    def account_share(self, account_id: UUID) -> Mapping[str, str] | None:
        """Where the rows of one account are: per table, a key prefix that every row written
        for ``account_id`` starts with and no other account's row does (tables left out hold
        none of its rows). ``None`` (the default) means rows are not kept apart by account (a
        total over the book), so only a whole rebuild is possible."""
        return None

    @abc.abstractmethod
    def apply(self, event: DomainEventProtocol[Any], rows: Rows) -> None:
        """Fold one event into the tables. Must be deterministic: a rebuild replays it."""


# --- KPIs ---------------------------------------------------------------------------------------


@attrs.frozen
class KpiValue:
    """A KPI's figure, or ``None`` with the reason it is undefined (a zero denominator, an
    empty period): never a misleading zero."""

    value: Decimal | int | Money | None
    reason: str = ""
    detail: Mapping[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.value is None and not self.reason:
            raise InvalidValue("reason", "an undefined KPI value needs a reason")


def _no_rate(base: str, quote: str, on: date) -> Decimal | None:
    return None


@attrs.frozen
class KpiContext:
    """What a KPI is computed over: a period, filters, and the read models.

    ``known_at``: count only what was recorded up to this moment (the scorecard "as known
    then"; None: everything). ``conventions``: the convention chosen for each KPI that has
    several (by KPI name). ``reporting_currency``: the currency money figures are in (None:
    each account's own, and a book in several currencies gives no total);
    ``exchange_rate(base, quote, on)`` the rate that converts ``base`` to ``quote`` on a day
    (None when unknown). ``settings``: figures from configuration (``gross_margin``...).
    ``memo`` is shared by the KPIs of one scorecard, to compute what several of them read
    once (key it by what the value depends on: period, filters, ``known_at``).
    """

    start: date
    end: date
    read_model: Callable[[str], ReadModel]
    filters: Mapping[str, str] = attrs.field(factory=dict)
    known_at: datetime | None = None
    conventions: Mapping[str, str] = attrs.field(factory=dict)
    reporting_currency: str | None = None
    exchange_rate: Callable[[str, str, date], Decimal | None] = _no_rate
    settings: Mapping[str, Any] = attrs.field(factory=dict)
    memo: dict[Any, Any] = attrs.field(factory=dict, eq=False, repr=False)

    def convention(self, kpi: str, default: str) -> str:
        """The convention chosen for ``kpi``, else ``default``."""
        return self.conventions.get(kpi, default)


@attrs.frozen
class Kpi:
    """A named figure on the scorecard, computed from read models (never by replaying events).

    ``compute`` receives a :class:`KpiContext`; ``unit`` is ``"count"``, ``"ratio"``,
    ``"money"``, ``"score"`` or ``"days"``; ``projections`` names the read models it reads.
    """

    UNITS: ClassVar[frozenset[str]] = frozenset(
        {"count", "ratio", "money", "score", "days", "hours"}
    )

    name: str = attrs.field(validator=_valid_name)
    title: str
    unit: str = attrs.field()
    compute: Callable[[KpiContext], KpiValue]
    projections: tuple[str, ...] = ()
    description: str = ""
    conventions: tuple[str, ...] = attrs.field(default=())
    """The ways it can be computed where the industry has no single standard (the first is
    the default), chosen per scorecard (``conventions={name: convention}``)."""

    @conventions.validator
    def _check_conventions(self, attribute: attrs.Attribute[tuple[str, ...]], value: Any) -> None:
        if not isinstance(value, tuple) or not all(
            isinstance(item, str) and item for item in value
        ):
            raise InvalidValue("kpi.conventions", f"expected a tuple of names, got {value!r}")

    @unit.validator
    def _check_unit(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in self.UNITS:
            raise InvalidValue("kpi.unit", f"expected one of {sorted(self.UNITS)}, got {value!r}")


@attrs.frozen
class ExchangeRates:
    """A source of exchange rates for the scorecard: ``rate(base, quote, on)`` returns how
    many ``quote`` one ``base`` is worth on day ``on`` (a ``Decimal`` > 0), or None when this
    source does not know. Sources are asked in registration order; the configured fixed-rate
    table is asked last."""

    name: str = attrs.field(validator=_valid_name)
    rate: Callable[[str, str, date], Decimal | None]
    description: str = ""


# --- health, policies, CLI, data ------------------------------------------------------------------


@attrs.frozen
class HealthSignal:
    """One input to an account's health score.

    ``score(facts, now)`` gets the account's :class:`~acctdomain.builtin.facts.AccountFacts`
    (what the read models know of it) and returns a number from 0 (bad) to 1 (good), or None
    when the signal says nothing about this account (no survey yet); ``weight`` (> 0) is its
    default share of the score.
    """

    name: str = attrs.field(validator=_valid_name)
    weight: float
    score: Callable[[AccountFacts, datetime], float | None]
    description: str = ""

    def __attrs_post_init__(self) -> None:
        if isinstance(self.weight, bool) or not isinstance(self.weight, int | float):
            raise InvalidValue("health_signal.weight", "expected a number")
        if not self.weight > 0:
            raise InvalidValue("health_signal.weight", f"must be > 0, got {self.weight}")


@attrs.frozen
class Reaction:
    """A command a policy wants issued: ``command`` is an AccountService method name.

    ``key`` names the reaction within its policy: the idempotency key is
    ``policy:<name>:<key>`` (default, for a reaction to an event: ``<event id>:<index>``).
    ``cause`` is its causation id (default: the event reacted to) and ``correlation_id`` its
    correlation id (default: the event's). A reaction returned by ``Policy.due`` needs
    ``key`` and ``cause``: no event stands behind it.
    """

    command: str
    account_id: UUID
    arguments: Mapping[str, Any] = attrs.field(factory=dict)
    key: str | None = None
    cause: UUID | None = None
    correlation_id: UUID | None = None


@attrs.frozen
class PolicyContext:
    """What a policy may read when it decides: ``now`` (the runner's time, timezone-aware),
    ``read_model(name)`` (read models; caught up before ``due`` is asked) and
    ``account(account_id)`` (an account's current state, from its events)."""

    now: datetime
    read_model: Callable[[str], ReadModel]
    account: Callable[[UUID], AccountState]


@attrs.frozen
class Policy:
    """A reaction to events or to time passing that issues new commands (a detractor NPS
    creates a follow-up; an issue past its target is escalated).

    ``react(event)`` (or ``react(event, context)``, given a :class:`PolicyContext` when it
    names a ``context`` parameter) returns the commands to issue for a new event of
    ``event_types``. ``due(context)``, asked on every run, returns the commands that time
    passing requires. Either may be None (not both). Reactions are issued with their cause
    (``causation_id``), actor ``policy:<name>`` and an idempotency key derived from the policy
    and the reaction's key, so each fires exactly once; policies never run while read models
    are rebuilt or replayed.
    """

    name: str = attrs.field(validator=_valid_name)
    event_types: tuple[type, ...] = attrs.field(validator=_valid_event_types)
    react: Callable[..., Iterable[Reaction]] | None
    description: str = ""
    due: Callable[[PolicyContext], Iterable[Reaction]] | None = None

    def __attrs_post_init__(self) -> None:
        if self.react is None and self.due is None:
            raise InvalidValue("policy.react", "a policy needs react, due or both")


@attrs.frozen
class CliCommand:
    """A command added to the ``acctdomain`` command line.

    ``callback`` is a function typer turns into a command (its parameters become options and
    arguments), or a ``typer.Typer`` added as a group of subcommands.
    """

    name: str = attrs.field()
    callback: Any
    help: str = ""

    @name.validator
    def _check(self, attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9-]{0,47}", value):
            raise InvalidValue(
                "cli_command.name", f"expected a lower-case command name, got {value!r}"
            )


@attrs.frozen
class Upcaster:
    """Brings a stored event of ``topic`` from ``from_version`` to ``from_version + 1``.

    ``upcast`` changes the event's state dict in place (add a field with its default, rename
    one). For plugin-defined event classes whose ``class_version`` moved on.
    """

    topic: str
    from_version: int
    upcast: Callable[[dict[str, Any]], None]

    @property
    def name(self) -> str:
        """Unique key of the upcaster: topic and version."""
        return f"{self.topic}@v{self.from_version}"


# --- authorization --------------------------------------------------------------------------------


@attrs.frozen
class AuthorizationRequest:
    """Who wants to run which command on which account, with what arguments."""

    actor: str
    command: str
    account_id: UUID | None
    arguments: Mapping[str, Any]


@attrs.frozen
class Denial:
    """An authorization veto; ``reason`` is shown to the caller."""

    reason: str
