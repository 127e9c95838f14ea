"""The plugin's hook implementations: a projection, a KPI and a command."""

from __future__ import annotations

from collections.abc import Callable

from acctdomain.plugins import CliCommand, Kpi, Projection, hookimpl
from acctdomain_commissions.cli import COMMAND
from acctdomain_commissions.kpis import PAYOUT
from acctdomain_commissions.ledger import CommissionLedger

__all__ = [
    "acctdomain_register_cli_commands",
    "acctdomain_register_kpis",
    "acctdomain_register_projections",
]


@hookimpl
def acctdomain_register_projections(register: Callable[[Projection], None]) -> None:
    """Register the ``commission_ledger`` read model."""
    register(CommissionLedger())


@hookimpl
def acctdomain_register_kpis(register: Callable[[Kpi], None]) -> None:
    """Register ``commission_payout``."""
    register(PAYOUT)


@hookimpl
def acctdomain_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """Register ``acctdomain commissions``."""
    register(COMMAND)
