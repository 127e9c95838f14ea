"""The cohort retention forecast of a book: lifetimes, survival tables, the sBG fit beside the
constant-churn model, projected curves and residual lifetime value per cohort and account.

Needs the ``forecast`` extra (SciPy). Method, assumptions and limits: ``docs/forecasting.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs

from acctdomain.domain.values import moment_of
from acctdomain.errors import InvalidValue
from acctdomain.forecasting.cohorts import (
    Lifetime,
    SurvivalRow,
    lifetimes_from_facts,
    observations,
    survival_table,
)
from acctdomain.forecasting.sbg import (
    GoodnessOfFit,
    NaiveFit,
    SbgFit,
    fit_naive,
    fit_sbg,
    goodness_of_fit,
)

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = [
    "AccountValue",
    "CohortValue",
    "CurvePoint",
    "RetentionForecast",
    "book_lifetimes",
    "forecast_retention",
]

_CENT = Decimal("0.01")


@attrs.frozen(kw_only=True)
class CurvePoint:
    """Decision ``period`` of the projection: survival after it and retention at it, by sBG
    (None when it could not be fitted) and by the constant-churn model, and the observed
    (Kaplan-Meier, all cohorts pooled) survival while there is data."""

    period: int
    sbg_survival: float | None
    sbg_retention: float | None
    naive_survival: float
    naive_retention: float | None
    observed_survival: float | None


@attrs.frozen(kw_only=True)
class AccountValue:
    """An active account's expected future: the probability it renews next, its discounted
    expected residual lifetime (DERL, in periods) and residual lifetime value (ARR x DERL,
    in its currency), by sBG (None when not fitted) and by the constant-churn model."""

    account_id: UUID
    cohort: str
    renewals: int
    arr: Decimal
    currency: str
    renewal_probability: float | None
    derl: float | None
    residual_value: Decimal | None
    naive_derl: float
    naive_residual_value: Decimal


@attrs.frozen(kw_only=True)
class CohortValue:
    """A cohort's active accounts and their residual lifetime value, per currency (amounts in
    different currencies are never added)."""

    cohort: str
    lifetimes: int
    active: int
    residual_value: dict[str, Decimal] | None
    naive_residual_value: dict[str, Decimal]


@attrs.frozen(kw_only=True)
class RetentionForecast:
    """Everything :func:`forecast_retention` computed; ``sbg`` None with ``sbg_reason`` when
    the data cannot identify the model (the constant-churn figures are still there)."""

    as_of: datetime
    discount_rate: float
    lifetimes: int
    churns: int
    decisions: int
    sbg: SbgFit | None
    sbg_reason: str
    naive: NaiveFit
    fit: GoodnessOfFit | None
    survival: tuple[SurvivalRow, ...]
    curve: tuple[CurvePoint, ...]
    cohorts: tuple[CohortValue, ...]
    accounts: tuple[AccountValue, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: decimals as strings, dates and ids as text."""
        found: dict[str, Any] = _plain(attrs.asdict(self, recurse=True))
        return found


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    return value


def book_lifetimes(
    service: AccountService,
    *,
    as_of: date | datetime | None = None,
    known_at: date | datetime | None = None,
    cohort_by: str = "year",
) -> list[Lifetime]:
    """The lifetimes of every account of ``service``'s ``kpi_facts`` read model (brought up
    to date first), effective by ``as_of`` (a date: its end; default now) and recorded by
    ``known_at`` (default: everything)."""
    from acctdomain.builtin.scorecard_kpis import FACTS, account_histories

    service.catch_up()
    end = datetime.now(UTC) if as_of is None else moment_of("as_of", as_of, end=True)
    known = None if known_at is None else moment_of("known_at", known_at, end=True)
    return lifetimes_from_facts(
        account_histories(service.read_model(FACTS)), as_of=end, known_at=known, cohort_by=cohort_by
    )


def _money(value: float, arr: Decimal) -> Decimal:
    return (arr * Decimal(repr(value))).quantize(_CENT)


