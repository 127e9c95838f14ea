"""The scorecard: every registered KPI for a period, with the previous period beside it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs

from acctdomain.domain.values import moment_of, require_currency, require_date
from acctdomain.errors import InvalidValue
from acctdomain.plugins.types import Kpi, KpiContext, KpiValue, ReadModel

__all__ = [
    "FILTERS",
    "KpiResult",
    "check_conventions",
    "compute_scorecard",
    "known_moment",
    "previous_period",
    "select_kpis",
]

FILTERS = ("manager", "segment", "manager_type", "industry", "currency", "product")
"""The dimensions a scorecard can be filtered by: an attribute of the account (its manager and
manager type at the end of the period), or ``product``, a product line (then the revenue
figures are that line's)."""


@attrs.frozen
class KpiResult:
    """One line of the scorecard. ``value``/``previous`` are None when the KPI failed (then
    ``error`` says why; the failure is also recorded against the plugin). ``convention`` is
    the one used, for a KPI that has several."""

    name: str
    title: str
    unit: str
    value: KpiValue | None
    previous: KpiValue | None
    error: str = ""
    convention: str = ""


def _unknown_rate(base: str, quote: str, on: date) -> Decimal | None:
    return Decimal(1) if base == quote else None


def previous_period(start: date, end: date) -> tuple[date, date]:
    """The period before [start, end]: for whole calendar months (a month, a quarter, a year:
    from a 1st to a month's last day), the same number of months before; for any other
    range, the days of the same length that end the day before ``start``."""
    if start.day == 1 and (end + timedelta(days=1)).day == 1:
        months = (end.year - start.year) * 12 + end.month - start.month + 1
        first = start.year * 12 + start.month - 1 - months
        return date(first // 12, first % 12 + 1, 1), start - timedelta(days=1)
    length = end - start
    previous_end = start - timedelta(days=1)
    return previous_end - length, previous_end


def known_moment(known_at: date | datetime | None) -> datetime | None:
    """``known_at`` as a moment: a date means the end of that day (UTC)."""
    return None if known_at is None else moment_of("known_at", known_at, end=True)


def check_conventions(kpis: Mapping[str, Kpi], conventions: Mapping[str, str]) -> dict[str, str]:
    """``conventions`` if each names a KPI that has conventions and one of them."""
    if not isinstance(conventions, Mapping):
        raise InvalidValue("conventions", f"expected a mapping of KPI names, got {conventions!r}")
    for name, convention in conventions.items():
        kpi = kpis.get(name)
        if kpi is None or not kpi.conventions:
            choosable = sorted(k.name for k in kpis.values() if k.conventions)
            raise InvalidValue(
                "conventions", f"{name!r} is not a KPI with conventions; those are {choosable}"
            )
        if convention not in kpi.conventions:
            raise InvalidValue(
                "conventions",
                f"{name}: expected one of {list(kpi.conventions)}, got {convention!r}",
            )
    return dict(conventions)


def select_kpis(kpis: Mapping[str, Kpi], names: Iterable[str] | None) -> dict[str, Kpi]:
    """The KPIs of ``kpis`` named in ``names``, in the order of ``kpis`` (None: all of them);
    InvalidValue(kpis) naming a name that is not a registered KPI."""
    if names is None:
        return dict(kpis)
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise InvalidValue("kpis", f"expected a collection of KPI names, got {names!r}")
    chosen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or name not in kpis:
            raise InvalidValue(
                "kpis", f"{name!r} is not a registered KPI; those are {sorted(kpis)}"
            )
        chosen.add(name)
    return {name: kpi for name, kpi in kpis.items() if name in chosen}


def compute_scorecard(
    kpis: Mapping[str, Kpi],
    read_model: Callable[[str], ReadModel],
    start: date,
    end: date,
    *,
    filters: Mapping[str, str] | None = None,
    run: Callable[[Kpi, KpiContext], KpiValue | None] | None = None,
    known_at: date | datetime | None = None,
    conventions: Mapping[str, str] | None = None,
    reporting_currency: str | None = None,
    exchange_rate: Callable[[str, str, date], Decimal | None] | None = None,
    settings: Mapping[str, Any] | None = None,
    only: Iterable[str] | None = None,
) -> list[KpiResult]:
    """Compute every KPI (``only``: those named, see :func:`select_kpis`) for [start, end]
    (whole days, effective time) and the period before, as known at ``known_at`` (None:
    everything recorded), with the chosen ``conventions``.

    ``run`` computes one KPI (the plugin host passes one that records a failing KPI against its
    plugin and returns None); a KPI that fails leaves its line empty, never the scorecard.
    """
    require_date("start", start)
    require_date("end", end)
    if end < start:
        raise InvalidValue("end", f"{end.isoformat()} is before start {start.isoformat()}")
    chosen = dict(filters or {})
    unknown = set(chosen) - set(FILTERS)
    if unknown:
        raise InvalidValue("filters", f"unknown filter(s) {sorted(unknown)}; use {list(FILTERS)}")
    for name, value in chosen.items():
        if not isinstance(value, str) or not value:
            raise InvalidValue(name, "a filter value is non-empty text")
    known = known_moment(known_at)
    picked = check_conventions(kpis, conventions or {})
    computed = select_kpis(kpis, only)
    if reporting_currency is not None:
        require_currency("reporting_currency", reporting_currency)
    memo: dict[Any, Any] = {}  # shared by every KPI of this scorecard
    before = previous_period(start, end)
    lines = []
    for kpi in computed.values():
        values = []
        for period in ((start, end), before):
            context = KpiContext(
                period[0],
                period[1],
                read_model,
                chosen,
                known_at=known,
                conventions=picked,
                reporting_currency=reporting_currency,
                exchange_rate=exchange_rate or _unknown_rate,
                settings=dict(settings or {}),
                memo=memo,
            )
            values.append(run(kpi, context) if run else kpi.compute(context))
        error = "" if None not in values else "the KPI failed; see the plugin failures"
        convention = picked.get(kpi.name, kpi.conventions[0] if kpi.conventions else "")
        lines.append(
            KpiResult(kpi.name, kpi.title, kpi.unit, values[0], values[1], error, convention)
        )
    return lines
