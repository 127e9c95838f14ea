"""The application layer: the service, store selection, command options and results."""

from acctdomain.application.commands import CommandOptions, CommandResult
from acctdomain.application.service import AccountService
from acctdomain.application.stores import StoreSpec, parse_store

__all__ = ["AccountService", "CommandOptions", "CommandResult", "StoreSpec", "parse_store"]
