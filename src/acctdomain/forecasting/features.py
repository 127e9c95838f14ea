"""Churn-risk features of an account at a moment, derived from its events.

:func:`account_features` folds the events effective up to ``at`` (a late entry counts from its
effective time: the store as it is now, not as it was known then) into the figures an account
manager watches: engagement recency, open issues and their age, NPS and CSAT level and trend,
downgrades, stakeholder coverage, account-plan progress and how close the renewal is. Pure
Python: no optional dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from uuid import UUID

from acctdomain.domain import events as ev
from acctdomain.domain.values import (
    CsatScore,
    IssueSeverity,
    NpsScore,
    Segment,
    Sentiment,
    StakeholderRole,
    require_aware,
)
from acctdomain.errors import InvalidValue

__all__ = ["FEATURES", "account_features", "churned_between", "is_active_at"]

FEATURES: tuple[str, ...] = (
    "days_since_contact",
    "contacts_per_month_180d",
    "open_issues",
    "open_severe_issues",
    "oldest_open_issue_days",
    "severe_issues_180d",
    "escalations_180d",
    "nps_latest",
    "nps_trend",
    "nps_stale",
    "csat_latest",
    "csat_trend",
    "downgrades_365d",
    "champion",
    "champion_left_365d",
    "key_role_coverage",
    "negative_key_stakeholders",
    "positive_key_stakeholders",
    "tactics_completed_365d",
    "tactics_overdue",
    "goals_abandoned_365d",
    "value_delivered_365d",
    "days_to_renewal",
    "renewal_in_horizon",
    "tenure_years",
    "segment_mid_market",
    "segment_enterprise",
)
"""The features, in the order of a feature vector (docs/forecasting.md describes each)."""

_KEY_ROLES = frozenset(
    {
        StakeholderRole.CHAMPION,
        StakeholderRole.ECONOMIC_BUYER,
        StakeholderRole.DECISION_MAKER,
        StakeholderRole.EXECUTIVE_SPONSOR,
    }
)
_SEVERE = frozenset({IssueSeverity.HIGH, IssueSeverity.CRITICAL})
_STARTS = (ev.ContractStarted, ev.Reactivated)


def _days(delta: timedelta) -> float:
    return delta.total_seconds() / 86400


def is_active_at(events: Sequence[ev.AccountEvent], at: datetime) -> bool:
    """Whether the account had a running contract at ``at`` (effective time)."""
    active = False
    for event in sorted(events, key=lambda e: e.effective_at):
        if event.effective_at > at:
            break
        if isinstance(event, (*_STARTS, ev.Renewed)):
            active = True
        elif isinstance(event, ev.Churned):
            active = False
    return active


def churned_between(events: Sequence[ev.AccountEvent], start: datetime, end: datetime) -> bool:
    """Whether a churn is effective in ``(start, end]``."""
    return any(isinstance(e, ev.Churned) and start < e.effective_at <= end for e in events)


def account_features(
    events: Sequence[ev.AccountEvent], at: datetime, *, horizon_days: int = 180
) -> dict[str, float] | None:
    """The features of an account at ``at``, or None when it had no running contract then
    (nothing to churn). ``horizon_days`` sets ``renewal_in_horizon``."""
    require_aware("at", at)
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int) or horizon_days < 1:
        raise InvalidValue("horizon_days", f"expected a whole number >= 1, got {horizon_days!r}")
    if not is_active_at(events, at):
        return None
    opened: datetime | None = None
    started: datetime | None = None
    segment = Segment.SMB
    term_end: date | None = None
    contacts: list[datetime] = []
    issues: dict[UUID, tuple[datetime, IssueSeverity]] = {}
    severe_raised: list[datetime] = []
    escalations: list[datetime] = []
    nps: list[tuple[datetime, int]] = []
    csat: list[tuple[datetime, int]] = []
    downgrades: list[datetime] = []
    people: dict[UUID, tuple[StakeholderRole, Sentiment]] = {}
    champion_left: list[datetime] = []
    tactics: dict[UUID, date | None] = {}
    completed: list[datetime] = []
    abandoned: list[datetime] = []
    value: list[datetime] = []
    for event in sorted((e for e in events if e.effective_at <= at), key=lambda e: e.effective_at):
        when = event.effective_at
        if isinstance(event, ev.AccountOpened):
            opened, segment = when, event.segment
        elif isinstance(event, _STARTS):
            started = started or when
            term_end = event.term_end
        elif isinstance(event, ev.Renewed):
            term_end = event.term_end
        elif isinstance(event, ev.ContactLogged):
            contacts.append(when)
        elif isinstance(event, ev.IssueRaised):
            issues[event.issue_id] = (when, event.severity)
            if event.severity in _SEVERE:
                severe_raised.append(when)
        elif isinstance(event, ev.IssueEscalated):
            escalations.append(when)
        elif isinstance(event, ev.IssueResolved):
            issues.pop(event.issue_id, None)
        elif isinstance(event, ev.FeedbackRecorded):
            if isinstance(event.score, NpsScore):
                nps.append((when, event.score.value))
            elif isinstance(event.score, CsatScore):
                csat.append((when, event.score.value))
        elif isinstance(event, ev.Downgraded):
            downgrades.append(when)
        elif isinstance(event, ev.StakeholderAdded | ev.StakeholderUpdated):
            people[event.stakeholder_id] = (event.role, event.sentiment)
        elif isinstance(event, ev.StakeholderRemoved):
            gone = people.pop(event.stakeholder_id, None)
            if gone is not None and gone[0] is StakeholderRole.CHAMPION:
                champion_left.append(when)
        elif isinstance(event, ev.TacticAdded):
            tactics[event.tactic_id] = event.due_on
        elif isinstance(event, ev.TacticCompleted):
            tactics.pop(event.tactic_id, None)
            completed.append(when)
        elif isinstance(event, ev.TacticDropped):
            tactics.pop(event.tactic_id, None)
        elif isinstance(event, ev.GoalAbandoned):
            abandoned.append(when)
        elif isinstance(event, ev.ValueDelivered):
            value.append(when)

    def recent(times: list[datetime], days: int) -> float:
        return float(sum(1 for moment in times if moment > at - timedelta(days=days)))

    first = opened or at
    tenure = max(_days(at - (started or first)), 0.0)
    window = min(180.0, max(_days(at - first), 30.0))
    key = [(role, mood) for role, mood in people.values() if role in _KEY_ROLES]
    roles = {role for role, _ in key}
    today = at.date()
    renewal = 730.0 if term_end is None else float(min(max((term_end - today).days, 0), 730))
    last_nps = nps[-1] if nps else None
    return {
        "days_since_contact": min(_days(at - (contacts[-1] if contacts else first)), 365.0),
        "contacts_per_month_180d": recent(contacts, int(window)) * 30 / window,
        "open_issues": float(len(issues)),
        "open_severe_issues": float(sum(sev in _SEVERE for _, sev in issues.values())),
        "oldest_open_issue_days": min(
            max((_days(at - raised) for raised, _ in issues.values()), default=0.0), 365.0
        ),
        "severe_issues_180d": recent(severe_raised, 180),
        "escalations_180d": recent(escalations, 180),
        "nps_latest": float(nps[-1][1]) if nps else 7.0,
        "nps_trend": float(nps[-1][1] - nps[-2][1]) if len(nps) > 1 else 0.0,
        "nps_stale": float(last_nps is None or last_nps[0] < at - timedelta(days=365)),
        "csat_latest": float(csat[-1][1]) if csat else 3.5,
        "csat_trend": float(csat[-1][1] - csat[-2][1]) if len(csat) > 1 else 0.0,
        "downgrades_365d": recent(downgrades, 365),
        "champion": float(StakeholderRole.CHAMPION in roles),
        "champion_left_365d": recent(champion_left, 365),
        "key_role_coverage": len(roles) / len(_KEY_ROLES),
        "negative_key_stakeholders": float(sum(m is Sentiment.NEGATIVE for _, m in key)),
        "positive_key_stakeholders": float(sum(m is Sentiment.POSITIVE for _, m in key)),
        "tactics_completed_365d": recent(completed, 365),
        "tactics_overdue": float(sum(due is not None and due < today for due in tactics.values())),
        "goals_abandoned_365d": recent(abandoned, 365),
        "value_delivered_365d": float(recent(value, 365) > 0),
        "days_to_renewal": renewal,
        "renewal_in_horizon": float(renewal <= horizon_days),
        "tenure_years": tenure / 365.25,
        "segment_mid_market": float(segment is Segment.MID_MARKET),
        "segment_enterprise": float(segment is Segment.ENTERPRISE),
    }
