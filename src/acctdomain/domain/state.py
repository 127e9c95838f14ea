"""Plain-data views of an account, returned by queries instead of live aggregates."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

import attrs

from acctdomain.domain.records import (
    BusinessUnit,
    CustomerRequest,
    Goal,
    Issue,
    Opportunity,
    Stakeholder,
    Strategy,
    Tactic,
)
from acctdomain.domain.values import (
    AccountStatus,
    CesScore,
    ChurnReason,
    CsatScore,
    ManagerType,
    Money,
    NpsScore,
    ProductLine,
    Segment,
)

__all__ = ["AccountState"]


@attrs.frozen(kw_only=True)
class AccountState:
    """Everything an account's events say about it, at one version.

    Times named ``*_at`` are effective times; ``created_on`` and ``modified_on`` are recorded
    times of the first and last event included.
    """

    account_id: UUID
    version: int
    name: str
    segment: Segment
    industry: str
    currency: str
    manager: str
    manager_type: ManagerType
    external_key: str | None
    status: AccountStatus
    opened_at: datetime
    lines: tuple[ProductLine, ...]
    term_end: date | None
    renewal_due_on: date | None
    churned_at: datetime | None
    churn_reason: ChurnReason | None
    stakeholders: tuple[Stakeholder, ...]
    requests: tuple[CustomerRequest, ...]
    issues: tuple[Issue, ...]
    opportunities: tuple[Opportunity, ...]
    goals: tuple[Goal, ...]
    strategies: tuple[Strategy, ...]
    tactics: tuple[Tactic, ...]
    business_units: tuple[BusinessUnit, ...] = ()  # every unit ever added, removed ones too
    contact_count: int
    last_contact_at: datetime | None
    latest_nps: NpsScore | None
    latest_csat: CsatScore | None
    latest_ces: CesScore | None
    value_delivered: Money
    created_on: datetime
    modified_on: datetime

    @property
    def arr(self) -> Money:
        """Annual recurring revenue: the sum of the product lines."""
        total = Money.zero(self.currency)
        for line in self.lines:
            total += line.arr
        return total

    @property
    def open_issues(self) -> tuple[Issue, ...]:
        """Issues not resolved yet."""
        return tuple(issue for issue in self.issues if issue.is_open)
