"""Rounding money to a currency's minor unit, and sums kept apart by currency."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

import attrs

from acctdomain.domain.values import Money

__all__ = [
    "RATIO_PLACES",
    "Conversion",
    "by_currency",
    "minor_units",
    "plain",
    "ratio",
    "round_money",
]

# ISO 4217 currencies whose minor unit is not the cent (the others have two decimals).
_ZERO_DECIMALS = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split()
)
_THREE_DECIMALS = frozenset("BHD IQD JOD KWD LYD OMR TND".split())

RATIO_PLACES = Decimal("0.0001")
"""Ratios (renewal rate, NRR) are rounded to four places (0.01 %) before they are compared
with a target's threshold, so the figure a statement shows is the figure judged."""


def minor_units(currency: str) -> int:
    """The number of decimals of ``currency`` (ISO 4217)."""
    if currency in _ZERO_DECIMALS:
        return 0
    return 3 if currency in _THREE_DECIMALS else 2


def round_money(amount: Decimal, currency: str) -> Money:
    """``amount`` rounded half up to the minor unit of ``currency``."""
    exponent = Decimal(1).scaleb(-minor_units(currency))
    return Money(amount.quantize(exponent, rounding=ROUND_HALF_UP), currency)


def ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    """``numerator / denominator`` rounded half even to four places (the denominator is
    never zero here: callers report a zero denominator as undefined)."""
    return (numerator / denominator).quantize(RATIO_PLACES, rounding=ROUND_HALF_EVEN)


def by_currency(amounts: Iterable[Money]) -> dict[str, Money]:
    """Sums per currency, in currency order: amounts in different currencies never meet."""
    totals: dict[str, Money] = {}
    for amount in amounts:
        totals[amount.currency] = totals.get(amount.currency, Money.zero(amount.currency)) + amount
    return dict(sorted(totals.items()))


def plain(amounts: Mapping[str, Money]) -> dict[str, str]:
    """Amounts by currency as JSON-ready text."""
    return {currency: str(money.amount) for currency, money in amounts.items()}


@attrs.frozen
class Conversion:
    """The plan's explicit conversion: one unit of a currency in ``rates`` is worth that many
    units of ``currency``. Used only where figures in several currencies must meet in one
    ratio or one total; without a rate for a currency, they do not meet at all."""

    currency: str
    rates: Mapping[str, Decimal] = attrs.field(factory=dict)

    def rate(self, currency: str) -> Decimal | None:
        """The plan's rate of ``currency`` (1 for the plan's own), or None."""
        return Decimal(1) if currency == self.currency else self.rates.get(currency)

    def combine(self, amounts: Mapping[str, Money], what: str) -> Money | str:
        """``amounts`` as one Money: the amount itself when there is one currency, else the
        sum converted to the plan's currency at the plan's rates; or why that cannot be."""
        if len(amounts) == 1:
            return next(iter(amounts.values()))
        missing = [currency for currency in amounts if self.rate(currency) is None]
        if missing:
            return (
                f"{what} is in several currencies ({', '.join(amounts)}) and the plan has no "
                f"rate for {', '.join(missing)}"
            )
        total = Decimal(0)
        for currency, money in amounts.items():
            total += money.amount * (self.rate(currency) or Decimal(0))
        return Money(total, self.currency)
