"""The Account's events: immutable facts, one explicit class each so each can be versioned.

Every event carries, besides eventsourcing's ``originator_id``, ``originator_version`` and
``timestamp`` (the *recorded* time: when the event entered the store):

- ``effective_at``: when it happened in the business (the call, the renewal); may be backdated;
- ``actor``: who recorded it;
- ``correlation_id``: shared by every event of one command and of the reactions it causes;
- ``causation_id``: the event or message that caused this command, if any.

An event's ``apply`` hands it to the aggregate, which decides how its state evolves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from acctdomain.domain.identifiers import event_id_for
from acctdomain.domain.values import (
    Channel,
    ChurnReason,
    Direction,
    IssueSeverity,
    ManagerType,
    Money,
    OpportunityKind,
    ProductLine,
    Segment,
    Sentiment,
    StakeholderRole,
    SurveyScore,
)


@dataclass(frozen=True)
class AccountEvent(Aggregate.Event):
    """Base class of every Account event."""

    effective_at: datetime
    actor: str
    correlation_id: UUID
    causation_id: UUID | None

    @property
    def recorded_at(self) -> datetime:
        """When the event entered the store (eventsourcing's ``timestamp``)."""
        return self.timestamp

    @property
    def id(self) -> UUID:
        """The event's stable id, derived from its account and version (see ``event_id_for``)."""
        return event_id_for(self.originator_id, self.originator_version)

    def apply(self, aggregate: Any) -> None:
        aggregate.when(self)


@dataclass(frozen=True)
class AccountOpened(AccountEvent, Aggregate.Created):
    """A customer company became an account under an account manager."""

    name: str
    segment: Segment
    industry: str
    currency: str
    manager: str
    manager_type: ManagerType
    external_key: str | None


@dataclass(frozen=True)
class ManagerReassigned(AccountEvent):
    """The account moved to another account manager."""

    manager: str
    manager_type: ManagerType
    reason: str


@dataclass(frozen=True)
class ContractStarted(AccountEvent):
    """The first contract started with its product lines; ``term_end`` is the renewal date."""

    term_end: date
    lines: tuple[ProductLine, ...]


@dataclass(frozen=True)
class ContactLogged(AccountEvent):
    """A call, email, meeting or QBR with the customer.

    Version 2 added ``duration_minutes`` (None when unknown, as for every version 1 event).
    """

    class_version = 2

    channel: Channel
    direction: Direction
    summary: str
    stakeholder_ids: tuple[UUID, ...]
    duration_minutes: int | None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["duration_minutes"] = None


@dataclass(frozen=True)
class RequestReceived(AccountEvent):
    """The customer asked for something."""

    request_id: UUID
    subject: str
    channel: Channel


@dataclass(frozen=True)
class RequestAnswered(AccountEvent):
    """A customer request got its answer."""

    request_id: UUID
    response: str


@dataclass(frozen=True)
class StakeholderAdded(AccountEvent):
    """A customer-side person joined the stakeholder map."""

    stakeholder_id: UUID
    name: str
    title: str
    role: StakeholderRole
    sentiment: Sentiment


@dataclass(frozen=True)
class StakeholderUpdated(AccountEvent):
    """A stakeholder's title, role or sentiment changed (the event holds the new values)."""

    stakeholder_id: UUID
    title: str
    role: StakeholderRole
    sentiment: Sentiment


@dataclass(frozen=True)
class StakeholderRemoved(AccountEvent):
    """A stakeholder left the company or the buying group."""

    stakeholder_id: UUID
    reason: str


@dataclass(frozen=True)
class RenewalDue(AccountEvent):
    """A renewal entered the pipeline: the contract ends on ``due_on``."""

    due_on: date
    arr_at_stake: Money


@dataclass(frozen=True)
class Renewed(AccountEvent):
    """The contract was renewed until ``term_end`` with these lines (the complete new set)."""

    term_end: date
    lines: tuple[ProductLine, ...]
    arr_before: Money


@dataclass(frozen=True)
class Churned(AccountEvent):
    """The customer left: the renewal was lost or the contract cancelled."""

    reason: ChurnReason
    detail: str
    arr_lost: Money


@dataclass(frozen=True)
class Reactivated(AccountEvent):
    """A churned customer came back with a new contract."""

    term_end: date
    lines: tuple[ProductLine, ...]


@dataclass(frozen=True)
class Upsold(AccountEvent):
    """More of a product the customer already has (seats, tier)."""

    product: str
    added_arr: Money
    opportunity_id: UUID | None


@dataclass(frozen=True)
class CrossSold(AccountEvent):
    """A product the customer did not have yet."""

    product: str
    arr: Money
    opportunity_id: UUID | None


@dataclass(frozen=True)
class Downgraded(AccountEvent):
    """Contraction: less of a product (a line reduced to zero is removed)."""

    product: str
    reduced_by: Money
    reason: str


@dataclass(frozen=True)
class OpportunityOffered(AccountEvent):
    """An upsell or cross-sell was offered to the customer."""

    opportunity_id: UUID
    kind: OpportunityKind
    product: str
    estimated_arr: Money


@dataclass(frozen=True)
class OpportunityWon(AccountEvent):
    """The customer accepted an offer (an Upsold or CrossSold event follows)."""

    opportunity_id: UUID
    arr: Money


@dataclass(frozen=True)
class OpportunityLost(AccountEvent):
    """The customer declined an offer."""

    opportunity_id: UUID
    reason: str


@dataclass(frozen=True)
class IssueRaised(AccountEvent):
    """A problem was reported."""

    issue_id: UUID
    title: str
    severity: IssueSeverity
    category: str


@dataclass(frozen=True)
class IssueResponded(AccountEvent):
    """The first response to an issue reached the customer."""

    issue_id: UUID


@dataclass(frozen=True)
class IssueEscalated(AccountEvent):
    """An issue was escalated to an internal team."""

    issue_id: UUID
    to_team: str
    reason: str


@dataclass(frozen=True)
class IssueResolved(AccountEvent):
    """An issue was fixed."""

    issue_id: UUID
    resolution: str


@dataclass(frozen=True)
class FeedbackRecorded(AccountEvent):
    """A survey answer: NPS (0-10), CSAT (1-5) or CES (1-7)."""

    score: SurveyScore
    respondent: str
    comment: str


@dataclass(frozen=True)
class ValueDelivered(AccountEvent):
    """Value the customer got from us (money saved), in the contract currency."""

    amount: Money
    description: str


@dataclass(frozen=True)
class GoalSet(AccountEvent):
    """An account-plan goal was set."""

    goal_id: UUID
    title: str
    measure: str
    target_date: date | None


@dataclass(frozen=True)
class StrategyAdded(AccountEvent):
    """A strategy towards a goal was added."""

    strategy_id: UUID
    goal_id: UUID
    description: str


@dataclass(frozen=True)
class TacticAdded(AccountEvent):
    """A concrete tactic with an owner and due date was added to a strategy."""

    tactic_id: UUID
    strategy_id: UUID
    description: str
    owner: str
    due_on: date | None


@dataclass(frozen=True)
class TacticCompleted(AccountEvent):
    """A tactic was done."""

    tactic_id: UUID


@dataclass(frozen=True)
class TacticDropped(AccountEvent):
    """A tactic was given up."""

    tactic_id: UUID
    reason: str


@dataclass(frozen=True)
class GoalAchieved(AccountEvent):
    """A goal was reached."""

    goal_id: UUID


@dataclass(frozen=True)
class GoalAbandoned(AccountEvent):
    """A goal was given up."""

    goal_id: UUID
    reason: str


# --- business units and white space ---------------------------------------------------------


@dataclass(frozen=True)
class BusinessUnitAdded(AccountEvent):
    """A business unit of the customer (division, subsidiary, department) was recorded."""

    unit_id: UUID
    name: str


@dataclass(frozen=True)
class BusinessUnitRenamed(AccountEvent):
    """A business unit got a new name."""

    unit_id: UUID
    name: str


@dataclass(frozen=True)
class BusinessUnitRemoved(AccountEvent):
    """A business unit was closed, sold or merged: it leaves the white-space matrix."""

    unit_id: UUID
    reason: str


@dataclass(frozen=True)
class ProductAdopted(AccountEvent):
    """A business unit uses one of the account's product lines."""

    unit_id: UUID
    product: str


@dataclass(frozen=True)
class ProductAdoptionEnded(AccountEvent):
    """A business unit stopped using a product (the account's line may go on for others)."""

    unit_id: UUID
    product: str
    reason: str


@dataclass(frozen=True)
class ProductMarkedIneligible(AccountEvent):
    """A business unit cannot use a product (regulation, technology, a competitor's contract)."""

    unit_id: UUID
    product: str
    reason: str


@dataclass(frozen=True)
class ProductEligibilityRestored(AccountEvent):
    """A product marked ineligible for a business unit is possible again."""

    unit_id: UUID
    product: str


@dataclass(frozen=True)
class OpportunityTargeted(AccountEvent):
    """An open opportunity was aimed at one business unit (replacing any earlier target)."""

    opportunity_id: UUID
    unit_id: UUID


ACCOUNT_EVENT_TYPES: tuple[type[AccountEvent], ...] = (
    AccountOpened,
    ManagerReassigned,
    ContractStarted,
    ContactLogged,
    RequestReceived,
    RequestAnswered,
    StakeholderAdded,
    StakeholderUpdated,
    StakeholderRemoved,
    RenewalDue,
    Renewed,
    Churned,
    Reactivated,
    Upsold,
    CrossSold,
    Downgraded,
    OpportunityOffered,
    OpportunityWon,
    OpportunityLost,
    IssueRaised,
    IssueResponded,
    IssueEscalated,
    IssueResolved,
    FeedbackRecorded,
    ValueDelivered,
    GoalSet,
    StrategyAdded,
    TacticAdded,
    TacticCompleted,
    TacticDropped,
    GoalAchieved,
    GoalAbandoned,
    BusinessUnitAdded,
    BusinessUnitRenamed,
    BusinessUnitRemoved,
    ProductAdopted,
    ProductAdoptionEnded,
    ProductMarkedIneligible,
    ProductEligibilityRestored,
    OpportunityTargeted,
)
"""Every event class of the Account, in the order of DESIGN.md's vocabulary."""

ERASED = "[erased]"
"""What a personal field reads once its data subject was erased (its key destroyed)."""


@dataclass(frozen=True)
class SubjectErased(AccountEvent):
    """The personal data of one data subject of the account was erased: its key was destroyed,
    so the fields encrypted under it read :data:`ERASED` from now on. Holds no personal data
    (``reason`` must not name the person)."""

    subject_id: UUID
    reason: str


__all__ = sorted(
    [t.__name__ for t in ACCOUNT_EVENT_TYPES]
    + ["ACCOUNT_EVENT_TYPES", "AccountEvent", "ERASED", "SubjectErased"]
)
