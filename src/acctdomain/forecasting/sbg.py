"""The shifted-beta-geometric (sBG) retention model, fitted by maximum likelihood.

Fader and Hardie, "How to project customer retention" (Journal of Interactive Marketing 21,
2007): at each renewal decision a customer churns with probability ``theta``, constant for
that customer; ``theta`` varies across customers as Beta(alpha, beta). Then

- ``P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta)``: churn at decision ``t``;
- ``S(t) = B(alpha, beta + t) / B(alpha, beta)``: still a customer after ``t`` decisions;
- ``r(t) = S(t) / S(t - 1) = (beta + t - 1) / (alpha + beta + t - 1)``: retention rises with
  tenure because the customers likely to leave leave first.

The discounted expected residual lifetime (Fader and Hardie, "Customer-base valuation in a
contractual setting: the perils of ignoring heterogeneity", Marketing Science 29, 2010) of a
customer who has renewed ``k`` times, just before decision ``k + 1``, is
``B(alpha, beta + k + 1) / B(alpha, beta + k) * 2F1(1, beta + k + 1; alpha + beta + k + 1;
1 / (1 + d))``: the next period counts with the probability of renewing, each later one
discounted once more by ``1 + d``.

Needs the ``forecast`` extra (SciPy; ``scipy.stats`` is imported only for the goodness of fit).

A fit is a pure function of the counts it is fitted on, so :func:`fit_sbg` keeps the last
:data:`FIT_CACHE_SIZE` fits of the process by their counts (the same counts give the same fit
object); :func:`clear_fit_cache` empties it. While it optimises, BLAS runs on one thread
(with ``threadpoolctl``, a dependency of scikit-learn, when it is installed): the optimiser's
linear algebra is on 2 x 2 matrices, where waking BLAS threads only costs time (ten times the
fit on a busy two-core machine) and changes no result.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np
from scipy import optimize, special

from acctdomain.errors import InvalidValue
from acctdomain.forecasting.cohorts import Observations

__all__ = [
    "FIT_CACHE_SIZE",
    "LOG_BOUNDS",
    "GoodnessOfFit",
    "NaiveFit",
    "SbgFit",
    "clear_fit_cache",
    "fit_naive",
    "fit_sbg",
    "goodness_of_fit",
]

LOG_BOUNDS = (-9.0, 9.0)
"""Bounds of log(alpha) and log(beta) for the optimiser (alpha, beta in [1.2e-4, 8103])."""
_AT_BOUND = 1e-3
_HOMOGENEOUS = 100.0  # alpha + beta from here on: churn probabilities hardly vary
FIT_CACHE_SIZE = 256
"""How many fits :func:`fit_sbg` keeps, by their counts, in one process."""


def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - scikit-learn (the extra) depends on it
        return None
    return ThreadpoolController()  # after SciPy's import: it sees SciPy's BLAS


_BLAS = _blas_controller()


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """BLAS limited to one thread for the block (no limit without ``threadpoolctl``)."""
    if _BLAS is None:  # pragma: no cover
        return contextlib.nullcontext()
    limited: contextlib.AbstractContextManager[Any] = _BLAS.limit(limits=1, user_api="blas")
    return limited


def _discount(discount_rate: float) -> float:
    if isinstance(discount_rate, bool) or not isinstance(discount_rate, int | float):
        raise InvalidValue("discount_rate", f"expected a number, got {discount_rate!r}")
    if not 0 < discount_rate < 10 or math.isnan(discount_rate):
        raise InvalidValue(
            "discount_rate", f"expected a rate per period in (0, 10), got {discount_rate!r}"
        )
    return float(discount_rate)


def _period(name: str, t: int) -> int:
    if isinstance(t, bool) or not isinstance(t, int) or t < 0:
        raise InvalidValue(name, f"expected a whole number >= 0, got {t!r}")
    return t


@attrs.frozen(kw_only=True)
class SbgFit:
    """A fitted sBG model. ``boundary`` is empty unless the maximum lies on the optimiser's
    bounds (then it says what that means)."""

    alpha: float
    beta: float
    log_likelihood: float
    lifetimes: int
    churns: int
    decisions: int
    boundary: str = ""

    @property
    def mean_churn(self) -> float:
        """The mean churn probability of a new customer, alpha / (alpha + beta)."""
        return self.alpha / (self.alpha + self.beta)

    def survival(self, t: int) -> float:
        """``S(t)``: the share of a new cohort still customers after ``t`` decisions."""
        _period("t", t)
        return float(
            np.exp(
                special.betaln(self.alpha, self.beta + t) - special.betaln(self.alpha, self.beta)
            )
        )

    def retention(self, t: int) -> float:
        """``r(t)``: the share of those who came to decision ``t`` (>= 1) who renew."""
        if _period("t", t) < 1:
            raise InvalidValue("t", "retention is defined from decision 1 on")
        return (self.beta + t - 1) / (self.alpha + self.beta + t - 1)

    def renewal_probability(self, renewals: int) -> float:
        """The probability that a customer who has renewed ``renewals`` times renews next."""
        return self.retention(_period("renewals", renewals) + 1)

    def derl(self, renewals: int, discount_rate: float) -> float:
        """Discounted expected residual lifetime, in periods, of a customer who has renewed
        ``renewals`` times, just before its next decision (``discount_rate`` per period)."""
        k = _period("renewals", renewals)
        x = 1 / (1 + _discount(discount_rate))
        a, b = self.alpha, self.beta
        ratio = math.exp(special.betaln(a, b + k + 1) - special.betaln(a, b + k))
        return float(ratio * special.hyp2f1(1.0, b + k + 1, a + b + k + 1, x))


@attrs.frozen(kw_only=True)
class NaiveFit:
    """The constant-churn (geometric) model: every customer churns at each decision with
    the pooled rate ``churn = churns / decisions``."""

    churn: float
    log_likelihood: float
    churns: int
    decisions: int

    def survival(self, t: int) -> float:
        """``(1 - churn) ** t``."""
        return float((1 - self.churn) ** _period("t", t))

    def retention(self, t: int) -> float:
        """``1 - churn`` at every decision."""
        if _period("t", t) < 1:
            raise InvalidValue("t", "retention is defined from decision 1 on")
        return 1 - self.churn

    def derl(self, renewals: int, discount_rate: float) -> float:
        """``(1 - churn) / (1 - (1 - churn) / (1 + d))``, whatever the tenure."""
        _period("renewals", renewals)
        x = 1 / (1 + _discount(discount_rate))
        keep = 1 - self.churn
        return keep / (1 - keep * x)


def _check(data: Observations) -> None:
    if not isinstance(data, Observations):
        raise InvalidValue("data", f"expected Observations, got {type(data).__name__}")
    for name, counts in (("churned_at", data.churned_at), ("censored_after", data.censored_after)):
        low = 1 if name == "churned_at" else 0
        for t, n in counts.items():
            if not isinstance(t, int) or t < low or not isinstance(n, int) or n < 0:
                raise InvalidValue(
                    name, f"expected period >= {low} -> count >= 0, got {t!r}: {n!r}"
                )
    if data.lifetimes == 0:
        raise InvalidValue("data", "no contract lifetimes: nothing to fit")
    if data.decisions == 0:
        raise InvalidValue(
            "data", "no renewal decision observed yet: every lifetime is in its first period"
        )


def fit_naive(data: Observations) -> NaiveFit:
    """The maximum-likelihood constant churn rate (InvalidValue when there is no decision)."""
    _check(data)
    churns, decisions = data.churns, data.decisions
    churn = churns / decisions
    ll = 0.0
    if churns:
        ll += churns * math.log(churn)
    if decisions > churns:
        ll += (decisions - churns) * math.log(1 - churn)
    return NaiveFit(churn=churn, log_likelihood=ll, churns=churns, decisions=decisions)


def _arrays(data: Observations) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    churn_t = np.array(sorted(data.churned_at), dtype=float)
    churn_n = np.array([data.churned_at[int(t)] for t in churn_t], dtype=float)
    alive_t = np.array(sorted(data.censored_after), dtype=float)
    alive_n = np.array([data.censored_after[int(t)] for t in alive_t], dtype=float)
    return churn_t, churn_n, alive_t, alive_n


def fit_sbg(data: Observations) -> SbgFit:
    """Fit alpha and beta by maximum likelihood (L-BFGS-B on their logarithms, from several
    starting points). InvalidValue when the data cannot identify them: no churn at all (the
    likelihood grows without bound as churn goes to zero), only one decision observed (any
    alpha / (alpha + beta) with the observed rate fits equally), or the optimiser failed.
    The same counts give the same fit: the last :data:`FIT_CACHE_SIZE` are kept."""
    _check(data)
    if data.churns == 0:
        raise InvalidValue(
            "data",
            f"no churn in {data.decisions} renewal decisions: retention looks perfect and the "
            "sBG model has no finite maximum-likelihood fit",
        )
    if data.last_period < 2 or data.at_risk(2) == 0:
        raise InvalidValue(
            "data",
            "only the first renewal decision is observed: one churn rate cannot tell alpha "
            "from beta (use the constant-churn projection, or wait for a second period)",
        )
    return _fitted(_counts(data.churned_at), _counts(data.censored_after))


Counts = tuple[tuple[int, int], ...]


def _counts(counts: Mapping[int, int]) -> Counts:
    return tuple(sorted(counts.items()))


def clear_fit_cache() -> None:
    """Forget the fits :func:`fit_sbg` kept (a benchmark does, to time the fit itself)."""
    _fitted.cache_clear()


@functools.lru_cache(maxsize=FIT_CACHE_SIZE)
def _fitted(churned_at: Counts, censored_after: Counts) -> SbgFit:
    """The fit of checked, identified counts (raises InvalidValue, never kept, if the
    optimiser fails)."""
    data = Observations(dict(churned_at), dict(censored_after))
    churn_t, churn_n, alive_t, alive_n = _arrays(data)

    def negative(params: np.ndarray) -> float:
        a, b = np.exp(params)
        base = special.betaln(a, b)
        ll = np.sum(churn_n * (special.betaln(a + 1, b + churn_t - 1) - base))
        ll += np.sum(alive_n * (special.betaln(a, b + alive_t) - base))
        return float(-ll)

    best = _minimum(negative)
    if best is None or not best.success:
        message = "no finite likelihood" if best is None else str(best.message)
        raise InvalidValue("data", f"the sBG fit did not converge: {message}")
    log_a, log_b = (float(v) for v in best.x)
    boundary = ""
    at_upper = [abs(v - LOG_BOUNDS[1]) < _AT_BOUND for v in (log_a, log_b)]
    at_lower = [abs(v - LOG_BOUNDS[0]) < _AT_BOUND for v in (log_a, log_b)]
    if any(at_upper) or math.exp(log_a) + math.exp(log_b) >= _HOMOGENEOUS:
        boundary = (
            "alpha + beta ran high: no heterogeneity in churn is detected, and the sBG "
            "projection is (close to) the constant-churn one"
        )
    elif any(at_lower):
        boundary = (
            "a parameter ran to the lower bound: churn probabilities pile up at 0 or 1 "
            "(a few customers leave at once, the rest stay); long-range projections are fragile"
        )
    return SbgFit(
        alpha=math.exp(log_a),
        beta=math.exp(log_b),
        log_likelihood=-float(best.fun),
        lifetimes=data.lifetimes,
        churns=data.churns,
        decisions=data.decisions,
        boundary=boundary,
    )


def _minimum(negative: Callable[[np.ndarray], float]) -> optimize.OptimizeResult | None:
    """The lowest finite minimum of ``negative`` from the starting points (None: none)."""
    best: optimize.OptimizeResult | None = None
    with _one_blas_thread():
        for start in ((0.0, 0.0), (-1.0, 1.0), (1.0, 2.0), (-2.0, 0.0)):
            result = optimize.minimize(
                negative, np.array(start), method="L-BFGS-B", bounds=[LOG_BOUNDS, LOG_BOUNDS]
            )
            if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
                best = result
    return best


@attrs.frozen(kw_only=True)
class GoodnessOfFit:
    """How well sBG fits beside the constant-churn model.

    ``likelihood_ratio`` = 2 (LL sBG - LL naive), with its p-value against chi-square with one
    degree of freedom (the naive model is sBG's limit as alpha, beta grow: a boundary case, so
    the p-value is conservative); AIC of both. ``chi_square``: Pearson's statistic of churns
    and renewals per decision against sBG's expectation, periods pooled from the last one
    back until each bin expects at least 5 of each; ``degrees_of_freedom`` = bins - 2, and
    ``p_value`` None with ``note`` when that is below 1."""

    sbg_log_likelihood: float
    naive_log_likelihood: float
    likelihood_ratio: float
    likelihood_ratio_p_value: float
    sbg_aic: float
    naive_aic: float
    chi_square: float
    degrees_of_freedom: int
    p_value: float | None
    bins: int
    note: str = ""


def goodness_of_fit(fit: SbgFit, naive: NaiveFit, data: Observations) -> GoodnessOfFit:
    """Compare the fitted models on the data they were fitted on."""
    from scipy import stats  # heavy, and only needed here

    ratio = max(0.0, 2 * (fit.log_likelihood - naive.log_likelihood))
    bins: list[list[float]] = []  # [observed churns, expected churns, at risk, expected renewals]
    for t in range(1, data.last_period + 1):
        at_risk = data.at_risk(t)
        if not at_risk:
            break
        hazard = 1 - fit.retention(t)
        bins.append(
            [float(data.churned_at.get(t, 0)), at_risk * hazard, at_risk, at_risk * (1 - hazard)]
        )
    pooled: list[list[float]] = []
    for row in reversed(bins):
        if pooled and (pooled[-1][1] < 5 or pooled[-1][3] < 5):
            pooled[-1] = [x + y for x, y in zip(pooled[-1], row, strict=True)]
        else:
            pooled.append(list(row))
    if len(pooled) > 1 and (pooled[-1][1] < 5 or pooled[-1][3] < 5):
        last = pooled.pop()
        pooled[-1] = [x + y for x, y in zip(pooled[-1], last, strict=True)]
    chi = 0.0
    for observed, expected, came, expected_renewals in pooled:
        renewed = came - observed
        if expected > 0:
            chi += (observed - expected) ** 2 / expected
        if expected_renewals > 0:
            chi += (renewed - expected_renewals) ** 2 / expected_renewals
    freedom = len(pooled) - 2
    note = ""
    p_value: float | None = None
    if freedom < 1:
        note = (
            f"{len(pooled)} bin(s) of decisions after pooling: too few for a chi-square test "
            "of a two-parameter model"
        )
    else:
        p_value = float(stats.chi2.sf(chi, freedom))
    return GoodnessOfFit(
        sbg_log_likelihood=fit.log_likelihood,
        naive_log_likelihood=naive.log_likelihood,
        likelihood_ratio=ratio,
        likelihood_ratio_p_value=float(stats.chi2.sf(ratio, 1)),
        sbg_aic=4 - 2 * fit.log_likelihood,
        naive_aic=2 - 2 * naive.log_likelihood,
        chi_square=chi,
        degrees_of_freedom=max(freedom, 0),
        p_value=p_value,
        bins=len(pooled),
        note=note,
    )
