"""A clock a test moves by hand, for the recorded (and default effective) time of commands."""

from __future__ import annotations

from datetime import datetime, timedelta

from acctdomain.domain.values import require_aware
from acctdomain.testing.defaults import START

__all__ = ["ManualClock"]


class ManualClock:
    """Callable clock for ``AccountService(clock=...)``: stands still until moved.

    >>> clock = ManualClock()
    >>> clock.advance(days=1).isoformat()
    '2026-01-06T09:00:00+00:00'
    """

    def __init__(self, start: datetime = START) -> None:
        self.now = require_aware("start", start)
        """The time the clock tells."""

    def __call__(self) -> datetime:
        return self.now

    def advance(
        self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0
    ) -> datetime:
        """Move forward (never back) and return the new time."""
        delta = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if delta < timedelta(0):
            raise ValueError(f"a clock does not go backwards (advance by {delta})")
        self.now += delta
        return self.now

    def set(self, moment: datetime) -> datetime:
        """Jump to ``moment`` (timezone-aware; earlier is allowed, to test late clocks)."""
        self.now = require_aware("moment", moment)
        return self.now
