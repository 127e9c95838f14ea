"""``acctdomain account``: one account seen from the command line: its state and health
(``show``), its plan (``plan``), its history (``timeline``), its stakeholder map
(``stakeholders``) and its white space (``white-space``).

Registered by the built-in plugin ``builtin.workday`` through the CLI hook (the views are its
read models). ``ACCOUNT`` is the account's id, the external key it was opened with, or its
exact name. Store options, errors and exit codes are those of ``acctdomain kpis`` (a user
mistake, an unknown or ambiguous account among them: one ``error:`` line and exit code 2).
docs/cli.md documents the commands and their JSON.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.table import Table

from acctdomain.application import AccountService
from acctdomain.application.health import HealthScore
from acctdomain.builtin.plans import AccountPlan, Progress, account_plan
from acctdomain.builtin.stakeholders import (
    NOT_MET_DAYS,
    StakeholderMap,
    StakeholderView,
    stakeholder_map,
)
from acctdomain.builtin.whitespace import PipelineItem, WhiteSpace, white_space
from acctdomain.builtin.workday_cli import parse_on
from acctdomain.cli_audit import timeline_command
from acctdomain.cli_common import amount
from acctdomain.cli_projections import AsJson, Db, _echo_json, _fail, _session, _stdout
from acctdomain.cli_record import resolve_account
from acctdomain.domain import AccountState
from acctdomain.domain.records import OpportunityStatus
from acctdomain.domain.values import AccountStatus
from acctdomain.errors import AccountNotFound, AcctDomainError, InvalidValue

__all__ = [
    "GROUP",
    "account_app",
    "plan_report",
    "show_report",
    "stakeholders_report",
    "white_space_report",
]

GROUP = "account"

Account = Annotated[
    str,
    typer.Argument(
        metavar="ACCOUNT",
        help="The account: its id, the external key it was opened with (crm:1), or its exact name.",
        show_default=False,
    ),
]
On = Annotated[
    str | None,
    typer.Option("--on", metavar="DATE", help="The day (default: today, UTC).", show_default=False),
]


def account_app() -> typer.Typer:
    """The ``account`` command group."""
    group = typer.Typer(
        name=GROUP,
        help="One account: its state and health, plan, timeline, stakeholders, white space.",
        no_args_is_help=True,
    )
    group.command("show")(show_command)
    group.command("plan")(plan_command)
    group.command("timeline", help=timeline_command.__doc__)(_timeline())
    group.command("stakeholders")(stakeholders_command)
    group.command("white-space")(white_space_command)
    return group


# --- helpers ----------------------------------------------------------------------------------


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _ratio(value: Decimal | None) -> str | None:
    return None if value is None else str(round(value, 4))


def _progress(progress: Progress) -> dict[str, Any]:
    return {
        "completed": progress.completed,
        "planned": progress.planned,
        "ratio": _ratio(progress.ratio),
        "reason": progress.reason,
    }


def _shown_progress(progress: dict[str, Any]) -> str:
    if progress["ratio"] is None:
        return str(progress["reason"])
    percent = Decimal(progress["ratio"]) * 100
    return f"{progress['completed']} of {progress['planned']} tactics done ({percent:.0f} %)"


@contextmanager
def _account(
    ctx: typer.Context, db: str | None, account: str
) -> Iterator[tuple[AccountService, str, UUID]]:
    """The service on ``--db``, its read models caught up, and the account ``ACCOUNT`` names;
    the views' refusals end with one line and exit code 2."""
    with _session(ctx, db) as (service, where):
        account_id = resolve_account(service, account, "ACCOUNT")
        try:
            yield service, where, account_id
        except AccountNotFound as error:
            _fail(f"ACCOUNT {account}: {error}")
        except InvalidValue as error:
            _fail(f"{error.field}: {error.reason}")


# --- show -------------------------------------------------------------------------------------


def _health(service: AccountService, state: AccountState, day: date) -> HealthScore | str:
    """The account's health at the end of ``day``, or why there is none."""
    if state.status is AccountStatus.CHURNED:
        return "the account has churned"
    now = datetime.combine(day, time.max, tzinfo=UTC)
    try:
        return service.health_of(service.facts(state.account_id, today=day), now)
    except AcctDomainError as error:
        return str(error)


