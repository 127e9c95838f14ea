"""The workday's commands, ``acctdomain today`` and ``acctdomain portfolio``, registered by the
built-in plugin ``builtin.workday`` through the CLI hook like any plugin's commands.

Store options, errors and exit codes are those of ``acctdomain kpis`` (a user mistake: one
``error:`` line and exit code 2). docs/cli.md documents both and their JSON.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.markup import escape
from rich.table import Table

from acctdomain.builtin.day import Day, Priority, today
from acctdomain.builtin.portfolio import Portfolio, PortfolioAccount, portfolio
from acctdomain.builtin.qbr import QbrSummary, qbr_summary
from acctdomain.cli_projections import AsJson, Db, _echo_json, _fail, _session, _stdout
from acctdomain.domain.identifiers import account_id_for
from acctdomain.domain.values import AccountStatus, Money
from acctdomain.errors import AccountNotFound

__all__ = [
    "day_report",
    "parse_on",
    "portfolio_command",
    "portfolio_report",
    "qbr_command",
    "qbr_report",
    "today_command",
]

Manager = Annotated[
    str | None,
    typer.Option("--manager", help="Only this manager's accounts.", show_default=False),
]
On = Annotated[
    str | None,
    typer.Option("--on", metavar="DATE", help="The day (default: today, UTC).", show_default=False),
]


def parse_on(text: str | None) -> date | None:
    """The day of ``--on`` (None without it); a malformed one ends with one line."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(f"--on: expected a date like 2026-03-31, got {text!r}")


def priority_report(item: Priority) -> dict[str, Any]:
    """One item of the day as JSON; every key is always present."""
    return {
        "rank": item.rank,
        "score": item.score,
        "kind": item.kind,
        "account_id": str(item.account_id),
        "account": item.account_name,
        "manager": item.manager,
        "title": item.title,
        "item_id": None if item.item_id is None else str(item.item_id),
        "reasons": list(item.reasons),
        "factors": {factor.name: round(factor.value, 4) for factor in item.factors},
    }


def day_report(day: Day, where: str) -> dict[str, Any]:
    """What ``acctdomain today --json`` prints."""
    return {
        "db": where,
        "manager": day.manager,
        "day": day.today.isoformat(),
        "accounts": day.accounts,
        "items": [priority_report(item) for item in day.items],
    }


def print_day(report: dict[str, Any]) -> None:
    """The day as a table."""
    who = report["manager"] or "every manager"
    table = Table(
        title=escape(f"Priorities of {who} on {report['day']} ({report['accounts']} accounts)"),
        title_justify="left",
    )
    for column in ("#", "score", "account", "what", "why"):
        table.add_column(column, justify="right" if column in ("#", "score") else "left")
    for item in report["items"]:
        table.add_row(
            str(item["rank"]),
            f"{item['score']:.1f}",
            escape(item["account"]),
            escape(item["title"]),
            escape("; ".join(item["reasons"])),
        )
    _stdout().print(table)


def today_command(
    ctx: typer.Context,
    manager: Manager = None,
    on: On = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show the first N items.")] = 20,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """What to do today, ranked, with the reasons behind each rank."""
    day = parse_on(on)
    with _session(ctx, db) as (service, where):
        report = day_report(today(service, manager, on=day, limit=limit), where)
    if as_json:
        _echo_json(report)
    else:
        print_day(report)


def portfolio_report(book: Portfolio, where: str) -> dict[str, Any]:
    """What ``acctdomain portfolio --json`` prints; amounts are decimal strings."""
    return {
        "db": where,
        "manager": book.manager,
        "day": book.today.isoformat(),
        "arr": {currency: str(money.amount) for currency, money in book.arr.items()},
        "health": dict(book.health),
        "open_issues": book.open_issues,
        "plan_progress": None
        if book.plan_progress.ratio is None
        else str(round(book.plan_progress.ratio, 4)),
        "renewals": [
            {
                "month": month.month,
                "accounts": month.accounts,
                "arr": {c: str(m.amount) for c, m in month.arr.items()},
            }
            for month in book.renewals
        ],
        "accounts": [
            {
                "account_id": str(entry.facts.account_id),
                "name": entry.facts.name,
                "manager": entry.facts.manager,
                "segment": entry.facts.segment.value,
                "status": entry.facts.status.value,
                "currency": entry.facts.currency,
                "arr": str(entry.facts.arr.amount),
                "renewal_due_on": _iso(_renewal(entry)),
                "health": None if entry.health.score is None else round(entry.health.score, 4),
                "band": entry.health.band,
                "open_issues": len(entry.facts.open_issues),
                "plan_progress": None
                if entry.facts.plan.progress.ratio is None
                else str(round(entry.facts.plan.progress.ratio, 4)),
                "overdue_items": entry.overdue_items,
            }
            for entry in book.accounts
        ],
    }


def _renewal(entry: PortfolioAccount) -> date | None:
    """When the account's renewal is due (its term's end when none is marked); None once
    churned."""
    if entry.facts.status is AccountStatus.CHURNED:
        return None
    return entry.facts.renewal_due_on or entry.facts.term_end


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def portfolio_command(
    ctx: typer.Context,
    manager: Manager = None,
    on: On = None,
    months: Annotated[
        int, typer.Option("--months", min=1, max=60, help="Renewals over this many months.")
    ] = 12,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """A manager's book: ARR, renewals by month, health, open issues, plan progress."""
    day = parse_on(on)
    with _session(ctx, db) as (service, where):
        report = portfolio_report(portfolio(service, manager, today=day, months=months), where)
    if as_json:
        _echo_json(report)
        return
    console = _stdout()
    arr = ", ".join(f"{amount} {currency}" for currency, amount in report["arr"].items())
    health = ", ".join(f"{band} {count}" for band, count in report["health"].items())
    console.print(
        f"Portfolio of {report['manager'] or 'every manager'} on {report['day']}: "
        f"ARR {arr or 'none'}; health {health}; {report['open_issues']} open issues",
        markup=False,
    )
    table = Table(title="Accounts", title_justify="left")
    for column in ("account", "status", "ARR", "renewal", "health", "issues", "plan"):
        table.add_column(column, justify="right" if column in ("ARR", "issues") else "left")
    for row in report["accounts"]:
        table.add_row(
            escape(row["name"]),
            row["status"],
            f"{row['arr']} {row['currency']}",
            row["renewal_due_on"] or "",
            row["band"] or "",
            str(row["open_issues"]),
            row["plan_progress"] or "",
        )
    console.print(table)
    renewals = Table(title="Renewals due by month", title_justify="left")
    for column in ("month", "accounts", "ARR"):
        renewals.add_column(column, justify="left" if column == "month" else "right")
    for month in report["renewals"]:
        shown = ", ".join(f"{a} {c}" for c, a in month["arr"].items())
        renewals.add_row(month["month"], str(month["accounts"]), shown)
    console.print(renewals)


