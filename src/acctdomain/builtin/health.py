"""Built-in plugin ``builtin.health``: the standard signals of account health.

Each signal scores one thing an account manager watches from 0 (bad) to 1 (good), or says
nothing (None) when there is nothing to judge by.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from acctdomain.domain.state import AccountState
from acctdomain.domain.values import IssueSeverity
from acctdomain.plugins import HealthSignal, hookimpl

__all__ = ["acctdomain_register_health_signals", "engagement", "nps", "open_issues"]

FRESH_DAYS = 14  # a contact this recent counts fully
SILENT_DAYS = 90  # no contact for this long scores zero


def engagement(account: AccountState, now: datetime) -> float | None:
    """1 within FRESH_DAYS of the last contact, falling linearly to 0 at SILENT_DAYS."""
    last = account.last_contact_at
    if last is None:
        return 0.0
    days = (now - last).total_seconds() / 86_400
    if days <= FRESH_DAYS:
        return 1.0
    return max(0.0, 1 - (days - FRESH_DAYS) / (SILENT_DAYS - FRESH_DAYS))


SEVERITY_WEIGHT = {
    IssueSeverity.LOW: 0.1,
    IssueSeverity.MEDIUM: 0.25,
    IssueSeverity.HIGH: 0.5,
    IssueSeverity.CRITICAL: 1.0,
}


def open_issues(account: AccountState, now: datetime) -> float | None:
    """1 with no open issue; each open issue takes off by severity (critical: everything)."""
    burden = sum(SEVERITY_WEIGHT[issue.severity] for issue in account.open_issues)
    return max(0.0, 1 - burden)


def nps(account: AccountState, now: datetime) -> float | None:
    """Promoters (9-10) 1, passives (7-8) 0.5, detractors (0-6) 0; None before any answer."""
    if account.latest_nps is None:
        return None
    score = account.latest_nps.value
    return 1.0 if score >= 9 else 0.5 if score >= 7 else 0.0


@hookimpl(trylast=True)
def acctdomain_register_health_signals(register: Callable[[HealthSignal], None]) -> None:
    """Register engagement, open issues and NPS."""
    register(HealthSignal("engagement", 0.4, engagement, "Recency of the last contact."))
    register(HealthSignal("open_issues", 0.35, open_issues, "Open issues, by severity."))
    register(HealthSignal("nps", 0.25, nps, "The latest NPS answer."))
