"""Built-in plugin ``builtin.forecast``: the retention forecast on the KPI scorecard.

It registers the KPI ``projected_renewal_rate``: the share of the accounts active at the end of
the period (as known) expected to renew at their next renewal decision, by the
shifted-beta-geometric model fitted to the contract lifetimes of the accounts in scope
(:mod:`acctdomain.forecasting`). It reads the ``kpi_facts`` read model, never the events.
Without the ``forecast`` extra (SciPy) its value is None and the reason names the extra.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from acctdomain.builtin.scorecard_kpis import FACTS, scope
from acctdomain.domain.values import moment_of
from acctdomain.errors import InvalidValue
from acctdomain.forecasting import lifetimes_from_facts, missing_extra, observations
from acctdomain.plugins import Kpi, KpiContext, KpiValue, hookimpl

__all__ = ["PROJECTED_RENEWAL_RATE", "acctdomain_register_kpis", "projected_renewal_rate"]


def projected_renewal_rate(context: KpiContext) -> KpiValue:
    """The mean sBG probability of renewing next over the accounts active at the period's
    end; None with the reason when the extra is missing or the fit is not identified."""
    reason = missing_extra()
    if reason:
        return KpiValue(None, reason)
    from acctdomain.forecasting.sbg import fit_sbg

    lifetimes = lifetimes_from_facts(
        scope(context),
        as_of=moment_of("end", context.end, end=True),
        known_at=context.known_at,
    )
    try:
        fit = fit_sbg(observations(lifetimes))
    except InvalidValue as error:
        return KpiValue(None, error.reason)
    active = [lifetime for lifetime in lifetimes if not lifetime.churned]
    if not active:
        return KpiValue(None, "no account is active at the end of the period")
    expected = sum(fit.renewal_probability(lifetime.renewals) for lifetime in active)
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
