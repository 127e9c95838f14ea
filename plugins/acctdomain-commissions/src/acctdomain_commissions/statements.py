"""Commission statements: per account manager, for a period, under a plan.

Everything is read from the ``commission_ledger`` read model (never by replaying events); the
README states each formula. In short, for manager M and the days ``start`` to ``end``:

- revenue base = sum over M's account-days of ARR / 365 (the recurring revenue earned on the
  days M was in charge of each account), per currency;
- commission = revenue base x plan rate, per currency;
- renewal rate and NRR as in :mod:`acctdomain_commissions.figures`; each met target pays its
  flat bonus (plan currency); total = commission + bonuses, per currency.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from acctdomain.domain.values import Money, require_date
from acctdomain.errors import InvalidValue
from acctdomain.plugins import ReadModel
from acctdomain_commissions.figures import (
    CohortMember,
    Ratio,
    RenewalFigures,
    RetentionFigures,
    renewal_figures,
    retention_figures,
)
from acctdomain_commissions.ledger import ACCOUNTS, LEDGER, MANAGERS
from acctdomain_commissions.money import by_currency, plain, round_money
from acctdomain_commissions.plan import CommissionPlan, Target, load_plan
from acctdomain_commissions.timeline import AccountTimeline, Opportunity

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = ["DAYS_PER_YEAR", "Statement", "TargetResult", "compute_statements", "statements"]

DAYS_PER_YEAR = 365
"""Day count of the revenue base (actual/365 fixed): one day of an account earns ARR / 365."""


@attrs.frozen
class TargetResult:
    """One target of the plan, judged: ``achieved`` is the manager's figure (None when
    undefined, then ``reason`` says why and the target is not met); ``bonus`` is what it pays
    (the target's bonus if met, else zero)."""

    kpi: str
    threshold: Decimal
    achieved: Decimal | None
    met: bool
    bonus: Money
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "kpi": self.kpi,
            "threshold": str(self.threshold),
            "achieved": None if self.achieved is None else str(self.achieved),
            "met": self.met,
            "bonus": {"amount": str(self.bonus.amount), "currency": self.bonus.currency},
            "reason": self.reason,
        }


