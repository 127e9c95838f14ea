"""``acctdomain kpis``: the scorecard of a period, every registered KPI beside the period
before, from the read models of the store named by ``--db``.

The store options, errors and exit codes are those of ``acctdomain projections`` (a user
mistake: one ``error:`` line and exit code 2; a failure while working: exit code 1).
docs/cli.md documents the command and its JSON.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from acctdomain.application import AccountService
from acctdomain.application.kpi_settings import KpiSettings
from acctdomain.application.scorecard import KpiResult, check_conventions, previous_period
from acctdomain.cli_common import figure, parse_moment, quarter_before, shown
from acctdomain.cli_projections import AsJson, Db, _echo_json, _fail, _Plugins, _session, _stdout
from acctdomain.domain import ManagerType, Segment
from acctdomain.domain.currencies import ISO_4217_CODES
from acctdomain.errors import InvalidValue
from acctdomain.plugins import PluginHost

__all__ = ["COMMAND", "add_kpis", "parse_period"]

COMMAND = "kpis"
FILTER_OPTIONS = ("manager", "segment", "manager_type", "product")

_QUARTER = re.compile(r"(\d{4})-[Qq]([1-4])")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_YEAR = re.compile(r"\d{4}")


def add_kpis(root: typer.Typer, host: PluginHost | None = None) -> None:
    """Register ``kpis`` on ``root``, with the KPIs of ``host``'s plugins (default: a
    ``PluginHost()`` made when the command runs)."""
    root.command(COMMAND, context_settings={"obj": _Plugins(host)})(kpis)


def _month_end(year: int, month: int) -> date:
    following = date(year + month // 12, month % 12 + 1, 1)
    return date.fromordinal(following.toordinal() - 1)


def parse_period(text: str) -> tuple[date, date]:
    """``2026-Q1`` (a quarter), ``2026-03`` (a month) or ``2026`` (a year) as its first and
    last day; InvalidValue(period) for anything else."""
    text = text.strip()
    if match := _QUARTER.fullmatch(text):
        year, quarter = int(match[1]), int(match[2])
        return date(year, 3 * quarter - 2, 1), _month_end(year, 3 * quarter)
    if match := _MONTH.fullmatch(text):
        year, month = int(match[1]), int(match[2])
        if 1 <= month <= 12 and year >= 1:
            return date(year, month, 1), _month_end(year, month)
    elif _YEAR.fullmatch(text) and int(text) >= 1:
        return date(int(text), 1, 1), date(int(text), 12, 31)
    raise InvalidValue(
        "period", f"expected a quarter (2026-Q1), a month (2026-03) or a year (2026), got {text!r}"
    )


def _day(option: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(f"{option}: expected a date (YYYY-MM-DD), got {text!r}")


def _period(period: str | None, start: str | None, end: str | None) -> tuple[date, date]:
    if period is not None and (start is not None or end is not None):
        _fail("give --period or --start/--end, not both")
    if period is not None:
        try:
            return parse_period(period)
        except InvalidValue as error:
            _fail(f"--period: {error.reason}")
    if start is None and end is None:
        return quarter_before(date.today())
    if start is None or end is None:
        _fail("give both --start and --end (or --period)")
    first, last = _day("--start", start), _day("--end", end)
    if last < first:
        _fail(f"--end {last.isoformat()} is before --start {first.isoformat()}")
    return first, last


def _known_at(text: str | None) -> date | datetime | None:
    """``--known-at``: a date (its end) or an ISO 8601 time with its offset."""
    if text is None:
        return None
    try:
        return parse_moment(text)
    except ValueError:
        _fail(
            f"--known-at: expected a date (YYYY-MM-DD) or a time with its offset "
            f"(2026-03-31T18:00:00+00:00), got {text!r}"
        )


def _filters(
    manager: str | None, segment: str | None, manager_type: str | None, product: str | None
) -> dict[str, str | None]:
    chosen = {
        "manager": manager,
        "segment": segment,
        "manager_type": manager_type,
        "product": product,
    }
    for name, value in chosen.items():
        if value is not None and not value.strip():
            _fail(f"--{name.replace('_', '-')}: expected a non-empty value")
    for name, kind in (("segment", Segment), ("manager_type", ManagerType)):
        value = chosen[name]
        if value is not None and value not in {member.value for member in kind}:
            known = ", ".join(member.value for member in kind)
            _fail(f"--{name.replace('_', '-')}: expected one of {known}, got {value!r}")
    return chosen


def _conventions(texts: list[str]) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for text in texts:
        name, sign, convention = text.partition("=")
        if not sign or not name.strip() or not convention.strip():
            _fail(f"--convention: expected NAME=CONVENTION (upsell_rate=offers), got {text!r}")
        if name.strip() in chosen:
            _fail(f"--convention: {name.strip()!r} is given twice")
        chosen[name.strip()] = convention.strip()
    return chosen


def _currency(text: str | None) -> str | None:
    if text is not None and text.upper() not in ISO_4217_CODES:
        _fail(f"--currency: {text!r} is not an ISO 4217 currency code")
    return None if text is None else text.upper()


def kpi_report(line: KpiResult) -> dict[str, Any]:
    """One line of the scorecard as JSON; every key is always present."""
    return {
        "name": line.name,
        "title": line.title,
        "unit": line.unit,
        "convention": line.convention or None,
        "value": figure(line.value),
        "previous": figure(line.previous),
        "reason": line.error or (line.value.reason if line.value else ""),
    }


def _print(report: dict[str, Any]) -> None:
    filters = ", ".join(f"{k} {v}" for k, v in report["filters"].items() if v is not None)
    notes = [f"previous period {report['previous_start']} to {report['previous_end']}"]
    if filters:
        notes.append(f"accounts of {filters}")
    if report["known_at"]:
        notes.append(f"as known at {report['known_at']}")
    if report["currency"]:
        notes.append(f"in {report['currency']}")
    table = Table(
        title=f"Scorecard {report['start']} to {report['end']} of {report['db']}",
        caption="; ".join(notes),
        title_justify="left",
    )
    table.add_column("KPI")
    table.add_column("value", justify="right")
    table.add_column("previous period", justify="right")
    table.add_column("note", overflow="fold")
    for kpi in report["kpis"]:
        cells = [shown(kpi[key], kpi["unit"]) for key in ("value", "previous")]
        note = kpi["reason"]
        if kpi["convention"]:
            note = f"convention {kpi['convention']}" + (f"; {note}" if note else "")
        table.add_row(kpi["title"], *cells, note)
    _stdout().print(table)


# The scorecard's options, shared with ``acctdomain report`` (which adds its own --known-at).
PeriodOption = Annotated[
    str | None,
    typer.Option(
        "--period",
        metavar="PERIOD",
        help="2026-Q1 (a quarter), 2026-03 (a month) or 2026 (a year); "
        "default: the last complete quarter.",
        show_default=False,
    ),
]
StartOption = Annotated[
    str | None,
    typer.Option("--start", metavar="DATE", help="First day (with --end).", show_default=False),
]
EndOption = Annotated[
    str | None,
    typer.Option("--end", metavar="DATE", help="Last day (with --start).", show_default=False),
]
ManagerOption = Annotated[
    str | None,
    typer.Option("--manager", help="Only this manager's accounts.", show_default=False),
]
SegmentOption = Annotated[
    str | None,
    typer.Option(
        "--segment", help="Only this segment (smb, mid_market, enterprise).", show_default=False
    ),
]
ManagerTypeOption = Annotated[
    str | None,
    typer.Option(
        "--manager-type",
        help="Only accounts whose manager is of this type (sales, technical, strategic).",
        show_default=False,
    ),
]
ProductOption = Annotated[
    str | None,
    typer.Option(
        "--product",
        help="Only this product line (revenue figures are its own).",
        show_default=False,
    ),
]
CurrencyOption = Annotated[
    str | None,
    typer.Option(
        "--currency",
        metavar="CODE",
        help="Reporting currency (default: the store's settings).",
        show_default=False,
    ),
]
ConventionOption = Annotated[
    list[str] | None,
    typer.Option(
        "--convention",
        metavar="NAME=CONVENTION",
        help="How a KPI with several conventions is computed (repeatable).",
        show_default=False,
    ),
]
SettingsOption = Annotated[
    Path | None,
    typer.Option(
        "--settings",
        metavar="FILE",
        help="Scorecard settings (TOML: reporting_currency, rates, gross_margin); "
        "default: $ACCTDOMAIN_KPI_SETTINGS.",
        show_default=False,
    ),
]


def load_settings(settings: Path | None) -> KpiSettings | None:
    """The scorecard settings of ``--settings`` (None without it); a bad file ends the
    command with one line."""
    if settings is None:
        return None
    try:
        return KpiSettings.from_toml(settings)
    except InvalidValue as error:
        _fail(f"--settings: {error.reason}")


def use_settings(
    service: AccountService, settings: KpiSettings | None, conventions: dict[str, str]
) -> None:
    """Give ``service`` the ``--settings`` (if any) and check ``--convention`` against its
    KPIs; a mistake ends the command with one line."""
    if settings is not None:
        service.kpi_settings = settings
    try:
        check_conventions(service.plugins.kpis(), conventions)
    except InvalidValue as error:
        _fail(f"--convention: {error.reason}")


def kpis(
    ctx: typer.Context,
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
            help="The scorecard as known then: only events recorded by then count.",
            show_default=False,
        ),
    ] = None,
    currency: CurrencyOption = None,
    convention: ConventionOption = None,
    settings: SettingsOption = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """The scorecard of a period: every KPI, and the period before beside it."""
    kpi_settings = load_settings(settings)
    first, last = _period(period, start, end)
    filters = _filters(manager, segment, manager_type, product)
    known = _known_at(known_at)
    conventions = _conventions(convention or [])
    reporting = _currency(currency)
    given: dict[str, Any] = {name: value for name, value in filters.items() if value}
    with _session(ctx, db) as (service, where):
        use_settings(service, kpi_settings, conventions)
        lines = service.scorecard(
            first,
            last,
            known_at=known,
            conventions=conventions,
            currency=reporting,
            **given,
        )
        reporting = reporting or service.kpi_settings.reporting_currency
    before = previous_period(first, last)
    report = {
        "db": where,
        "start": first.isoformat(),
        "end": last.isoformat(),
        "previous_start": before[0].isoformat(),
        "previous_end": before[1].isoformat(),
        "filters": filters,
        "known_at": None if known is None else known.isoformat(),
        "currency": reporting,
        "kpis": [kpi_report(line) for line in lines],
    }
    if as_json:
        _echo_json(report)
    else:
        _print(report)
