"""Built-in plugin ``builtin.kpis``: the KPI scorecard and the read model it is computed from.

It registers the ``kpi_facts`` projection (:mod:`acctdomain.builtin.kpi_facts`) and every
built-in KPI (:mod:`acctdomain.builtin.scorecard_kpis`), through the same hooks as any plugin.
``accounts_in_scope`` is for plugin KPIs that read the ``accounts`` read model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from acctdomain.application.scorecard import FILTERS
from acctdomain.builtin.kpi_facts import KpiFactsProjection
from acctdomain.builtin.scorecard_kpis import KPIS
from acctdomain.errors import InvalidValue
from acctdomain.plugins import Kpi, KpiContext, Projection, hookimpl

__all__ = ["accounts_in_scope", "acctdomain_register_kpis", "acctdomain_register_projections"]

# Filters that are attributes of an ``accounts`` row (``product`` is a product line).
_ROW_FILTERS = tuple(name for name in FILTERS if name != "product")


def accounts_in_scope(context: KpiContext) -> Iterator[dict[str, Any]]:
    """The rows of the ``accounts`` read model matching the context's filters (manager,
    segment, manager type, industry, currency: their current values; ``product``: accounts
    that have the product line now)."""
    unknown = set(context.filters) - set(FILTERS)
    if unknown:
        raise InvalidValue("filters", f"unknown filter(s) {sorted(unknown)}; use {FILTERS}")
    product = context.filters.get("product")
    filters = [(name, value) for name, value in context.filters.items() if name in _ROW_FILTERS]
    for _, row in context.read_model("accounts").scan("accounts"):
        if product is not None and product not in row["lines"]:
            continue
        if all(str(_plain(row[name])) == value for name, value in filters):
            yield row


def _plain(value: object) -> object:
    return getattr(value, "value", value)


@hookimpl
def acctdomain_register_projections(register: Callable[[Projection], None]) -> None:
    """Register ``kpi_facts``, the read model the built-in KPIs are computed from."""
    register(KpiFactsProjection())


@hookimpl(trylast=True)
def acctdomain_register_kpis(register: Callable[[Kpi], None]) -> None:
    """Register the built-in KPIs, in scorecard order."""
    for kpi in KPIS:
        register(kpi)
