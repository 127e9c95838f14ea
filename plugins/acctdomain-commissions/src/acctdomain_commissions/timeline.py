"""One account's ledger row, read as timelines: who managed it and its ARR, by day or instant.

Days are UTC calendar days. A day belongs to the state at its end: a change effective at any
time on a day (a reassignment, an upsell, a churn) applies to that whole day.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any, Literal

import attrs

from acctdomain.domain.values import Money

__all__ = ["AccountTimeline", "Opportunity", "Segment"]

Outcome = Literal["open", "renewed", "churned"]


@attrs.frozen
class Opportunity:
    """A renewal opportunity: due on ``due_on`` with ``arr_at_stake``; ``renewed_arr`` is the
    ARR of the renewed contract (None unless renewed); ``implied`` when nobody marked it due
    (a renewal or a churn at term end without a RenewalDue)."""

    due_on: date
    arr_at_stake: Money
    outcome: Outcome
    renewed_arr: Money | None
    implied: bool


@attrs.frozen
class Segment:
    """Consecutive days with one manager and one ARR."""

    first_day: date
    days: int
    manager: str | None
    arr: Decimal


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _by_day(times: list[datetime], values: list[Any]) -> tuple[list[date], list[Any]]:
    """The value at the end of each day a change happened (the last change of the day)."""
    days: list[date] = []
    last: list[Any] = []
    for moment, value in zip(times, values, strict=True):
        day = _utc_day(moment)
        if days and days[-1] == day:
            last[-1] = value
        else:
            days.append(day)
            last.append(value)
    return days, last


class AccountTimeline:
    """Queries on one ``commission_ledger`` account row."""

    def __init__(self, key: str, row: dict[str, Any]) -> None:
        self.key = key
        self.name: str = row["name"]
        self.currency: str = row["currency"]
        managers = sorted(((at, name) for at, name in row["managers"]), key=lambda e: e[0])
        self._manager_times = [at for at, _ in managers]
        self._managers: list[str] = [name for _, name in managers]
        self._arr_times: list[datetime] = [at for at, _, _ in row["arr"]]
        self._arr: list[Decimal] = [arr.amount for _, _, arr in row["arr"]]
        self._manager_days, self._managers_by_day = _by_day(self._manager_times, self._managers)
        self._arr_days, self._arr_by_day = _by_day(self._arr_times, self._arr)
        self.renewals = tuple(
            Opportunity(
                due_on=r["due_on"],
                arr_at_stake=r["arr_at_stake"],
                outcome=r["outcome"],
                renewed_arr=r["renewed_arr"],
                implied=r["marked_at"] is None,
            )
            for r in row["renewals"]
        )

    # --- by instant ----------------------------------------------------------------------------

    def manager_at(self, moment: datetime) -> str | None:
        """The manager in charge at ``moment`` (a change at that very instant included)."""
        index = bisect_right(self._manager_times, moment) - 1
        return self._managers[index] if index >= 0 else None

    def manager_before(self, moment: datetime) -> str | None:
        """The manager in charge just before ``moment``."""
        index = bisect_left(self._manager_times, moment) - 1
        return self._managers[index] if index >= 0 else None

    def arr_before(self, moment: datetime) -> Decimal:
        """The ARR just before ``moment`` (zero before the first contract and after a churn)."""
        index = bisect_left(self._arr_times, moment) - 1
        return self._arr[index] if index >= 0 else Decimal(0)

    def arr_changes(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, Decimal]]:
        """(effective time, ARR after minus ARR before) of each revenue change in
        [start, end]."""
        first = bisect_left(self._arr_times, start)
        last = bisect_right(self._arr_times, end)
        for index in range(first, last):
            before = self._arr[index - 1] if index > 0 else Decimal(0)
            yield self._arr_times[index], self._arr[index] - before

    # --- by day -------------------------------------------------------------------------------

    def manager_on(self, day: date) -> str | None:
        """The manager in charge on ``day`` (at its end); None before the account opened."""
        index = bisect_right(self._manager_days, day) - 1
        return self._managers_by_day[index] if index >= 0 else None

    def arr_on(self, day: date) -> Decimal:
        """The ARR on ``day`` (at its end)."""
        index = bisect_right(self._arr_days, day) - 1
        return self._arr_by_day[index] if index >= 0 else Decimal(0)

    def segments(self, start: date, end: date) -> Iterator[Segment]:
        """The days from ``start`` to ``end`` (both included) in runs of one manager and one
        ARR."""
        changes = {d for d in (*self._manager_days, *self._arr_days) if start < d <= end}
        bounds = [start, *sorted(changes), end + timedelta(days=1)]
        for first, after in pairwise(bounds):
            yield Segment(first, (after - first).days, self.manager_on(first), self.arr_on(first))
