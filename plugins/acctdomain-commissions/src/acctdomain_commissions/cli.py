"""``acctdomain commissions``: the statements of a period, as tables or JSON."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from acctdomain.application import AccountService, StoreSpec, parse_store
from acctdomain.errors import AcctDomainError
from acctdomain.plugins import CliCommand
from acctdomain_commissions.money import plain
from acctdomain_commissions.plan import CommissionPlan, load_plan
from acctdomain_commissions.statements import Statement, statements

__all__ = ["COMMAND", "commissions"]

USAGE_ERROR = 2


def _fail(message: str) -> NoReturn:
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {message}", markup=False)
    raise typer.Exit(USAGE_ERROR)


def _day(option: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(f"{option} {text!r} is not a date (YYYY-MM-DD)")


def _store(db: str | None) -> StoreSpec:
    try:
        spec = parse_store(db)
    except AcctDomainError as error:
        _fail(f"--db: {error}")
    if spec.kind == "memory":
        _fail("--db: an in-memory store is empty in a new process; give a file or a URL")
    if spec.kind == "sqlite" and not Path(spec.path).is_file():
        _fail(f"--db: there is no SQLite store at {spec.path}")
    return spec


def _amounts(amounts: dict[str, str]) -> str:
    return ", ".join(f"{amount} {currency}" for currency, amount in amounts.items()) or "-"


def _ratio(value: str | None) -> str:
    return "-" if value is None else value


def _print(plan: CommissionPlan, found: list[Statement], start: date, end: date) -> None:
    console = Console()
    table = Table(
        title=f"Commission statements {start.isoformat()} to {end.isoformat()}",
        caption=f"plan {plan.name!r}: {plan.rate} of the revenue base, bonuses in {plan.currency}",
        title_justify="left",
    )
    for column in ("manager", "accounts", "revenue base", "commission"):
        table.add_column(column, justify="left" if column == "manager" else "right")
    for column in ("renewal rate", "NRR", "bonuses", "total"):
        table.add_column(column, justify="right")
    for statement in found:
        data = statement.as_dict()
        basis = "by_value" if plan.renewal_basis == "value" else "by_count"
        table.add_row(
            statement.manager,
            str(statement.accounts),
            _amounts(data["revenue_base"]),
            _amounts(data["commission"]),
            _ratio(data["renewals"][basis]["value"]),
            _ratio(data["retention"]["nrr"]["value"]),
            f"{statement.bonuses.amount} {statement.bonuses.currency}",
            _amounts(plain(statement.total)),
        )
    console.print(table)
    targets = Table(title="Targets", title_justify="left")
    for column in ("manager", "target", "achieved", "threshold", "met", "bonus", "why"):
        targets.add_column(column)
    for statement in found:
        for target in statement.targets:
            targets.add_row(
                statement.manager,
                target.kpi,
                _ratio(None if target.achieved is None else str(target.achieved)),
                str(target.threshold),
                "yes" if target.met else "no",
                str(target.bonus),
                target.reason,
            )
    if plan.targets and found:
        console.print(targets)


def commissions(
    start: Annotated[str, typer.Option("--start", help="First day of the period (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option("--end", help="Last day of the period, included.")],
    db: Annotated[
        str | None,
        typer.Option("--db", help="Store URL or SQLite file (default: $ACCTDOMAIN_STORE)."),
    ] = None,
    manager: Annotated[
        str | None, typer.Option("--manager", help="Only this manager's statement.")
    ] = None,
    plan_file: Annotated[
        Path | None,
        typer.Option("--plan", help="Plan TOML file (default: $ACCTDOMAIN_COMMISSIONS_PLAN)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Commission statements per account manager for a period, under the commission plan."""
    first, last = _day("--start", start), _day("--end", end)
    if last < first:
        _fail(f"--end {last.isoformat()} is before --start {first.isoformat()}")
    try:
        plan = load_plan(plan_file)
    except AcctDomainError as error:
        _fail(str(error))
    service = AccountService(_store(db))
    try:
        found = statements(service, first, last, plan, manager=manager)
    finally:
        service.close()
    if as_json:
        report = {
            "start": first.isoformat(),
            "end": last.isoformat(),
            "plan": plan.as_dict(),
            "statements": [statement.as_dict() for statement in found],
        }
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(plan, found, first, last)


COMMAND = CliCommand(
    name="commissions",
    callback=commissions,
    help="Commission statements per account manager for a period.",
)