# --- qbr ------------------------------------------------------------------------------------------

_QUARTER = re.compile(r"(\d{4})-[Qq]([1-4])")


def _account_id(text: str) -> UUID:
    """An account id, or the id derived from an external key (``crm:...``)."""
    try:
        return UUID(text)
    except ValueError:
        pass
    if ":" not in text:
        _fail(f"ACCOUNT: expected an account id or an external key like crm:0017, got {text!r}")
    return account_id_for(text)


def _money(money: Money | None) -> str | None:
    return None if money is None else str(money.amount)


def _decimal(value: Decimal | None, places: int = 4) -> str | None:
    return None if value is None else str(round(value, places))


def qbr_report(summary: QbrSummary, where: str) -> dict[str, Any]:
    """What ``acctdomain qbr --json`` prints; amounts are decimal strings in the account's
    currency."""
    figures = summary.figures
    return {
        "db": where,
        "account_id": str(summary.account_id),
        "account": summary.name,
        "manager": summary.manager,
        "quarter": summary.quarter,
        "start": summary.start.isoformat(),
        "end": summary.end.isoformat(),
        "currency": figures.arr_end.currency,
        "happened": summary.happened,
        "highlights": list(summary.highlights),
        "figures": {
            "arr_start": _money(figures.arr_start),
            "arr_end": _money(figures.arr_end),
            "arr_change": _money(figures.arr_change),
            "new": _money(figures.new),
            "expansion": _money(figures.expansion),
            "contraction": _money(figures.contraction),
            "churned": _money(figures.churned),
            "nps_answers": list(figures.nps_answers),
            "nps_mean": _decimal(figures.nps_mean, 2),
            "csat_answers": list(figures.csat_answers),
            "csat_satisfied": _decimal(figures.csat_satisfied),
            "median_first_response_hours": _decimal(figures.median_first_response_hours, 1),
            "median_resolution_hours": _decimal(figures.median_resolution_hours, 1),
        },
        "open_issues": [
            {
                "issue_id": str(issue.issue_id),
                "title": issue.title,
                "severity": issue.severity.value,
                "raised_at": issue.raised_at.isoformat(),
            }
            for issue in summary.open_issues
        ],
        "plan_progress": {
            "completed": summary.plan.progress.completed,
            "planned": summary.plan.progress.planned,
            "ratio": _decimal(summary.plan.progress.ratio),
            "overdue": len(summary.plan.overdue),
        },
        "value_realised": {money.currency: str(money.amount) for money in summary.value.totals},
    }


def qbr_command(
    ctx: typer.Context,
    account: Annotated[
        str, typer.Argument(help="The account's id or external key.", show_default=False)
    ],
    quarter: Annotated[
        str,
        typer.Option("--quarter", metavar="YYYY-QN", help="The quarter, e.g. 2026-Q1."),
    ],
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """The quarterly business review summary of one account."""
    match = _QUARTER.fullmatch(quarter)
    if match is None:
        _fail(f"--quarter: expected a quarter like 2026-Q1, got {quarter!r}")
    account_id = _account_id(account)
    with _session(ctx, db) as (service, where):
        try:
            summary = qbr_summary(service, account_id, year=int(match[1]), quarter=int(match[2]))
        except AccountNotFound as error:
            _fail(f"ACCOUNT {account}: {error}")
        report = qbr_report(summary, where)
    if as_json:
        _echo_json(report)
        return
    console = _stdout()
    f = report["figures"]
    console.print(
        f"QBR {report['quarter']} of {report['account']} ({report['manager']}): "
        f"ARR {f['arr_start']} -> {f['arr_end']} {report['currency']} "
        f"(+{f['new']} new, +{f['expansion']} expansion, -{f['contraction']} contraction, "
        f"-{f['churned']} churned)",
        markup=False,
    )
    table = Table(title="What happened", title_justify="left")
    table.add_column("kind")
    table.add_column("count", justify="right")
    for kind, count in report["happened"].items():
        table.add_row(kind, str(count))
    console.print(table)
    for line in report["highlights"]:
        console.print(f"- {line}", markup=False)
    plan = report["plan_progress"]
    value = ", ".join(f"{a} {c}" for c, a in report["value_realised"].items()) or "none"
    console.print(
        f"Open issues at the end: {len(report['open_issues'])}; plan: {plan['completed']} of "
        f"{plan['planned']} tactics done, {plan['overdue']} overdue; value realised: {value}",
        markup=False,
    )
