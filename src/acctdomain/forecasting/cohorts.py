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
from operator import itemgetter
from typing import Any, Literal
from uuid import UUID

import attrs

from acctdomain.errors import InvalidValue

__all__ = [
    "COHORT_PERIODS",
    "CohortPeriod",
    "Lifetime",
    "Observations",
    "Spell",
    "SurvivalRow",
    "cohort_of",
    "known_decisions",
    "known_revenue",
    "lifetimes_from_facts",
    "observations",
    "renewal_counts",
    "spells",
    "survival_table",
]

CohortPeriod = Literal["year", "quarter", "month"]
COHORT_PERIODS: tuple[str, ...] = ("year", "quarter", "month")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STARTS = frozenset({"started", "reactivated"})
_DECISIONS = _STARTS | {"renewed", "churned"}


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
        account_id = UUID(hex_id)
        for started, renewals, churned, lines in spells(known_revenue(row, known), end):
            found.append(
                _lifetime(account_id, row, _day(started), renewals, churned, lines, cohort_by)
            )
    return found


def known_revenue(row: Mapping[str, Any], known: int | None = None) -> list[Sequence[Any]]:
    """The revenue facts of a ``kpi_facts`` account row (``[effective, recorded, kind, lines
    after]``) recorded by ``known`` (microseconds since the epoch; None: all), in effective
    order (facts of the same moment in the order recorded). What :func:`spells` reads: sorted
    once, it serves every ``as_of``."""
    return sorted(
        (fact for fact in row["revenue"] if known is None or fact[1] <= known),
        key=lambda fact: fact[0],
    )


Spell = tuple[int, int, bool, Mapping[str, str]]
"""A contract spell: its start (microseconds since the epoch), its renewals, whether it ended
in churn, and the revenue lines it ended with (empty once churned)."""


def spells(facts: Sequence[Sequence[Any]], end: int) -> Iterator[Spell]:
    """The contract spells of one account in its revenue ``facts`` (in effective order, as
    :func:`known_revenue` gives them) effective up to ``end`` (microseconds since the
    epoch)."""
    started: int | None = None
    renewals = 0
    lines: Mapping[str, str] = {}
    for effective, _recorded, kind, after in facts:
        if effective > end:
            break
        if kind in _STARTS and started is None:
            started, renewals = effective, 0
        elif started is None:
            continue  # a change before any contract (or after a churn): no lifetime to count
        elif kind == "renewed":
            renewals += 1
        elif kind == "churned":
            yield started, renewals, True, {}
            started = None
            continue
        lines = after
    if started is not None:
        yield started, renewals, False, lines


def known_decisions(row: Mapping[str, Any], known: int | None = None) -> list[tuple[int, str]]:
    """``(effective, kind)`` of the revenue facts of a ``kpi_facts`` account row that start,
    renew or end a contract spell (the others only change its revenue lines), recorded by
    ``known`` (microseconds since the epoch; None: all), in effective order (facts of the same
    moment in the order recorded): what :func:`renewal_counts` reads, for any ``as_of``."""
    return sorted(
        (
            (fact[0], fact[2])
            for fact in row["revenue"]
            if fact[2] in _DECISIONS and (known is None or fact[1] <= known)
        ),
        key=itemgetter(0),
    )


def renewal_counts(
    decisions_of_accounts: Iterable[Sequence[tuple[int, str]]], *, as_of: datetime
) -> tuple[Observations, list[int]]:
    """``observations(lifetimes)`` of the lifetimes of these accounts (their decisions as
    :func:`known_decisions` gives them) effective up to ``as_of``, and the renewals of each
    lifetime still active, in the order :func:`lifetimes_from_facts` gives them; without
    building the lifetimes (what a model fitted per scorecard needs). The spells are those
    of :func:`spells`."""
    end = _micros(as_of)
    churned: dict[int, int] = {}
    censored: dict[int, int] = {}
    active: list[int] = []
    for decisions in decisions_of_accounts:
        renewals = -1  # no spell open
        for effective, kind in decisions:
            if effective > end:
                break
            if renewals < 0:
                if kind in _STARTS:
                    renewals = 0
            elif kind == "renewed":
                renewals += 1
            elif kind == "churned":
                churned[renewals + 1] = churned.get(renewals + 1, 0) + 1
                renewals = -1
        if renewals >= 0:
            censored[renewals] = censored.get(renewals, 0) + 1
            active.append(renewals)
    return Observations(churned, censored), active


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
