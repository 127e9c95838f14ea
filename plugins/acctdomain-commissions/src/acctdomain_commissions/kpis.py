"""The scorecard figure ``commission_payout``: what the statements of the period pay in all."""

from __future__ import annotations

from acctdomain.domain.values import Money
from acctdomain.plugins import Kpi, KpiContext, KpiValue
from acctdomain_commissions.ledger import LEDGER
from acctdomain_commissions.money import by_currency, round_money
from acctdomain_commissions.plan import load_plan
from acctdomain_commissions.statements import compute_statements

__all__ = ["PAYOUT", "commission_payout"]


def commission_payout(context: KpiContext) -> KpiValue:
    """Commission plus bonuses of every manager's statement (only the ``manager`` filter's,
    when given) under the configured plan. Amounts in several currencies are converted at
    the plan's rates; without a rate for one of them the payout is undefined."""
    other = sorted(set(context.filters) - {"manager"})
    if other:
        return KpiValue(
            None,
            f"commission is paid per manager on their whole book: the filter(s) {other} do "
            "not apply (use manager)",
        )
    plan = load_plan()
    manager = context.filters.get("manager")
    managers = None if manager is None else (manager,)
    found = compute_statements(
        context.read_model(LEDGER), context.start, context.end, plan, managers
    )
    if not found:
        who = "no account manager" if manager is None else f"{manager!r}"
        return KpiValue(None, f"{who} managed no account in the period")
    totals = by_currency(money for statement in found for money in statement.total.values())
    paid = {currency: money for currency, money in totals.items() if not money.is_zero}
    detail: dict[str, object] = {"statements": len(found), "by_currency": totals}
    if not paid:
        return KpiValue(Money.zero(next(iter(totals), plan.currency)), detail=detail)
    payout = plan.conversion.combine(paid, "the payout")
    if isinstance(payout, str):
        return KpiValue(None, f"{payout}: not summed across currencies", detail=detail)
    if len(paid) > 1:
        detail["converted_at"] = dict(plan.rates)
    return KpiValue(round_money(payout.amount, payout.currency), detail=detail)


PAYOUT = Kpi(
    name="commission_payout",
    title="Commission payout",
    unit="money",
    compute=commission_payout,
    projections=(LEDGER,),
    description=(
        "Commission (rate x revenue base) plus target bonuses of the managers' statements "
        "for the period, under the plan of ACCTDOMAIN_COMMISSIONS_PLAN (default plan "
        "otherwise). Honours the manager filter."
    ),
)
