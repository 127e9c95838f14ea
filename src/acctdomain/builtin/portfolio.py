"""The portfolio (book of business) of an account manager: every account with its ARR, renewal,
health, open issues and plan progress, and the totals an AM reviews each week.

Built from the accounts' :class:`~acctdomain.builtin.facts.AccountFacts` (read models only).
Money is summed per currency, never across currencies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING

import attrs

from acctdomain.application.health import Bands, HealthScore
from acctdomain.builtin.day import accounts_of
from acctdomain.builtin.facts import AccountFacts, account_facts, read_once
from acctdomain.builtin.plans import Progress
from acctdomain.builtin.workday import require_day
from acctdomain.domain.values import AccountStatus, Money
from acctdomain.errors import InvalidValue

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = ["Portfolio", "PortfolioAccount", "RenewalMonth", "portfolio"]


@attrs.frozen(kw_only=True)
class PortfolioAccount:
    """One account of the book."""

    facts: AccountFacts
    health: HealthScore

    @property
    def overdue_items(self) -> int:
        """Goals and tactics of the plan past their date."""
        return len(self.facts.plan.overdue)


@attrs.frozen
class RenewalMonth:
    """Renewals due in a month (``YYYY-MM``): how many, and their ARR per currency."""

    month: str
    accounts: int
    arr: Mapping[str, Money]


@attrs.frozen(kw_only=True)
class Portfolio:
    """The book of ``manager`` (None: every manager) on ``today``."""

    manager: str | None
    today: date
    accounts: tuple[PortfolioAccount, ...]  # churned last; by currency, ARR (largest first), name
    arr: Mapping[str, Money]  # active accounts, per currency
    renewals: tuple[RenewalMonth, ...]  # the next ``months`` months, from today's month
    health: Mapping[str, int]  # accounts per band (``green``, ``yellow``, ``red``, ``unscored``)
    open_issues: int
    plan_progress: Progress  # tactics completed out of those not dropped, across the book


def portfolio(
    service: AccountService,
    manager: str | None = None,
    *,
    today: date | None = None,
    months: int = 12,
    bands: Bands | None = None,
    weights: Mapping[str, float] | None = None,
    catch_up: bool = True,
) -> Portfolio:
    """The portfolio of ``manager`` on ``today`` (default: the clock's day), with renewals
    due over the next ``months`` months (a renewal already overdue counts in today's month).
    Churned accounts are listed (health unscored) but count in no total."""
    day = require_day("today", today if today is not None else service.clock().date())
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 60:
        raise InvalidValue("months", f"expected a whole number from 1 to 60, got {months!r}")
    if catch_up:
        service.catch_up()
    now = datetime.combine(day, time.max, tzinfo=UTC)
    entries = []
    read_models = read_once(service.read_model)
    for account_id in accounts_of(service, manager):
        facts = account_facts(read_models, account_id, today=day)
        if facts.status is AccountStatus.CHURNED:
            health = HealthScore(account_id, None, None, ())
        else:
            health = service.health_of(facts, now, bands, weights)
        entries.append(PortfolioAccount(facts=facts, health=health))
    entries.sort(
        key=lambda e: (
            e.facts.status is AccountStatus.CHURNED,
            e.facts.currency,
            -e.facts.arr.amount,
            e.facts.name,
        )
    )
    live = [e for e in entries if e.facts.status is not AccountStatus.CHURNED]
    return Portfolio(
        manager=manager,
        today=day,
        accounts=tuple(entries),
        arr=_sum({}, (e.facts.arr for e in live if e.facts.status is AccountStatus.ACTIVE)),
        renewals=_renewals(live, day, months),
        health=_bands(live),
        open_issues=sum(len(e.facts.open_issues) for e in live),
        plan_progress=_progress(live),
    )


def _sum(totals: dict[str, Money], amounts: Iterable[Money]) -> dict[str, Money]:
    for amount in amounts:
        totals[amount.currency] = totals.get(amount.currency, Money.zero(amount.currency)) + amount
    return dict(sorted(totals.items()))


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _renewals(entries: list[PortfolioAccount], day: date, months: int) -> tuple[RenewalMonth, ...]:
    keys = []
    year, month = day.year, day.month
    for _ in range(months):
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    due: dict[str, list[Money]] = {key: [] for key in keys}
    for entry in entries:
        facts = entry.facts
        when = facts.renewal_due_on or facts.term_end
        if when is None or facts.status is not AccountStatus.ACTIVE:
            continue
        key = _month(max(when, day))
        if key in due:
            due[key].append(facts.arr)
    return tuple(RenewalMonth(key, len(arr), _sum({}, arr)) for key, arr in due.items())


def _bands(entries: list[PortfolioAccount]) -> dict[str, int]:
    counts = dict.fromkeys(("green", "yellow", "red", "unscored"), 0)
    for entry in entries:
        counts[entry.health.band or "unscored"] += 1
    return counts


def _progress(entries: list[PortfolioAccount]) -> Progress:
    completed = sum(e.facts.plan.progress.completed for e in entries)
    planned = sum(e.facts.plan.progress.planned for e in entries)
    if not planned:
        return Progress(0, 0, None, "no tactic planned in the book")
    return Progress(completed, planned, Decimal(completed) / Decimal(planned))
