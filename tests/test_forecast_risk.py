"""Churn-risk features from events, the time-based split, the model's evaluation against the
base rate, and the reasons given for each score."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import pytest

from acctdomain import AccountService, CsatScore, Money, NpsScore, ProductLine
from acctdomain.demo import generate_book
from acctdomain.errors import InvalidValue
from acctdomain.forecasting.features import FEATURES, account_features, is_active_at
from acctdomain.forecasting.risk import (
    Example,
    book_histories,
    evaluate_risk,
    examples_at,
    score_accounts,
    train_risk_model,
    training_cutoffs,
)
from acctdomain.plugins import PluginHost

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def at(month: int, day: int, year: int = 2025) -> datetime:
    return datetime(year, month, day, 10, tzinfo=UTC)


def when(moment: datetime) -> dict[str, object]:
    return {"actor": "amy", "effective_at": moment}


@pytest.fixture
def service() -> Iterator[AccountService]:
    found = AccountService("memory:", clock=lambda: NOW, plugins=PluginHost(entry_points=False))
    try:
        yield found
    finally:
        found.close()


def troubled_account(service: AccountService) -> UUID:
    """Signed 1 Feb 2025, renewal 1 Feb 2026; a champion who left, a critical issue still
    open, NPS from 8 to 3, CSAT from 4 to 2, a downgrade, one contact; churned 20 Jan 2026."""
    account_id = service.open_account(
        name="Acme",
        segment="enterprise",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        **when(at(2, 1)),
    ).account_id
    lines = [ProductLine("core", Money(9000, "EUR")), ProductLine("extra", Money(1000, "EUR"))]
    service.start_contract(account_id, term_end=date(2026, 2, 1), lines=lines, **when(at(2, 1)))
    champion = UUID(int=7)
    service.add_stakeholder(
        account_id,
        name="Cleo",
        role="champion",
        sentiment="positive",
        stakeholder_id=champion,
        **when(at(2, 2)),
    )
    service.add_stakeholder(
        account_id, name="Ed", role="economic_buyer", sentiment="negative", **when(at(2, 2))
    )
    service.log_contact(account_id, channel="email", direction="outbound", **when(at(3, 1)))
    service.raise_issue(
        account_id, title="Down", severity="critical", category="outage", **when(at(5, 1))
    )
    service.record_feedback(account_id, score=NpsScore(8), **when(at(3, 5)))
    service.record_feedback(account_id, score=NpsScore(3), **when(at(6, 5)))
    service.record_feedback(account_id, score=CsatScore(4), **when(at(3, 6)))
    service.record_feedback(account_id, score=CsatScore(2), **when(at(6, 6)))
    service.downgrade(
        account_id,
        product="extra",
        reduced_by=Money(500, "EUR"),
        reason="budget",
        **when(at(6, 10)),
    )
    service.remove_stakeholder(account_id, stakeholder_id=champion, reason="left", **when(at(7, 1)))
    service.churn(account_id, reason="price", **when(at(1, 20, 2026)))
    return account_id


def test_features_at_a_cutoff_read_the_events_up_to_it(service: AccountService) -> None:
    account_id = troubled_account(service)
    events = service.history(account_id)
    features = account_features(events, at(8, 1), horizon_days=200)
    assert features is not None
    assert list(features) == list(FEATURES)
    assert features["days_since_contact"] == pytest.approx((at(8, 1) - at(3, 1)).days)
    assert features["open_issues"] == features["open_severe_issues"] == 1
    assert features["oldest_open_issue_days"] == pytest.approx(92)
    assert features["severe_issues_180d"] == 1
    assert (features["nps_latest"], features["nps_trend"], features["nps_stale"]) == (3, -5, 0)
    assert (features["csat_latest"], features["csat_trend"]) == (2, -2)
    assert features["downgrades_365d"] == 1
    assert (features["champion"], features["champion_left_365d"]) == (0, 1)
    assert features["key_role_coverage"] == 0.25  # the economic buyer only
    assert features["negative_key_stakeholders"] == 1
    assert features["days_to_renewal"] == (date(2026, 2, 1) - date(2025, 8, 1)).days
    assert features["renewal_in_horizon"] == 1
    assert features["segment_enterprise"] == 1
    assert features["segment_mid_market"] == 0
    assert features["tenure_years"] == pytest.approx(181 / 365.25)
    earlier = account_features(events, at(4, 1))
    assert earlier is not None
    assert earlier["open_issues"] == 0
    assert earlier["champion"] == 1
    assert earlier["nps_trend"] == 0
    assert earlier["renewal_in_horizon"] == 0  # 306 days away, beyond 180


def test_an_account_without_a_running_contract_has_no_features(service: AccountService) -> None:
    events = service.history(troubled_account(service))
    assert account_features(events, at(1, 1)) is None  # before it opened
    assert account_features(events, at(2, 1, 2026)) is None  # churned
    assert is_active_at(events, at(12, 1))


def test_examples_are_labelled_by_a_churn_in_the_window_after_the_cutoff(
    service: AccountService,
) -> None:
    account_id = troubled_account(service)
    histories = {account_id: service.history(account_id)}
    (inside,) = examples_at(histories, at(12, 1), 60)
    assert inside.churned
    assert len(inside.features) == len(FEATURES)
    (outside,) = examples_at(histories, at(8, 1), 60)
    assert not outside.churned


def test_training_cutoffs_keep_every_label_window_before_the_test_cutoff(
    service: AccountService,
) -> None:
    account_id = troubled_account(service)
    histories = {account_id: service.history(account_id)}
    cutoffs = training_cutoffs(histories, at(1, 1, 2026), 90, step_days=30)
    assert cutoffs == sorted(cutoffs)
    assert cutoffs
    assert all(c + timedelta(days=90) <= at(1, 1, 2026) for c in cutoffs)
    assert cutoffs[0] >= at(2, 1) + timedelta(days=90)
    with pytest.raises(InvalidValue, match="step_days"):
        training_cutoffs(histories, at(1, 1, 2026), 90, step_days=0)
    with pytest.raises(InvalidValue, match="no account"):
        training_cutoffs({}, at(1, 1, 2026), 90)


def test_training_needs_churned_and_retained_examples() -> None:
    row = tuple(0.0 for _ in FEATURES)
    stayed = [Example(UUID(int=n), NOW, row, False) for n in range(5)]
    with pytest.raises(InvalidValue, match="0 churn"):
        train_risk_model(stayed, 90)
    with pytest.raises(InvalidValue, match="0 training example"):
        train_risk_model([], 90)
    left = [Example(UUID(int=n), NOW, row, True) for n in range(5)]
    with pytest.raises(InvalidValue, match="5 churn"):
        train_risk_model(left, 90)


@pytest.mark.parametrize("horizon", [0, -5, 1.5, True])
def test_bad_horizons_are_refused(service: AccountService, horizon: object) -> None:
    events = service.history(troubled_account(service))
    with pytest.raises(InvalidValue, match="horizon_days"):
        account_features(events, at(8, 1), horizon_days=horizon)  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="horizon_days"):
        examples_at({UUID(int=1): events}, at(8, 1), horizon)  # type: ignore[arg-type]


def test_a_naive_cutoff_is_refused(service: AccountService) -> None:
    events = service.history(troubled_account(service))
    with pytest.raises(InvalidValue, match="at"):
        account_features(events, datetime(2025, 8, 1))


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[dict[UUID, tuple[object, ...]], datetime]]:
    service = AccountService("memory:", clock=lambda: NOW, plugins=PluginHost(entry_points=False))
    try:
        book = generate_book(service, accounts=80, seed=5)
        yield book_histories(service), datetime.combine(book.end, datetime.min.time(), UTC)  # type: ignore[misc]
    finally:
        service.close()


def test_evaluation_on_the_held_out_window_beats_the_base_rate(
    demo: tuple[dict[UUID, tuple[object, ...]], datetime],
) -> None:
    histories, end = demo
    cutoff = end - timedelta(days=365)
    report = evaluate_risk(histories, cutoff=cutoff, horizon_days=365)  # type: ignore[arg-type]
    assert report.test_examples > 0
    assert 0 < report.test_churns < report.test_examples
    assert report.auc is not None
    assert report.auc > report.base_rate_auc == 0.5
    assert report.train_churns > 0
    assert report.training_cutoffs >= 1
    assert 0 < report.base_rate < 1
    assert sum(b.count for b in report.reliability) == report.test_examples
    assert all(
        0 <= b.observed_rate <= 1 and b.low <= b.mean_predicted <= b.high
        for b in report.reliability
    )
    assert set(report.coefficients) == set(FEATURES)
    plain = report.as_dict()
    assert plain["cutoff"] == report.cutoff.isoformat()
    assert "brier_skill" in plain


def test_a_window_not_over_yet_or_without_history_is_refused(
    demo: tuple[dict[UUID, tuple[object, ...]], datetime],
) -> None:
    histories, _ = demo
    with pytest.raises(InvalidValue, match="churns are not known yet"):
        evaluate_risk(histories, cutoff=date(2025, 12, 1), horizon_days=90)  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="training example"):
        evaluate_risk(histories, cutoff=date(2023, 3, 1), horizon_days=90)  # type: ignore[arg-type]


def test_scores_come_riskiest_first_with_reasons_that_raise_them(
    demo: tuple[dict[UUID, tuple[object, ...]], datetime],
) -> None:
    histories, end = demo
    scored = score_accounts(histories, at=end, horizon_days=180)  # type: ignore[arg-type]
    assert scored
    probabilities = [risk.probability for risk in scored]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0 < p < 1 for p in probabilities)
    top = scored[0]
    assert 1 <= len(top.reasons) <= 3
    assert all(reason.feature in FEATURES and reason.contribution > 0 for reason in top.reasons)
    contributions = [reason.contribution for reason in top.reasons]
    assert contributions == sorted(contributions, reverse=True)
