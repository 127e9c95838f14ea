"""Built-in plugin ``builtin.forecast``: the retention forecast on the KPI scorecard.

It registers the KPI ``projected_renewal_rate``: the share of the accounts active at the end of
the period (as known) expected to renew at their next renewal decision, by the
shifted-beta-geometric model fitted to the contract lifetimes of the accounts in scope
(:mod:`acctdomain.forecasting`). It reads the ``kpi_facts`` read model, never the events.
Without the ``forecast`` extra (SciPy) its value is None and the reason names the extra.

What it costs a scorecard: each account's contract decisions as known are sorted once per
scorecard (in ``context.memo``) and serve both periods; a period's lifetimes are only counted
(:func:`~acctdomain.forecasting.cohorts.renewal_counts`), not built; SciPy is imported when
the KPI is first computed in the process (not ``scipy.stats`` nor scikit-learn), and the same
counts give the same fit without fitting again (:func:`~acctdomain.forecasting.sbg.fit_sbg`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

from acctdomain.builtin.kpi_facts import micros
from acctdomain.builtin.scorecard_kpis import FACTS, scope
from acctdomain.domain.values import moment_of
from acctdomain.errors import InvalidValue
from acctdomain.forecasting import SBG_NEEDS, known_decisions, missing_extra, renewal_counts
from acctdomain.plugins import Kpi, KpiContext, KpiValue, hookimpl

__all__ = ["PROJECTED_RENEWAL_RATE", "acctdomain_register_kpis", "projected_renewal_rate"]


def _decisions_in_scope(context: KpiContext) -> Iterator[list[tuple[int, str]]]:
    """The contract decisions as known of each account in scope at the period's end, in
    effective order; sorted once per account and scorecard (both periods share them)."""
    key = ("forecast.known_decisions", context.known_at)
    by_account: dict[str, list[tuple[int, str]]] = context.memo.setdefault(key, {})
    known = None if context.known_at is None else micros(context.known_at)
    for hex_id, row in scope(context):
        decisions = by_account.get(hex_id)
        if decisions is None:
            decisions = by_account[hex_id] = known_decisions(row, known)
        yield decisions


def projected_renewal_rate(context: KpiContext) -> KpiValue:
    """The mean sBG probability of renewing next over the accounts active at the period's
    end; None with the reason when the extra is missing or the fit is not identified."""
    reason = missing_extra(SBG_NEEDS)
    if reason:
        return KpiValue(None, reason)
    from acctdomain.forecasting.sbg import fit_sbg

    data, active = renewal_counts(
        _decisions_in_scope(context), as_of=moment_of("end", context.end, end=True)
    )
    try:
        fit = fit_sbg(data)
    except InvalidValue as error:
        return KpiValue(None, error.reason)
    if not active:
        return KpiValue(None, "no account is active at the end of the period")
    probability = {renewals: fit.renewal_probability(renewals) for renewals in set(active)}
    expected = sum(probability[renewals] for renewals in active)  # in the lifetimes' order
    return KpiValue(
        (Decimal(repr(expected)) / len(active)).quantize(Decimal("0.0001")),
        detail={
            "alpha": round(fit.alpha, 4),
            "beta": round(fit.beta, 4),
            "lifetimes": fit.lifetimes,
            "churns": fit.churns,
            "active_accounts": len(active),
        },
    )


PROJECTED_RENEWAL_RATE = Kpi(
    name="projected_renewal_rate",
    title="Projected renewal rate (sBG)",
    unit="ratio",
    compute=projected_renewal_rate,
    projections=(FACTS,),
    description=(
        "Share of the accounts active at the period's end expected to renew at their next "
        "renewal decision, by the shifted-beta-geometric model (docs/forecasting.md)."
    ),
)


@hookimpl(trylast=True)
def acctdomain_register_kpis(register: Callable[[Kpi], None]) -> None:
    """Register ``projected_renewal_rate``."""
    register(PROJECTED_RENEWAL_RATE)
