"""A manager's renewal rate and net revenue retention for a period, from their opportunities
and their cohort. A zero denominator gives no figure (None) with the reason, never 0."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from acctdomain.domain.values import Money
from acctdomain_commissions.money import Conversion, by_currency, plain, ratio
from acctdomain_commissions.timeline import Opportunity

__all__ = [
    "CohortMember",
    "Ratio",
    "RenewalFigures",
    "RetentionFigures",
    "renewal_figures",
    "retention_figures",
]


@attrs.frozen
class Ratio:
    """A ratio rounded to four places, or None with the reason it is undefined."""

    value: Decimal | None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the value as text (or null) and the reason."""
        return {"value": None if self.value is None else str(self.value), "reason": self.reason}


@attrs.frozen
class RenewalFigures:
    """Renewal opportunities due in the period: how many, how much ARR, what became of them.

    ``value_renewed`` counts a renewal up to the ARR that was at stake (expansion at renewal
    belongs to NRR, not to the renewal rate).
    """

    due: int
    renewed: int
    churned: int
    open: int
    value_due: Mapping[str, Money]
    value_renewed: Mapping[str, Money]
    by_count: Ratio
    by_value: Ratio

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "due": self.due,
            "renewed": self.renewed,
            "churned": self.churned,
            "open": self.open,
            "value_due": plain(self.value_due),
            "value_renewed": plain(self.value_renewed),
            "by_count": self.by_count.as_dict(),
            "by_value": self.by_value.as_dict(),
        }


NO_RENEWAL = "no renewal was due in the period"


def renewal_figures(opportunities: Sequence[Opportunity], conversion: Conversion) -> RenewalFigures:
    """Renewal rate by count (renewed / due) and by value (renewed ARR, capped at the ARR at
    stake, / ARR at stake; several currencies only at the plan's rates) of the opportunities
    due in the period. An opportunity still open counts as due and not renewed."""
    renewed = [o for o in opportunities if o.outcome == "renewed"]
    value_due = by_currency(o.arr_at_stake for o in opportunities)
    value_renewed = by_currency(
        min(o.renewed_arr, o.arr_at_stake) if o.renewed_arr is not None else o.arr_at_stake
        for o in renewed
    )
    for currency in value_due:
        value_renewed.setdefault(currency, Money.zero(currency))
    value_renewed = dict(sorted(value_renewed.items()))
    if not opportunities:
        by_count = by_value = Ratio(None, NO_RENEWAL)
    else:
        by_count = Ratio(ratio(Decimal(len(renewed)), Decimal(len(opportunities))))
        due = conversion.combine(value_due, "the ARR due")
        renewed_value = conversion.combine(value_renewed, "the ARR due")
        if isinstance(due, str) or isinstance(renewed_value, str):
            by_value = Ratio(None, due if isinstance(due, str) else str(renewed_value))
        elif due.is_zero:
            by_value = Ratio(None, "the renewals due had no ARR at stake")
        else:
            by_value = Ratio(ratio(renewed_value.amount, due.amount))
    return RenewalFigures(
        due=len(opportunities),
        renewed=len(renewed),
        churned=sum(1 for o in opportunities if o.outcome == "churned"),
        open=sum(1 for o in opportunities if o.outcome == "open"),
        value_due=value_due,
        value_renewed=value_renewed,
        by_count=by_count,
        by_value=by_value,
    )


@attrs.frozen
class CohortMember:
    """An account of the manager's book at the start of the period: its ARR then, and that
    ARR plus the changes effective in the period while the manager was in charge of it."""

    account: str
    starting: Money
    ending: Money


@attrs.frozen
class RetentionFigures:
    """Net revenue retention of the manager's book at the start of the period."""

    cohort: int
    starting_arr: Mapping[str, Money]
    ending_arr: Mapping[str, Money]
    nrr: Ratio

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "cohort": self.cohort,
            "starting_arr": plain(self.starting_arr),
            "ending_arr": plain(self.ending_arr),
            "nrr": self.nrr.as_dict(),
        }


def retention_figures(cohort: Sequence[CohortMember], conversion: Conversion) -> RetentionFigures:
    """NRR = ending ARR / starting ARR of the cohort (several currencies only at the plan's
    rates; else undefined)."""
    starting = by_currency(member.starting for member in cohort)
    ending = by_currency(member.ending for member in cohort)
    if not cohort:
        nrr = Ratio(None, "no active account under this manager at the start of the period")
    else:
        start = conversion.combine(starting, "the cohort's ARR")
        end = conversion.combine(ending, "the cohort's ARR")
        if isinstance(start, str) or isinstance(end, str):
            nrr = Ratio(None, start if isinstance(start, str) else str(end))
        else:
            nrr = Ratio(ratio(end.amount, start.amount))
    return RetentionFigures(len(cohort), starting, ending, nrr)
