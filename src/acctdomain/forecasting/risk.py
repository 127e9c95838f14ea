"""Account-level churn risk: a logistic regression on event-derived features, trained on the
store's own history with a time-based split, with calibration, AUC and reasons per account.

Examples are (account, cutoff) pairs: the features of an account active at cutoff ``T``
(:mod:`acctdomain.forecasting.features`) and whether it churned in ``(T, T + horizon]``. A
model evaluated at cutoff ``T0`` is trained only on cutoffs whose whole label window ended by
``T0``, so nothing it learns comes from the held-out window. Needs the ``forecast`` extra
(scikit-learn).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from acctdomain.domain.events import AccountEvent
from acctdomain.domain.values import moment_of
from acctdomain.errors import InvalidValue
from acctdomain.forecasting.features import FEATURES, account_features, churned_between

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = [
    "AccountRisk",
    "Example",
    "Histories",
    "Reason",
    "ReliabilityBin",
    "RiskEvaluation",
    "RiskModel",
    "book_histories",
    "evaluate_risk",
    "examples_at",
    "score_accounts",
    "train_risk_model",
    "training_cutoffs",
]

Histories = Mapping[UUID, Sequence[AccountEvent]]


@attrs.frozen
class Example:
    """An account at a cutoff: its features (in :data:`FEATURES` order) and whether it
    churned within the horizon after."""

    account_id: UUID
    at: datetime
    features: tuple[float, ...]
    churned: bool


@attrs.frozen
class Reason:
    """A feature's part in a score: its value and ``contribution``, coefficient x
    standardized value (log-odds added against an average account)."""

    feature: str
    value: float
    contribution: float


@attrs.frozen(kw_only=True)
class AccountRisk:
    """An account's churn probability within the horizon, with the features that raise it
    most (at most three, each adding log-odds)."""

    account_id: UUID
    probability: float
    reasons: tuple[Reason, ...]


@attrs.frozen(kw_only=True)
class ReliabilityBin:
    """Predictions in ``[low, high)``: how many, their mean, and the observed churn rate."""

    low: float
    high: float
    count: int
    mean_predicted: float
    observed_rate: float


@attrs.frozen(kw_only=True)
class RiskEvaluation:
    """The model against the base-rate predictor (the training churn rate for everyone) on
    the held-out window ``(cutoff, cutoff + horizon]``. ``auc`` None with ``auc_reason``
    when the held-out window has churns only or none."""

    cutoff: datetime
    horizon_days: int
    training_cutoffs: int
    train_examples: int
    train_churns: int
    test_examples: int
    test_churns: int
    auc: float | None
    auc_reason: str
    base_rate: float
    base_rate_auc: float
    brier: float
    base_rate_brier: float
    reliability: tuple[ReliabilityBin, ...]
    coefficients: dict[str, float]

    @property
    def brier_skill(self) -> float | None:
        """1 - brier / base-rate brier (> 0: better than the base rate); None if undefined."""
        return None if self.base_rate_brier == 0 else 1 - self.brier / self.base_rate_brier

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        found = attrs.asdict(self)
        found["cutoff"] = self.cutoff.isoformat()
        found["brier_skill"] = self.brier_skill
        return found


@attrs.frozen(eq=False)
class RiskModel:
    """A fitted scaler + logistic regression; ``base_rate`` is the training churn rate."""

    pipeline: Pipeline
    base_rate: float
    examples: int
    horizon_days: int

    def probabilities(self, rows: Sequence[Sequence[float]]) -> np.ndarray:
        """The churn probability of each feature vector."""
        return np.asarray(self.pipeline.predict_proba(_matrix(rows))[:, 1], dtype=float)

    def coefficients(self) -> dict[str, float]:
        """Each feature's coefficient, per standard deviation of the feature."""
        model: LogisticRegression = self.pipeline.named_steps["model"]
        return {name: float(c) for name, c in zip(FEATURES, model.coef_[0], strict=True)}

    def reasons(self, row: Sequence[float], top: int = 3) -> tuple[Reason, ...]:
        """The features that raise this account's score most."""
        scaler: StandardScaler = self.pipeline.named_steps["scale"]
        z = scaler.transform(_matrix([row]))[0]
        coef = self.pipeline.named_steps["model"].coef_[0]
        parts = [
            Reason(name, float(value), float(c * s))
            for name, value, c, s in zip(FEATURES, row, coef, z, strict=True)
        ]
        raising = sorted((p for p in parts if p.contribution > 0), key=lambda p: -p.contribution)
        return tuple(raising[:top])


