"""The scorecard: every registered KPI for a period, with the previous period beside it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta

import attrs

from acctdomain.domain.values import require_date
from acctdomain.errors import InvalidValue
from acctdomain.plugins.types import Kpi, KpiContext, KpiValue, ReadModel

__all__ = ["FILTERS", "KpiResult", "compute_scorecard", "previous_period"]

FILTERS = ("manager", "segment", "manager_type", "industry", "currency")
"""The dimensions a scorecard can be filtered by (each an attribute of the account)."""


@attrs.frozen
class KpiResult:
    """One line of the scorecard. ``value``/``previous`` are None when the KPI failed (then
    ``error`` says why; the failure is also recorded against the plugin)."""

    name: str
    title: str
    unit: str
    value: KpiValue | None
    previous: KpiValue | None
    error: str = ""


def previous_period(start: date, end: date) -> tuple[date, date]:
    """The period of the same length that ends the day before ``start``."""
    length = end - start
    previous_end = start - timedelta(days=1)
    return previous_end - length, previous_end


def compute_scorecard(
    kpis: Mapping[str, Kpi],
    read_model: Callable[[str], ReadModel],
    start: date,
    end: date,
    *,
    filters: Mapping[str, str] | None = None,
    run: Callable[[Kpi, KpiContext], KpiValue | None] | None = None,
) -> list[KpiResult]:
    """Compute every KPI for [start, end] (whole days, effective time) and the period before.

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
    before = previous_period(start, end)
    lines = []
    for kpi in kpis.values():
        values = []
        for period in ((start, end), before):
            context = KpiContext(period[0], period[1], read_model, chosen)
            values.append(run(kpi, context) if run else kpi.compute(context))
        error = "" if None not in values else "the KPI failed; see the plugin failures"
        lines.append(KpiResult(kpi.name, kpi.title, kpi.unit, values[0], values[1], error))
    return lines