def show_report(
    state: AccountState, health: HealthScore | str, day: date, where: str
) -> dict[str, Any]:
    """What ``acctdomain account show --json`` prints; every key is always present, amounts
    are decimal strings in the account's currency."""
    return {
        "db": where,
        "day": day.isoformat(),
        "account_id": str(state.account_id),
        "name": state.name,
        "external_key": state.external_key,
        "version": state.version,
        "status": state.status.value,
        "segment": state.segment.value,
        "industry": state.industry,
        "currency": state.currency,
        "manager": state.manager,
        "manager_type": state.manager_type.value,
        "opened_at": state.opened_at.isoformat(),
        "arr": str(state.arr.amount),
        "lines": [{"product": line.product, "arr": str(line.arr.amount)} for line in state.lines],
        "term_end": _iso(state.term_end),
        "renewal_due_on": _iso(state.renewal_due_on),
        "churned_at": _iso(state.churned_at),
        "churn_reason": None if state.churn_reason is None else state.churn_reason.value,
        "contacts": state.contact_count,
        "last_contact_at": _iso(state.last_contact_at),
        "surveys": {
            "nps": None if state.latest_nps is None else state.latest_nps.value,
            "csat": None if state.latest_csat is None else state.latest_csat.value,
            "ces": None if state.latest_ces is None else state.latest_ces.value,
        },
        "value_delivered": str(state.value_delivered.amount),
        "stakeholders": [
            {
                "stakeholder_id": str(person.stakeholder_id),
                "name": person.name,
                "title": person.title,
                "role": person.role.value,
                "sentiment": person.sentiment.value,
            }
            for person in state.stakeholders
            if person.removed_at is None
        ],
        "open_issues": [
            {
                "issue_id": str(issue.issue_id),
                "title": issue.title,
                "severity": issue.severity.value,
                "category": issue.category,
                "raised_at": issue.raised_at.isoformat(),
                "first_response_at": _iso(issue.first_response_at),
                "escalated_to": list(issue.escalated_to),
            }
            for issue in state.open_issues
        ],
        "open_requests": [
            {
                "request_id": str(request.request_id),
                "subject": request.subject,
                "channel": request.channel.value,
                "received_at": request.received_at.isoformat(),
            }
            for request in state.requests
            if request.answered_at is None
        ],
        "open_opportunities": [
            {
                "opportunity_id": str(offer.opportunity_id),
                "kind": offer.kind.value,
                "product": offer.product,
                "estimated_arr": str(offer.estimated_arr.amount),
                "offered_at": offer.offered_at.isoformat(),
            }
            for offer in state.opportunities
            if offer.status is OpportunityStatus.OPEN
        ],
        "health": _health_report(health),
    }


def _health_report(health: HealthScore | str) -> dict[str, Any]:
    if isinstance(health, str):
        return {"score": None, "band": None, "signals": {}, "reason": health}
    return {
        "score": None if health.score is None else round(health.score, 4),
        "band": health.band,
        "signals": {
            signal.name: None if signal.score is None else round(signal.score, 4)
            for signal in health.signals
        },
        "reason": "",
    }


def _print_show(report: dict[str, Any]) -> None:
    console = _stdout()
    currency = report["currency"]
    key = f" ({report['external_key']})" if report["external_key"] else ""
    lines = ", ".join(f"{line['product']} {amount(line['arr'])}" for line in report["lines"])
    renewal = report["renewal_due_on"] or "-"
    surveys = ", ".join(
        f"{kind.upper()} {'-' if value is None else value}"
        for kind, value in report["surveys"].items()
    )
    health = report["health"]
    if health["score"] is None:
        shown_health = f"unscored ({health['reason'] or 'no signal had anything to judge by'})"
    else:
        signals = ", ".join(
            f"{name} {'-' if score is None else f'{score:.2f}'}"
            for name, score in health["signals"].items()
        )
        shown_health = f"{health['band']} {health['score']:.2f} ({signals})"
    churned = ""
    if report["churned_at"]:
        churned = f"; churned {report['churned_at'][:10]} ({report['churn_reason']})"
    console.print(
        f"{report['name']}{key} {report['account_id']}, version {report['version']}\n"
        f"status {report['status']}{churned}; {report['segment']}, {report['industry']}; "
        f"manager {report['manager']} ({report['manager_type']})\n"
        f"ARR {amount(report['arr'], currency)}" + (f" ({lines})" if lines else "") + "; "
        f"term end {report['term_end'] or '-'}; renewal due {renewal}\n"
        f"contacts {report['contacts']}, last {_cell(report['last_contact_at'] or '-')}; "
        f"surveys {surveys}; value delivered {amount(report['value_delivered'], currency)}\n"
        f"health on {report['day']}: {shown_health}",
        markup=False,
    )
    for title, rows, columns in (
        (
            "Stakeholders",
            report["stakeholders"],
            ("name", "title", "role", "sentiment", "stakeholder_id"),
        ),
        (
            "Open issues",
            report["open_issues"],
            ("title", "severity", "category", "raised_at", "issue_id"),
        ),
        ("Open requests", report["open_requests"], ("subject", "channel", "received_at")),
        (
            "Open opportunities",
            report["open_opportunities"],
            ("kind", "product", "estimated_arr", "offered_at", "opportunity_id"),
        ),
    ):
        if not rows:
            console.print(f"{title}: none", markup=False)
            continue
        console.print(f"{title}:", markup=False)
        table = Table()
        for column in columns:
            table.add_column(column.replace("_", " "))
        for row in rows:
            table.add_row(*(_cell(row[column]) for column in columns))
        console.print(table)


