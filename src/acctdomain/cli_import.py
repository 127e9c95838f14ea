"""``acctdomain import``: CRM exports (CSV) into the store named by ``--db``.

Good rows are imported and bad ones written to a rejected-rows CSV (``file,line,column,
reason``); with ``--all-or-nothing`` nothing is imported unless every row is good. Importing
the same files again appends nothing. Exit codes: 0 every row imported (or imported before);
1 some rows rejected, or a failure of the store while writing; 2 a mistake in the command line
or a file that cannot be imported at all (one ``error:`` line, never a traceback).
docs/cli.md and docs/import.md document the command and its JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.table import Table

from acctdomain.application import AccountService
from acctdomain.application.stores import parse_store
from acctdomain.cli_projections import (
    FAILURE,
    FAILURES,
    AsJson,
    Db,
    _echo_json,
    _fail,
    _one_line,
    _Plugins,
    _quiet_engine,
    _stdout,
    _where,
    progress_bars,
)
from acctdomain.errors import AcctDomainError, InvalidValue
from acctdomain.importing import FORMATS, ImportReport, import_files, write_rejects
from acctdomain.plugins import PluginHost

__all__ = ["COMMAND", "add_import"]

COMMAND = "import"
DEFAULT_REJECTS = Path("rejected-rows.csv")


def add_import(root: typer.Typer, host: PluginHost | None = None) -> None:
    """Register ``import`` on ``root``, authorised by ``host``'s plugins (default: a
    ``PluginHost()`` made when the command runs)."""
    root.command(COMMAND, context_settings={"obj": _Plugins(host)})(import_command)


def _file(kind: str) -> Any:
    return typer.Option(
        f"--{kind}",
        metavar="CSV",
        help=f"{FORMATS[kind].title} export.",
        show_default=False,
    )


def _zone(text: str) -> ZoneInfo:
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        _fail(f"--timezone: {text!r} is not a time zone name (e.g. UTC, Europe/Paris)")


def _service(ctx: typer.Context, db: str | None) -> tuple[AccountService, str]:
    """The store to import into; a new SQLite file is created."""
    try:
        spec = parse_store(db)
    except AcctDomainError as error:
        _fail(f"--db: {_one_line(error)}")
    if spec.kind == "memory":
        _fail("--db: an in-memory store is lost when the command ends; give a file or a URL")
    if spec.kind == "sqlite":
        path = Path(spec.path)
        if path.is_dir():
            _fail(f"--db {path} is a directory, expected a file path")
        if not (path.parent if str(path.parent) else Path(".")).is_dir():
            _fail(f"--db {path}: the directory {path.parent} does not exist")
    where = _where(spec)
    try:
        return AccountService(spec, plugins=ctx.ensure_object(_Plugins).get()), where
    except FAILURES as error:
        _fail(f"--db {where}: cannot open the store: {_one_line(error)}")


@contextmanager
def _progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """Reading and writing bars on stderr, only for a person watching."""
    progress = progress_bars("{task.description:<8}")
    tasks: dict[str, Any] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = progress.add_task(phase.capitalize(), total=None)
        progress.update(tasks[phase], completed=done, total=total or None)

    with progress:
        yield update


def import_command(
    ctx: typer.Context,
    accounts: Annotated[Path | None, _file("accounts")] = None,
    activities: Annotated[Path | None, _file("activities")] = None,
    opportunities: Annotated[Path | None, _file("opportunities")] = None,
    tickets: Annotated[Path | None, _file("tickets")] = None,
    surveys: Annotated[Path | None, _file("surveys")] = None,
    all_or_nothing: Annotated[
        bool,
        typer.Option(
            "--all-or-nothing",
            help="Check every row first; import nothing if one is bad.",
        ),
    ] = False,
    rejects: Annotated[
        Path,
        typer.Option(
            "--rejects",
            metavar="CSV",
            help="Where bad rows are listed (file,line,column,reason); written only if any.",
        ),
    ] = DEFAULT_REJECTS,
    actor: Annotated[
        str, typer.Option("--actor", help="Who records the import (in every event).")
    ] = "crm-import",
    source: Annotated[
        str,
        typer.Option("--source", help="Prefix of the CRM's ids (accounts: <source>:<id>)."),
    ] = "crm",
    timezone: Annotated[
        str,
        typer.Option("--timezone", help="Zone of dates and times written without an offset."),
    ] = "UTC",
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Import CRM exports (CSV): accounts, activities, opportunities, tickets, surveys."""
    given = {
        "accounts": accounts,
        "activities": activities,
        "opportunities": opportunities,
        "tickets": tickets,
        "surveys": surveys,
    }
    files = [(kind, path) for kind, path in given.items() if path is not None]
    if not files:
        _fail("give at least one file: --accounts, --activities, --opportunities, ...")
    for kind, path in files:
        if not path.is_file():
            _fail(f"--{kind} {path}: there is no such file")
    if rejects.is_dir():
        _fail(f"--rejects {rejects} is a directory, expected a file path")
    zone = _zone(timezone)
    with _quiet_engine():
        service, where = _service(ctx, db)
        try:
            started = time.perf_counter()
            with _progress_bar() as progress:
                report = import_files(
                    service,
                    files,
                    actor=actor,
                    source=source,
                    all_or_nothing=all_or_nothing,
                    default_zone=zone,
                    progress=progress,
                )
            seconds = time.perf_counter() - started
        except InvalidValue as error:
            _fail(f"{error.field}: {error.reason}")
        except FAILURES as error:
            _fail(f"{where}: {_one_line(error)}", code=FAILURE)
        finally:
            service.close()
    written = None
    if report.errors:
        try:
            write_rejects(rejects, report.errors)
        except OSError as error:
            _fail(f"--rejects {rejects}: cannot write there: {error.strerror or error}")
        written = str(rejects)
    summary = {
        "db": where,
        **report.as_dict(),
        "rejects_file": written,
        "seconds": round(seconds, 2),
    }
    if as_json:
        _echo_json(summary)
    else:
        _print(report, summary)
    if report.errors:
        raise typer.Exit(FAILURE)


def _print(report: ImportReport, summary: dict[str, Any]) -> None:
    console = _stdout()
    table = Table(title=f"Import into {summary['db']}", title_justify="left")
    for column in ("file", "kind", "rows", "rejected"):
        table.add_column(column, justify="right" if column in ("rows", "rejected") else "left")
    for file in report.files:
        table.add_row(file.path, file.kind, str(file.rows), str(file.rejected))
    console.print(table)
    if not report.committed:
        console.print(
            f"[bold]nothing imported[/]: {report.rows_rejected} bad row(s) and --all-or-nothing"
        )
    else:
        console.print(
            f"{report.events_appended:,} events appended to {report.accounts_changed:,} "
            f"accounts; {report.commands_already_imported:,} commands were imported before "
            f"({summary['seconds']:.1f} s)"
        )
    if report.errors:
        console.print(
            f"{report.rows_rejected} row(s) rejected: see {summary['rejects_file']}", markup=False
        )
        for error in report.errors[:5]:
            console.print(
                f"  {error.file}:{error.line} [{error.column}] {error.reason}", markup=False
            )
