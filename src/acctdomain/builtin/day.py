"""The prioritised day: what an account manager should do today, ranked, with the reasons.

:func:`prioritise` turns the :class:`~acctdomain.builtin.facts.AccountFacts` of a book into
ranked :class:`Priority` items. Each item's score is a base weight (:class:`DayWeights`) times
named factors (how late, how severe, how close, the account's segment), and every factor is
listed with a readable reason, so every rank can be explained and the weights tuned.

Volume has diminishing returns: what one account piles up (unanswered requests, unhappy survey
answers, unmet stakeholders) is one item whose score grows with the logarithm of the count, so
the loudest customer does not win by volume alone. :func:`today` reads the facts of a
manager's accounts from a service and ranks them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal
from uuid import UUID

import attrs

from acctdomain.builtin.facts import AccountFacts, account_facts, read_once
from acctdomain.builtin.stakeholders import DECIDING_ROLES
from acctdomain.builtin.targets import DEFAULT_TARGETS, ServiceTargets
from acctdomain.builtin.workday import require_day
from acctdomain.domain.values import AccountStatus, IssueSeverity, Segment
from acctdomain.errors import InvalidValue

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = [
    "Day",
    "DaySettings",
    "DayWeights",
    "Factor",
    "Priority",
    "PriorityKind",
    "accounts_of",
    "prioritise",
    "today",
]

PriorityKind = Literal[
    "issue_breach",
    "renewal",
    "detractor",
    "overdue_tactic",
    "unanswered_requests",
    "silent_account",
    "stakeholder_not_met",
]
# Among equal scores, the graver kind first.
KIND_ORDER: dict[str, int] = {
    kind: i
    for i, kind in enumerate(
        (
            "issue_breach",
            "renewal",
            "detractor",
            "overdue_tactic",
            "unanswered_requests",
            "silent_account",
            "stakeholder_not_met",
        )
    )
}


def _positive(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if not _finite_non_negative(value):
        raise InvalidValue(f"weights.{attribute.name}", f"expected a number >= 0, got {value!r}")


def _finite_non_negative(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value >= 0
    )


def _factors(
    instance: object, attribute: attrs.Attribute[Mapping[str, float]], value: object
) -> None:
    keys = {s.value for s in (IssueSeverity if attribute.name == "severity" else Segment)}
    if not isinstance(value, Mapping) or {str(k) for k in value} != keys:
        raise InvalidValue(f"weights.{attribute.name}", f"expected a factor for each of {keys}")
    for key, factor in value.items():
        if not _finite_non_negative(factor):
            raise InvalidValue(f"weights.{attribute.name}.{key}", "expected a number >= 0")


@attrs.frozen(kw_only=True)
class DayWeights:
    """The base score of each kind of item (0 leaves the kind out), and the factors of issue
    severity and account segment."""

    issue_breach: float = attrs.field(default=100.0, validator=_positive)
    renewal: float = attrs.field(default=80.0, validator=_positive)
    detractor: float = attrs.field(default=50.0, validator=_positive)
    overdue_tactic: float = attrs.field(default=30.0, validator=_positive)
    silent_account: float = attrs.field(default=25.0, validator=_positive)
    unanswered_requests: float = attrs.field(default=20.0, validator=_positive)
    stakeholder_not_met: float = attrs.field(default=15.0, validator=_positive)
    severity: Mapping[str, float] = attrs.field(
        factory=lambda: {"critical": 1.0, "high": 0.6, "medium": 0.3, "low": 0.1},
        validator=_factors,
    )
    segment: Mapping[str, float] = attrs.field(
        factory=lambda: {"enterprise": 1.2, "mid_market": 1.0, "smb": 0.8},
        validator=_factors,
    )


def _days(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValue(attribute.name, f"expected a whole number of days >= 1, got {value!r}")


def _weights(instance: object, attribute: attrs.Attribute[DayWeights], value: object) -> None:
    if not isinstance(value, DayWeights):
        raise InvalidValue("weights", f"expected DayWeights, got {type(value).__name__}")


def _targets(instance: object, attribute: attrs.Attribute[ServiceTargets], value: object) -> None:
    if not isinstance(value, ServiceTargets):
        raise InvalidValue("targets", f"expected ServiceTargets, got {type(value).__name__}")


@attrs.frozen(kw_only=True)
class DaySettings:
    """What counts as urgent: the weights, the service targets, and the windows in days."""

    weights: DayWeights = attrs.field(factory=DayWeights, validator=_weights)
    targets: ServiceTargets = attrs.field(default=DEFAULT_TARGETS, validator=_targets)
    renewal_window: int = attrs.field(default=60, validator=_days)  # renewals due this soon
    recent_contact: int = attrs.field(default=14, validator=_days)  # a contact this recent is
    silent_after: int = attrs.field(default=45, validator=_days)  # no contact for longer
    not_met_after: int = attrs.field(default=90, validator=_days)  # deciding people unmet


@attrs.frozen
class Factor:
    """One part of a score: ``name`` (``weight``, ``severity``, ``lateness``, ...) and value."""

    name: str
    value: float


@attrs.frozen(kw_only=True)
class Priority:
    """One thing to do today: its rank (1 first), score, the factors it is the product of, and
    the reasons in words. ``item_id`` names the issue or tactic (None for the other kinds)."""

    rank: int
    kind: PriorityKind
    account_id: UUID
    account_name: str
    manager: str
    title: str
    score: float
    factors: tuple[Factor, ...]
    reasons: tuple[str, ...]
    item_id: UUID | None = None


@attrs.frozen
class Day:
    """The ranked day of ``manager`` (None: every manager) on ``today``."""

    manager: str | None
    today: date
    accounts: int  # the accounts looked at
    items: tuple[Priority, ...]


def prioritise(
    book: Iterable[AccountFacts],
    *,
    today: date,
    settings: DaySettings | None = None,
    manager: str | None = None,
    limit: int | None = None,
) -> Day:
    """Rank what the accounts of ``book`` need on ``today`` (the end of that day, UTC, is
    "now" for ages). Churned accounts need nothing. Items come by score, then by the gravity
    of their kind, then by account name and item. ``limit`` keeps the first items only."""
    day = require_day("today", today)
    chosen = settings if settings is not None else DaySettings()
    if not isinstance(chosen, DaySettings):
        raise InvalidValue("settings", f"expected DaySettings, got {type(chosen).__name__}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidValue("limit", f"expected a whole number >= 1, got {limit!r}")
    now = datetime.combine(day, time.max, tzinfo=UTC)
    found: list[_Item] = []
    accounts = 0
    for facts in book:
        accounts += 1
        if facts.status is AccountStatus.CHURNED:
            continue
        found.extend(_items(facts, now, chosen))
    found = [item for item in found if item.score > 0]
    # By the score as shown (two decimals), so that equal scores tie as the reader sees them.
    found.sort(key=lambda i: (-round(i.score, 2), KIND_ORDER[i.kind], i.facts.name, str(i.item_id)))
    if limit is not None:
        found = found[:limit]
    return Day(
        manager,
        day,
        accounts,
        tuple(item.ranked(rank) for rank, item in enumerate(found, start=1)),
    )


def today(
    service: AccountService,
    manager: str | None = None,
    *,
    on: date | None = None,
    settings: DaySettings | None = None,
    limit: int | None = None,
    catch_up: bool = True,
) -> Day:
    """The prioritised day of ``manager`` (None: the whole book) on ``on`` (default: the
    service clock's day), from the read models (brought up to date first with ``catch_up``).
    """
    day = require_day("on", on if on is not None else service.clock().date())
    if catch_up:
        service.catch_up()
    read_models = read_once(service.read_model)
    book = (
        account_facts(read_models, account_id, today=day)
        for account_id in accounts_of(service, manager)
    )
    return prioritise(book, today=day, settings=settings, manager=manager, limit=limit)


def accounts_of(service: AccountService, manager: str | None) -> list[UUID]:
    """The ids of ``manager``'s accounts (all accounts for None), from the ``accounts`` read
    model, by name."""
    if manager is not None and (not isinstance(manager, str) or not manager.strip()):
        raise InvalidValue("manager", f"expected a manager's name, got {manager!r}")
    rows = service.read_model("accounts").scan("accounts")
    mine = [row for _, row in rows if manager is None or row["manager"] == manager]
    mine.sort(key=lambda row: (row["name"], row["account_id"].hex))
    return [row["account_id"] for row in mine]


# --- the rules ----------------------------------------------------------------------------------


@attrs.frozen
class _Item:
    facts: AccountFacts
    kind: PriorityKind
    title: str
    factors: tuple[Factor, ...]
    reasons: tuple[str, ...]
    item_id: UUID | None

    @property
    def score(self) -> float:
        return math.prod(factor.value for factor in self.factors)

    def ranked(self, rank: int) -> Priority:
        return Priority(
            rank=rank,
            kind=self.kind,
            account_id=self.facts.account_id,
            account_name=self.facts.name,
            manager=self.facts.manager,
            title=self.title,
            score=round(self.score, 2),
            factors=self.factors,
            reasons=self.reasons,
            item_id=self.item_id,
        )


def _items(facts: AccountFacts, now: datetime, settings: DaySettings) -> Iterator[_Item]:
    weights = settings.weights
    segment = Factor("segment", weights.segment[facts.segment.value])
    segment_reason = f"{facts.segment.value.replace('_', '-')} account (x{segment.value:g})"

    def item(
        kind: PriorityKind,
        title: str,
        factors: list[Factor],
        reasons: list[str],
        item_id: UUID | None = None,
    ) -> _Item:
        weight = Factor("weight", getattr(weights, kind))
        return _Item(
            facts,
            kind,
            title,
            (weight, *factors, segment),
            (*reasons, segment_reason),
            item_id,
        )

    for issue in facts.open_issues:
        breach = settings.targets.issue_breach(
            issue.severity, issue.raised_at, issue.first_response_at, now
        )
        if breach is None:
            continue
        late = breach.overdue_by / timedelta(days=1)
        escalated = (
            f"escalated to {', '.join(issue.escalated_to)}"
            if issue.escalated_to
            else "not escalated"
        )
        yield item(
            "issue_breach",
            f"{issue.severity.value} issue past its {breach.stage} target",
            [
                Factor("severity", weights.severity[issue.severity.value]),
                Factor("lateness", 1 + min(late, 14) / 14),
            ],
            [
                f"{issue.severity.value} issue raised {_span(now - issue.raised_at)} ago, "
                f"{'no first response yet' if issue.first_response_at is None else 'responded'}",
                f"past its {breach.stage} target of {_span(breach.limit)} "
                f"by {_span(breach.overdue_by)}",
                escalated,
            ],
            issue.issue_id,
        )

    due = facts.renewal_due_on or facts.term_end
    if due is not None and facts.status is AccountStatus.ACTIVE:
        days_left = (due - now.date()).days
        silent = _days_since(facts.last_contact_at, now)
        if days_left <= settings.renewal_window and (
            silent is None or silent > settings.recent_contact
        ):
            window = settings.renewal_window
            closeness = 1 + (window - max(days_left, 0)) / window
            when = (
                f"in {days_left} days" if days_left >= 0 else f"{-days_left} days ago, not renewed"
            )
            yield item(
                "renewal",
                f"renewal due {due.isoformat()} without a recent contact",
                [Factor("closeness", closeness)],
                [
                    f"renewal due on {due.isoformat()} ({when}), ARR at stake {facts.arr}",
                    "never contacted"
                    if silent is None
                    else f"last contact {silent} days ago (more than {settings.recent_contact})",
                ],
            )

    if facts.awaiting_follow_up:
        oldest = facts.awaiting_follow_up[0]
        count = len(facts.awaiting_follow_up)
        waited = _days_since(oldest.at, now) or 0
        answers = ", ".join(f"{a.kind.upper()} {a.score}" for a in facts.awaiting_follow_up)
        yield item(
            "detractor",
            "follow up unhappy survey answers" if count > 1 else "follow up an unhappy answer",
            [Factor("waiting", 1 + min(waited, 30) / 30), _volume(count)],
            [
                f"{count} unhappy answer(s) without a contact since: {answers}",
                f"the oldest waits for {waited} days",
                *_volume_reason(count),
            ],
        )

    for overdue in facts.plan.overdue:
        if overdue.kind != "tactic":
            continue
        yield item(
            "overdue_tactic",
            f"overdue tactic: {overdue.title}",
            [Factor("lateness", 1 + min(overdue.days_overdue, 30) / 30)],
            [
                f"due {overdue.due_on.isoformat()}, {overdue.days_overdue} days overdue",
                f"owner {overdue.owner}",
            ],
            overdue.item_id,
        )

    if facts.open_requests:
        count = len(facts.open_requests)
        oldest_age = now - facts.open_requests[0].received_at
        target = settings.targets.request_answer
        late = max(oldest_age - target, timedelta(0)) / timedelta(days=1)
        channels = sorted({r.channel.value for r in facts.open_requests})
        yield item(
            "unanswered_requests",
            f"answer {count} customer request(s)",
            [Factor("lateness", 1 + min(late, 7) / 7), _volume(count)],
            [
                f"{count} request(s) unanswered ({', '.join(channels)}); the oldest for "
                f"{_span(oldest_age)} (target {_span(target)})",
                *_volume_reason(count),
            ],
        )

    # Silence counts from the last contact, or from the opening for an account never contacted
    # (a new account is not silent on its first day).
    silent = _days_since(facts.last_contact_at or facts.opened_at, now)
    if silent is not None and silent > settings.silent_after:
        after = settings.silent_after
        quiet = (silent - after) / after
        yield item(
            "silent_account",
            "reach out: no contact for too long",
            [Factor("silence", 1 + min(quiet, 1.0))],
            [
                f"last contact {silent} days ago (more than {after})"
                if facts.last_contact_at is not None
                else f"never contacted since it was opened {silent} days ago (more than {after})"
            ],
        )

    after = settings.not_met_after
    unmet = [
        person
        for person in facts.stakeholders.people
        if person.role in DECIDING_ROLES
        and (person.days_since_contact is None or person.days_since_contact > after)
    ]
    if unmet:
        yield item(
            "stakeholder_not_met",
            f"meet {len(unmet)} deciding stakeholder(s)",
            [_volume(len(unmet))],
            [
                *(
                    f"{p.name} ({p.role.value.replace('_', ' ')}) "
                    + (
                        "was never met"
                        if p.days_since_contact is None
                        else f"was last met {p.days_since_contact} days ago (more than {after})"
                    )
                    for p in unmet
                ),
                *_volume_reason(len(unmet)),
            ],
        )


def _volume(count: int) -> Factor:
    """1 for one thing, growing with the logarithm of the count, at most 2 (16 things)."""
    return Factor("volume", min(2.0, 1 + math.log2(count) / 4))


def _volume_reason(count: int) -> list[str]:
    if count < 2:
        return []
    return [f"volume x{_volume(count).value:.2f} for {count} (diminishing: at most x2)"]


def _days_since(moment: datetime | None, now: datetime) -> int | None:
    """Whole days from ``moment`` to ``now`` (0 for a moment after it); None for no moment."""
    if moment is None:
        return None
    return max(0, (now.date() - moment.astimezone(UTC).date()).days)


def _span(span: timedelta) -> str:
    hours = span / timedelta(hours=1)
    if hours < 72:
        return f"{hours:.0f} h" if hours >= 1 else f"{span / timedelta(minutes=1):.0f} min"
    return f"{span / timedelta(days=1):.0f} days"
