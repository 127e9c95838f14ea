"""The small formulas of the KPIs, each alone: survey scores, rates, averages, conversions.

Each takes plain numbers and returns a number, or raises :class:`Undefined` with the reason
when the figure does not exist (a zero denominator, nothing to average): the scorecard shows
``None`` and that reason, never a misleading zero. ``docs/kpis.md`` gives each formula with its
source.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from statistics import median as _median

from acctdomain.errors import InvalidValue

__all__ = [
    "Undefined",
    "ces_mean",
    "ces_share_easy",
    "convert_churn_rate",
    "csat",
    "mean",
    "median",
    "nps",
    "ratio",
]


class Undefined(Exception):
    """A figure that does not exist, with the reason (shown in place of the value)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def ratio(numerator: Decimal | int, denominator: Decimal | int, what: str) -> Decimal:
    """``numerator / denominator``; Undefined when the denominator is zero (``what`` names
    it in the reason)."""
    if not denominator:
        raise Undefined(f"{what} is zero")
    return Decimal(numerator) / Decimal(denominator)


def nps(scores: Sequence[int]) -> Decimal:
    """Net Promoter Score (Reichheld, 2003): the percentage of promoters (9-10) minus the
    percentage of detractors (0-6), from -100 to 100."""
    if not scores:
        raise Undefined("no NPS answer in the period")
    promoters = sum(1 for score in scores if score >= 9)
    detractors = sum(1 for score in scores if score <= 6)
    return Decimal(100 * (promoters - detractors)) / Decimal(len(scores))


def csat(scores: Sequence[int]) -> Decimal:
    """Customer satisfaction (the "top-two-box" convention): the share of answers 4 or 5 on
    the 1-5 scale, from 0 to 1."""
    if not scores:
        raise Undefined("no CSAT answer in the period")
    return Decimal(sum(1 for score in scores if score >= 4)) / Decimal(len(scores))


def ces_mean(scores: Sequence[int]) -> Decimal:
    """Customer effort score, the mean answer on the 1-7 agreement scale of CES 2.0 (CEB,
    2013: "the company made it easy to handle my issue", 7 = strongly agree; the original of
    Dixon, Freeman and Toman, 2010, asked about effort on 1-5)."""
    if not scores:
        raise Undefined("no CES answer in the period")
    return mean(scores, "CES answers")


def ces_share_easy(scores: Sequence[int]) -> Decimal:
    """Customer effort score as the share of answers 5 to 7 on the 1-7 scale (those who
    agreed, at least somewhat, that it was easy), from 0 to 1."""
    if not scores:
        raise Undefined("no CES answer in the period")
    return Decimal(sum(1 for score in scores if score >= 5)) / Decimal(len(scores))


def mean(values: Sequence[int | float | Decimal], what: str) -> Decimal:
    """The arithmetic mean; Undefined for no values."""
    if not values:
        raise Undefined(f"no {what} in the period")
    return sum((Decimal(str(v)) for v in values), Decimal(0)) / Decimal(len(values))


def median(values: Sequence[int | float | Decimal], what: str) -> Decimal:
    """The median (the mean of the two middle values for an even count)."""
    if not values:
        raise Undefined(f"no {what} in the period")
    return Decimal(str(_median(Decimal(str(v)) for v in values)))


def convert_churn_rate(rate: Decimal, from_days: int, to_days: int) -> Decimal:
    """A churn rate measured over ``from_days`` as the rate over ``to_days``, assuming a
    constant hazard: ``1 - (1 - rate) ** (to_days / from_days)`` (2% over 30 days is about
    21.8% over 365, not 24%). Rates are fractions (0.02)."""
    if not isinstance(rate, Decimal) or not Decimal(0) <= rate <= Decimal(1):
        raise InvalidValue("rate", f"expected a Decimal from 0 to 1, got {rate!r}")
    for name, days in (("from_days", from_days), ("to_days", to_days)):
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise InvalidValue(name, f"expected a number of days >= 1, got {days!r}")
    if rate == 1:
        return Decimal(1)
    kept = float(1 - rate) ** (to_days / from_days)
    return Decimal(1) - Decimal(str(kept))
