"""The ``acctdomain`` command line.

One :data:`app` (a ``typer.Typer``) holds every command; :func:`main` is the console-script
entry point. Mistakes of the user (a bad option value, a path that cannot be written) end with
one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from eventsourcing.persistence import PersistenceError
from rich.console import Console
from rich.table import Table

from acctdomain.application import AccountService, StoreSpec
from acctdomain.application.scorecard import KpiResult
from acctdomain.audit import verify
from acctdomain.cli_audit import GROUP as AUDIT
from acctdomain.cli_audit import audit_app
from acctdomain.cli_common import amount as _amount
from acctdomain.cli_common import figure as _figure
from acctdomain.cli_common import quarter_before
from acctdomain.cli_common import shown as _shown
from acctdomain.cli_forecast import COMMAND as FORECAST
from acctdomain.cli_forecast import add_forecast
from acctdomain.cli_import import COMMAND as IMPORT
from acctdomain.cli_import import add_import
from acctdomain.cli_kpis import COMMAND as KPIS
from acctdomain.cli_kpis import add_kpis
from acctdomain.cli_policies import GROUP as POLICIES
from acctdomain.cli_policies import policies_app
from acctdomain.cli_projections import GROUP as PROJECTIONS
from acctdomain.cli_projections import _Plugins, progress_bars, projections_app
from acctdomain.cli_record import GROUP as RECORD
from acctdomain.cli_record import record_app
from acctdomain.cli_report import COMMAND as REPORT
from acctdomain.cli_report import add_report
from acctdomain.demo import DEMO_KPI_SETTINGS, BookSummary, eur_at_demo_rate, generate_book
from acctdomain.demo.showcase import busiest_plan, print_plan, report_line, write_report
from acctdomain.domain import AccountState, AccountStatus, IssueSeverity, Segment
from acctdomain.errors import PluginError
from acctdomain.plugins import PluginHost

__all__ = ["app", "build_app", "main"]

USAGE_ERROR = 2
"""Exit code for a mistake in the command line (as click uses for usage errors)."""

app = typer.Typer(
    name="acctdomain",
    help="An account manager's book of business as an event-sourced domain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root() -> None:
    """An account manager's book of business as an event-sourced domain."""
    # A callback makes the app a group, so `acctdomain demo` stays `demo` as commands are added.


app.add_typer(projections_app(), name=PROJECTIONS)
app.add_typer(audit_app(), name=AUDIT)
app.add_typer(policies_app(), name=POLICIES)
app.add_typer(record_app(), name=RECORD)
add_kpis(app)
add_report(app)
add_forecast(app)
add_import(app)


def main() -> None:
    """Run the command line (the ``acctdomain`` console script), with plugins' commands."""
    build_app(PluginHost())()


def build_app(host: PluginHost) -> typer.Typer:
    """The command line: the core commands of :data:`app` plus those ``host``'s plugins add.

    A plugin command whose name a core command has is left out and recorded as the plugin's
    failure; one that raises ends with one line on stderr and exit code 1.
    """
    root = typer.Typer(
        name="acctdomain",
        help=app.info.help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
    )
    root.callback()(_root)
    root.registered_commands.extend(
        c for c in app.registered_commands if c.name not in (KPIS, FORECAST, REPORT, IMPORT)
    )
    root.add_typer(projections_app(host), name=PROJECTIONS)
    root.add_typer(audit_app(host), name=AUDIT)
    root.add_typer(policies_app(host), name=POLICIES)
    root.add_typer(record_app(host), name=RECORD)
    add_kpis(root, host)
    add_report(root, host)
    add_forecast(root, host)
    add_import(root, host)
    taken = {
        info.name or info.callback.__name__ for info in app.registered_commands if info.callback
    } | {PROJECTIONS, AUDIT, POLICIES, RECORD}
    for command in host.cli_commands().values():
        owner = host.owner(CLI_HOOK, command.name)
        if command.name in taken:
            host.guarded(CLI_HOOK, command.name, _taken, command.name, owner)
        elif isinstance(command.callback, typer.Typer):
            root.add_typer(
                command.callback,
                name=command.name,
                help=command.help or None,
                context_settings={"obj": _Plugins(host)},  # its commands get this host
            )
        else:
            # The command's context carries this host, so a command opening a store with
            # the CLI's session helpers gets the same plugins.
            root.command(
                name=command.name,
                help=command.help or None,
                context_settings={"obj": _Plugins(host)},
            )(_contained(command.callback, owner))
    _active["host"] = host
    return root


