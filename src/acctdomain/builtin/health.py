"""Built-in plugin ``builtin.health``: the standard signals of account health.

Each signal scores one thing an account manager watches from 0 (bad) to 1 (good), or says
nothing (None) when there is nothing to judge by. They read the account's
:class:`~acctdomain.builtin.facts.AccountFacts`, so scoring a whole book reads no event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from acctdomain.builtin.facts import AccountFacts, SurveyAnswer
from acctdomain.domain.values import IssueSeverity
from acctdomain.plugins import HealthSignal, hookimpl

__all__ = [
    "acctdomain_register_health_signals",
    "csat_trend",
    "engagement",
    "nps",
    "nps_trend",
    "open_issues",
    "plan_progress",
    "revenue_trend",
]

FRESH_DAYS = 14  # a contact this recent counts fully
SILENT_DAYS = 90  # no contact for this long scores zero


def engagement(facts: AccountFacts, now: datetime) -> float | None:
    """1 within FRESH_DAYS of the last contact, falling linearly to 0 at SILENT_DAYS."""
    last = facts.last_contact_at
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


def open_issues(facts: AccountFacts, now: datetime) -> float | None:
    """1 with no open issue; each open issue takes off by severity (critical: everything)."""
    burden = sum(SEVERITY_WEIGHT[issue.severity] for issue in facts.open_issues)
    return max(0.0, 1 - burden)


def nps(facts: AccountFacts, now: datetime) -> float | None:
    """Promoters (9-10) 1, passives (7-8) 0.5, detractors (0-6) 0; None before any answer."""
    latest = facts.latest("nps")
    if latest is None:
        return None
    return 1.0 if latest.score >= 9 else 0.5 if latest.score >= 7 else 0.0


TREND_WINDOW = 3  # the latest answers compared with as many before them


def _trend(answers: Sequence[SurveyAnswer], scale: float) -> float | None:
    """0.5 + (mean of the latest answers - mean of those before) / ``scale``, within [0, 1];
    None with fewer than two answers."""
    if len(answers) < 2:
        return None
    recent = answers[-TREND_WINDOW:] if len(answers) > TREND_WINDOW else answers[-1:]
    before = answers[-2 * TREND_WINDOW : -len(recent)]
    change = _mean(recent) - _mean(before)
    return min(1.0, max(0.0, 0.5 + change / scale))


def _mean(answers: Sequence[SurveyAnswer]) -> float:
    return sum(answer.score for answer in answers) / len(answers)


def nps_trend(facts: AccountFacts, now: datetime) -> float | None:
    """Whether NPS answers go up (1 at +5 points or more) or down (0 at -5 or less): the mean
    of the latest three against the three before (with three or fewer answers: the latest
    against the ones before it); None with fewer than two answers."""
    return _trend(facts.surveys.get("nps", ()), 10)


def csat_trend(facts: AccountFacts, now: datetime) -> float | None:
    """As :func:`nps_trend` for CSAT answers (1-5): 1 at +2 points or more, 0 at -2."""
    return _trend(facts.surveys.get("csat", ()), 4)


OVERDUE_PENALTY = 0.1  # taken off the plan's progress for each overdue item


def plan_progress(facts: AccountFacts, now: datetime) -> float | None:
    """The plan's completed share of tactics, less 0.1 per overdue goal or tactic; None while
    the plan has no tactic to measure."""
    ratio = facts.plan.progress.ratio
    if ratio is None:
        return None
    return max(0.0, float(ratio) - OVERDUE_PENALTY * len(facts.plan.overdue))


def revenue_trend(facts: AccountFacts, now: datetime) -> float | None:
    """ARR now against a year ago: 0.5 when flat, 1 at +50% or more, 0 at -50% or less (a
    churned account: 0); None without a contract a year ago."""
    before = facts.arr_year_ago
    if before is None or not before.amount:
        return None
    growth = float(facts.arr.amount / before.amount) - 1
    return min(1.0, max(0.0, 0.5 + growth))


@hookimpl(trylast=True)
def acctdomain_register_health_signals(register: Callable[[HealthSignal], None]) -> None:
    """Register engagement, open issues, NPS, the NPS and CSAT trends, plan progress and the
    revenue trend."""
    register(HealthSignal("engagement", 0.25, engagement, "Recency of the last contact."))
    register(HealthSignal("open_issues", 0.2, open_issues, "Open issues, by severity."))
    register(HealthSignal("nps", 0.15, nps, "The latest NPS answer."))
    register(HealthSignal("nps_trend", 0.1, nps_trend, "NPS answers going up or down."))
    register(HealthSignal("csat_trend", 0.05, csat_trend, "CSAT answers going up or down."))
    register(HealthSignal("plan_progress", 0.1, plan_progress, "Account-plan tactics done."))
    register(HealthSignal("revenue_trend", 0.15, revenue_trend, "ARR against a year ago."))
