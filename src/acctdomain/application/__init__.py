"""The application layer: the service, store selection, command options and results."""

from acctdomain.application.commands import CommandOptions, CommandResult
from acctdomain.application.kpi_settings import KpiSettings
from acctdomain.application.service import AccountService
from acctdomain.application.stores import StoreSpec, parse_store

__all__ = [
    "AccountService",
    "CommandOptions",
    "CommandResult",
    "KpiSettings",
    "StoreSpec",
    "parse_store",
]
