"""The sBG retention model: it recovers Fader and Hardie's published fits and parameters of
data simulated from the model, values residual lifetime in closed form, and refuses data that
cannot identify it with a clear reason."""

from __future__ import annotations

import math

import numpy as np
import pytest

from acctdomain.errors import InvalidValue
from acctdomain.forecasting.cohorts import Observations
from acctdomain.forecasting.sbg import fit_naive, fit_sbg, goodness_of_fit

# Fader and Hardie (2007), table 1: customers left after 0..7 years, fitted on these.
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491]
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241]


@pytest.mark.parametrize(
    ("alive", "alpha", "beta"), [(HIGH_END, 0.668, 3.806), (REGULAR, 0.704, 1.182)]
)
def test_fit_reproduces_the_published_parameters(
    alive: list[int], alpha: float, beta: float
) -> None:
    fit = fit_sbg(Observations.from_survivors(alive))
    assert fit.alpha == pytest.approx(alpha, abs=0.001)
    assert fit.beta == pytest.approx(beta, abs=0.001)
    assert fit.boundary == ""
    assert fit.lifetimes == 1000


def simulate(alpha: float, beta: float, seed: int, customers: int = 6000) -> Observations:
    """Customers with churn probabilities from Beta(alpha, beta), in cohorts observed for 1 to
    8 decisions (older cohorts have seen more)."""
    rng = np.random.default_rng(seed)
    theta = rng.beta(alpha, beta, customers)
    lifetime = rng.geometric(theta)  # the decision at which each churns
    observed = rng.integers(1, 9, customers)  # decisions each one's cohort has seen
    churned: dict[int, int] = {}
    censored: dict[int, int] = {}
    for t, seen in zip(lifetime.tolist(), observed.tolist(), strict=True):
        if t <= seen:
            churned[t] = churned.get(t, 0) + 1
        else:
            censored[seen] = censored.get(seen, 0) + 1
    return Observations(churned, censored)


@pytest.mark.parametrize(("alpha", "beta", "seed"), [(0.7, 3.0, 1), (1.5, 6.0, 2), (0.4, 1.2, 3)])
def test_fit_recovers_the_parameters_of_simulated_data(
    alpha: float, beta: float, seed: int
) -> None:
    fit = fit_sbg(simulate(alpha, beta, seed))
    assert fit.alpha == pytest.approx(alpha, rel=0.2)
    assert fit.beta == pytest.approx(beta, rel=0.2)
    assert fit.mean_churn == pytest.approx(alpha / (alpha + beta), rel=0.05)


def test_fit_beats_constant_churn_on_heterogeneous_data() -> None:
    data = Observations.from_survivors(REGULAR)
    fit, naive = fit_sbg(data), fit_naive(data)
    report = goodness_of_fit(fit, naive, data)
    assert report.sbg_log_likelihood > report.naive_log_likelihood
    assert report.likelihood_ratio > 100
    assert report.likelihood_ratio_p_value < 1e-6
    assert report.sbg_aic < report.naive_aic
    assert report.degrees_of_freedom == report.bins - 2 >= 1
    assert report.p_value is not None
    assert report.p_value > 0.5
    assert naive.churn == pytest.approx(759 / 3358)


def test_survival_and_retention_follow_the_formulas() -> None:
    fit = fit_sbg(Observations.from_survivors(HIGH_END))
    a, b = fit.alpha, fit.beta
    assert fit.survival(0) == pytest.approx(1.0)
    assert fit.survival(1) == pytest.approx(b / (a + b))
    for t in range(1, 12):
        assert fit.retention(t) == pytest.approx(fit.survival(t) / fit.survival(t - 1))
        assert fit.retention(t + 1) > fit.retention(t)  # rising retention
    assert fit.renewal_probability(2) == fit.retention(3)


@pytest.mark.parametrize("renewals", [0, 1, 4])
def test_derl_closed_form_equals_the_discounted_sum(renewals: int) -> None:
    fit = fit_sbg(Observations.from_survivors(REGULAR))
    k, x = renewals, 1 / 1.1
    direct = sum(fit.survival(k + 1 + j) / fit.survival(k) * x**j for j in range(4000))
    assert fit.derl(renewals, 0.1) == pytest.approx(direct, rel=1e-9)