def _cell(value: Any) -> str:
    text = str(value)
    if len(text) > 16 and text[10:11] == "T":  # a time: to the minute
        return text[:16].replace("T", " ")
    return text


def show_command(
    ctx: typer.Context,
    account: Account,
    on: Annotated[
        str | None,
        typer.Option(
            "--on",
            metavar="DATE",
            help="Show the account as in effect at the end of this day, and its health then "
            "(default: now, and today's health).",
            show_default=False,
        ),
    ] = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """The account: identity, status, lines, renewal, stakeholders, open items, surveys, health."""
    day = parse_on(on)
    with _account(ctx, db, account) as (service, where, account_id):
        if day is None:
            state = service.get_account(account_id)
        else:
            try:
                state = service.get_account_as_effective_at(account_id, day)
            except AccountNotFound:
                _fail(f"ACCOUNT {account}: the account was not opened yet on {day.isoformat()}")
        service.catch_up()
        health = _health(service, state, day or service.clock().date())
        report = show_report(state, health, day or service.clock().date(), where)
    if as_json:
        _echo_json(report)
    else:
        _print_show(report)


# --- plan -------------------------------------------------------------------------------------


def plan_report(plan: AccountPlan, name: str, where: str) -> dict[str, Any]:
    """What ``acctdomain account plan --json`` prints; every key is always present."""
    return {
        "db": where,
        "account_id": str(plan.account_id),
        "name": name,
        "day": plan.today.isoformat(),
        "progress": _progress(plan.progress),
        "goals": [
            {
                "goal_id": str(goal.goal_id),
                "title": goal.title,
                "measure": goal.measure,
                "target_date": _iso(goal.target_date),
                "status": goal.status.value,
                "set_at": goal.set_at.isoformat(),
                "closed_at": _iso(goal.closed_at),
                "reason": goal.reason,
                "progress": _progress(goal.progress),
                "strategies": [
                    {
                        "strategy_id": str(strategy.strategy_id),
                        "description": strategy.description,
                        "added_at": strategy.added_at.isoformat(),
                        "tactics": [
                            {
                                "tactic_id": str(tactic.tactic_id),
                                "description": tactic.description,
                                "owner": tactic.owner,
                                "due_on": _iso(tactic.due_on),
                                "status": tactic.status.value,
                                "added_at": tactic.added_at.isoformat(),
                                "closed_at": _iso(tactic.closed_at),
                                "reason": tactic.reason,
                            }
                            for tactic in strategy.tactics
                        ],
                    }
                    for strategy in goal.strategies
                ],
            }
            for goal in plan.goals
        ],
        "overdue": [
            {
                "kind": item.kind,
                "item_id": str(item.item_id),
                "goal_id": str(item.goal_id),
                "title": item.title,
                "owner": item.owner,
                "due_on": item.due_on.isoformat(),
                "days_overdue": item.days_overdue,
            }
            for item in plan.overdue
        ],
    }


def _print_plan(report: dict[str, Any]) -> None:
    console = _stdout()
    console.print(
        f"Plan of {report['name']} on {report['day']}: {_shown_progress(report['progress'])}",
        markup=False,
    )
    if not report["goals"]:
        return
    table = Table()
    for column in ("item", "owner", "due", "status", "id"):
        table.add_column(column)
    for goal in report["goals"]:
        table.add_row(
            f"goal: {goal['title']}", "", goal["target_date"] or "", goal["status"], goal["goal_id"]
        )
        for strategy in goal["strategies"]:
            table.add_row(
                f"  strategy: {strategy['description']}", "", "", "", strategy["strategy_id"]
            )
            for tactic in strategy["tactics"]:
                table.add_row(
                    f"    tactic: {tactic['description']}",
                    tactic["owner"],
                    tactic["due_on"] or "",
                    tactic["status"],
                    tactic["tactic_id"],
                )
    console.print(table)
    for item in report["overdue"]:
        owner = f" ({item['owner']})" if item["owner"] else ""
        console.print(
            f"overdue {item['days_overdue']} days: {item['kind']} {item['title']}{owner}, "
            f"due {item['due_on']}",
            markup=False,
        )


def plan_command(
    ctx: typer.Context, account: Account, on: On = None, db: Db = None, as_json: AsJson = False
) -> None:
    """The account plan: goals, strategies, tactics, progress and what is overdue."""
    day = parse_on(on)
    with _account(ctx, db, account) as (service, where, account_id):
        service.catch_up()
        plan = account_plan(
            service.read_model("account_plans"),
            account_id,
            today=day or service.clock().date(),
        )
        report = plan_report(plan, service.get_account(account_id).name, where)
    if as_json:
        _echo_json(report)
    else:
        _print_plan(report)


# --- timeline ---------------------------------------------------------------------------------


def _timeline() -> Any:
    """``audit timeline`` whose ``ACCOUNT`` may also be the account's name."""

    def timeline(ctx: typer.Context, account: str, **options: Any) -> None:
        with _session(ctx, options["db"]) as (service, _):
            account_id = resolve_account(service, account, "ACCOUNT")
        timeline_command(ctx, str(account_id), **options)

    signature = inspect.signature(timeline_command, eval_str=True)
    parameters = [
        parameter.replace(annotation=Account) if parameter.name == "account" else parameter
        for parameter in signature.parameters.values()
    ]
    timeline.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    timeline.__annotations__ = {}
    return timeline


# --- stakeholders -----------------------------------------------------------------------------


def _person(person: StakeholderView) -> dict[str, Any]:
    return {
        "stakeholder_id": str(person.stakeholder_id),
        "name": person.name,
        "title": person.title,
        "role": person.role.value,
        "sentiment": person.sentiment.value,
        "added_at": person.added_at.isoformat(),
        "updated_at": _iso(person.updated_at),
        "removed_at": _iso(person.removed_at),
        "last_contact_at": _iso(person.last_contact_at),
        "days_since_contact": person.days_since_contact,
    }


def stakeholders_report(found: StakeholderMap, name: str, where: str) -> dict[str, Any]:
    """What ``acctdomain account stakeholders --json`` prints; every key is always present."""
    return {
        "db": where,
        "account_id": str(found.account_id),
        "name": name,
        "day": found.today.isoformat(),
        "not_met_days": found.not_met_days,
        "people": [_person(person) for person in found.people],
        "former": [_person(person) for person in found.former],
        "gaps": [
            {
                "kind": gap.kind,
                "reason": gap.reason,
                "stakeholder_id": None if gap.stakeholder_id is None else str(gap.stakeholder_id),
            }
            for gap in found.gaps
        ],
    }


def stakeholders_command(
    ctx: typer.Context,
    account: Account,
    on: On = None,
    not_met_days: Annotated[
        int,
        typer.Option(
            "--not-met-days",
            min=0,
            help="An economic buyer or decision maker not met for more days is a gap.",
        ),
    ] = NOT_MET_DAYS,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """The stakeholder map: the people, when each was last met, and the map's gaps."""
    day = parse_on(on)
    with _account(ctx, db, account) as (service, where, account_id):
        service.catch_up()
        found = stakeholder_map(
            service.read_model("stakeholders"),
            account_id,
            today=day or service.clock().date(),
            not_met_days=not_met_days,
        )
        report = stakeholders_report(found, service.get_account(account_id).name, where)
    if as_json:
        _echo_json(report)
        return
    console = _stdout()
    people = len(report["people"])
    console.print(
        f"Stakeholders of {report['name']} on {report['day']}: {people} on the map, "
        f"{len(report['former'])} former",
        markup=False,
    )
    table = Table()
    for column in ("name", "title", "role", "sentiment", "last met", "days"):
        table.add_column(column, justify="right" if column == "days" else "left")
    for person in report["people"]:
        days = person["days_since_contact"]
        table.add_row(
            person["name"],
            person["title"],
            person["role"],
            person["sentiment"],
            (person["last_contact_at"] or "never")[:10],
            "" if days is None else str(days),
        )
    if people:
        console.print(table)
    for gap in report["gaps"]:
        console.print(f"gap ({gap['kind']}): {gap['reason']}", markup=False)


# --- white space ------------------------------------------------------------------------------


def _offer(item: PipelineItem) -> dict[str, Any]:
    return {
        "opportunity_id": str(item.opportunity_id),
        "product": item.product,
        "kind": item.kind.value,
        "estimated_arr": str(item.estimated_arr.amount),
        "offered_at": item.offered_at.isoformat(),
    }


def white_space_report(found: WhiteSpace, name: str, where: str) -> dict[str, Any]:
    """What ``acctdomain account white-space --json`` prints; every key is always present,
    amounts are decimal strings in ``currency``."""
    return {
        "db": where,
        "account_id": str(found.account_id),
        "name": name,
        "currency": found.currency,
        "products": list(found.products),
        "units": [
            {
                "unit_id": str(unit.unit_id),
                "name": unit.name,
                "added_at": unit.added_at.isoformat(),
                "arr": str(unit.arr.amount),
                "cells": [
                    {
                        "product": cell.product,
                        "status": cell.status,
                        "arr": None if cell.arr is None else str(cell.arr.amount),
                        "reason": cell.reason,
                        "opportunities": [_offer(item) for item in cell.opportunities],
                    }
                    for cell in unit.cells
                ],
            }
            for unit in found.units
        ],
        "gaps": [
            {
                "rank": gap.rank,
                "unit_id": str(gap.unit_id),
                "unit": gap.unit_name,
                "product": gap.product,
                "median_arr": None if gap.median_arr is None else str(gap.median_arr.amount),
                "owners": gap.owners,
                "reason": gap.reason,
            }
            for gap in found.gaps
        ],
        "untargeted": [_offer(item) for item in found.untargeted],
        "unassigned": [
            {"product": line.product, "arr": str(line.arr.amount)} for line in found.unassigned
        ],
    }


def _print_white_space(report: dict[str, Any]) -> None:
    console = _stdout()
    units = len(report["units"])
    console.print(
        f"White space of {report['name']}: {units} business units by "
        f"{len(report['products'])} products, {len(report['gaps'])} gaps",
        markup=False,
    )
    table = Table()
    table.add_column("business unit")
    for product in report["products"]:
        table.add_column(product)
    for unit in report["units"]:
        cells = []
        for cell in unit["cells"]:
            if cell["status"] == "owned":
                cells.append(f"owned {amount(cell['arr'])}")
            elif cell["status"] == "not_eligible":
                cells.append(f"not eligible: {cell['reason']}")
            else:
                cells.append(cell["status"])
        table.add_row(unit["name"], *cells)
    if units:
        console.print(table)
    for gap in report["gaps"]:
        console.print(
            f"gap {gap['rank']}: {gap['unit']} / {gap['product']}: {gap['reason']}", markup=False
        )
    for item in report["untargeted"]:
        console.print(
            f"offer aimed at no unit: {item['kind']} {item['product']} "
            f"{amount(item['estimated_arr'], report['currency'])}",
            markup=False,
        )
    for line in report["unassigned"]:
        console.print(
            f"line no unit uses: {line['product']} {amount(line['arr'], report['currency'])}",
            markup=False,
        )


def white_space_command(
    ctx: typer.Context,
    account: Account,
    products: Annotated[
        list[str] | None,
        typer.Option(
            "--product",
            metavar="PRODUCT",
            help="A product of the catalogue (repeatable; default: every product seen in the "
            "book and those marked ineligible).",
            show_default=False,
        ),
    ] = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """White space: business units by our products, and the gaps ranked."""
    with _account(ctx, db, account) as (service, where, account_id):
        service.catch_up()
        try:
            found = white_space(service.read_model("white_space"), account_id, products=products)
        except InvalidValue as error:
            if error.field == "products":
                _fail(f"--product: {error.reason}")
            raise
        report = white_space_report(found, service.get_account(account_id).name, where)
    if as_json:
        _echo_json(report)
    else:
        _print_white_space(report)
