"""Account health: a weighted score of the registered health signals, with a colour band."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import attrs

from acctdomain.errors import InvalidValue
from acctdomain.plugins.types import HealthSignal

if TYPE_CHECKING:
    from acctdomain.builtin.facts import AccountFacts

__all__ = ["Bands", "HealthScore", "SignalScore", "check_weights", "score_health"]

Band = Literal["green", "yellow", "red"]


@attrs.frozen
class Bands:
    """Score thresholds: ``green`` and above is green, ``yellow`` and above yellow, else red."""

    green: float = 0.7
    yellow: float = 0.4

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.yellow <= self.green <= 1:
            raise InvalidValue("bands", "expected 0 <= yellow <= green <= 1")

    def band(self, score: float) -> Band:
        """The colour of ``score``."""
        return "green" if score >= self.green else "yellow" if score >= self.yellow else "red"


@attrs.frozen
class SignalScore:
    """One signal's verdict: its score (None: nothing to judge by, or it failed) and weight."""

    name: str
    score: float | None
    weight: float


@attrs.frozen
class HealthScore:
    """An account's health: the weighted mean of the signals that had something to say."""

    account_id: object
    score: float | None
    band: Band | None
    signals: tuple[SignalScore, ...]


def check_weights(
    weights: Mapping[str, float] | None, signals: Mapping[str, HealthSignal]
) -> Mapping[str, float]:
    """``weights`` (signal name to a number >= 0; 0 leaves a signal out) if every name is a
    registered signal, else ``InvalidValue`` naming the weight that is wrong."""
    if weights is None:
        return {}
    if not isinstance(weights, Mapping):
        raise InvalidValue("weights", f"expected a mapping, got {type(weights).__name__}")
    for name, weight in weights.items():
        if name not in signals:
            known = ", ".join(sorted(signals))
            raise InvalidValue(f"weights.{name}", f"no such health signal (known: {known})")
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight < 0
        ):
            raise InvalidValue(f"weights.{name}", f"expected a number >= 0, got {weight!r}")
    return weights


def score_health(
    facts: AccountFacts,
    signals: Mapping[str, HealthSignal],
    now: datetime,
    *,
    bands: Bands = Bands(),
    weights: Mapping[str, float] | None = None,
    run: Callable[[HealthSignal, AccountFacts, datetime], float | None] | None = None,
) -> HealthScore:
    """Score the account of ``facts`` at ``now``. ``weights`` override the signals' own
    (checked by :func:`check_weights`). ``run`` calls one signal (the plugin host passes one
    that records a failing signal against its plugin and treats it as silent)."""
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise InvalidValue("now", f"expected a timezone-aware datetime, got {now!r}")
    chosen = check_weights(weights, signals)
    verdicts = []
    for signal in signals.values():
        weight = chosen.get(signal.name, signal.weight)
        if not weight:
            continue
        score = run(signal, facts, now) if run else signal.score(facts, now)
        if score is not None and not 0 <= score <= 1:
            score = None  # out of range says nothing trustworthy
        verdicts.append(SignalScore(signal.name, score, weight))
    weighed = [(v.score, v.weight) for v in verdicts if v.score is not None]
    total = sum(weight for _, weight in weighed)
    if not total:
        return HealthScore(facts.account_id, None, None, tuple(verdicts))
    score = sum(s * w for s, w in weighed) / total
    return HealthScore(facts.account_id, score, bands.band(score), tuple(verdicts))