CLI_HOOK = "acctdomain_register_cli_commands"
# The host of the application last built, so that `acctdomain plugins` reports the plugins the
# running command line actually loaded (not a second discovery).
_active: dict[str, PluginHost] = {}


def _taken(name: str, plugin: str) -> None:
    raise PluginError(plugin, f"the command name {name!r} belongs to a core command")


def _contained(callback: Callable[..., Any], plugin: str) -> Callable[..., Any]:
    """A plugin's command whose unexpected exceptions end in one line, not a traceback."""

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception as error:
            _fail(f"plugin {plugin!r}: {type(error).__name__}: {error}", code=1)

    return run


def _fail(message: str, code: int = USAGE_ERROR) -> NoReturn:
    """End the command with one line on stderr."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {message}", markup=False)
    raise typer.Exit(code)


# --- demo -------------------------------------------------------------------------------------


def _replace_store(db: Path) -> None:
    """Remove ``db`` and its WAL files, after checking a new file can be written there."""
    if db.is_dir():
        _fail(f"--db {db} is a directory, expected a file path")
    parent = db.parent if str(db.parent) else Path(".")
    if not parent.is_dir():
        _fail(f"--db {db}: the directory {parent} does not exist")
    for suffix in ("", "-wal", "-shm"):
        old = db.with_name(db.name + suffix)
        try:
            old.unlink(missing_ok=True)
        except OSError as error:
            _fail(f"--db {db}: cannot replace {old}: {error.strerror or error}")
    try:
        db.touch()
    except OSError as error:
        _fail(f"--db {db}: cannot write there: {error.strerror or error}")


def _eur(state: AccountState) -> Decimal:
    """ARR converted at the fixed demo rates, for ranking accounts of different currencies."""
    return eur_at_demo_rate(state.arr)


def _report(
    db: Path, summary: BookSummary, states: list[AccountState], elapsed: float
) -> dict[str, Any]:
    """The summary as plain JSON-ready data; every key is always present."""
    by_segment = {
        segment.value: {status.value: 0 for status in AccountStatus} for segment in Segment
    }
    arr: dict[str, Decimal] = {}
    paying: Counter[str] = Counter()
    for state in states:
        by_segment[state.segment.value][state.status.value] += 1
        if state.status is AccountStatus.ACTIVE:
            arr[state.currency] = arr.get(state.currency, Decimal(0)) + state.arr.amount
            paying[state.currency] += 1
    open_issues = [issue for state in states for issue in state.open_issues]
    top = sorted(states, key=_eur, reverse=True)[:10]
    return {
        "db": str(db),
        "seed": summary.seed,
        "period": {"start": summary.start.isoformat(), "end": summary.end.isoformat()},
        "accounts": summary.accounts,
        "commands": summary.commands,
        "events": summary.events,
        "events_per_account": round(summary.events_per_account, 1),
        "elapsed_seconds": round(elapsed, 2),
        "accounts_by_segment": by_segment,
        "arr_by_currency": {
            currency: {"accounts": paying[currency], "arr": str(arr[currency])}
            for currency in sorted(arr)
        },
        "renewals": summary.renewals,
        "churns": summary.churns,
        "churned_accounts": summary.churned_accounts,
        "reactivated_accounts": summary.reactivated_accounts,
        "churned_now": sum(s.status is AccountStatus.CHURNED for s in states),
        "open_issues": len(open_issues),
        "open_critical_issues": sum(i.severity is IssueSeverity.CRITICAL for i in open_issues),
        "top_accounts": [
            {
                "name": state.name,
                "segment": state.segment.value,
                "manager": state.manager,
                "currency": state.currency,
                "arr": str(state.arr.amount),
                "arr_eur": str(_eur(state).quantize(Decimal(1))),
            }
            for state in top
        ],
    }


def _demo_manager(states: list[AccountState]) -> str | None:
    """The manager with the most active accounts (ties: by name); None when none is active."""
    active = Counter(s.manager for s in states if s.status is AccountStatus.ACTIVE)
    if not active:
        return None
    return min(active, key=lambda name: (-active[name], name))


def _demo_day(service: AccountService, manager: str | None, end: date) -> dict[str, Any] | None:
    """The prioritised day of ``manager`` on the book's last day; None without a manager or
    when the built-in workday plugin is blocked."""
    if manager is None or "attention" not in service.projections.names:
        return None
    from acctdomain.builtin.day import today  # a built-in plugin's view (blockable)
    from acctdomain.builtin.workday_cli import day_report

    return day_report(today(service, manager, on=end, limit=10, catch_up=False), "")


def _report_path(db: Path, report: Path | None) -> Path:
    """``--report`` once it is known that a file can be written there, else the default: the
    db's path with ``.html`` (in the db's folder, which ``--db`` checks)."""
    if report is None:
        path = db.with_suffix(".html")
        return db.with_name(db.name + ".html") if path == db else path
    path = report
    if path.is_dir():
        _fail(f"--report {path} is a directory, expected a file path")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        _fail(f"--report {path}: the directory {parent} does not exist")
    if path.resolve() == db.resolve():
        _fail(f"--report {path} is the --db file")
    return path


def _scorecard_report(
    quarter: tuple[date, date], lines: list[KpiResult], events: int, seconds: float
) -> dict[str, Any]:
    return {
        "start": quarter[0].isoformat(),
        "end": quarter[1].isoformat(),
        "events_projected": events,
        "projection_seconds": round(seconds, 2),
        "kpis": [
            {
                "name": line.name,
                "title": line.title,
                "unit": line.unit,
                "value": _figure(line.value),
                "previous": _figure(line.previous),
                "reason": line.error or (line.value.reason if line.value else ""),
            }
            for line in lines
        ],
    }


def _print_scorecard(console: Console, scorecard: dict[str, Any]) -> None:
    table = Table(
        title=f"Scorecard {scorecard['start']} to {scorecard['end']}",
        caption=(
            f"from read models: {scorecard['events_projected']:,} events projected "
            f"in {scorecard['projection_seconds']:.1f} s"
        ),
        title_justify="left",
    )
    table.add_column("KPI")
    table.add_column("value", justify="right")
    table.add_column("previous quarter", justify="right")
    table.add_column("note")
    for kpi in scorecard["kpis"]:
        shown = [_shown(kpi[key], kpi["unit"]) for key in ("value", "previous")]
        table.add_row(kpi["title"], *shown, kpi["reason"])
    console.print(table)


def _print_tables(console: Console, report: dict[str, Any]) -> None:
    """The summary as rich tables."""
    console.print(
        f"[bold]{report['accounts']} accounts[/], {report['events']:,} events "
        f"({report['events_per_account']} per account) from {report['period']['start']} "
        f"to {report['period']['end']}, written to {report['db']} "
        f"in {report['elapsed_seconds']:.1f} s (seed {report['seed']})"
    )
    statuses = [status.value for status in AccountStatus]
    segments = Table(title="Accounts by segment and status", title_justify="left")
    segments.add_column("segment")
    for status in statuses:
        segments.add_column(status, justify="right")
    segments.add_column("total", justify="right")
    for segment, counts in report["accounts_by_segment"].items():
        row = [str(counts[status]) for status in statuses]
        segments.add_row(segment, *row, str(sum(counts.values())))
    console.print(segments)

    arr = Table(title="ARR by currency (active accounts, now)", title_justify="left")
    arr.add_column("currency")
    arr.add_column("accounts", justify="right")
    arr.add_column("ARR", justify="right")
    for currency, row in report["arr_by_currency"].items():
        arr.add_row(currency, str(row["accounts"]), _amount(row["arr"]))
    console.print(arr)

    retention = Table(title="Retention and service", title_justify="left", show_header=False)
    retention.add_column("what")
    retention.add_column("count", justify="right")
    retention.add_row("renewals", str(report["renewals"]))
    retention.add_row("churn events", str(report["churns"]))
    retention.add_row("accounts that churned", str(report["churned_accounts"]))
    retention.add_row("accounts reactivated", str(report["reactivated_accounts"]))
    retention.add_row("churned now", str(report["churned_now"]))
    retention.add_row("open issues", str(report["open_issues"]))
    retention.add_row("open critical issues", str(report["open_critical_issues"]))
    console.print(retention)

    top = Table(
        title="Top 10 accounts by ARR",
        caption="ranked at fixed demo rates to EUR",
        title_justify="left",
    )
    top.add_column("#", justify="right")
    top.add_column("account")
    top.add_column("segment")
    top.add_column("manager")
    top.add_column("ARR", justify="right")
    top.add_column("≈ EUR", justify="right")
    for rank, row in enumerate(report["top_accounts"], start=1):
        top.add_row(
            str(rank),
            row["name"],
            row["segment"],
            row["manager"],
            _amount(row["arr"], row["currency"]),
            _amount(row["arr_eur"]),
        )
    console.print(top)
    _print_scorecard(console, report["scorecard"])
    if report["today"] is not None:
        from acctdomain.builtin.workday_cli import print_day

        print_day(report["today"])
    if report["plan"] is not None:
        print_plan(console, report["plan"])
    audit = report["audit"]
    console.print(
        f"Audit: the hash chain of {audit['checked']:,} events "
        + ("verifies" if audit["ok"] else "is BROKEN")
        + f" (head {audit['head_position']}: {audit['head_hash'][:16]}...)"
    )
    console.print(report_line(report["report"]), markup=False, soft_wrap=True)


@app.command()
def demo(
    db: Annotated[
        Path, typer.Option("--db", help="SQLite file to write (replaced if it exists).")
    ] = Path("acctdomain-demo.db"),
    accounts: Annotated[int, typer.Option("--accounts", help="Number of accounts.")] = 120,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed: the same seed writes the same book.")
    ] = 7,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary instead of tables.")
    ] = False,
    report_to: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="FILE",
            help="The HTML report to write (replaced; needs the extra acctdomain[report]); "
            "default: the --db path with .html (acctdomain-demo.html).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write a realistic, seeded demo book of business into an SQLite file and summarise it:
    the scorecard, a manager's priorities and one account plan, the audit verification, and
    the HTML report."""
    if accounts < 1:
        _fail(f"--accounts must be at least 1, got {accounts}")
    page = _report_path(db, report_to)
    _replace_store(db)
    try:
        service = AccountService(
            StoreSpec(kind="sqlite", path=str(db)), kpi_settings=DEMO_KPI_SETTINGS
        )
    except (OSError, sqlite3.Error, PersistenceError) as error:
        _fail(f"--db {db}: cannot open an SQLite store there: {error}")
    try:
        progress = progress_bars("Writing accounts")
        task = progress.add_task("accounts", total=accounts)
        started = time.perf_counter()
        with progress:
            summary = generate_book(
                service,
                accounts=accounts,
                seed=seed,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        elapsed = time.perf_counter() - started
        states = [service.get_account(account_id) for account_id in summary.account_ids]
        quarter = quarter_before(summary.end)
        started = time.perf_counter()
        projected = service.catch_up()
        projection_seconds = time.perf_counter() - started
        scorecard = service.scorecard(*quarter, catch_up=False)
        manager = _demo_manager(states)
        priorities = _demo_day(service, manager, summary.end)
        plan = None if manager is None else busiest_plan(service, manager, summary.end)
        written = write_report(service, page, quarter, summary.end, str(db))
        checked = verify(service)
    except (OSError, sqlite3.Error, PersistenceError) as error:
        _fail(f"writing to {db} failed: {error}", code=1)
    finally:
        service.close()
    report = _report(db, summary, states, elapsed)
    report["scorecard"] = _scorecard_report(quarter, scorecard, projected, projection_seconds)
    report["today"] = priorities
    report["plan"] = plan
    report["report"] = written
    report["audit"] = {
        "ok": checked.ok,
        "checked": checked.checked,
        "head_position": checked.head_position,
        "head_hash": checked.head_hex,
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_tables(Console(), report)


# --- plugins ----------------------------------------------------------------------------------


def plugins_report(host: PluginHost) -> dict[str, Any]:
    """What ``acctdomain plugins --json`` prints: every plugin and every failure recorded."""
    # Ask every registration hook once, so a plugin failing there shows up as failed.
    host.projections(), host.kpis(), host.health_signals(), host.policies()
    host.cli_commands(), host.transcodings(), host.upcasters()
    return {
        "plugins": [
            {
                "name": info.name,
                "version": info.version,
                "source": info.source,
                "hooks": list(info.hooks),
                "status": info.status,
                "error": info.error,
            }
            for info in host.status()
        ],
        "failures": [
            {"plugin": failure.plugin, "hook": failure.hook, "error": failure.error}
            for failure in host.failures
        ],
    }


@app.command("plugins")
def plugins_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the plugins: built-in, installed (entry points) and explicit, with their status."""
    report = plugins_report(_active.get("host") or PluginHost())
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title="Plugins", title_justify="left")
    for column in ("name", "version", "source", "status", "hooks"):
        table.add_column(column)
    for plugin in report["plugins"]:
        status = plugin["status"] + (f": {plugin['error']}" if plugin["error"] else "")
        hooks = ", ".join(h.removeprefix("acctdomain_") for h in plugin["hooks"])
        table.add_row(plugin["name"], plugin["version"] or "", plugin["source"], status, hooks)
    Console().print(table)
