"""What ``acctdomain demo`` shows besides the book's summary: one account's plan and the HTML
report, each as plain JSON-ready data.

The plan is that of the account of a manager whose plan has the most items (goals, strategies
and tactics), as the built-in plugin ``builtin.workday``'s view gives it; the report is the
page of ``acctdomain report`` for the demo's quarter, written when plotly (the extra
``acctdomain[report]``) is installed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from acctdomain.report import SECTIONS, ReportRequest, gather_report, render_html, require_plotly

if TYPE_CHECKING:
    from acctdomain.application import AccountService
    from acctdomain.builtin.plans import AccountPlan, Progress

__all__ = [
    "PLAN_READ_MODELS",
    "busiest_plan",
    "plan_items",
    "print_plan",
    "report_line",
    "write_report",
]

PLAN_READ_MODELS = ("accounts", "account_plans")
"""The read models the plan is read from (``account_plans`` is ``builtin.workday``'s)."""


def plan_items(plan: AccountPlan) -> int:
    """How many goals, strategies and tactics the plan has (whatever their status)."""
    return sum(
        1 + len(goal.strategies) + sum(len(strategy.tactics) for strategy in goal.strategies)
        for goal in plan.goals
    )


def _progress(progress: Progress) -> dict[str, Any]:
    ratio = None if progress.ratio is None else str(round(progress.ratio, 4))
    return {
        "completed": progress.completed,
        "planned": progress.planned,
        "ratio": ratio,
        "reason": progress.reason,
    }


def _iso(day: date | datetime | None) -> str | None:
    return None if day is None else day.isoformat()


def busiest_plan(service: AccountService, manager: str, day: date) -> dict[str, Any] | None:
    """The plan on ``day`` of ``manager``'s account whose plan has the most items (ties: by
    name) as JSON-ready data; None when no account of theirs has a plan, or when the plan's
    read models are missing (``builtin.workday`` blocked). Reads caught-up read models."""
    registered = set(service.projections.names)
    if any(name not in registered for name in PLAN_READ_MODELS):
        return None
    # The workday plugin's views (its read models are there).
    from acctdomain.builtin.day import accounts_of
    from acctdomain.builtin.plans import account_plan

    plans = service.read_model("account_plans")
    names = {
        row["account_id"]: row["name"] for _, row in service.read_model("accounts").scan("accounts")
    }
    best: tuple[int, AccountPlan] | None = None
    for account_id in accounts_of(service, manager):  # by name: the first of equals stays
        plan = account_plan(plans, account_id, today=day)
        items = plan_items(plan)
        if items and (best is None or items > best[0]):
            best = (items, plan)
    if best is None:
        return None
    items, plan = best
    return {
        "account_id": str(plan.account_id),
        "name": names[plan.account_id],
        "manager": manager,
        "day": plan.today.isoformat(),
        "items": items,
        "progress": _progress(plan.progress),
        "goals": [
            {
                "title": goal.title,
                "measure": goal.measure,
                "target_date": _iso(goal.target_date),
                "status": goal.status.value,
                "progress": _progress(goal.progress),
                "strategies": [
                    {
                        "description": strategy.description,
                        "tactics": [
                            {
                                "description": tactic.description,
                                "owner": tactic.owner,
                                "due_on": _iso(tactic.due_on),
                                "status": tactic.status.value,
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
                "title": item.title,
                "owner": item.owner,
                "due_on": item.due_on.isoformat(),
                "days_overdue": item.days_overdue,
            }
            for item in plan.overdue
        ],
    }


def write_report(
    service: AccountService, path: Path, quarter: tuple[date, date], day: date, db: str
) -> dict[str, Any]:
    """Write the HTML report of ``quarter`` to ``path``, its "now" views (pipeline, health,
    accounts at risk, priorities) at the end of ``day``. Returns ``path``, ``written``,
    ``reason`` (why not: plotly is missing, the file cannot be written; else None) and
    ``sections`` (the names of those written)."""
    try:
        require_plotly()
    except ImportError as error:
        return {"path": str(path), "written": False, "reason": str(error), "sections": []}
    request = ReportRequest(
        start=quarter[0], end=quarter[1], db=db, now=datetime.combine(day, time.max, tzinfo=UTC)
    )
    report = gather_report(service, request, SECTIONS)
    try:
        path.write_text(render_html(report, SECTIONS), encoding="utf-8")
    except OSError as error:
        reason = f"cannot write there: {error.strerror or error}"
        return {"path": str(path), "written": False, "reason": reason, "sections": []}
    return {
        "path": str(path),
        "written": True,
        "reason": None,
        "sections": list(report["sections"]),
    }


def _shown_progress(progress: dict[str, Any]) -> str:
    if progress["ratio"] is None:
        return progress["reason"] or "-"
    percent = Decimal(progress["ratio"]) * 100
    return f"{progress['completed']} of {progress['planned']} tactics done ({percent:.0f} %)"


def print_plan(console: Console, plan: dict[str, Any]) -> None:
    """The plan of :func:`busiest_plan` as a table: each goal, its strategies and tactics."""
    table = Table(
        title=f"Account plan of {plan['name']} ({plan['manager']}) on {plan['day']}",
        caption=f"{plan['items']} items; {_shown_progress(plan['progress'])}; "
        f"{len(plan['overdue'])} overdue",
        title_justify="left",
    )
    for column in ("item", "owner", "due", "status"):
        table.add_column(column)
    for goal in plan["goals"]:
        table.add_row(f"goal: {goal['title']}", "", goal["target_date"] or "", goal["status"])
        for strategy in goal["strategies"]:
            table.add_row(f"  strategy: {strategy['description']}", "", "", "")
            for tactic in strategy["tactics"]:
                table.add_row(
                    f"    tactic: {tactic['description']}",
                    tactic["owner"],
                    tactic["due_on"] or "",
                    tactic["status"],
                )
    console.print(table)


def report_line(report: dict[str, Any]) -> str:
    """One line saying where the report is, or why it was not written."""
    if report["written"]:
        return (
            f"Report: {len(report['sections'])} sections ({', '.join(report['sections'])}) "
            f"written to {report['path']}; open it in a browser"
        )
    return f"Report: not written ({report['reason']})"
