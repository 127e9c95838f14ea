"""``acctdomain forecast``: the cohort retention forecast (sBG beside constant churn, residual
lifetime value) and the churn risk of each active account, with the risk model's held-out
AUC and calibration, from the store named by ``--db``.

Errors and exit codes are those of ``acctdomain kpis``. Without the ``forecast`` extra the
command ends with one line naming it and exit code 2. docs/cli.md documents the JSON.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from acctdomain.cli_common import parse_moment
from acctdomain.cli_projections import AsJson, Db, _echo_json, _fail, _Plugins, _session, _stdout
from acctdomain.domain.values import moment_of
from acctdomain.errors import AcctDomainError, InvalidValue
from acctdomain.forecasting import missing_extra
from acctdomain.forecasting.cohorts import COHORT_PERIODS
from acctdomain.plugins import PluginHost

__all__ = ["COMMAND", "add_forecast", "forecast"]

COMMAND = "forecast"


def add_forecast(root: typer.Typer, host: PluginHost | None = None) -> None:
    """Register ``forecast`` on ``root`` (plugins of ``host``; default: made when it runs)."""
    root.command(COMMAND, context_settings={"obj": _Plugins(host)})(forecast)


def _moment(option: str, text: str | None) -> date | datetime | None:
    if text is None:
        return None
    try:
        return parse_moment(text)
    except ValueError:
        _fail(
            f"{option}: expected a date (YYYY-MM-DD) or a time with its offset "
            f"(2026-03-31T18:00:00+00:00), got {text!r}"
        )


def _risk(service: Any, as_of: datetime, horizon_days: int, top: int) -> dict[str, Any]:
    from acctdomain.forecasting.risk import book_histories, evaluate_risk, score_accounts

    histories = book_histories(service)
    report: dict[str, Any] = {
        "horizon_days": horizon_days,
        "evaluation": None,
        "evaluation_reason": "",
        "accounts": [],
        "accounts_reason": "",
    }
    try:
        report["evaluation"] = evaluate_risk(
            histories, cutoff=as_of - timedelta(days=horizon_days), horizon_days=horizon_days
        ).as_dict()
    except InvalidValue as error:
        report["evaluation_reason"] = error.reason
    try:
        scored = score_accounts(histories, at=as_of, horizon_days=horizon_days)
    except InvalidValue as error:
        report["accounts_reason"] = error.reason
        return report
    for risk in scored[:top]:
        report["accounts"].append(
            {
                "account_id": str(risk.account_id),
                "name": service.get_account(risk.account_id).name,
                "probability": risk.probability,
                "reasons": [
                    {"feature": r.feature, "value": r.value, "contribution": r.contribution}
                    for r in risk.reasons
                ],
            }
        )
    return report


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _print(report: dict[str, Any]) -> None:
    console = _stdout()
    retention = report["retention"]
    sbg = retention["sbg"]
    naive = retention["naive"]
    console.print(
        f"Retention forecast of {report['db']} as of {report['as_of']}: "
        f"{retention['lifetimes']} lifetimes, {retention['churns']} churns in "
        f"{retention['decisions']} renewal decisions"
    )
    if sbg is None:
        console.print(f"sBG: not fitted ({retention['sbg_reason']})")
    else:
        fit = retention["fit"]
        console.print(
            f"sBG alpha {sbg['alpha']:.3f} beta {sbg['beta']:.3f}; log-likelihood "
            f"{fit['sbg_log_likelihood']:.1f} vs constant churn {fit['naive_log_likelihood']:.1f} "
            f"(churn {naive['churn'] * 100:.1f} %)"
        )
    curve = Table(title="Survival after each renewal decision", title_justify="left")
    for column in ("period", "observed", "sBG", "constant churn"):
        curve.add_column(column, justify="right")
    for point in retention["curve"]:
        curve.add_row(
            str(point["period"]),
            _pct(point["observed_survival"]),
            _pct(point["sbg_survival"]),
            _pct(point["naive_survival"]),
        )
    console.print(curve)
    cohorts = Table(
        title=f"Residual lifetime value per cohort (discount {report['discount_rate']} per period)",
        title_justify="left",
    )
    for column in ("cohort", "lifetimes", "active", "sBG", "constant churn"):
        cohorts.add_column(column, justify="left" if column == "cohort" else "right")
    for cohort in retention["cohorts"]:
        sbg_value = cohort["residual_value"]
        cohorts.add_row(
            cohort["cohort"],
            str(cohort["lifetimes"]),
            str(cohort["active"]),
            "-" if sbg_value is None else _money(sbg_value),
            _money(cohort["naive_residual_value"]),
        )
    console.print(cohorts)
    risk = report["risk"]
    evaluation = risk["evaluation"]
    if evaluation is None:
        console.print(f"Risk model: not evaluated ({risk['evaluation_reason']})")
    else:
        auc = evaluation["auc"]
        console.print(
            f"Risk model on the held-out {risk['horizon_days']} days after "
            f"{evaluation['cutoff'][:10]}: AUC "
            f"{'-' if auc is None else f'{auc:.3f}'} (base rate 0.5), Brier "
            f"{evaluation['brier']:.4f} (base rate {evaluation['base_rate_brier']:.4f})"
        )
    table = Table(title=f"Churn risk in the next {risk['horizon_days']} days", title_justify="left")
    for column in ("account", "risk", "top reasons"):
        table.add_column(column, justify="right" if column == "risk" else "left")
    for account in risk["accounts"]:
        table.add_row(
            account["name"],
            _pct(account["probability"]),
            ", ".join(reason["feature"] for reason in account["reasons"]),
        )
    if risk["accounts_reason"]:
        table.caption = risk["accounts_reason"]
    console.print(table)


def _money(values: dict[str, str]) -> str:
    return ", ".join(f"{float(v):,.0f} {c}" for c, v in values.items()) or "-"


def forecast(
    ctx: typer.Context,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="DATE",
            help="Forecast from this moment (a date: its end); default: now.",
            show_default=False,
        ),
    ] = None,
    known_at: Annotated[
        str | None,
        typer.Option(
            "--known-at",
            metavar="DATE",
            help="Lifetimes as known then: only revenue events recorded by then count.",
            show_default=False,
        ),
    ] = None,
    cohort_by: Annotated[
        str, typer.Option("--cohort-by", help="Cohorts by start year, quarter or month.")
    ] = "year",
    discount_rate: Annotated[
        float, typer.Option("--discount-rate", help="Discount rate per renewal period.")
    ] = 0.1,
    horizon: Annotated[int, typer.Option("--horizon", help="Renewal decisions to project.")] = 10,
    risk_days: Annotated[
        int, typer.Option("--risk-days", help="Churn-risk horizon in days.")
    ] = 180,
    top: Annotated[int, typer.Option("--top", help="Riskiest accounts to list.")] = 10,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Retention forecast per cohort (sBG and constant churn, residual lifetime value) and
    the churn risk of the active accounts, with the risk model's held-out AUC."""
    reason = missing_extra()
    if reason:
        _fail(reason)
    if cohort_by not in COHORT_PERIODS:
        _fail(f"--cohort-by: expected one of {', '.join(COHORT_PERIODS)}, got {cohort_by!r}")
    if not 0 < discount_rate < 10:
        _fail(f"--discount-rate: expected a rate in (0, 10), got {discount_rate!r}")
    if not 1 <= horizon <= 100:
        _fail(f"--horizon: expected 1-100 renewal decisions, got {horizon!r}")
    if risk_days < 1:
        _fail(f"--risk-days: expected a whole number of days >= 1, got {risk_days!r}")
    if top < 0:
        _fail(f"--top: expected a number >= 0, got {top!r}")
    given = _moment("--as-of", as_of)
    known = _moment("--known-at", known_at)
    end = datetime.now(UTC) if given is None else moment_of("as_of", given, end=True)
    from acctdomain.forecasting.retention import book_lifetimes, forecast_retention

    with _session(ctx, db) as (service, where):
        lifetimes = book_lifetimes(service, as_of=end, known_at=known, cohort_by=cohort_by)
        try:
            retention = forecast_retention(
                lifetimes, as_of=end, discount_rate=discount_rate, horizon=horizon
            ).as_dict()
        except InvalidValue as error:
            _fail(f"cannot forecast retention: {error.reason}")
        try:
            risk = _risk(service, end, risk_days, top)
        except AcctDomainError as error:  # pragma: no cover - InvalidValue is caught inside
            _fail(str(error))
    report = {
        "db": where,
        "as_of": end.isoformat(),
        "known_at": None if known is None else known.isoformat(),
        "cohort_by": cohort_by,
        "discount_rate": discount_rate,
        "horizon": horizon,
        "retention": retention,
        "risk": risk,
    }
    if as_json:
        _echo_json(report)
    else:
        _print(report)
