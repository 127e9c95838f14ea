"""acctdomain-commissions: commission statements per account manager, under a plan.

Installed, it is found through the entry point ``commissions`` of group ``acctdomain`` and
adds the ``commission_ledger`` read model, the ``commission_payout`` scorecard figure and the
``acctdomain commissions`` command. In code::

    from acctdomain_commissions import statements
    for statement in statements(service, date(2026, 1, 1), date(2026, 3, 31)):
        print(statement.manager, statement.total)
"""

from acctdomain_commissions.figures import Ratio, RenewalFigures, RetentionFigures
from acctdomain_commissions.hooks import (
    acctdomain_register_cli_commands,
    acctdomain_register_kpis,
    acctdomain_register_projections,
)
from acctdomain_commissions.ledger import LEDGER, CommissionLedger
from acctdomain_commissions.plan import (
    DEFAULT_PLAN,
    PLAN_ENV_VAR,
    CommissionPlan,
    Target,
    load_plan,
    plan_from_mapping,
)
from acctdomain_commissions.statements import (
    DAYS_PER_YEAR,
    Statement,
    TargetResult,
    compute_statements,
    statements,
)

__version__ = "0.1.0"

__all__ = [
    "DAYS_PER_YEAR",
    "DEFAULT_PLAN",
    "LEDGER",
    "PLAN_ENV_VAR",
    "CommissionLedger",
    "CommissionPlan",
    "Ratio",
    "RenewalFigures",
    "RetentionFigures",
    "Statement",
    "Target",
    "TargetResult",
    "__version__",
    "acctdomain_register_cli_commands",
    "acctdomain_register_kpis",
    "acctdomain_register_projections",
    "compute_statements",
    "load_plan",
    "plan_from_mapping",
    "statements",
]
