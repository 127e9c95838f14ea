"""Helpers shared by the commands of ``acctdomain``: KPI figures for JSON and for a person,
and the calendar periods a scorecard is asked for."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from acctdomain.domain import Money
from acctdomain.plugins import KpiValue

__all__ = ["NaiveTime", "amount", "figure", "parse_moment", "quarter_before", "shown"]


class NaiveTime(ValueError):
    """A time given without its offset from UTC."""


def parse_moment(text: str) -> date | datetime:
    """A date (``2026-03-01``) or an ISO 8601 time with its offset; ValueError if it is
    neither (NaiveTime for a time without offset)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise NaiveTime(text)
    return moment


def amount(value: str | Decimal, currency: str = "") -> str:
    """An amount rounded to whole units, with thousands separators (and its currency)."""
    text = f"{Decimal(value):,.0f}"
    return f"{text} {currency}" if currency else text


def quarter_before(day: date) -> tuple[date, date]:
    """The calendar quarter before the one ``day`` is in: the last complete quarter."""
    end = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1) - timedelta(days=1)
    return date(end.year, end.month - 2, 1), end


def figure(value: KpiValue | None) -> str | int | None:
    """A KPI figure for JSON: an int, a decimal or money as a string, or None."""
    found = None if value is None else value.value
    if isinstance(found, Money):
        return f"{found.amount} {found.currency}"
    if isinstance(found, Decimal):
        return str(found)
    return found


def shown(value: str | int | None, unit: str) -> str:
    """A KPI figure for a person: ratios in percent, money and scores rounded."""
    if value is None:
        return "-"
    if unit == "money":
        number, currency = str(value).split()
        return amount(number, currency)
    if unit == "ratio":
        return f"{Decimal(str(value)) * 100:.1f} %"
    if unit == "score":
        return f"{Decimal(str(value)):.1f}"
    if unit in ("hours", "days"):
        return f"{Decimal(str(value)):.1f} {unit[0]}"
    return str(value)
