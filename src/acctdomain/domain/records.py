"""Items an account keeps track of: stakeholders, requests, issues, opportunities, plan items.

They are frozen; the aggregate replaces a record with an evolved copy when an event changes it.
Times are effective times (when it happened in the business).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

import attrs

from acctdomain.domain.values import (
    Channel,
    IssueSeverity,
    Money,
    OpportunityKind,
    Sentiment,
    StakeholderRole,
)

__all__ = [
    "BusinessUnit",
    "CustomerRequest",
    "Goal",
    "GoalStatus",
    "Ineligibility",
    "Issue",
    "Opportunity",
    "OpportunityStatus",
    "Stakeholder",
    "Strategy",
    "Tactic",
    "TacticStatus",
]


class OpportunityStatus(StrEnum):
    """Where an upsell or cross-sell offer stands."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


class GoalStatus(StrEnum):
    """Where an account-plan goal stands."""

    OPEN = "open"
    ACHIEVED = "achieved"
    ABANDONED = "abandoned"


class TacticStatus(StrEnum):
    """Where an account-plan tactic stands."""

    OPEN = "open"
    COMPLETED = "completed"
    DROPPED = "dropped"


@attrs.frozen
class Stakeholder:
    """A person on the customer side and their part in decisions."""

    stakeholder_id: UUID
    name: str
    title: str
    role: StakeholderRole
    sentiment: Sentiment
    added_at: datetime
    removed_at: datetime | None = None
    updated_at: datetime | None = None  # when title, role or sentiment last changed

    @property
    def is_active(self) -> bool:
        """False once the person has left the account."""
        return self.removed_at is None


@attrs.frozen
class CustomerRequest:
    """Something the customer asked for; answered once."""

    request_id: UUID
    subject: str
    channel: Channel
    received_at: datetime
    answered_at: datetime | None = None


@attrs.frozen
class Issue:
    """A problem the customer has, from raised to resolved."""

    issue_id: UUID
    title: str
    severity: IssueSeverity
    category: str
    raised_at: datetime
    first_response_at: datetime | None = None
    escalated_to: tuple[str, ...] = ()
    resolved_at: datetime | None = None
    resolution: str = ""

    @property
    def is_open(self) -> bool:
        """True until the issue is resolved."""
        return self.resolved_at is None


@attrs.frozen
class Opportunity:
    """An upsell or cross-sell offered to the customer."""

    opportunity_id: UUID
    kind: OpportunityKind
    product: str
    estimated_arr: Money
    offered_at: datetime
    status: OpportunityStatus = OpportunityStatus.OPEN
    closed_at: datetime | None = None
    won_arr: Money | None = None
    unit_id: UUID | None = None  # the business unit it targets (OpportunityTargeted)


@attrs.frozen
class Goal:
    """An account-plan goal."""

    goal_id: UUID
    title: str
    measure: str
    target_date: date | None
    set_at: datetime
    status: GoalStatus = GoalStatus.OPEN
    closed_at: datetime | None = None
    close_reason: str = ""


@attrs.frozen
class Strategy:
    """How a goal will be reached."""

    strategy_id: UUID
    goal_id: UUID
    description: str
    added_at: datetime


@attrs.frozen
class Tactic:
    """A concrete step of a strategy, with an owner and a due date."""

    tactic_id: UUID
    strategy_id: UUID
    description: str
    owner: str
    due_on: date | None
    added_at: datetime
    status: TacticStatus = TacticStatus.OPEN
    closed_at: datetime | None = None
    close_reason: str = ""


@attrs.frozen
class Ineligibility:
    """A product a business unit cannot use, and why (marked by ``ProductMarkedIneligible``)."""

    product: str
    reason: str
    marked_at: datetime


@attrs.frozen
class BusinessUnit:
    """A business unit (division, subsidiary, department) of the customer, with the products
    of ours it uses (``products``, in adoption order) and those it cannot use
    (``ineligible``)."""

    unit_id: UUID
    name: str
    added_at: datetime
    products: tuple[str, ...] = ()
    ineligible: tuple[Ineligibility, ...] = ()
    renamed_at: datetime | None = None
    removed_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        """False once the unit was removed."""
        return self.removed_at is None

    def ineligibility(self, product: str) -> Ineligibility | None:
        """Why the unit cannot use ``product``, or None when it can."""
        return next((item for item in self.ineligible if item.product == product), None)
