"""The quarterly business review (QBR) summary of one account and quarter.

What an account manager brings to a QBR: what happened in the quarter (counts by kind and the
highlights: revenue changes, serious issues, goals reached, value delivered), the account's
own figures (ARR at the start and the end and how it moved: new, expansion, contraction and
churn, which add up to the change; survey answers; issue timings), the issues still open at
the quarter's end, the plan's progress then, and the value realised in the quarter.

Everything is in effective (business) time: an event belongs to the quarter its effective time
falls in (UTC), whenever it was recorded. The summary reads the account's own events (one
account, one quarter) and the ``account_plans`` and ``value_realised`` read models.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from statistics import median
from typing import TYPE_CHECKING
from uuid import UUID

import attrs

from acctdomain.builtin.facts import lines_total
from acctdomain.builtin.kpi_facts import REVENUE, micros
from acctdomain.builtin.plans import AccountPlan, account_plan
from acctdomain.builtin.value import ValueRealised, value_realised
from acctdomain.builtin.workday import require_account_id
from acctdomain.domain import events as ev
from acctdomain.domain.account import Account
from acctdomain.domain.records import Issue
from acctdomain.domain.values import CsatScore, IssueSeverity, Money, NpsScore
from acctdomain.errors import AccountNotFound, InvalidValue
from acctdomain.plugins import ReadModel

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = ["QbrFigures", "QbrSummary", "qbr_summary", "quarter_bounds"]

SERIOUS = (IssueSeverity.HIGH, IssueSeverity.CRITICAL)


def quarter_bounds(year: int, quarter: int) -> tuple[date, date]:
    """The first and last day of ``quarter`` (1-4) of ``year``."""
    if isinstance(year, bool) or not isinstance(year, int) or not 1900 <= year <= 9999:
        raise InvalidValue("year", f"expected a year like 2026, got {year!r}")
    if isinstance(quarter, bool) or not isinstance(quarter, int) or not 1 <= quarter <= 4:
        raise InvalidValue("quarter", f"expected 1, 2, 3 or 4, got {quarter!r}")
    first = date(year, 3 * quarter - 2, 1)
    if quarter == 4:
        return first, date(year, 12, 31)
    return first, date(year, 3 * quarter + 1, 1) - timedelta(days=1)


@attrs.frozen(kw_only=True)
class QbrFigures:
    """The account's own figures for the quarter. Amounts are in the account's currency;
    ``None`` (never 0) where there is nothing to measure."""

    arr_start: Money  # at the start of the first day
    arr_end: Money  # at the end of the last day
    new: Money  # contracts started and reactivations
    expansion: Money  # upsells, cross-sells and renewals at a higher value
    contraction: Money  # downgrades and renewals at a lower value
    churned: Money  # the ARR lost to churn
    nps_answers: tuple[int, ...]
    nps_mean: Decimal | None
    csat_answers: tuple[int, ...]
    csat_satisfied: Decimal | None  # share of CSAT answers of 4 or 5
    median_first_response_hours: Decimal | None  # issues raised in the quarter and answered
    median_resolution_hours: Decimal | None  # issues resolved in the quarter

    @property
    def arr_change(self) -> Money:
        """ARR at the end less ARR at the start: ``new + expansion - contraction - churned``."""
        return self.arr_end - self.arr_start


@attrs.frozen(kw_only=True)
class QbrSummary:
    """The QBR summary of ``account_id`` for the quarter ``start`` to ``end``."""

    account_id: UUID
    name: str
    manager: str
    quarter: str  # "2026-Q1"
    start: date
    end: date
    happened: dict[str, int]  # events in the quarter, by kind (event class name)
    highlights: tuple[str, ...]  # the notable ones, in effective-time order
    figures: QbrFigures
    open_issues: tuple[Issue, ...]  # still open at the end of the quarter, oldest first
    plan: AccountPlan  # as of the end of the quarter
    value: ValueRealised  # delivered in the quarter


def qbr_summary(
    service: AccountService, account_id: UUID, *, year: int, quarter: int, catch_up: bool = True
) -> QbrSummary:
    """The QBR summary of ``account_id`` for ``quarter`` of ``year`` (see the module).

    Raises ``InvalidValue`` naming ``account_id``, ``year`` or ``quarter``, and
    ``AccountNotFound`` for an unknown account or one opened after the quarter.
    """
    account = require_account_id(account_id)
    start, end = quarter_bounds(year, quarter)
    if catch_up:
        service.catch_up()
    history = service.history(account)  # read once: the state at the end comes from it too
    first = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    after = first + timedelta(days=(end - start).days + 1)
    closing = Account.as_effective_at(history, after - timedelta(microseconds=1))
    if closing is None:
        raise AccountNotFound(account, f"not opened yet at the end of {year}-Q{quarter}")
    at_end = closing.state()
    inside = [e for e in history if first <= e.effective_at < after]
    arr_start, movements = _movements(
        service.read_model("kpi_facts"), account, first, after, Money.zero(at_end.currency)
    )
    return QbrSummary(
        account_id=account,
        name=at_end.name,
        manager=at_end.manager,
        quarter=f"{year}-Q{quarter}",
        start=start,
        end=end,
        happened=dict(sorted(Counter(type(e).__name__ for e in inside).items())),
        highlights=tuple(_highlights(sorted(inside, key=lambda e: e.effective_at), history)),
        figures=_figures(inside, arr_start, movements, at_end.arr, history, first, after),
        open_issues=tuple(sorted(at_end.open_issues, key=lambda issue: issue.raised_at)),
        plan=account_plan(service.read_model("account_plans"), account, today=end),
        value=value_realised(service.read_model("value_realised"), account, start=start, end=end),
    )


# Revenue facts of ``kpi_facts`` by the movement of ARR they make.
_NEW = frozenset({"started", "reactivated"})


def _movements(
    kpi_facts: ReadModel, account: UUID, first: datetime, after: datetime, zero: Money
) -> tuple[Money, dict[str, Money]]:
    """ARR at ``first`` and how it moved until ``after`` (new, expansion, contraction,
    churned), from the account's revenue history in ``kpi_facts`` (the lines each revenue
    fact left, in business-time order)."""
    low, high = micros(first), micros(after)
    movements = dict.fromkeys(("new", "expansion", "contraction", "churned"), zero)
    arr = arr_start = zero
    for _, row in kpi_facts.scan(REVENUE, f"{account.hex}:"):
        for effective, _recorded, kind, lines in row["revenue"]:
            if effective >= high:
                return arr_start, movements
            total = lines_total(lines, zero.currency)
            if effective < low:
                arr = arr_start = total
                continue
            change, arr = total - arr, total
            if kind in _NEW:
                movements["new"] += change
            elif kind == "churned":
                movements["churned"] -= change
            elif change.amount > 0:
                movements["expansion"] += change
            else:
                movements["contraction"] -= change
    return arr_start, movements


def _figures(
    inside: list[ev.AccountEvent],
    arr_start: Money,
    movements: dict[str, Money],
    arr_end: Money,
    history: Iterable[ev.AccountEvent],
    first: datetime,
    after: datetime,
) -> QbrFigures:
    nps: list[int] = []
    csat: list[int] = []
    resolutions: list[float] = []
    for event in inside:
        if isinstance(event, ev.FeedbackRecorded) and isinstance(event.score, NpsScore):
            nps.append(event.score.value)
        elif isinstance(event, ev.FeedbackRecorded) and isinstance(event.score, CsatScore):
            csat.append(event.score.value)
    raised: dict[UUID, datetime] = {}
    responses: list[float] = []
    responded: set[UUID] = set()
    for event in history:
        if isinstance(event, ev.IssueRaised):
            raised[event.issue_id] = event.effective_at
        elif isinstance(event, ev.IssueResponded) and event.issue_id not in responded:
            responded.add(event.issue_id)  # only the first response times the issue
            opened = raised.get(event.issue_id)
            if opened is not None and first <= opened < after:
                responses.append(_hours(event.effective_at - opened))
        elif (
            isinstance(event, ev.IssueResolved)
            and event.issue_id in raised
            and first <= event.effective_at < after
        ):
            resolutions.append(_hours(event.effective_at - raised[event.issue_id]))
    return QbrFigures(
        arr_start=arr_start,
        arr_end=arr_end,
        **movements,
        nps_answers=tuple(nps),
        nps_mean=_mean(nps),
        csat_answers=tuple(csat),
        csat_satisfied=(
            Decimal(sum(1 for s in csat if s >= 4)) / Decimal(len(csat)) if csat else None
        ),
        median_first_response_hours=_median(responses),
        median_resolution_hours=_median(resolutions),
    )


def _hours(span: timedelta) -> float:
    return span.total_seconds() / 3600


def _mean(values: list[int]) -> Decimal | None:
    return Decimal(sum(values)) / Decimal(len(values)) if values else None


def _median(values: list[float]) -> Decimal | None:
    return round(Decimal(str(median(values))), 1) if values else None


def _highlights(events: list[ev.AccountEvent], history: Iterable[ev.AccountEvent]) -> Iterable[str]:
    titles: dict[UUID, str] = {}
    serious: set[UUID] = set()
    for event in history:
        if isinstance(event, ev.GoalSet):
            titles[event.goal_id] = event.title
        elif isinstance(event, ev.IssueRaised):
            titles[event.issue_id] = event.title
            if event.severity in SERIOUS:  # their resolutions stand out
                serious.add(event.issue_id)
    for event in events:
        day = event.effective_at.astimezone(UTC).date().isoformat()
        text = _highlight(event, titles, serious)
        if text:
            yield f"{day}: {text}"


def _highlight(event: ev.AccountEvent, titles: dict[UUID, str], serious: set[UUID]) -> str:
    if isinstance(event, ev.ContractStarted):
        return f"contract started until {event.term_end.isoformat()}"
    if isinstance(event, ev.Renewed):
        arr = sum((line.arr for line in event.lines), Money.zero(event.arr_before.currency))
        return f"renewed until {event.term_end.isoformat()}: ARR {event.arr_before} -> {arr}"
    if isinstance(event, ev.Churned):
        return f"churned ({event.reason.value}), ARR lost {event.arr_lost}"
    if isinstance(event, ev.Reactivated):
        return f"reactivated until {event.term_end.isoformat()}"
    if isinstance(event, ev.Upsold):
        return f"upsell of {event.product}: +{event.added_arr}"
    if isinstance(event, ev.CrossSold):
        return f"cross-sell of {event.product}: +{event.arr}"
    if isinstance(event, ev.Downgraded):
        return f"downgrade of {event.product}: -{event.reduced_by}"
    if isinstance(event, ev.IssueRaised) and event.severity in SERIOUS:
        return f"{event.severity.value} issue raised: {event.title}"
    if isinstance(event, ev.IssueEscalated):
        return f"issue escalated to {event.to_team}: {titles.get(event.issue_id, '?')}"
    if isinstance(event, ev.IssueResolved) and event.issue_id in serious:
        return f"issue resolved: {titles[event.issue_id]}"
    if isinstance(event, ev.GoalAchieved):
        return f"goal achieved: {titles.get(event.goal_id, '?')}"
    if isinstance(event, ev.ValueDelivered):
        return f"value delivered: {event.amount} ({event.description})"
    if (
        isinstance(event, ev.FeedbackRecorded)
        and isinstance(event.score, NpsScore)
        and event.score.value <= 6
    ):
        return f"NPS detractor answer: {event.score.value}"
    return ""
