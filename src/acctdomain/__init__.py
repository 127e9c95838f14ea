"""acctdomain: the work of an account manager as an event-sourced domain.

The public API is re-exported here; implementation lives in modules with one job each.
"""

from acctdomain import errors
from acctdomain.application import (
    AccountService,
    CommandOptions,
    CommandResult,
    KpiSettings,
    StoreSpec,
    parse_store,
)
from acctdomain.domain import (
    AccountState,
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
    account_id_for,
)

__version__ = "0.1.0"

__all__ = [
    "AccountService",
    "AccountState",
    "AccountStatus",
    "CesScore",
    "Channel",
    "ChurnReason",
    "CommandOptions",
    "CommandResult",
    "CsatScore",
    "Direction",
    "IssueSeverity",
    "KpiSettings",
    "ManagerType",
    "Money",
    "NpsScore",
    "OpportunityKind",
    "ProductLine",
    "Segment",
    "Sentiment",
    "StakeholderRole",
    "StoreSpec",
    "__version__",
    "account_id_for",
    "errors",
    "parse_store",
]
