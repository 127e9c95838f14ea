"""Built-in plugin ``builtin.workday``: the read models of an account manager's workday.

It registers, through the same hook as any plugin:

- ``account_plans`` (:mod:`acctdomain.builtin.plans`): goals, strategies and tactics, with
  the view :func:`~acctdomain.builtin.plans.account_plan` (progress, overdue items);
- ``stakeholders`` (:mod:`acctdomain.builtin.stakeholders`): the people on the customer side
  and when each was last met, with the view
  :func:`~acctdomain.builtin.stakeholders.stakeholder_map` (the gaps an AM should see);
- ``value_realised`` (:mod:`acctdomain.builtin.value`): the value delivered to the customer,
  with the view :func:`~acctdomain.builtin.value.value_realised` (per period and currency);
- ``attention`` (:mod:`acctdomain.builtin.attention`): what waits for the account manager
  (open issues and requests, survey answers, unhappy answers without follow-up), read with the
  others by :func:`~acctdomain.builtin.facts.account_facts` for health, the portfolio and the
  prioritised day.

Each keeps the rows of an account apart (``account_share``), decodes only the events it needs
and keeps rows that grow with the account's plan or stakeholder map, never with its history.
The helpers below check the arguments the views share.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from uuid import UUID

from acctdomain.errors import AccountNotFound, InvalidValue
from acctdomain.plugins import CliCommand, Projection, ReadModel, hookimpl

__all__ = [
    "account_row",
    "acctdomain_register_cli_commands",
    "acctdomain_register_projections",
    "require_account_id",
    "require_day",
    "require_read_model",
]


def require_read_model(read_model: object) -> ReadModel:
    """``read_model`` if it reads rows (``get`` and ``scan``), else ``InvalidValue``."""
    if not (
        callable(getattr(read_model, "get", None)) and callable(getattr(read_model, "scan", None))
    ):
        raise InvalidValue(
            "read_model",
            f"expected a read model (service.read_model(name)), got {type(read_model).__name__}",
        )
    return read_model  # type: ignore[return-value]


def require_account_id(account_id: object) -> UUID:
    """``account_id`` if it is a UUID, else ``InvalidValue``."""
    if not isinstance(account_id, UUID):
        raise InvalidValue("account_id", f"expected a UUID, got {type(account_id).__name__}")
    return account_id


def require_day(field: str, value: object) -> date:
    """``value`` if it is a date (not a datetime), else ``InvalidValue`` naming ``field``."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise InvalidValue(field, f"expected a date, got {type(value).__name__}")
    return value


def account_row(read_model: ReadModel, name: str, table: str, account_id: object) -> dict[str, Any]:
    """The row of ``account_id`` in ``table`` of the read model ``name``; ``AccountNotFound``
    when there is none (an unknown account, or a read model not caught up yet)."""
    account = require_account_id(account_id)
    row = read_model.get(table, account.hex)
    if row is None:
        raise AccountNotFound(account, f"not in the read model {name!r} (is it caught up?)")
    return row


@hookimpl
def acctdomain_register_projections(register: Callable[[Projection], None]) -> None:
    """Register ``account_plans``, ``stakeholders``, ``value_realised`` and ``attention``."""
    # Imported here: the view modules import the helpers above.
    from acctdomain.builtin.attention import AttentionProjection
    from acctdomain.builtin.plans import AccountPlansProjection
    from acctdomain.builtin.stakeholders import StakeholdersProjection
    from acctdomain.builtin.value import ValueRealisedProjection
    from acctdomain.builtin.whitespace import WhiteSpaceProjection

    register(AccountPlansProjection())
    register(StakeholdersProjection())
    register(ValueRealisedProjection())
    register(WhiteSpaceProjection())
    register(AttentionProjection())


@hookimpl
def acctdomain_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """Register ``acctdomain today``, ``acctdomain portfolio`` and ``acctdomain qbr``."""
    from acctdomain.builtin.workday_cli import portfolio_command, qbr_command, today_command

    register(CliCommand("today", today_command, "What to do today, ranked, with the reasons."))
    register(CliCommand("portfolio", portfolio_command, "A manager's book of business."))
    register(CliCommand("qbr", qbr_command, "The quarterly business review of an account."))
    from acctdomain.builtin.account_cli import account_app

    register(CliCommand("account", account_app(), "One account: state, plan, timeline, more."))