def _matrix(rows: Sequence[Sequence[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=float).reshape(-1, len(FEATURES))


def _horizon(horizon_days: int) -> int:
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int) or horizon_days < 1:
        raise InvalidValue("horizon_days", f"expected a whole number >= 1, got {horizon_days!r}")
    return horizon_days


def book_histories(service: AccountService) -> dict[UUID, tuple[AccountEvent, ...]]:
    """Every account's events, for the accounts of the ``kpi_facts`` read model."""
    from acctdomain.builtin.scorecard_kpis import FACTS

    service.catch_up()
    return {
        UUID(key): service.history(UUID(key))
        for key, _ in service.read_model(FACTS).scan("accounts")
    }


def examples_at(histories: Histories, at: datetime, horizon_days: int) -> list[Example]:
    """The examples of cutoff ``at``: every account active then, labelled by a churn in
    ``(at, at + horizon]`` (the caller makes sure that window is over)."""
    horizon = _horizon(horizon_days)
    end = at + timedelta(days=horizon)
    found = []
    for account_id, events in histories.items():
        features = account_features(events, at, horizon_days=horizon)
        if features is not None:
            found.append(
                Example(
                    account_id,
                    at,
                    tuple(features[name] for name in FEATURES),
                    churned_between(events, at, end),
                )
            )
    return found


def _first_moment(histories: Histories) -> datetime:
    moments = [events[0].effective_at for events in histories.values() if events]
    if not moments:
        raise InvalidValue("histories", "no account: nothing to learn from")
    return min(moments)


def training_cutoffs(
    histories: Histories, before: datetime, horizon_days: int, step_days: int = 60
) -> list[datetime]:
    """Cutoffs every ``step_days`` back from ``before - horizon`` (so each label window ends
    by ``before``), while at least 90 days after the first event (some history to see)."""
    horizon = _horizon(horizon_days)
    if isinstance(step_days, bool) or not isinstance(step_days, int) or step_days < 1:
        raise InvalidValue("step_days", f"expected a whole number >= 1, got {step_days!r}")
    earliest = _first_moment(histories) + timedelta(days=90)
    cutoffs = []
    at = before - timedelta(days=horizon)
    while at >= earliest:
        cutoffs.append(at)
        at -= timedelta(days=step_days)
    return sorted(cutoffs)


def train_risk_model(examples: Iterable[Example], horizon_days: int) -> RiskModel:
    """Fit the scaler and the logistic regression (L2, C = 0.5). InvalidValue when the
    examples hold no churn or only churns."""
    found = list(examples)
    labels = np.array([example.churned for example in found], dtype=int)
    churns = int(labels.sum())
    if not found or churns in (0, len(found)):
        raise InvalidValue(
            "history",
            f"{len(found)} training example(s) with {churns} churn(s): a risk model needs "
            "accounts that churned and accounts that stayed in the training windows",
        )
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("model", LogisticRegression(C=0.5, max_iter=5000))]
    )
    pipeline.fit(_matrix([example.features for example in found]), labels)
    return RiskModel(pipeline, churns / len(found), len(found), _horizon(horizon_days))


def _reliability(predicted: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[ReliabilityBin]:
    found = []
    for index in range(bins):
        low, high = index / bins, (index + 1) / bins
        chosen = (predicted >= low) & ((predicted < high) | (index == bins - 1))
        if chosen.any():
            found.append(
                ReliabilityBin(
                    low=low,
                    high=high,
                    count=int(chosen.sum()),
                    mean_predicted=float(predicted[chosen].mean()),
                    observed_rate=float(labels[chosen].mean()),
                )
            )
    return found


def evaluate_risk(
    histories: Histories,
    *,
    cutoff: date | datetime,
    horizon_days: int = 180,
    step_days: int = 60,
) -> RiskEvaluation:
    """Train on the windows that ended by ``cutoff``, then score the accounts active at
    ``cutoff`` and compare with what happened in ``(cutoff, cutoff + horizon]`` (which
    must be over: it may not end more than a day after the last event). InvalidValue when it
    is not, or either side has no example."""
    at = moment_of("cutoff", cutoff, end=True)
    horizon = _horizon(horizon_days)
    last = max(event.effective_at for events in histories.values() for event in events[-1:])
    if at + timedelta(days=horizon) > last + timedelta(days=1):
        raise InvalidValue(
            "cutoff",
            f"the held-out window ends {(at + timedelta(days=horizon)).date().isoformat()}, "
            f"after the last event ({last.date().isoformat()}): its churns are not known yet",
        )
    cutoffs = training_cutoffs(histories, at, horizon, step_days)
    train = [example for moment in cutoffs for example in examples_at(histories, moment, horizon)]
    model = train_risk_model(train, horizon)
    test = examples_at(histories, at, horizon)
    if not test:
        raise InvalidValue("cutoff", f"no account was active at {at.isoformat()}: nothing to test")
    labels = np.array([example.churned for example in test], dtype=int)
    predicted = model.probabilities([example.features for example in test])
    base = np.full(len(test), model.base_rate)
    auc: float | None = None
    reason = ""
    if labels.min() == labels.max():
        reason = f"every held-out account {'churned' if labels[0] else 'stayed'}: AUC is undefined"
    else:
        auc = float(roc_auc_score(labels, predicted))
    return RiskEvaluation(
        cutoff=at,
        horizon_days=horizon,
        training_cutoffs=len(cutoffs),
        train_examples=len(train),
        train_churns=sum(example.churned for example in train),
        test_examples=len(test),
        test_churns=int(labels.sum()),
        auc=auc,
        auc_reason=reason,
        base_rate=model.base_rate,
        base_rate_auc=0.5,
        brier=float(brier_score_loss(labels, predicted)),
        base_rate_brier=float(brier_score_loss(labels, base)),
        reliability=tuple(_reliability(predicted, labels)),
        coefficients=model.coefficients(),
    )


def score_accounts(
    histories: Histories,
    *,
    at: date | datetime,
    horizon_days: int = 180,
    step_days: int = 60,
) -> list[AccountRisk]:
    """Train on every window that ended by ``at`` and score the accounts active at ``at``,
    riskiest first."""
    moment = moment_of("at", at, end=True)
    horizon = _horizon(horizon_days)
    train = [
        example
        for cutoff in training_cutoffs(histories, moment, horizon, step_days)
        for example in examples_at(histories, cutoff, horizon)
    ]
    model = train_risk_model(train, horizon)
    now = examples_at(histories, moment, horizon)
    if not now:
        return []
    rows = [example.features for example in now]
    scored = [
        AccountRisk(account_id=example.account_id, probability=float(p), reasons=model.reasons(row))
        for example, row, p in zip(now, rows, model.probabilities(rows), strict=True)
    ]
    return sorted(scored, key=lambda risk: (-risk.probability, str(risk.account_id)))