@attrs.frozen
class Statement:
    """What one account manager earned in a period.

    Amounts by currency (``revenue_base``, ``commission``, ``total``) are never added across
    currencies; ``bonuses`` is in the plan's currency.
    """

    manager: str
    start: date
    end: date
    plan: str
    rate: Decimal
    accounts: int
    revenue_base: Mapping[str, Money]
    commission: Mapping[str, Money]
    renewals: RenewalFigures
    retention: RetentionFigures
    targets: tuple[TargetResult, ...]
    bonuses: Money
    total: Mapping[str, Money]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: amounts and ratios as text, amounts by currency."""
        return {
            "manager": self.manager,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "plan": self.plan,
            "rate": str(self.rate),
            "accounts": self.accounts,
            "revenue_base": plain(self.revenue_base),
            "commission": plain(self.commission),
            "renewals": self.renewals.as_dict(),
            "retention": self.retention.as_dict(),
            "targets": [target.as_dict() for target in self.targets],
            "bonuses": {"amount": str(self.bonuses.amount), "currency": self.bonuses.currency},
            "total": plain(self.total),
        }


@attrs.define
class _Book:
    """What one manager accumulates while the accounts are read."""

    accounts: set[str] = attrs.field(factory=set)
    account_days: dict[str, Decimal] = attrs.field(factory=dict)  # ARR x days, by currency
    opportunities: list[Opportunity] = attrs.field(factory=list)
    cohort: list[CohortMember] = attrs.field(factory=list)


def _timelines(
    read_model: ReadModel, managers: Collection[str] | None
) -> Iterator[AccountTimeline]:
    if managers is None:
        for key, row in read_model.scan(ACCOUNTS):
            yield AccountTimeline(key, row)
        return
    keys: set[str] = set()
    for manager in managers:
        keys.update((read_model.get(MANAGERS, manager) or {"accounts": []})["accounts"])
    for key in sorted(keys):
        found = read_model.get(ACCOUNTS, key)
        if found is not None:
            yield AccountTimeline(key, found)


def _read(timeline: AccountTimeline, start: date, end: date, books: dict[str, _Book]) -> None:
    """Add one account's days, renewals due and cohort membership to its managers' books."""
    currency = timeline.currency
    for segment in timeline.segments(start, end):
        if segment.manager is None:  # days before the account was opened
            continue
        book = books.setdefault(segment.manager, _Book())
        book.accounts.add(timeline.key)
        days = book.account_days.get(currency, Decimal(0))
        book.account_days[currency] = days + segment.arr * segment.days
    for opportunity in timeline.renewals:
        if start <= opportunity.due_on <= end:
            manager = timeline.manager_on(opportunity.due_on)
            if manager is not None:
                books.setdefault(manager, _Book()).opportunities.append(opportunity)
    opening = datetime.combine(start, time(), UTC)
    closing = datetime.combine(end + timedelta(days=1), time(), UTC) - timedelta(microseconds=1)
    holder = timeline.manager_before(opening)
    starting = timeline.arr_before(opening)
    if holder is None or starting <= 0:
        return
    ending = starting + sum(
        (
            delta
            for at, delta in timeline.arr_changes(opening, closing)
            if timeline.manager_at(at) == holder
        ),
        Decimal(0),
    )
    member = CohortMember(timeline.key, Money(starting, currency), Money(ending, currency))
    books.setdefault(holder, _Book()).cohort.append(member)


def _judge(target: Target, figure: Ratio, currency: str) -> TargetResult:
    met = figure.value is not None and figure.value >= target.threshold
    bonus = round_money(target.bonus.amount if met else Decimal(0), currency)
    return TargetResult(target.kpi, target.threshold, figure.value, met, bonus, figure.reason)


def _statement(
    manager: str, book: _Book, start: date, end: date, plan: CommissionPlan
) -> Statement:
    base = {
        currency: round_money(days / DAYS_PER_YEAR, currency)
        for currency, days in sorted(book.account_days.items())
    }
    commission = {
        currency: round_money(amount.amount * plan.rate, currency)
        for currency, amount in base.items()
    }
    renewals = renewal_figures(book.opportunities, plan.conversion)
    retention = retention_figures(book.cohort, plan.conversion)
    renewal_rate = renewals.by_value if plan.renewal_basis == "value" else renewals.by_count
    figures = {"renewal_rate": renewal_rate, "nrr": retention.nrr}
    targets = tuple(_judge(t, figures[t.kpi], plan.currency) for t in plan.targets)
    bonuses = round_money(sum((t.bonus.amount for t in targets), Decimal(0)), plan.currency)
    total = by_currency([*commission.values(), bonuses])
    return Statement(
        manager=manager,
        start=start,
        end=end,
        plan=plan.name,
        rate=plan.rate,
        accounts=len(book.accounts),
        revenue_base=base,
        commission=commission,
        renewals=renewals,
        retention=retention,
        targets=targets,
        bonuses=bonuses,
        total={c: m for c, m in total.items() if not m.is_zero or c in commission},
    )


def _period(start: object, end: object) -> tuple[date, date]:
    first, last = require_date("start", start), require_date("end", end)
    if last < first:
        raise InvalidValue("end", f"{last.isoformat()} is before start {first.isoformat()}")
    return first, last


def compute_statements(
    read_model: ReadModel,
    start: date,
    end: date,
    plan: CommissionPlan,
    managers: Collection[str] | None = None,
) -> list[Statement]:
    """One statement per manager in charge of an account on at least one day from ``start``
    to ``end`` (both included), by manager name; only ``managers`` if given."""
    start, end = _period(start, end)
    books: dict[str, _Book] = {}
    for timeline in _timelines(read_model, managers):
        _read(timeline, start, end, books)
    return [
        _statement(manager, book, start, end, plan)
        for manager, book in sorted(books.items())
        if managers is None or manager in managers
    ]


def statements(
    service: AccountService,
    start: date,
    end: date,
    plan: CommissionPlan | None = None,
    *,
    manager: str | None = None,
    catch_up: bool = True,
) -> list[Statement]:
    """The commission statements of ``service``'s managers for ``start`` to ``end`` (both
    included), under ``plan`` (default: :func:`~acctdomain_commissions.plan.load_plan`).

    With ``catch_up`` the read models are brought up to date first; ``manager`` limits the
    statements to one manager.
    """
    plan = load_plan() if plan is None else plan
    if catch_up:
        service.catch_up()
    managers = None if manager is None else (manager,)
    return compute_statements(service.read_model(LEDGER), start, end, plan, managers)
