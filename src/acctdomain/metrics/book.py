"""The book in one period: every revenue figure of the scorecard, in one pass over the accounts.

Input: the rows of the ``kpi_facts`` read model's ``accounts`` table (see
:mod:`acctdomain.builtin.kpi_facts`), a period in microseconds since 1970 (both ends included),
and ``known``, the recorded time up to which facts count ("as known then"; facts recorded later
are ignored). The rules of DESIGN.md section 4:

- the *cohort* is the accounts active just before the period starts; accounts that join during
  the period are not in it (they count in ARR, growth and the counts);
- each cohort account's change is *netted* over the period: only its ARR at the start and at
  the end count, so an upsell and a downgrade in the same quarter cancel out, and a churn
  followed by a reactivation is no churn;
- each currency is converted at one rate for the whole period (the rate of its last day), so a
  move of the exchange rate is never an expansion or a contraction.

With ``product``, the figures are those of one product line: an account is "active" in it while
it has the line, its ARR is the line's, and a revenue fact counts (as a start, a churn, an
upsell...) only if it changed that line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from acctdomain.metrics.formulas import Undefined

__all__ = [
    "PeriodBook",
    "RenewalOutcome",
    "historical_value",
    "manager_at",
]

ZERO = Decimal(0)
MICROS_PER_YEAR = Decimal(365 * 24 * 3600 * 1_000_000)


def manager_at(row: Mapping[str, Any], moment: int, known: int) -> tuple[str, str]:
    """The account's manager and manager type at ``moment`` as known at ``known`` (the first
    one before the account was opened)."""
    managers = row["managers"]
    manager, kind = managers[0][2], managers[0][3]
    for effective, recorded, name, name_kind in managers[1:]:
        if effective > moment or recorded > known:
            break
        manager, kind = name, name_kind
    return manager, kind


@attrs.frozen
class RenewalOutcome:
    """A renewal due in the period: ``outcome`` is ``renewed``, ``lost`` (churned) or ``open``
    (neither yet, as known); ``renewed_arr`` the ARR after a renewal (else zero)."""

    account: str
    due: int
    at_stake: Decimal
    outcome: str
    renewed_arr: Decimal


@attrs.define
class PeriodBook:
    """The revenue figures of one period (amounts in the reporting currency)."""

    start: int
    end: int
    known: int
    product: str | None = None

    cohort: int = 0
    """Accounts active just before the period."""
    retained: int = 0
    """Cohort accounts still active at its end."""
    churned: int = 0
    """Cohort accounts churned at its end (netted: a reactivated one is retained)."""
    starting_arr: Decimal = ZERO
    """The cohort's ARR just before the period."""
    cohort_arr: Decimal = ZERO
    """The cohort's ARR at the end of the period."""
    expansion: Decimal = ZERO
    contraction: Decimal = ZERO
    churned_arr: Decimal = ZERO
    """The starting ARR of the cohort accounts churned at the end."""
    ending_arr: Decimal = ZERO
    """Every account's ARR at the end (the cohort's and the newcomers')."""
    active: int = 0
    """Accounts active at the end."""
    new: int = 0
    """Accounts whose first contract started in the period."""
    churn_events: int = 0
    """Accounts with a churn effective in the period (not netted)."""
    reactivated: int = 0
    """Accounts reactivated in the period."""
    upsell_accounts: int = 0
    """Cohort accounts with an upsell in the period."""
    cross_sell_accounts: int = 0
    upsell_arr: Decimal = ZERO
    """ARR added by upsells in the period (every account)."""
    cross_sell_arr: Decimal = ZERO
    renewals: list[RenewalOutcome] = attrs.field(factory=list)
    unconvertible: str | None = None
    """Why amounts could not be converted to the reporting currency (then every amount here
    is meaningless; the counts are right)."""

    def require_amounts(self) -> None:
        """Raise Undefined if the amounts could not be converted."""
        if self.unconvertible is not None:
            raise Undefined(self.unconvertible)

    @property
    def days(self) -> int:
        """The period's length in whole days."""
        return round((self.end + 1 - self.start) / 86_400_000_000)

    def add(self, key: str, row: Mapping[str, Any], rate: Decimal) -> None:
        """Count one account, its amounts converted with ``rate``: one pass over its revenue
        facts finds its state before and at the end of the period and what happened in it."""
        start, end, known, product = self.start, self.end, self.known, self.product
        before: tuple[str, Mapping[str, str]] = ("none", {})
        after: tuple[str, Mapping[str, str]] = before
        seen: set[str] = set()
        upsell = cross_sell = ZERO
        for effective, recorded, kind, lines in row["revenue"]:
            if recorded > known or effective > end:
                break
            # With a product line, only the facts that changed that line count.
            if effective >= start and (
                product is None or after[1].get(product) != lines.get(product)
            ):
                if kind == "upsold" or kind == "cross_sold":
                    added = _added(after[1], lines, product)
                    if kind == "upsold":
                        upsell += added
                    else:
                        cross_sell += added
                seen.add(kind)
            after = ("churned" if kind == "churned" else "active", lines)
            if effective < start:
                before = after
        was_active, start_arr = _state(before, product)
        is_active, end_arr = _state(after, product)
        start_arr *= rate
        end_arr *= rate
        self.ending_arr += end_arr
        self.active += is_active
        if was_active:
            self.cohort += 1
            self.starting_arr += start_arr
            if is_active:
                self.retained += 1
                self.cohort_arr += end_arr
                change = end_arr - start_arr
                if change > 0:
                    self.expansion += change
                else:
                    self.contraction -= change
            else:
                self.churned += 1
                self.churned_arr += start_arr
            self.upsell_accounts += "upsold" in seen
            self.cross_sell_accounts += "cross_sold" in seen
        if seen:
            self.upsell_arr += upsell * rate
            self.cross_sell_arr += cross_sell * rate
            self.new += "started" in seen
            self.churn_events += "churned" in seen
            self.reactivated += "reactivated" in seen
        if row["renewals"]:
            self._renewals(key, row, rate)

    def _renewals(self, key: str, row: Mapping[str, Any], rate: Decimal) -> None:
        revenue = row["revenue"]
        for marked, recorded, due, at_stake in row["renewals"]:
            if recorded > self.known or not self.start <= due <= self.end:
                continue
            outcome, renewed_arr = "open", ZERO
            for effective, fact_recorded, kind, after in revenue:
                if fact_recorded > self.known:
                    break
                if effective < marked or kind not in ("renewed", "churned"):
                    continue
                if kind == "renewed":
                    outcome = "renewed"
                    renewed_arr = sum((Decimal(a) for a in after.values()), ZERO) * rate
                else:
                    outcome = "lost"
                break
            self.renewals.append(
                RenewalOutcome(key, due, Decimal(at_stake) * rate, outcome, renewed_arr)
            )

    @classmethod
    def of(
        cls,
        rows: Iterable[tuple[str, Mapping[str, Any]]],
        start: int,
        end: int,
        known: int,
        rate: Callable[[str], Decimal],
        product: str | None = None,
    ) -> PeriodBook:
        """The figures of ``rows`` over [start, end]; ``rate(currency)`` converts an
        account's amounts to the reporting currency (where it raises Undefined, the counts are
        still made and the amounts are marked :attr:`unconvertible`)."""
        book = cls(start, end, known, product)
        for key, row in rows:
            if row["opened"][1] > known:
                continue
            try:
                converted = rate(row["currency"])
            except Undefined as undefined:
                book.unconvertible = book.unconvertible or undefined.reason
                converted = ZERO
            book.add(key, row, converted)
        return book


