"""The pure domain model: value objects, the Account aggregate, its events and records.

Imports only the standard library, ``attrs``, ``eventsourcing.domain`` and ``acctdomain.errors``.
"""

from acctdomain.domain.account import Account, EventContext
from acctdomain.domain.events import ACCOUNT_EVENT_TYPES, AccountEvent
from acctdomain.domain.identifiers import account_id_for
from acctdomain.domain.records import (
    BusinessUnit,
    CustomerRequest,
    Goal,
    GoalStatus,
    Ineligibility,
    Issue,
    Opportunity,
    OpportunityStatus,
    Stakeholder,
    Strategy,
    Tactic,
    TacticStatus,
)
from acctdomain.domain.state import AccountState
from acctdomain.domain.values import (
    AccountStatus,
    CesScore,
    Channel,
    ChurnReason,
    CsatScore,
    Direction,
    IssueSeverity,
    ManagerType,
    Money,
    NpsScore,
    OpportunityKind,
    ProductLine,
    Segment,
    Sentiment,
    StakeholderRole,
    SurveyScore,
)

VALUE_TYPES: tuple[type, ...] = (
    Money,
    ProductLine,
    NpsScore,
    CsatScore,
    CesScore,
    Stakeholder,
    CustomerRequest,
    Issue,
    Opportunity,
    Goal,
    Strategy,
    Tactic,
    BusinessUnit,
    Ineligibility,
)
"""attrs value classes that appear in events or aggregate state (and need a transcoding)."""

ENUM_TYPES: tuple[type, ...] = (
    AccountStatus,
    Channel,
    ChurnReason,
    Direction,
    GoalStatus,
    IssueSeverity,
    ManagerType,
    OpportunityKind,
    OpportunityStatus,
    Segment,
    Sentiment,
    StakeholderRole,
    TacticStatus,
)
"""Enums that appear in events or aggregate state (and need a transcoding)."""

__all__ = [
    "ACCOUNT_EVENT_TYPES",
    "ENUM_TYPES",
    "VALUE_TYPES",
    "Account",
    "AccountEvent",
    "AccountState",
    "AccountStatus",
    "BusinessUnit",
    "CesScore",
    "Channel",
    "ChurnReason",
    "CsatScore",
    "CustomerRequest",
    "Direction",
    "EventContext",
    "Goal",
    "GoalStatus",
    "Ineligibility",
    "Issue",
    "IssueSeverity",
    "ManagerType",
    "Money",
    "NpsScore",
    "Opportunity",
    "OpportunityKind",
    "OpportunityStatus",
    "ProductLine",
    "Segment",
    "Sentiment",
    "Stakeholder",
    "StakeholderRole",
    "Strategy",
    "SurveyScore",
    "Tactic",
    "TacticStatus",
    "account_id_for",
]