def test_derl_grows_with_tenure_while_constant_churn_does_not() -> None:
    data = Observations.from_survivors(REGULAR)
    fit, naive = fit_sbg(data), fit_naive(data)
    assert fit.derl(5, 0.1) > fit.derl(0, 0.1)
    assert naive.derl(5, 0.1) == naive.derl(0, 0.1)
    keep = 1 - naive.churn
    assert naive.derl(0, 0.1) == pytest.approx(sum(keep ** (j + 1) / 1.1**j for j in range(3000)))


def test_no_lifetime_is_refused() -> None:
    with pytest.raises(InvalidValue, match="nothing to fit"):
        fit_sbg(Observations({}, {}))
    with pytest.raises(InvalidValue, match="nothing to fit"):
        fit_naive(Observations({}, {}))


def test_lifetimes_without_any_decision_are_refused() -> None:
    with pytest.raises(InvalidValue, match="first period"):
        fit_sbg(Observations({}, {0: 12}))


def test_no_churn_is_a_clear_error_and_constant_churn_is_zero() -> None:
    data = Observations({}, {1: 10, 3: 5})
    with pytest.raises(InvalidValue, match="no churn in 25 renewal decisions"):
        fit_sbg(data)
    naive = fit_naive(data)
    assert naive.churn == 0
    assert naive.survival(5) == 1


def test_one_period_only_is_a_clear_error() -> None:
    data = Observations.from_survivors([100, 80])
    with pytest.raises(InvalidValue, match="only the first renewal decision"):
        fit_sbg(data)
    assert fit_naive(data).churn == pytest.approx(0.2)


def test_everyone_churning_at_the_first_decision_is_a_clear_error() -> None:
    data = Observations.from_survivors([50, 0])
    with pytest.raises(InvalidValue, match="only the first renewal decision"):
        fit_sbg(data)
    naive = fit_naive(data)
    assert naive.churn == 1
    assert naive.survival(1) == 0
    assert naive.log_likelihood == 0


def test_everyone_churning_over_several_periods_gives_a_clear_fit() -> None:
    # Churn rises with tenure (1/2, then 3/5, then all): sBG can only fall back to constant
    # churn, and says so.
    data = Observations.from_survivors([100, 50, 20, 0])
    fit, naive = fit_sbg(data), fit_naive(data)
    assert math.isfinite(fit.alpha)
    assert math.isfinite(fit.beta)
    assert "no heterogeneity" in fit.boundary
    assert fit.mean_churn == pytest.approx(naive.churn, abs=0.01)
    assert naive.churn == pytest.approx(100 / 170)


def test_homogeneous_churn_runs_to_the_bound_and_says_so() -> None:
    alive = [round(10000 * 0.8**t) for t in range(8)]
    fit = fit_sbg(Observations.from_survivors(alive))
    assert "no heterogeneity" in fit.boundary
    assert fit.mean_churn == pytest.approx(0.2, abs=0.005)


def test_goodness_of_fit_with_too_few_bins_has_no_p_value() -> None:
    data = Observations.from_survivors([40, 30, 26])
    report = goodness_of_fit(fit_sbg(data), fit_naive(data), data)
    assert report.p_value is None
    assert "too few" in report.note


@pytest.mark.parametrize(
    ("alive", "match"),
    [([100], "at least one later"), ([0, 0], "at least one later"), ([10, 12], "must not grow")],
)
def test_bad_survivor_counts_are_refused(alive: list[int], match: str) -> None:
    with pytest.raises(InvalidValue, match=match):
        Observations.from_survivors(alive)


def test_bad_counts_and_arguments_are_refused() -> None:
    with pytest.raises(InvalidValue, match="churned_at"):
        fit_sbg(Observations({0: 3}, {}))
    with pytest.raises(InvalidValue, match="censored_after"):
        fit_sbg(Observations({1: 3}, {2: -1}))
    with pytest.raises(InvalidValue, match="expected Observations"):
        fit_sbg([1, 2])  # type: ignore[arg-type]
    fit = fit_sbg(Observations.from_survivors(REGULAR))
    for rate in (0, -0.1, float("nan"), True, "0.1"):
        with pytest.raises(InvalidValue, match="discount_rate"):
            fit.derl(0, rate)  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="renewals"):
        fit.derl(-1, 0.1)
    with pytest.raises(InvalidValue, match="from decision 1"):
        fit.retention(0)
    with pytest.raises(InvalidValue, match="t: expected a whole number"):
        fit.survival(1.5)  # type: ignore[arg-type]
    naive = fit_naive(Observations.from_survivors(REGULAR))
    with pytest.raises(InvalidValue, match="from decision 1"):
        naive.retention(0)
