"""A readable history of one account: :func:`timeline`.

Each entry says who recorded the event (``actor``), what happened in one line
(``description``), when it was effective and when it was recorded, its version and correlation
id, and what caused it: the *causation chain*. A policy's reaction carries the id of the event
it reacts to as its ``causation_id`` (see :attr:`AccountEvent.id`, a UUID5 of the account and
the version); that event may have a cause of its own, in this account or in another one. The
chain is followed until an event has no cause, or its cause is no event of the store (an id
given by a caller for an outside message: :attr:`TimelineEntry.external_cause`).

Event ids cannot be turned back into (account, version), so a cause outside the account is
found by one scan of the store's notifications (ids only, nothing decoded) for all the causes
still missing; the accounts that hold them are loaded whole. A chain that crosses several
accounts takes a scan per account crossed; most entries need none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

import attrs

from acctdomain.domain import events as ev
from acctdomain.domain.events import ACCOUNT_EVENT_TYPES, AccountEvent
from acctdomain.domain.identifiers import event_id_for
from acctdomain.domain.values import (
    CesScore,
    CsatScore,
    Money,
    NpsScore,
    ProductLine,
    SurveyScore,
    moment_of,
)
from acctdomain.errors import AccountNotFound, InvalidValue

if TYPE_CHECKING:
    from enum import Enum

    from acctdomain.application.service import AccountService

__all__ = [
    "DESCRIPTIONS",
    "ORDERS",
    "Cause",
    "TimelineEntry",
    "describe",
    "describe_history",
    "timeline",
]

ORDERS = ("recorded", "effective")
"""How :func:`timeline` sorts: in the order the events were recorded (their versions), or by
effective time (ties in recorded order)."""

_SCAN_PAGE = 1_000
_TEXT_LIMIT = 80

Labels = dict[UUID, str]
"""What the items an account refers to by id are called (a stakeholder's name, an issue's
title...), gathered while its history is read in order."""


# --- describing events ------------------------------------------------------------------------


def _text(value: str, limit: int = _TEXT_LIMIT) -> str:
    """Free text on one line, cut at ``limit`` characters."""
    flat = re.sub(r"\s+", " ", value).strip()
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def _quoted(value: str) -> str:
    return f"'{_text(value)}'"


def _amount(amount: Decimal) -> str:
    """Thousands separated, two decimals at least, never rounded away."""
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        return format(amount, ",f")
    return format(amount, ",.2f")


def _money(money: Money) -> str:
    return f"{_amount(money.amount)} {money.currency}"


def _say(member: Enum) -> str:
    return str(member.value).replace("_", " ")


def _arr(lines: tuple[ProductLine, ...]) -> str:
    if not lines:
        return "ARR 0"
    total = Money.zero(lines[0].arr.currency)
    for line in lines:
        total = total + line.arr
    return f"ARR {_money(total)}"


def _products(lines: tuple[ProductLine, ...]) -> str:
    return ", ".join(line.product for line in lines)


def _label(labels: Labels, item_id: UUID) -> str:
    known = labels.get(item_id)
    return _quoted(known) if known is not None else f"#{str(item_id)[:8]}"


def _because(reason: str) -> str:
    """`` (reason)`` or nothing for an empty reason."""
    return f" ({_text(reason)})" if reason.strip() else ""


def _score(score: SurveyScore) -> str:
    kinds: dict[type, str] = {NpsScore: "NPS", CsatScore: "CSAT", CesScore: "CES"}
    return f"{kinds.get(type(score), type(score).__name__)} {score.value}"


def _opened(e: ev.AccountOpened, labels: Labels) -> str:
    return (
        f"Account opened: {_quoted(e.name)} ({_say(e.segment)}, {_text(e.industry)}, "
        f"{e.currency}), manager {_text(e.manager)} ({_say(e.manager_type)})"
    )


def _reassigned(e: ev.ManagerReassigned, labels: Labels) -> str:
    reason = f", reason {_quoted(e.reason)}" if e.reason.strip() else ""
    return f"Manager reassigned: to {_text(e.manager)} ({_say(e.manager_type)}){reason}"


def _started(e: ev.ContractStarted, labels: Labels) -> str:
    return (
        f"Contract started: term to {e.term_end.isoformat()}, {_arr(e.lines)} "
        f"({_products(e.lines)})"
    )


def _contact(e: ev.ContactLogged, labels: Labels) -> str:
    parts = [_say(e.channel), _say(e.direction)]
    if e.stakeholder_ids:
        parts.append("with " + ", ".join(_label(labels, s) for s in e.stakeholder_ids))
    if e.duration_minutes is not None:
        parts.append(f"{e.duration_minutes} min")
    summary = f": {_quoted(e.summary)}" if e.summary.strip() else ""
    return f"Contact logged: {', '.join(parts)}{summary}"


def _request(e: ev.RequestReceived, labels: Labels) -> str:
    labels[e.request_id] = e.subject
    return f"Request received: {_quoted(e.subject)} ({_say(e.channel)})"


def _answered(e: ev.RequestAnswered, labels: Labels) -> str:
    response = f": {_quoted(e.response)}" if e.response.strip() else ""
    return f"Request answered: {_label(labels, e.request_id)}{response}"


def _stakeholder_added(e: ev.StakeholderAdded, labels: Labels) -> str:
    labels[e.stakeholder_id] = e.name
    title = f"{_text(e.title)}, " if e.title.strip() else ""
    return f"Stakeholder added: {_quoted(e.name)} ({title}{_say(e.role)}, {_say(e.sentiment)})"


def _stakeholder_updated(e: ev.StakeholderUpdated, labels: Labels) -> str:
    title = f"{_text(e.title)}, " if e.title.strip() else ""
    return (
        f"Stakeholder updated: {_label(labels, e.stakeholder_id)} now {title}"
        f"{_say(e.role)}, {_say(e.sentiment)}"
    )


def _stakeholder_removed(e: ev.StakeholderRemoved, labels: Labels) -> str:
    return f"Stakeholder removed: {_label(labels, e.stakeholder_id)}{_because(e.reason)}"


def _renewal_due(e: ev.RenewalDue, labels: Labels) -> str:
    return f"Renewal due: on {e.due_on.isoformat()}, ARR at stake {_money(e.arr_at_stake)}"


def _renewed(e: ev.Renewed, labels: Labels) -> str:
    return (
        f"Renewed: term to {e.term_end.isoformat()}, {_arr(e.lines)} "
        f"(was {_amount(e.arr_before.amount)})"
    )


def _churned(e: ev.Churned, labels: Labels) -> str:
    detail = f": {_quoted(e.detail)}" if e.detail.strip() else ""
    return f"Churned: {_say(e.reason)}, ARR lost {_money(e.arr_lost)}{detail}"


def _reactivated(e: ev.Reactivated, labels: Labels) -> str:
    return f"Reactivated: term to {e.term_end.isoformat()}, {_arr(e.lines)} ({_products(e.lines)})"


def _won_offer(labels: Labels, opportunity_id: UUID | None) -> str:
    return "" if opportunity_id is None else f", offer {_label(labels, opportunity_id)}"


def _upsold(e: ev.Upsold, labels: Labels) -> str:
    return (
        f"Upsold: {_text(e.product)} +{_money(e.added_arr)} ARR"
        f"{_won_offer(labels, e.opportunity_id)}"
    )


def _cross_sold(e: ev.CrossSold, labels: Labels) -> str:
    return (
        f"Cross-sold: {_text(e.product)}, ARR {_money(e.arr)}{_won_offer(labels, e.opportunity_id)}"
    )


def _downgraded(e: ev.Downgraded, labels: Labels) -> str:
    return f"Downgraded: {_text(e.product)} -{_money(e.reduced_by)} ARR{_because(e.reason)}"


def _offered(e: ev.OpportunityOffered, labels: Labels) -> str:
    kind = e.kind.value.replace("_", "-")
    labels[e.opportunity_id] = f"{kind} of {e.product}"
    return (
        f"Opportunity offered: {kind} of {_text(e.product)}, "
        f"estimated ARR {_money(e.estimated_arr)}"
    )


def _won(e: ev.OpportunityWon, labels: Labels) -> str:
    return f"Opportunity won: {_label(labels, e.opportunity_id)}, ARR {_money(e.arr)}"


def _lost(e: ev.OpportunityLost, labels: Labels) -> str:
    return f"Opportunity lost: {_label(labels, e.opportunity_id)}{_because(e.reason)}"


def _issue_raised(e: ev.IssueRaised, labels: Labels) -> str:
    labels[e.issue_id] = e.title
    return f"Issue raised: {_quoted(e.title)} ({_say(e.severity)}, {_text(e.category)})"


def _issue_responded(e: ev.IssueResponded, labels: Labels) -> str:
    return f"Issue responded to: {_label(labels, e.issue_id)}"


def _issue_escalated(e: ev.IssueEscalated, labels: Labels) -> str:
    return (
        f"Issue escalated: {_label(labels, e.issue_id)} to {_text(e.to_team)}{_because(e.reason)}"
    )


def _issue_resolved(e: ev.IssueResolved, labels: Labels) -> str:
    return f"Issue resolved: {_label(labels, e.issue_id)}{_because(e.resolution)}"


def _feedback(e: ev.FeedbackRecorded, labels: Labels) -> str:
    respondent = f" from {_quoted(e.respondent)}" if e.respondent.strip() else ""
    comment = f": {_quoted(e.comment)}" if e.comment.strip() else ""
    return f"Feedback recorded: {_score(e.score)}{respondent}{comment}"


def _value(e: ev.ValueDelivered, labels: Labels) -> str:
    return f"Value delivered: {_money(e.amount)}, {_quoted(e.description)}"


def _goal_set(e: ev.GoalSet, labels: Labels) -> str:
    labels[e.goal_id] = e.title
    measure = f"{_text(e.measure)}" if e.measure.strip() else ""
    target = f"by {e.target_date.isoformat()}" if e.target_date is not None else ""
    details = ", ".join(part for part in (measure, target) if part)
    return f"Goal set: {_quoted(e.title)}" + (f" ({details})" if details else "")


def _strategy(e: ev.StrategyAdded, labels: Labels) -> str:
    labels[e.strategy_id] = e.description
    return f"Strategy added: {_quoted(e.description)} for goal {_label(labels, e.goal_id)}"


def _tactic_added(e: ev.TacticAdded, labels: Labels) -> str:
    labels[e.tactic_id] = e.description
    due = f", due {e.due_on.isoformat()}" if e.due_on is not None else ""
    return (
        f"Tactic added: {_quoted(e.description)} (owner {_text(e.owner)}{due}) "
        f"for strategy {_label(labels, e.strategy_id)}"
    )


def _tactic_completed(e: ev.TacticCompleted, labels: Labels) -> str:
    return f"Tactic completed: {_label(labels, e.tactic_id)}"


def _tactic_dropped(e: ev.TacticDropped, labels: Labels) -> str:
    return f"Tactic dropped: {_label(labels, e.tactic_id)}{_because(e.reason)}"


def _goal_achieved(e: ev.GoalAchieved, labels: Labels) -> str:
    return f"Goal achieved: {_label(labels, e.goal_id)}"


def _goal_abandoned(e: ev.GoalAbandoned, labels: Labels) -> str:
    return f"Goal abandoned: {_label(labels, e.goal_id)}{_because(e.reason)}"


def _subject_erased(e: ev.SubjectErased, labels: Labels) -> str:
    return f"Personal data erased: subject {_label(labels, e.subject_id)}{_because(e.reason)}"


def _unit_added(e: ev.BusinessUnitAdded, labels: Labels) -> str:
    labels[e.unit_id] = e.name
    return f"Business unit added: {_quoted(e.name)}"


def _unit_renamed(e: ev.BusinessUnitRenamed, labels: Labels) -> str:
    before = _label(labels, e.unit_id)
    labels[e.unit_id] = e.name
    return f"Business unit renamed: {before} to {_quoted(e.name)}"


def _unit_removed(e: ev.BusinessUnitRemoved, labels: Labels) -> str:
    return f"Business unit removed: {_label(labels, e.unit_id)}{_because(e.reason)}"


def _adopted(e: ev.ProductAdopted, labels: Labels) -> str:
    return f"Product adopted: {_text(e.product)} by {_label(labels, e.unit_id)}"


def _adoption_ended(e: ev.ProductAdoptionEnded, labels: Labels) -> str:
    return (
        f"Product adoption ended: {_text(e.product)} by {_label(labels, e.unit_id)}"
        f"{_because(e.reason)}"
    )


def _ineligible(e: ev.ProductMarkedIneligible, labels: Labels) -> str:
    return (
        f"Product marked ineligible: {_text(e.product)} for {_label(labels, e.unit_id)}"
        f"{_because(e.reason)}"
    )


def _eligible(e: ev.ProductEligibilityRestored, labels: Labels) -> str:
    return f"Product eligible again: {_text(e.product)} for {_label(labels, e.unit_id)}"


def _targeted(e: ev.OpportunityTargeted, labels: Labels) -> str:
    return (
        f"Opportunity targeted: {_label(labels, e.opportunity_id)} "
        f"at business unit {_label(labels, e.unit_id)}"
    )


DESCRIPTIONS: Mapping[type[AccountEvent], Callable[[Any, Labels], str]] = {
    ev.BusinessUnitAdded: _unit_added,
    ev.BusinessUnitRenamed: _unit_renamed,
    ev.BusinessUnitRemoved: _unit_removed,
    ev.ProductAdopted: _adopted,
    ev.ProductAdoptionEnded: _adoption_ended,
    ev.ProductMarkedIneligible: _ineligible,
    ev.ProductEligibilityRestored: _eligible,
    ev.OpportunityTargeted: _targeted,
    ev.AccountOpened: _opened,
    ev.ManagerReassigned: _reassigned,
    ev.ContractStarted: _started,
    ev.ContactLogged: _contact,
    ev.RequestReceived: _request,
    ev.RequestAnswered: _answered,
    ev.StakeholderAdded: _stakeholder_added,
    ev.StakeholderUpdated: _stakeholder_updated,
    ev.StakeholderRemoved: _stakeholder_removed,
    ev.RenewalDue: _renewal_due,
    ev.Renewed: _renewed,
    ev.Churned: _churned,
    ev.Reactivated: _reactivated,
    ev.Upsold: _upsold,
    ev.CrossSold: _cross_sold,
    ev.Downgraded: _downgraded,
    ev.OpportunityOffered: _offered,
    ev.OpportunityWon: _won,
    ev.OpportunityLost: _lost,
    ev.IssueRaised: _issue_raised,
    ev.IssueResponded: _issue_responded,
    ev.IssueEscalated: _issue_escalated,
    ev.IssueResolved: _issue_resolved,
    ev.FeedbackRecorded: _feedback,
    ev.ValueDelivered: _value,
    ev.GoalSet: _goal_set,
    ev.StrategyAdded: _strategy,
    ev.TacticAdded: _tactic_added,
    ev.TacticCompleted: _tactic_completed,
    ev.TacticDropped: _tactic_dropped,
    ev.GoalAchieved: _goal_achieved,
    ev.GoalAbandoned: _goal_abandoned,
    ev.SubjectErased: _subject_erased,
}
"""The one-line description of each event class, given the labels read so far (a function
that introduces an item, such as ``IssueRaised``, adds its label)."""


def describe(event: AccountEvent, labels: Labels | None = None) -> str:
    """One line saying what ``event`` records. Items it refers to by id are named from
    ``labels`` (see :func:`describe_history`), else shown by the start of their id. An event
    class without a description (a plugin's subclass) is shown by its class name."""
    labels = {} if labels is None else labels
    for cls in type(event).__mro__:
        describer = DESCRIPTIONS.get(cls)
        if describer is not None:
            return describer(event, labels)
    return _words(type(event).__name__)


def describe_history(events: Iterable[AccountEvent]) -> list[str]:
    """The description of each event of one account's history (in version order), naming
    the items that earlier events introduced."""
    labels: Labels = {}
    return [describe(event, labels) for event in events]


def _words(name: str) -> str:
    """``"SomethingHappened"`` as ``"Something happened"``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return spaced[:1] + spaced[1:].lower()


# --- the results ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Cause:
    """An event in a causation chain: what made a later event happen."""

    event_id: UUID
    account_id: UUID
    version: int
    type: str
    """The event class's name (``"FeedbackRecorded"``)."""
    description: str
    actor: str
    effective_at: datetime
    recorded_at: datetime


@attrs.frozen(kw_only=True)
class TimelineEntry:
    """One event of an account's timeline.

    ``causes`` is the causation chain, nearest first: the event whose id is this event's
    ``causation_id``, then that event's cause, and so on (they may belong to other accounts).
    ``external_cause`` is the id where the chain leaves the store (a cause that is no stored
    event, such as a message id a caller passed), else None.
    """

    account_id: UUID
    version: int
    event_id: UUID
    type: str
    """The event class's name (``"Renewed"``)."""
    description: str
    actor: str
    effective_at: datetime
    recorded_at: datetime
    correlation_id: UUID
    causation_id: UUID | None
    causes: tuple[Cause, ...] = ()
    external_cause: UUID | None = None
    event: AccountEvent = attrs.field(repr=False, eq=False)
    """The event itself."""

    def __str__(self) -> str:
        line = f"v{self.version} {self.recorded_at:%Y-%m-%d %H:%M} {self.actor}: {self.description}"
        if self.effective_at.date() != self.recorded_at.date():
            line += f" [effective {self.effective_at.date().isoformat()}]"
        if self.causes:
            cause = self.causes[0]
            where = "" if cause.account_id == self.account_id else f" of {cause.account_id}"
            line += f" <- {cause.type} v{cause.version}{where}"
        elif self.external_cause is not None:
            line += f" <- {self.external_cause}"
        return line


# --- finding events by id -------------------------------------------------------------------


class _Book:
    """Events by id, with their descriptions, loaded account by account."""

    def __init__(self, service: AccountService) -> None:
        self._service = service
        self._events: dict[UUID, tuple[AccountEvent, str]] = {}
        self._loaded: set[UUID] = set()
        self._searched: set[UUID] = set()

    def load(self, account_id: UUID) -> list[tuple[AccountEvent, str]]:
        history = self._service.history(account_id)
        described = list(zip(history, describe_history(history), strict=True))
        for event, description in described:
            self._events[event.id] = (event, description)
        self._loaded.add(account_id)
        return described

    def get(self, event_id: UUID) -> tuple[AccountEvent, str] | None:
        return self._events.get(event_id)

    def chain_end(self, causation_id: UUID | None) -> UUID | None:
        """The first id of the chain from ``causation_id`` that is not loaded and not
        searched for yet (None: the chain is complete as far as can be known)."""
        seen: set[UUID] = set()
        current = causation_id
        while current is not None and current not in seen:
            seen.add(current)
            found = self._events.get(current)
            if found is None:
                return None if current in self._searched else current
            current = found[0].causation_id
        return None

    def search(self, wanted: set[UUID]) -> None:
        """One scan of the store's notifications for the events ``wanted``; the accounts
        that hold them are loaded."""
        self._searched |= wanted
        holders: set[UUID] = set()
        for originator_id, version in _stored_ids(self._service):
            if originator_id in self._loaded or originator_id in holders:
                continue
            if event_id_for(originator_id, version) in wanted:
                holders.add(originator_id)
        for account_id in holders:
            try:
                self.load(account_id)
            except AccountNotFound:  # an event of another kind of aggregate
                continue

    def chain(self, causation_id: UUID | None) -> tuple[tuple[Cause, ...], UUID | None]:
        causes: list[Cause] = []
        seen: set[UUID] = set()
        current = causation_id
        while current is not None and current not in seen:
            seen.add(current)
            found = self._events.get(current)
            if found is None:
                return tuple(causes), current
            event, description = found
            causes.append(
                Cause(
                    event_id=current,
                    account_id=event.originator_id,
                    version=event.originator_version,
                    type=type(event).__name__,
                    description=description,
                    actor=event.actor,
                    effective_at=event.effective_at,
                    recorded_at=event.recorded_at,
                )
            )
            current = event.causation_id
        return tuple(causes), None


def _stored_ids(service: AccountService) -> Iterator[tuple[UUID, int]]:
    """(originator id, version) of every stored event, in notification order."""
    position = 0
    while True:
        page = service.recorder.select_notifications(
            start=position, limit=_SCAN_PAGE, inclusive_of_start=False
        )
        if not page:
            return
        for notification in page:
            originator_id: Any = notification.originator_id
            if not isinstance(originator_id, UUID):
                try:
                    originator_id = UUID(str(originator_id))
                except ValueError:
                    continue  # a text id: no account's
            yield originator_id, notification.originator_version
        position = page[-1].id


# --- filters --------------------------------------------------------------------------------

_ERASURE_TYPES: tuple[type[AccountEvent], ...] = (ev.SubjectErased,)
_BY_NAME: dict[str, type[AccountEvent]] = {
    cls.__name__: cls for cls in ACCOUNT_EVENT_TYPES + _ERASURE_TYPES
}


def _event_class(item: object) -> type[AccountEvent]:
    if isinstance(item, str):
        found = _BY_NAME.get(item)
        if found is None:
            raise InvalidValue("types", f"{item!r} is not an Account event class name")
        return found
    if isinstance(item, type) and issubclass(item, AccountEvent):
        return item
    raise InvalidValue("types", f"expected Account event classes or their names, got {item!r}")


def _types(types: object) -> tuple[type[AccountEvent], ...] | None:
    if types is None:
        return None
    if isinstance(types, str | type):
        return (_event_class(types),)
    if not isinstance(types, Iterable):
        raise InvalidValue("types", f"expected event classes or names, got {types!r}")
    chosen = tuple(_event_class(item) for item in types)
    if not chosen:
        raise InvalidValue("types", "an empty selection would show nothing; pass None for all")
    return chosen


def _moment(field: str, value: object, *, end: bool) -> datetime | None:
    """A bound as a moment: a date means the start of that day (UTC), or its end for an
    upper bound."""
    return None if value is None else moment_of(field, value, end=end)


def _range(
    names: tuple[str, str], low: object, high: object
) -> tuple[datetime | None, datetime | None]:
    start = _moment(names[0], low, end=False)
    stop = _moment(names[1], high, end=True)
    if start is not None and stop is not None and stop < start:
        raise InvalidValue(names[1], f"{stop.isoformat()} is before {names[0]} {start.isoformat()}")
    return start, stop


def _within(moment: datetime, start: datetime | None, stop: datetime | None) -> bool:
    return (start is None or moment >= start) and (stop is None or moment <= stop)


# --- the query ------------------------------------------------------------------------------


def timeline(
    service: AccountService,
    account_id: UUID,
    *,
    types: Iterable[type[AccountEvent] | str] | type[AccountEvent] | str | None = None,
    effective_from: date | datetime | None = None,
    effective_to: date | datetime | None = None,
    recorded_from: date | datetime | None = None,
    recorded_to: date | datetime | None = None,
    actor: str | None = None,
    order: Literal["recorded", "effective"] = "recorded",
) -> list[TimelineEntry]:
    """The history of one account, one readable entry per event, with causation chains.

    Filters (all optional, combined with *and*): ``types``, event classes or their names (an
    event matches its class or any base class given); ``effective_from`` / ``effective_to``
    and ``recorded_from`` / ``recorded_to``, inclusive bounds on each clock (a date: the start
    of that day, UTC, or its end for a ``_to`` bound); ``actor``, who recorded the event
    (exactly). ``order``: ``"recorded"`` (the order the events entered the store) or
    ``"effective"`` (business time; ties in recorded order).

    Raises ``InvalidValue`` naming the argument for a bad filter, and ``AccountNotFound`` for
    an unknown account.
    """
    if not isinstance(account_id, UUID):
        raise InvalidValue("account_id", f"expected a UUID, got {type(account_id).__name__}")
    wanted_types = _types(types)
    effective = _range(("effective_from", "effective_to"), effective_from, effective_to)
    recorded = _range(("recorded_from", "recorded_to"), recorded_from, recorded_to)
    if actor is not None and (not isinstance(actor, str) or not actor.strip()):
        raise InvalidValue("actor", f"expected non-blank text, got {actor!r}")
    if order not in ORDERS:
        raise InvalidValue("order", f"expected one of {list(ORDERS)}, got {order!r}")

    book = _Book(service)
    kept = [
        (event, description)
        for event, description in book.load(account_id)
        if (wanted_types is None or isinstance(event, wanted_types))
        and _within(event.effective_at, *effective)
        and _within(event.recorded_at, *recorded)
        and (actor is None or event.actor == actor)
    ]
    while True:
        missing = {book.chain_end(event.causation_id) for event, _ in kept} - {None}
        if not missing:
            break
        book.search({m for m in missing if m is not None})

    entries = []
    for event, description in kept:
        causes, external = book.chain(event.causation_id)
        entries.append(
            TimelineEntry(
                account_id=event.originator_id,
                version=event.originator_version,
                event_id=event.id,
                type=type(event).__name__,
                description=description,
                actor=event.actor,
                effective_at=event.effective_at,
                recorded_at=event.recorded_at,
                correlation_id=event.correlation_id,
                causation_id=event.causation_id,
                causes=causes,
                external_cause=external,
                event=event,
            )
        )
    if order == "effective":
        entries.sort(key=lambda entry: (entry.effective_at, entry.version))
    return entries
