"""``acctdomain report``: the book of business as one self-contained HTML page (works offline):
KPI tiles against the previous period, retention trends by quarter, the renewal pipeline by
month, the health distribution, the accounts at risk and today's priorities.

The period, filters and scorecard options are those of ``acctdomain kpis``, parsed by the same
functions, and the tiles hold the very figures ``acctdomain kpis --json`` prints. Errors and
exit codes are those of ``acctdomain projections``. docs/cli.md documents the command and its
JSON; docs/report.md the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from acctdomain.cli_kpis import (
    ConventionOption,
    CurrencyOption,
    EndOption,
    ManagerOption,
    ManagerTypeOption,
    PeriodOption,
    ProductOption,
    SegmentOption,
    SettingsOption,
    StartOption,
    _conventions,
    _currency,
    _filters,
    _known_at,
    _period,
    load_settings,
    use_settings,
)
from acctdomain.cli_projections import Db, _echo_json, _fail, _Plugins, _session
from acctdomain.plugins import PluginHost
from acctdomain.report import SECTIONS, ReportRequest, gather_report, render_html, require_plotly

__all__ = ["COMMAND", "DEFAULT_OUT", "add_report"]

COMMAND = "report"
DEFAULT_OUT = Path("acctdomain-report.html")


def add_report(root: typer.Typer, host: PluginHost | None = None) -> None:
    """Register ``report`` on ``root``, with the KPIs and signals of ``host``'s plugins
    (default: a ``PluginHost()`` made when the command runs)."""
    root.command(COMMAND, context_settings={"obj": _Plugins(host)})(report)


def _output(out: Path) -> Path:
    """``--out``, once it is known that a file can be written there (before the work)."""
    try:
        if out.is_dir():
            _fail(f"--out {out} is a directory, expected a file path")
        parent = out.parent if str(out.parent) else Path(".")
        if not parent.is_dir():
            _fail(f"--out {out}: the directory {parent} does not exist")
        existed = out.exists()
        with out.open("a", encoding="utf-8"):
            pass
        if not existed:
            out.unlink()
    except OSError as error:
        _fail(f"--out {out}: cannot write there: {error.strerror or error}")
    return out


def _write(out: Path, page: str) -> None:
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as error:
        _fail(f"--out {out}: cannot write there: {error.strerror or error}")


def _summary(out: Path, report: dict[str, Any]) -> str:
    sections = report["sections"]
    parts = [f"wrote {out}: {len(sections)} sections"]
    if "kpis" in sections:
        parts.append(f"scorecard {report['start']} to {report['end']}")
    if sections.get("trends", {}).get("quarters"):
        quarters = sections["trends"]["quarters"]
        parts.append(f"trends {quarters[0]} to {quarters[-1]}")
    return ", ".join(parts)


def report(
    ctx: typer.Context,
    out: Annotated[
        Path,
        typer.Option("--out", metavar="FILE", help="The HTML file to write (replaced)."),
    ] = DEFAULT_OUT,
    period: PeriodOption = None,
    start: StartOption = None,
    end: EndOption = None,
    manager: ManagerOption = None,
    segment: SegmentOption = None,
    manager_type: ManagerTypeOption = None,
    product: ProductOption = None,
    known_at: Annotated[
        str | None,
        typer.Option(
            "--known-at",
            metavar="DATE",
            help="KPIs and trends as known then: only events recorded by then count.",
            show_default=False,
        ),
    ] = None,
    currency: CurrencyOption = None,
    convention: ConventionOption = None,
    settings: SettingsOption = None,
    db: Db = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the page's data as JSON (the file is written too)."),
    ] = False,
) -> None:
    """The book of business as one self-contained HTML page: KPI tiles, retention trends,
    renewal pipeline, health, the accounts at risk and today's priorities."""
    try:
        require_plotly()
    except ImportError as error:
        _fail(str(error))
    kpi_settings = load_settings(settings)
    first, last = _period(period, start, end)
    filters = _filters(manager, segment, manager_type, product)
    known = _known_at(known_at)
    conventions = _conventions(convention or [])
    reporting = _currency(currency)
    target = _output(out)
    with _session(ctx, db) as (service, where):
        use_settings(service, kpi_settings, conventions)
        request = ReportRequest(
            start=first,
            end=last,
            db=where,
            filters=filters,
            known_at=known,
            conventions=conventions,
            currency=reporting,
        )
        data = gather_report(service, request, SECTIONS)
    _write(target, render_html(data, SECTIONS))
    if as_json:
        _echo_json(data)
    else:
        typer.echo(_summary(target, data))
