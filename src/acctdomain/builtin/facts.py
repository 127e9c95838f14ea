"""What the workday views know about one account, gathered from the read models.

:func:`account_facts` reads, for one account, the rows of ``accounts`` (identity, revenue now,
renewal, last contact), ``attention`` (open issues and requests, survey answers, detractors
without follow-up), ``kpi_facts`` (revenue a year ago), ``account_plans`` and
``stakeholders``, and returns them as one frozen :class:`AccountFacts`. Health signals score
these facts, and the portfolio and the prioritised day are built from them: no event is read.

The facts are the read models as they are now, looked at on ``today``: ``today`` sets the
ages, the overdue items, the ARR (from the revenue history) and the "year ago" of the revenue
trend. What is effective after the end of ``today`` is left out where the read models keep it
(survey answers, open issues and requests, unhappy answers); what was closed since (an issue
resolved, a request answered) cannot come back, and the status, renewal and last contact are
the current ones. For a past day exactly as it was known, read the read models as known then
(``acctdomain.audit.read_models_as_known_at``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import attrs

from acctdomain.builtin.attention import ATTENTION
from acctdomain.builtin.kpi_facts import EPOCH, REVENUE, micros
from acctdomain.builtin.plans import AccountPlan, account_plan
from acctdomain.builtin.stakeholders import StakeholderMap, stakeholder_map
from acctdomain.builtin.workday import account_row, require_account_id, require_day
from acctdomain.domain.values import (
    AccountStatus,
    Channel,
    IssueSeverity,
    ManagerType,
    Money,
    Segment,
)
from acctdomain.plugins.types import ReadModel

__all__ = [
    "AccountFacts",
    "OpenIssue",
    "OpenRequest",
    "SurveyAnswer",
    "account_facts",
    "arr_on",
    "arr_on_days",
    "lines_total",
    "moment",
    "read_once",
]

ReadModels = Callable[[str], ReadModel]


def read_once(read_models: ReadModels) -> ReadModels:
    """``read_models`` that looks each read model up once (a lookup reads which version is
    served): for the facts of a whole book."""
    return functools.cache(read_models)


def moment(micro: int) -> datetime:
    """A ``kpi_facts``/``attention`` time (microseconds since 1970 UTC) as a datetime."""
    return EPOCH + timedelta(microseconds=micro)


@attrs.frozen
class OpenIssue:
    """An issue not resolved yet."""

    issue_id: UUID
    severity: IssueSeverity
    raised_at: datetime
    first_response_at: datetime | None
    escalated_to: tuple[str, ...]


@attrs.frozen
class OpenRequest:
    """A customer request not answered yet."""

    request_id: UUID
    channel: Channel
    received_at: datetime


@attrs.frozen
class SurveyAnswer:
    """One survey answer: ``kind`` is ``nps``, ``csat`` or ``ces``."""

    at: datetime
    kind: str
    score: int


@attrs.frozen(kw_only=True)
class AccountFacts:
    """One account as the read models know it, looked at on ``today``."""

    account_id: UUID
    today: date
    name: str
    segment: Segment
    industry: str
    manager: str
    manager_type: ManagerType
    status: AccountStatus
    currency: str
    opened_at: datetime
    arr: Money  # at the end of ``today``
    arr_year_ago: Money | None  # None: no contract had started 365 days before (0: churned)
    renewal_due_on: date | None
    term_end: date | None
    last_contact_at: datetime | None
    open_issues: tuple[OpenIssue, ...]  # oldest first
    open_requests: tuple[OpenRequest, ...]  # oldest first
    surveys: Mapping[str, tuple[SurveyAnswer, ...]]  # by kind, the latest few, oldest first
    awaiting_follow_up: tuple[SurveyAnswer, ...]  # unhappy answers no contact followed yet
    plan: AccountPlan
    stakeholders: StakeholderMap

    def latest(self, kind: str) -> SurveyAnswer | None:
        """The latest answer of survey ``kind`` (``nps``, ``csat``, ``ces``), or None."""
        answers = self.surveys.get(kind, ())
        return answers[-1] if answers else None


def account_facts(read_models: ReadModels, account_id: UUID, *, today: date) -> AccountFacts:
    """The facts of ``account_id`` on ``today`` (a date; effective time, UTC).

    ``read_models`` gives a read model by name (``service.read_model``). Raises
    ``InvalidValue`` naming ``account_id`` or ``today``, and ``AccountNotFound`` when a read
    model has no row for the account (unknown, or not caught up).
    """
    account = require_account_id(account_id)
    day = require_day("today", today)
    row = account_row(read_models("accounts"), "accounts", "accounts", account)
    attention = account_row(read_models("attention"), "attention", ATTENTION, account)
    currency = row["currency"]
    end = micros(datetime.combine(day, time.max, tzinfo=UTC))
    arr, arr_year_ago = arr_on_days(
        read_models("kpi_facts"), account, (day, day - timedelta(days=365)), currency
    )
    return AccountFacts(
        account_id=account,
        today=day,
        name=row["name"],
        segment=Segment(row["segment"]),
        industry=row["industry"],
        manager=row["manager"],
        manager_type=ManagerType(row["manager_type"]),
        status=AccountStatus(row["status"]),
        currency=currency,
        opened_at=row["opened_at"],
        arr=arr or Money.zero(currency),
        arr_year_ago=arr_year_ago,
        renewal_due_on=row["renewal_due_on"],
        term_end=row["term_end"],
        last_contact_at=row["last_contact_at"],
        open_issues=tuple(sorted(_issues(attention["issues"], end), key=lambda i: i.raised_at)),
        open_requests=tuple(
            sorted(_requests(attention["requests"], end), key=lambda r: r.received_at)
        ),
        surveys={
            kind: tuple(SurveyAnswer(moment(at), kind, score) for at, score in answers if at <= end)
            for kind, answers in sorted(attention["surveys"].items())
        },
        awaiting_follow_up=tuple(
            SurveyAnswer(moment(at), kind, score)
            for at, kind, score in sorted(attention["detractors"], key=lambda d: d[0])
            if at <= end
        ),
        plan=account_plan(read_models("account_plans"), account, today=day),
        stakeholders=stakeholder_map(read_models("stakeholders"), account, today=day),
    )


def arr_on(kpi_facts: ReadModel, account_id: UUID, day: date, currency: str) -> Money | None:
    """The account's ARR at the end of ``day`` from the ``kpi_facts`` revenue history (the
    lines left by the last revenue fact effective by then; 0 after a churn); None before its
    first contract."""
    return arr_on_days(kpi_facts, account_id, (day,), currency)[0]


def arr_on_days(
    kpi_facts: ReadModel, account_id: UUID, days: tuple[date, ...], currency: str
) -> tuple[Money | None, ...]:
    """:func:`arr_on` for several days, reading the revenue history once."""
    ends = [micros(datetime.combine(day, time.max, tzinfo=UTC)) for day in days]
    found: list[dict[str, str] | None] = [None] * len(days)
    for _, row in kpi_facts.scan(REVENUE, f"{account_id.hex}:"):
        for effective, _recorded, _kind, after in row["revenue"]:
            for index, until in enumerate(ends):
                if effective <= until:
                    found[index] = after
    return tuple(None if lines is None else lines_total(lines, currency) for lines in found)


def lines_total(lines: Mapping[str, str], currency: str) -> Money:
    """The ARR of the product lines a ``kpi_facts`` revenue fact left (amounts as text)."""
    return Money(sum((Decimal(amount) for amount in lines.values()), Decimal(0)), currency)


def _issues(issues: Mapping[str, dict[str, Any]], end: int) -> list[OpenIssue]:
    return [
        OpenIssue(
            issue_id=UUID(key),
            severity=IssueSeverity(issue["severity"]),
            raised_at=moment(issue["raised"]),
            first_response_at=(
                None
                if issue["responded"] is None or issue["responded"] > end
                else moment(issue["responded"])
            ),
            escalated_to=tuple(issue["escalated"]),
        )
        for key, issue in issues.items()
        if issue["raised"] <= end
    ]


def _requests(requests: Mapping[str, dict[str, Any]], end: int) -> list[OpenRequest]:
    return [
        OpenRequest(UUID(key), Channel(request["channel"]), moment(request["received"]))
        for key, request in requests.items()
        if request["received"] <= end
    ]
