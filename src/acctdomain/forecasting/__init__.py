"""Retention forecasting and churn risk (issue 9; method and limits: docs/forecasting.md).

- :mod:`~acctdomain.forecasting.cohorts`: contract lifetimes and cohort survival tables;
- :mod:`~acctdomain.forecasting.sbg`: the shifted-beta-geometric model, DERL, goodness of fit;
- :mod:`~acctdomain.forecasting.retention`: the whole cohort forecast of a book;
- :mod:`~acctdomain.forecasting.features`: churn-risk features from an account's events;
- :mod:`~acctdomain.forecasting.risk`: the churn-risk model, its evaluation and reasons.

``cohorts`` and ``features`` are pure Python. The others need the ``forecast`` extra (NumPy,
SciPy, scikit-learn): their names are imported on first use, so this package imports without
it, and :func:`missing_extra` says whether it is there.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from acctdomain.forecasting.cohorts import (
    Lifetime,
    Observations,
    SurvivalRow,
    known_decisions,
    known_revenue,
    lifetimes_from_facts,
    observations,
    renewal_counts,
    survival_table,
)
from acctdomain.forecasting.features import FEATURES, account_features

if TYPE_CHECKING:
    from acctdomain.forecasting.retention import (
        RetentionForecast,
        book_lifetimes,
        forecast_retention,
    )
    from acctdomain.forecasting.risk import (
        AccountRisk,
        RiskEvaluation,
        book_histories,
        evaluate_risk,
        score_accounts,
    )
    from acctdomain.forecasting.sbg import (
        SbgFit,
        clear_fit_cache,
        fit_naive,
        fit_sbg,
        goodness_of_fit,
    )

__all__ = [
    "EXTRA",
    "FEATURES",
    "SBG_NEEDS",
    "AccountRisk",
    "Lifetime",
    "Observations",
    "RetentionForecast",
    "RiskEvaluation",
    "SbgFit",
    "SurvivalRow",
    "account_features",
    "book_histories",
    "book_lifetimes",
    "clear_fit_cache",
    "evaluate_risk",
    "fit_naive",
    "fit_sbg",
    "forecast_retention",
    "goodness_of_fit",
    "known_decisions",
    "known_revenue",
    "lifetimes_from_facts",
    "missing_extra",
    "observations",
    "renewal_counts",
    "score_accounts",
    "survival_table",
]

EXTRA = "acctdomain[forecast]"
"""The optional extra the models need: ``pip install 'acctdomain[forecast]'``."""

_LAZY = {
    "RetentionForecast": "retention",
    "book_lifetimes": "retention",
    "forecast_retention": "retention",
    "AccountRisk": "risk",
    "RiskEvaluation": "risk",
    "book_histories": "risk",
    "evaluate_risk": "risk",
    "score_accounts": "risk",
    "SbgFit": "sbg",
    "clear_fit_cache": "sbg",
    "fit_naive": "sbg",
    "fit_sbg": "sbg",
    "goodness_of_fit": "sbg",
}
_NEEDED = ("numpy", "scipy.optimize", "scipy.special", "scipy.stats", "sklearn.linear_model")
SBG_NEEDS = ("numpy", "scipy.optimize", "scipy.special")
"""What fitting the sBG model alone imports (``missing_extra(SBG_NEEDS)``)."""


def missing_extra(modules: tuple[str, ...] = _NEEDED) -> str:
    """Empty when the ``forecast`` extra is installed, else the reason it is needed. Checking
    imports the modules: ``modules`` narrows the check to what a caller needs (default: all
    of the extra's)."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            return (
                f"retention and churn-risk models need {name.split('.')[0]}: install the "
                f"optional extra {EXTRA}"
            )
    return ""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
