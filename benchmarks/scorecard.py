"""The KPI scorecard for one quarter against the time of a full rebuild, in the same run.

What it measures
----------------
On the SQLite file of ``benchmarks/rebuild.py`` (the reference workload of DESIGN.md section 5:
10,000 accounts with about 100 events each, 1,000,000 events over three years; the same
``--size`` presets and the same cache of databases, so both benchmarks share the file), in the
same run:

- **rebuild**: ``AccountService(path, plugins=PluginHost(entry_points=False))`` then
  ``service.projections.rebuild()``: every built-in projection emptied and replayed, as
  ``rebuild.py`` times it. Only the ``rebuild()`` call is timed; it also brings the read
  models the scorecard reads up to date.
- **scorecard**: in a new service (so nothing the rebuild left in memory helps),
  ``service.scorecard(start, end, catch_up=False)`` for the last complete calendar quarter
  before the workload's end (and, as every scorecard does, the quarter before it): every
  registered KPI, computed from the read models only. Three variants take turns in each of
  ``--repeat`` rounds: the whole book (``full``), one account manager (``manager``), and the
  book as known at the end of the quarter (``known_at``). Each call is timed on its own,
  after the process's cache of sBG fits is emptied (``clear_fit_cache``): every timed
  scorecard fits the retention model of ``projected_renewal_rate`` for both quarters, as the
  first look at a quarter does. ``fit_cache_warm`` gives, for information, the ``full``
  scorecard's seconds when the cache already holds those fits (a dashboard shown again).

The service reports in EUR with a fixed rate table and a gross margin (``SETTINGS``), so the
money KPIs (NRR, GRR, ARR, lifetime value) have figures over the book's four currencies.

Before the timed rounds, one untimed scorecard runs with the event store's read methods
counted (``recorder.select_events``, ``select_notifications``, ``max_notification_id``):
``event_store_reads`` must be 0, the scorecard is served from read models.

Figures
-------
``ratio_vs_rebuild`` = the median seconds of the ``full`` scorecard / the rebuild's seconds.
Target (issue 5): <= 0.01 (``meets_target``). ``scorecards`` gives, per variant, the seconds
of every round, their median and minimum, and the ratio to the rebuild; ``kpis`` a few
figures of the quarter (active accounts, ARR, NRR, GRR, logo retention...) so a reader can see
real numbers were computed.

How to run
----------
::

    .venv/bin/python benchmarks/scorecard.py --json                # the reference size
    .venv/bin/python benchmarks/scorecard.py --size quick          # 1,000 x 100, a table
    .venv/bin/python benchmarks/scorecard.py --accounts 50 --events-per-account 20 --repeat 2
    .venv/bin/python benchmarks/scorecard.py --size quick --profile 25   # cProfile on stderr

At the reference size the rebuild dominates (a few minutes); the database is built once by
whichever of the two benchmarks runs first (about two minutes).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

from acctdomain import AccountService
from acctdomain.application.kpi_settings import KpiSettings
from acctdomain.application.scorecard import KpiResult
from acctdomain.domain import Money
from acctdomain.plugins import PluginHost, ReadModel

# This script's directory is on sys.path when it is run: the workload is rebuild.py's.
from rebuild import (
    MANAGERS,
    START,
    YEARS,
    cached_database,
    new_service,
    workload_arguments,
)

TARGET_RATIO = 0.01
VARIANTS = ("full", "manager", "known_at")
MANAGER = MANAGERS[0][0]
SETTINGS = KpiSettings(
    reporting_currency="EUR",
    rates={"USD/EUR": "0.92", "GBP/EUR": "1.17", "CHF/EUR": "1.05"},
    gross_margin="0.78",
)
# The figures shown in the JSON (every KPI of the scorecard is computed and timed).
SHOWN = (
    "active_accounts",
    "new_accounts",
    "churned_accounts",
    "arr",
    "nrr",
    "grr",
    "logo_retention",
    "renewal_rate",
    "nps",
)
RECORDER_READS = ("select_events", "select_notifications", "max_notification_id")


# --- the period ------------------------------------------------------------------------------


def workload_end() -> datetime:
    """The last effective time of the workload (as rebuild.py's simulation sets it)."""
    return START.replace(year=START.year + YEARS) - timedelta(days=1)


def last_complete_quarter(before: date) -> tuple[date, date]:
    """The last calendar quarter that ends before the day ``before``."""
    first_month = (before.month - 1) // 3 * 3 + 1
    this_quarter = date(before.year, first_month, 1)
    end = this_quarter - timedelta(days=1)
    return date(end.year, (end.month - 1) // 3 * 3 + 1, 1), end


# --- the two measurements --------------------------------------------------------------------


def scorecard_service(path: Path) -> AccountService:
    """The service as a reporting process uses it: built-in plugins, EUR reporting."""
    return AccountService(str(path), plugins=PluginHost(entry_points=False), kpi_settings=SETTINGS)


def rebuild_seconds(path: Path) -> tuple[float, int]:
    """Seconds and events of one full rebuild of every built-in projection."""
    service = new_service(path)
    try:
        runner = service.projections
        gc.collect()
        started = time.perf_counter()
        events = runner.rebuild()
        return time.perf_counter() - started, events
    finally:
        service.close()


def variant_kwargs(variant: str, start: date, end: date) -> dict[str, Any]:
    """The arguments of ``service.scorecard`` besides the period, for one variant."""
    if variant == "manager":
        return {"manager": MANAGER}
    if variant == "known_at":
        return {"known_at": end}  # what the dashboard said at the end of the quarter
    return {}


def scorecard(service: AccountService, variant: str, start: date, end: date) -> list[KpiResult]:
    return service.scorecard(start, end, catch_up=False, **variant_kwargs(variant, start, end))


@contextmanager
def counting_event_store_reads(service: AccountService) -> Iterator[dict[str, int]]:
    """Count the calls of the recorder's read methods made inside the block."""
    recorder = service.recorder
    calls = dict.fromkeys(RECORDER_READS, 0)
    originals = {name: getattr(recorder, name) for name in RECORDER_READS}

    def counted(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return method(*args, **kwargs)

        return call

    for name, method in originals.items():
        setattr(recorder, name, counted(name, method))
    try:
        yield calls
    finally:
        for name in originals:
            delattr(recorder, name)  # the instance attributes go, the class methods remain


def read_model_rows(service: AccountService) -> dict[str, int]:
    """How many rows each table of the ``kpi_facts`` read model holds (what the KPIs read)."""
    facts: ReadModel = service.read_model("kpi_facts")
    return {
        table: sum(1 for _ in facts.scan(table))
        for table in service.projections.projection("kpi_facts").tables
    }


def clear_fit_cache() -> None:
    """Empty the in-process cache of sBG fits (nothing to do without the forecast extra)."""
    try:
        from acctdomain.forecasting.sbg import clear_fit_cache as clear
    except ImportError:
        return
    clear()


def time_scorecards(
    path: Path, start: date, end: date, repeat: int
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Seconds of each variant per round (the variants take turns going first), and what the
    untimed first scorecard showed (its KPIs, the event-store reads, its own seconds)."""
    service = scorecard_service(path)
    try:
        gc.collect()
        with counting_event_store_reads(service) as reads:
            started = time.perf_counter()
            first = scorecard(service, "full", start, end)
            first_seconds = time.perf_counter() - started
        manager = scorecard(service, "manager", start, end)
        known = scorecard(service, "known_at", start, end)
        seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for round_number in range(repeat):
            shift = round_number % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                clear_fit_cache()  # each timed scorecard fits its models
                gc.collect()
                started = time.perf_counter()
                scorecard(service, variant, start, end)
                seconds[variant].append(time.perf_counter() - started)
        warm: list[float] = []
        scorecard(service, "full", start, end)  # the fits of the full book, kept
        for _ in range(repeat):
            gc.collect()
            started = time.perf_counter()
            scorecard(service, "full", start, end)
            warm.append(time.perf_counter() - started)
        seen = {
            "first_seconds": first_seconds,
            "event_store_reads": sum(reads.values()),
            "event_store_reads_by_method": reads,
            "kpis_computed": len(first),
            "kpis_failed": sorted(line.name for line in first if line.error),
            "kpis": shown_figures(first),
            "kpis_manager": shown_figures(manager),
            "kpis_known_at": shown_figures(known),
            "kpi_facts_rows": read_model_rows(service),
            "fit_cache_warm": warm,
        }
        return seconds, seen
    finally:
        service.close()


def profile_scorecard(path: Path, start: date, end: date, top: int) -> None:
    """One more (whole-book) scorecard under cProfile; the top functions go to stderr."""
    service = scorecard_service(path)
    try:
        scorecard(service, "full", start, end)  # warm, as the timed rounds are
        profiler = cProfile.Profile()
        profiler.runcall(scorecard, service, "full", start, end)
    finally:
        service.close()
    stats = pstats.Stats(profiler, stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


# --- the figures -----------------------------------------------------------------------------


def plain(value: object) -> Any:
    """A KPI figure as JSON: decimals as text, money as amount and currency."""
    if isinstance(value, Money):
        return {"amount": str(value.amount), "currency": value.currency}
    if isinstance(value, Decimal):
        return str(value)
    return value


def shown_figures(lines: list[KpiResult]) -> dict[str, Any]:
    """The figures of ``SHOWN``, this quarter and the one before (undefined: its reason)."""
    by_name = {line.name: line for line in lines}
    shown: dict[str, Any] = {}
    for name in SHOWN:
        line = by_name.get(name)
        if line is None:
            continue
        figure: dict[str, Any] = {}
        for label, kpi_value in (("value", line.value), ("previous", line.previous)):
            if kpi_value is None:
                figure[label] = None
                figure[f"{label}_error"] = line.error
            else:
                figure[label] = plain(kpi_value.value)
                if kpi_value.value is None:
                    figure[f"{label}_reason"] = kpi_value.reason
        shown[name] = figure
    return shown


def run(args: argparse.Namespace) -> dict[str, Any]:
    directory = (
        Path(args.dir) if args.dir else Path(tempfile.gettempdir()) / "acctdomain-bench-rebuild"
    )
    work = cached_database(
        directory, args.accounts, args.events_per_account, args.seed, fresh=args.fresh
    )
    path = Path(work["database"])
    start, end = last_complete_quarter(workload_end().date())
    rebuild, events = rebuild_seconds(path)
    seconds, seen = time_scorecards(path, start, end, args.repeat)
    if args.profile:
        profile_scorecard(path, start, end, args.profile)
    medians = {name: statistics.median(seconds[name]) for name in VARIANTS}
    ratio = medians["full"] / rebuild
    return {
        "benchmark": "scorecard",
        "ratio_vs_rebuild": round(ratio, 6),
        "target_ratio_max": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "rebuild_seconds": round(rebuild, 3),
        "events": events,
        "scorecards": {
            name: {
                "median_seconds": round(medians[name], 4),
                "min_seconds": round(min(seconds[name]), 4),
                "seconds": [round(s, 4) for s in seconds[name]],
                "ratio_vs_rebuild": round(medians[name] / rebuild, 6),
                "arguments": {
                    key: str(value) for key, value in variant_kwargs(name, start, end).items()
                },
            }
            for name in VARIANTS
        },
        "first_scorecard_seconds": round(seen["first_seconds"], 4),
        "fit_cache_warm": {
            "variant": "full",
            "median_seconds": round(statistics.median(seen["fit_cache_warm"]), 4),
            "seconds": [round(s, 4) for s in seen["fit_cache_warm"]],
            "ratio_vs_rebuild": round(statistics.median(seen["fit_cache_warm"]) / rebuild, 6),
        },
        "event_store_reads": seen["event_store_reads"],
        "event_store_reads_by_method": seen["event_store_reads_by_method"],
        "kpis_computed": seen["kpis_computed"],
        "kpis_failed": seen["kpis_failed"],
        "kpis": seen["kpis"],
        "kpis_manager": seen["kpis_manager"],
        "kpis_known_at": seen["kpis_known_at"],
        "kpi_facts_rows": seen["kpi_facts_rows"],
        "reporting_currency": SETTINGS.reporting_currency,
        "workload": work,
        "repeat": args.repeat,
        "python": platform.python_version(),
        "eventsourcing": dist_version("eventsourcing"),
        "acctdomain": dist_version("acctdomain"),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def render(result: dict[str, Any]) -> str:
    work, period = result["workload"], result["period"]
    lines = [
        f"KPI scorecard for {period['start']}..{period['end']} (and the quarter before): "
        f"{work['accounts']:,} accounts x ~{work['events_per_account']} events = "
        f"{result['events']:,} events ({'reused' if work['reused'] else 'built'} "
        f"{work['database']})",
        f"python {result['python']}, eventsourcing {result['eventsourcing']}, "
        f"sqlite {result['sqlite']}, {result['repeat']} rounds; "
        f"{result['kpis_computed']} KPIs, {len(result['kpis_failed'])} failed, "
        f"{result['event_store_reads']} event-store reads",
        "",
        f"{'measure':<34} {'median s':>9} {'min s':>8} {'/ rebuild':>10}",
        f"{'projections.rebuild()':<34} {result['rebuild_seconds']:>9.2f} {'':>8} {'1':>10}",
    ]
    for name, figures in result["scorecards"].items():
        label = f"scorecard ({name})"
        lines.append(
            f"{label:<34} {figures['median_seconds']:>9.3f} {figures['min_seconds']:>8.3f} "
            f"{figures['ratio_vs_rebuild']:>10.4f}"
        )
    warm = result["fit_cache_warm"]
    label = "scorecard (full, sBG fits cached)"
    lines.append(
        f"{label:<34} {warm['median_seconds']:>9.3f} {min(warm['seconds']):>8.3f} "
        f"{warm['ratio_vs_rebuild']:>10.4f}"
    )
    met = "met" if result["meets_target"] else "NOT met"
    lines += [
        "",
        f"scorecard / rebuild: {result['ratio_vs_rebuild']:.4f} "
        f"(target <= {result['target_ratio_max']}: {met})",
        "",
        f"{'KPI (whole book)':<20} {'this quarter':>24} {'previous':>24}",
    ]
    for name, figure in result["kpis"].items():
        value, previous = _figure_text(figure, "value"), _figure_text(figure, "previous")
        lines.append(f"{name:<20} {value:>24} {previous:>24}")
    return "\n".join(lines)


def _figure_text(figure: dict[str, Any], label: str) -> str:
    value = figure[label]
    if value is None:
        return "undefined"
    if isinstance(value, dict):
        return f"{Decimal(value['amount']):,.2f} {value['currency']}"
    return str(value)[:24]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return workload_arguments(
        __doc__.split("\n", 1)[0], argv, repeat=5, repeat_help="timed scorecard rounds"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(json.dumps(result) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