def forecast_retention(
    lifetimes: Sequence[Lifetime] | Iterable[Lifetime],
    *,
    as_of: datetime,
    discount_rate: float = 0.1,
    horizon: int = 10,
) -> RetentionForecast:
    """Fit sBG and the constant-churn model to ``lifetimes`` and project ``horizon``
    decisions; value every active lifetime at ``discount_rate`` per period.

    InvalidValue when there is nothing to fit at all (no lifetime, or no renewal decision
    yet); when only sBG cannot be fitted (no churn, one period) its figures are None and
    ``sbg_reason`` says why."""
    if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= 100:
        raise InvalidValue("horizon", f"expected a whole number of periods 1-100, got {horizon!r}")
    found = list(lifetimes)
    data = observations(found)
    naive = fit_naive(data)
    naive.derl(0, discount_rate)  # InvalidValue for a bad rate, before any work
    sbg: SbgFit | None = None
    reason = ""
    try:
        sbg = fit_sbg(data)
    except InvalidValue as error:
        reason = error.reason
    table = survival_table(found)
    pooled = survival_table(attrs.evolve(item, cohort="all") for item in found)
    observed = {row.period: row.survival for row in pooled}
    curve = tuple(
        CurvePoint(
            period=t,
            sbg_survival=None if sbg is None else sbg.survival(t),
            sbg_retention=None if sbg is None or t == 0 else sbg.retention(t),
            naive_survival=naive.survival(t),
            naive_retention=None if t == 0 else naive.retention(t),
            observed_survival=1.0 if t == 0 else observed.get(t),
        )
        for t in range(horizon + 1)
    )
    accounts = tuple(
        _account_value(item, sbg, naive, discount_rate) for item in found if not item.churned
    )
    return RetentionForecast(
        as_of=as_of,
        discount_rate=discount_rate,
        lifetimes=data.lifetimes,
        churns=data.churns,
        decisions=data.decisions,
        sbg=sbg,
        sbg_reason=reason,
        naive=naive,
        fit=None if sbg is None else goodness_of_fit(sbg, naive, data),
        survival=tuple(table),
        curve=curve,
        cohorts=_cohorts(found, accounts, fitted=sbg is not None),
        accounts=accounts,
    )


def _account_value(
    item: Lifetime, sbg: SbgFit | None, naive: NaiveFit, discount_rate: float
) -> AccountValue:
    derl = None if sbg is None else sbg.derl(item.renewals, discount_rate)
    naive_derl = naive.derl(item.renewals, discount_rate)
    return AccountValue(
        account_id=item.account_id,
        cohort=item.cohort,
        renewals=item.renewals,
        arr=item.arr,
        currency=item.currency,
        renewal_probability=None if sbg is None else sbg.renewal_probability(item.renewals),
        derl=derl,
        residual_value=None if derl is None else _money(derl, item.arr),
        naive_derl=naive_derl,
        naive_residual_value=_money(naive_derl, item.arr),
    )


def _cohorts(
    lifetimes: list[Lifetime], accounts: tuple[AccountValue, ...], *, fitted: bool
) -> tuple[CohortValue, ...]:
    result = []
    for cohort in sorted({item.cohort for item in lifetimes}):
        active = [value for value in accounts if value.cohort == cohort]
        sbg: dict[str, Decimal] = {}
        naive: dict[str, Decimal] = {}
        for value in active:
            naive[value.currency] = (
                naive.get(value.currency, Decimal(0)) + value.naive_residual_value
            )
            if value.residual_value is not None:
                sbg[value.currency] = sbg.get(value.currency, Decimal(0)) + value.residual_value
        result.append(
            CohortValue(
                cohort=cohort,
                lifetimes=sum(item.cohort == cohort for item in lifetimes),
                active=len(active),
                residual_value=dict(sorted(sbg.items())) if fitted else None,
                naive_residual_value=dict(sorted(naive.items())),
            )
        )
    return tuple(result)