def _state(state: tuple[str, Mapping[str, str]], product: str | None) -> tuple[bool, Decimal]:
    """Whether the account is active (in ``product``) and its ARR there."""
    status, lines = state
    if status != "active":
        return False, ZERO
    if product is not None:
        amount = lines.get(product)
        return (False, ZERO) if amount is None else (True, Decimal(amount))
    return True, sum((Decimal(amount) for amount in lines.values()), ZERO)


def _added(before: Mapping[str, str], after: Mapping[str, str], product: str | None) -> Decimal:
    """ARR added from ``before`` to ``after`` (in ``product``)."""
    return sum(
        (
            Decimal(amount) - Decimal(before.get(name, "0"))
            for name, amount in after.items()
            if product is None or name == product
        ),
        ZERO,
    )


def historical_value(row: Mapping[str, Any], until: int, known: int) -> Decimal:
    """What the account has paid up to ``until``, in its own currency: each ARR held for the
    time it was held (ARR x years), from its revenue history (the "historical" lifetime value)."""
    total = ZERO
    held: Decimal = ZERO
    since: int | None = None
    for effective, recorded, kind, after in row["revenue"]:
        if effective > until or recorded > known:
            break
        if since is not None:
            total += held * Decimal(effective - since) / MICROS_PER_YEAR
        held = ZERO if kind == "churned" else sum((Decimal(a) for a in after.values()), ZERO)
        since = effective
    if since is not None:
        total += held * Decimal(until - since) / MICROS_PER_YEAR
    return total
