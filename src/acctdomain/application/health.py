"""Account health: a weighted score of the registered health signals, with a colour band."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Literal

import attrs

from acctdomain.domain.state import AccountState
from acctdomain.errors import InvalidValue
from acctdomain.plugins.types import HealthSignal

__all__ = ["Bands", "HealthScore", "SignalScore", "score_health"]

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


def score_health(
    account: AccountState,
    signals: Mapping[str, HealthSignal],
    now: datetime,
    *,
    bands: Bands = Bands(),
    run: Callable[[HealthSignal, AccountState, datetime], float | None] | None = None,
) -> HealthScore:
    """Score ``account`` at ``now``. ``run`` calls one signal (the plugin host passes one that
    records a failing signal against its plugin and treats it as silent)."""
    verdicts = []
    for signal in signals.values():
        score = run(signal, account, now) if run else signal.score(account, now)
        if score is not None and not 0 <= score <= 1:
            score = None  # out of range says nothing trustworthy
        verdicts.append(SignalScore(signal.name, score, signal.weight))
    weighed = [(v.score, v.weight) for v in verdicts if v.score is not None]
    total = sum(weight for _, weight in weighed)
    if not total:
        return HealthScore(account.account_id, None, None, tuple(verdicts))
    score = sum(s * w for s, w in weighed) / total
    return HealthScore(account.account_id, score, bands.band(score), tuple(verdicts))
