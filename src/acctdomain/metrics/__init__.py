"""The KPI formulas, pure: no store, no plugins, plain numbers and read-model rows in, figures
out. The built-in KPIs (:mod:`acctdomain.builtin.kpis`) read the rows and call these."""

from acctdomain.metrics.book import (
    PeriodBook,
    RenewalOutcome,
    historical_value,
    manager_at,
)
from acctdomain.metrics.formulas import (
    Undefined,
    ces_mean,
    ces_share_easy,
    convert_churn_rate,
    csat,
    mean,
    median,
    nps,
    ratio,
)

__all__ = [
    "PeriodBook",
    "RenewalOutcome",
    "Undefined",
    "ces_mean",
    "ces_share_easy",
    "convert_churn_rate",
    "csat",
    "historical_value",
    "manager_at",
    "mean",
    "median",
    "nps",
    "ratio",
]
