"""Contract lifetimes and cohort survival tables, from the ``kpi_facts`` read model.

A *lifetime* is one unbroken contract spell of an account: it starts with the contract start
(or a reactivation), survives a renewal decision with every renewal, and ends with a churn.
Time is counted in renewal decisions, the discrete periods of Fader and Hardie's contractual
setting: a lifetime that has been renewed ``k`` times and churns next ends at decision
``k + 1``; one still active is censored after ``k`` decisions. A win-back starts a new
lifetime in the cohort of its return. Pure Python: no optional dependency.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import attrs

from acctdomain.errors import InvalidValue

__all__ = [
    "COHORT_PERIODS",
    "CohortPeriod",
    "Lifetime",
    "Observations",
    "SurvivalRow",
    "cohort_of",
    "lifetimes_from_facts",
    "observations",
    "survival_table",
]

CohortPeriod = Literal["year", "quarter", "month"]
COHORT_PERIODS: tuple[str, ...] = ("year", "quarter", "month")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STARTS = frozenset({"started", "reactivated"})


@attrs.frozen(kw_only=True)
class Lifetime:
    """One contract spell: ``renewals`` survived, ``churned`` at the next decision or not
    (then still active, censored). ``arr`` is the annual recurring revenue at its end (zero
    once churned), in ``currency``."""

    account_id: UUID
    cohort: str
    started: date
    renewals: int
    churned: bool
    arr: Decimal
    currency: str
    segment: str

    @property
    def decisions(self) -> int:
        """Renewal decisions this lifetime has been through."""
        return self.renewals + int(self.churned)


def cohort_of(day: date, period: str = "year") -> str:
    """The cohort label of a start day: ``2024``, ``2024-Q2`` or ``2024-05``."""
    if period == "year":
        return f"{day.year:04d}"
    if period == "quarter":
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"
    if period == "month":
        return f"{day.year:04d}-{day.month:02d}"
    raise InvalidValue("cohort_by", f"expected one of {list(COHORT_PERIODS)}, got {period!r}")


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise InvalidValue("as_of", f"expected a timezone-aware datetime, got {moment!r}")
    return (moment - _EPOCH) // (datetime.resolution)


def _day(micros: int) -> date:
    return (_EPOCH + micros * datetime.resolution).date()


def lifetimes_from_facts(
    accounts: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    as_of: datetime,
    known_at: datetime | None = None,
    cohort_by: str = "year",
) -> list[Lifetime]:
    """The lifetimes of the accounts of ``kpi_facts`` (as yielded by
    :func:`acctdomain.builtin.scorecard_kpis.account_histories`), by the revenue facts
    effective up to ``as_of`` and recorded up to ``known_at`` (None: all)."""
    cohort_of(date(2000, 1, 1), cohort_by)  # InvalidValue for an unknown period
    end = _micros(as_of)
    known = None if known_at is None else _micros(known_at)
    found: list[Lifetime] = []
    for hex_id, row in accounts:
        facts = sorted(
            (
                fact
                for fact in row["revenue"]
                if fact[0] <= end and (known is None or fact[1] <= known)
            ),
            key=lambda fact: fact[0],
        )
        found.extend(_spells(UUID(hex_id), row, facts, cohort_by))
    return found


def _spells(
    account_id: UUID, row: Mapping[str, Any], facts: Sequence[Sequence[Any]], cohort_by: str
) -> Iterator[Lifetime]:
    started: date | None = None
    renewals = 0
    lines: Mapping[str, str] = {}
    for effective, _recorded, kind, after in facts:
        if kind in _STARTS and started is None:
            started, renewals = _day(effective), 0
        elif started is None:
            continue  # a change before any contract (or after a churn): no lifetime to count
        elif kind == "renewed":
            renewals += 1
        elif kind == "churned":
            yield _lifetime(account_id, row, started, renewals, True, {}, cohort_by)
            started = None
            continue
        lines = after
    if started is not None:
        yield _lifetime(account_id, row, started, renewals, False, lines, cohort_by)


def _lifetime(
    account_id: UUID,
    row: Mapping[str, Any],
    started: date,
    renewals: int,
    churned: bool,
    lines: Mapping[str, str],
    cohort_by: str,
) -> Lifetime:
    return Lifetime(
        account_id=account_id,
        cohort=cohort_of(started, cohort_by),
        started=started,
        renewals=renewals,
        churned=churned,
        arr=sum((Decimal(value) for value in lines.values()), Decimal(0)),
        currency=str(row["currency"]),
        segment=str(row["segment"]),
    )


@attrs.frozen
class Observations:
    """What a retention model is fitted on: ``churned_at[t]`` lifetimes churned at decision
    ``t`` (t >= 1), ``censored_after[k]`` lifetimes still active after ``k`` renewals."""

    churned_at: Mapping[int, int]
    censored_after: Mapping[int, int]

    @classmethod
    def from_survivors(cls, alive: Sequence[int]) -> Observations:
        """Aggregate cohort data as Fader and Hardie publish it: ``alive[t]`` customers left
        after ``t`` decisions (``alive[0]`` at the start), observed up to the last entry."""
        counts = [int(n) for n in alive]
        if len(counts) < 2 or counts[0] <= 0:
            raise InvalidValue(
                "alive", "expected the starting count (> 0) and at least one later count"
            )
        if any(b > a or b < 0 for a, b in itertools.pairwise(counts)):
            raise InvalidValue("alive", f"counts must not grow or go negative: {counts}")
        churned = {t: counts[t - 1] - counts[t] for t in range(1, len(counts))}
        return cls(
            churned_at={t: n for t, n in churned.items() if n},
            censored_after={len(counts) - 1: counts[-1]} if counts[-1] else {},
        )

    @property
    def lifetimes(self) -> int:
        """How many lifetimes."""
        return sum(self.churned_at.values()) + sum(self.censored_after.values())

    @property
    def churns(self) -> int:
        """How many lifetimes ended in churn."""
        return sum(self.churned_at.values())

    @property
    def decisions(self) -> int:
        """Renewal decisions observed in all (churns plus renewals)."""
        renewals = sum(n * (t - 1) for t, n in self.churned_at.items())
        renewals += sum(n * k for k, n in self.censored_after.items())
        return renewals + self.churns

    @property
    def last_period(self) -> int:
        """The latest decision any lifetime has been through (0: none)."""
        return max([*self.churned_at, *self.censored_after, 0])

    def at_risk(self, t: int) -> int:
        """Lifetimes that came to decision ``t``."""
        churned = sum(n for s, n in self.churned_at.items() if s >= t)
        return churned + sum(n for k, n in self.censored_after.items() if k >= t)


def observations(lifetimes: Iterable[Lifetime]) -> Observations:
    """The counts a model is fitted on, from lifetimes."""
    churned: dict[int, int] = {}
    censored: dict[int, int] = {}
    for lifetime in lifetimes:
        if lifetime.churned:
            churned[lifetime.decisions] = churned.get(lifetime.decisions, 0) + 1
        else:
            censored[lifetime.renewals] = censored.get(lifetime.renewals, 0) + 1
    return Observations(churned, censored)


@attrs.frozen(kw_only=True)
class SurvivalRow:
    """One decision of a cohort's survival table: how many came to it, churned at it and
    renewed, and the Kaplan-Meier survival after it (censored lifetimes leave the risk set
    before the decision they have not reached yet)."""

    cohort: str
    period: int
    at_risk: int
    churned: int
    renewed: int
    survival: float


def survival_table(lifetimes: Iterable[Lifetime]) -> list[SurvivalRow]:
    """Each cohort's survival table, cohorts in order, decisions 1, 2, ... while any
    lifetime came to them."""
    by_cohort: dict[str, list[Lifetime]] = {}
    for lifetime in lifetimes:
        by_cohort.setdefault(lifetime.cohort, []).append(lifetime)
    rows: list[SurvivalRow] = []
    for cohort in sorted(by_cohort):
        counts = observations(by_cohort[cohort])
        survival = 1.0
        for t in range(1, counts.last_period + 1):
            at_risk = counts.at_risk(t)
            if not at_risk:
                break
            churned = counts.churned_at.get(t, 0)
            survival *= 1 - churned / at_risk
            rows.append(
                SurvivalRow(
                    cohort=cohort,
                    period=t,
                    at_risk=at_risk,
                    churned=churned,
                    renewed=at_risk - churned,
                    survival=survival,
                )
            )
    return rows
