"""Built-in plugin ``builtin.kpis``: account counts and ARR, from the ``accounts`` read model.

Each figure is read from the per-account revenue history of the read model (never by replaying
events), as of the end of the period, in business (effective) time. Money is never summed
across currencies: a mixed book gives ``None`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from acctdomain.application.scorecard import FILTERS
from acctdomain.domain.values import Money
from acctdomain.errors import InvalidValue
from acctdomain.plugins import Kpi, KpiContext, KpiValue, hookimpl

__all__ = ["accounts_in_scope", "acctdomain_register_kpis", "status_at"]


def _end_of(day: date) -> datetime:
    """The last instant of ``day`` (UTC): a period includes its whole end date."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC) - timedelta(microseconds=1)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def accounts_in_scope(context: KpiContext) -> Iterator[dict[str, Any]]:
    """The ``accounts`` rows matching the context's filters (manager, segment, ...)."""
    unknown = set(context.filters) - set(FILTERS)
    if unknown:
        raise InvalidValue("filters", f"unknown filter(s) {sorted(unknown)}; use {FILTERS}")
    for _, row in context.read_model("accounts").scan("accounts"):
        if all(str(_plain(row[name])) == value for name, value in context.filters.items()):
            yield row


def _plain(value: object) -> object:
    return getattr(value, "value", value)


def status_at(row: dict[str, Any], moment: datetime) -> tuple[str, Money]:
    """The account's status and ARR at ``moment``, from its revenue history."""
    status, arr = ("onboarding", Money.zero(row["currency"]))
    if row["opened_at"] > moment:
        return "not_opened", arr
    for at, _, status_after, arr_after in row["revenue"]:
        if at > moment:
            break
        status, arr = status_after, arr_after
    return status, arr


def _events_in(context: KpiContext, kinds: set[str]) -> int:
    start, end = _start_of(context.start), _end_of(context.end)
    return sum(
        1
        for row in accounts_in_scope(context)
        for at, kind, _, _ in row["revenue"]
        if kind in kinds and start <= at <= end
    )


def active_accounts(context: KpiContext) -> KpiValue:
    end = _end_of(context.end)
    count = sum(1 for row in accounts_in_scope(context) if status_at(row, end)[0] == "active")
    return KpiValue(count)


def total_arr(context: KpiContext) -> KpiValue:
    end = _end_of(context.end)
    totals: dict[str, Money] = {}
    for row in accounts_in_scope(context):
        status, arr = status_at(row, end)
        if status == "active":
            totals[arr.currency] = totals.get(arr.currency, Money.zero(arr.currency)) + arr
    if not totals:
        return KpiValue(None, "no active account at the end of the period")
    if len(totals) > 1:
        return KpiValue(
            None,
            "the book is in several currencies: ARR is not summed across them",
            detail={"by_currency": totals},
        )
    (arr,) = totals.values()
    return KpiValue(arr)


def _counter(kinds: set[str]) -> Callable[[KpiContext], KpiValue]:
    def count(context: KpiContext) -> KpiValue:
        return KpiValue(_events_in(context, kinds))

    return count


# Counts of revenue events of one kind in the period: (name, title, kind, description).
_COUNTERS = (
    ("new_accounts", "New accounts", "started", "First contracts started in the period."),
    ("churned_accounts", "Churned accounts", "churned", "Churns effective in the period."),
    (
        "reactivated_accounts",
        "Reactivated accounts",
        "reactivated",
        "Churned accounts won back in the period.",
    ),
)


@hookimpl(trylast=True)
def acctdomain_register_kpis(register: Callable[[Kpi], None]) -> None:
    """Register the built-in account counts and ARR."""
    register(
        Kpi(
            name="active_accounts",
            title="Active accounts",
            unit="count",
            compute=active_accounts,
            projections=("accounts",),
            description="Accounts under contract at the end of the period.",
        )
    )
    register(
        Kpi(
            name="arr",
            title="Annual recurring revenue",
            unit="money",
            compute=total_arr,
            projections=("accounts",),
            description="Sum of the ARR of active accounts at the end of the period.",
        )
    )
    for name, title, kind, description in _COUNTERS:
        register(
            Kpi(
                name=name,
                title=title,
                unit="count",
                compute=_counter({kind}),
                projections=("accounts",),
                description=description,
            )
        )
