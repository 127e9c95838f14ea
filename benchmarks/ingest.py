"""Import of CRM exports (CSV) against bare ``eventsourcing`` and plain ``sqlite3``.

What it measures
----------------
The reference workload of DESIGN.md section 5 (10,000 accounts with about 100 events each;
``--size quick`` is 1,000 accounts) written as the five CSV exports docs/import.md documents
(accounts, activities, opportunities, tickets, surveys), then imported three ways, each into a
new SQLite file, in the same run:

- **acctdomain**: ``import_files(service, files)`` on
  ``AccountService(path, plugins=PluginHost(entry_points=False))``: every row parsed and
  checked, every command decided by the ``Account`` aggregate, authorised, keyed for exactly
  once, saved many accounts per transaction with the hash chain and snapshots. Timed from the
  first CSV byte read to the last commit.
- **eventsourcing**: what a user of bare ``eventsourcing`` writes: a minimal ``Aggregate`` with
  two explicit events (opened; a step recorded, carrying the row's cells), ``csv.DictReader``
  over the same files, and per command ``repository.get`` (from the aggregate cache, so no
  replay) + one ``trigger_event`` + ``save`` of that aggregate: one transaction per command,
  as many events as ours. No parsing of values, no validation, no idempotency.
- **sqlite**: the same CSV rows read with ``csv.reader`` and ``executemany``'d as they are into
  one plain table per file (TEXT columns), one transaction per file.

Figures
-------
``ratio_vs_eventsourcing`` and ``ratio_vs_sqlite`` are our events per second over theirs (each
loop is credited with the workload's events). Targets (issue 8): >= 5 and >= 0.4. The run
also re-imports the same files into our store and reports what that appended (it must be 0).
``--breakdown`` imports once more with each phase timed and reports microseconds per event by
phase (parse, decide, encrypt, encode, insert, hash, commit, snapshots...): the sqlite loop
spends a few microseconds per row in all, which is less than any one of our phases.

The CSV files are cached under ``--dir`` (default ``<tmp>/acctdomain-bench-ingest``), named
by their parameters; ``--fresh`` writes them again. The databases are written in a fresh
temporary directory under ``--dir`` and removed afterwards.

How to run
----------
::

    .venv/bin/python benchmarks/ingest.py --json                # the reference size
    .venv/bin/python benchmarks/ingest.py --size quick          # 1,000 accounts, a table
    .venv/bin/python benchmarks/ingest.py --accounts 50 --events-per-account 30 --json
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import gc
import json
import os
import platform
import pstats
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

sys.path.insert(0, str(Path(__file__).resolve().parent))

from acctdomain import AccountService
from acctdomain.importing import import_files
from acctdomain.plugins import PluginHost
from rebuild import workload_arguments

TARGET_RATIO_ES = 5.0
TARGET_RATIO_SQLITE = 0.4
GENERATOR_VERSION = 1
START = datetime(2023, 1, 2, 8, 0, tzinfo=UTC)
YEARS = 3
KINDS = ("accounts", "activities", "opportunities", "tickets", "surveys")
LOOPS = ("acctdomain", "eventsourcing", "sqlite")
HEADERS = {
    "accounts": (
        "Account ID",
        "Account Name",
        "Industry",
        "Segment",
        "Account Owner",
        "Owner Type",
        "Currency",
        "Created Date",
    ),
    "activities": ("Activity ID", "Account ID", "Type", "Date", "Direction", "Subject", "Duration"),
    "opportunities": (
        "Opportunity ID",
        "Account ID",
        "Type",
        "Stage",
        "Amount",
        "Currency",
        "Created Date",
        "Close Date",
        "Product",
        "Term Months",
        "Loss Reason",
    ),
    "tickets": (
        "Ticket ID",
        "Account ID",
        "Priority",
        "Status",
        "Created",
        "First Response",
        "Resolved",
        "Subject",
        "Category",
    ),
    "surveys": ("Response ID", "Account ID", "Type", "Score", "Date", "Respondent", "Comment"),
}
INDUSTRIES = ("Logistics", "Retail", "Biotech", "Banking", "Software", "Manufacturing")
SEGMENTS = ("SMB", "SMB", "Mid-Market", "Enterprise")
OWNERS = (("Ana Ruiz", "Sales"), ("Ben Okafor", "Technical"), ("Chloe Martin", "Strategic"))
CURRENCIES = ("EUR", "EUR", "USD", "GBP")
CHANNELS = ("Call", "Email", "Email", "Meeting", "Video Call", "QBR", "Chat")
SUBJECTS = ("Check-in", "Renewal prep", "Usage review", "Question about invoices", "Roadmap")
PRODUCTS = ("Analytics", "Reporting", "Integrations", "Mobile")


# --- the workload: seeded CSV exports ----------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def account_rows(
    index: int, seed: int, per_account: int, end: datetime
) -> Iterator[tuple[str, list[str]]]:
    """One account's rows, by kind: its opening, a contract renewed every year with upsells
    and cross-sells between renewals, tickets, surveys, and activities for the rest."""
    rng = random.Random(f"{seed}:{index}")
    account = f"001B{index:07d}"
    created = START + timedelta(days=rng.uniform(0, 330), hours=rng.uniform(0, 9))
    owner, owner_type = rng.choice(OWNERS)
    currency = rng.choice(CURRENCIES)
    yield (
        "accounts",
        [
            account,
            f"Company {index}",
            rng.choice(INDUSTRIES),
            rng.choice(SEGMENTS),
            owner,
            owner_type,
            currency,
            _iso(created),
        ],
    )
    events = 1
    opportunity = 0

    def deal(
        kind: str, stage: str, amount: int, opened: datetime, closed: datetime, product: str
    ) -> tuple[str, list[str]]:
        nonlocal opportunity
        opportunity += 1
        reason = "Went with a competitor" if stage == "Closed Lost" else ""
        return (
            "opportunities",
            [
                f"006{index:07d}{opportunity:02d}",
                account,
                kind,
                stage,
                str(amount),
                currency,
                opened.date().isoformat(),
                closed.date().isoformat(),
                product,
                "12",
                reason,
            ],
        )

    start = created + timedelta(days=10)
    yield deal(
        "New Business", "Closed Won", rng.randrange(5_000, 90_000, 500), created, start, "Core"
    )
    events += 1
    owned = {"Core"}
    while start + timedelta(days=365) < end:
        offered, closed = start + timedelta(days=30), start + timedelta(days=90)
        product = rng.choice(PRODUCTS)
        kind = "Upsell" if product in owned or rng.random() < 0.5 else "Cross-sell"
        product = rng.choice(sorted(owned)) if kind == "Upsell" else product
        stage = "Closed Won" if rng.random() < 0.6 else "Closed Lost"
        yield deal(kind, stage, rng.randrange(1_000, 20_000, 500), offered, closed, product)
        events += 3 if stage == "Closed Won" else 2
        if stage == "Closed Won":
            owned.add(product)
        renewal = start + timedelta(days=365)
        yield deal(
            "Renewal",
            "Closed Won",
            rng.randrange(5_000, 90_000, 500),
            renewal - timedelta(days=60),
            renewal,
            "Core",
        )
        events += 2
        start = renewal
    life = (end - created).total_seconds()
    tickets = max(1, (per_account - events) // 12)
    for number in range(tickets):
        opened = created + timedelta(seconds=rng.uniform(0.05, 0.95) * life)
        answered = opened + timedelta(hours=rng.uniform(0.2, 20))
        solved = answered + timedelta(hours=rng.uniform(1, 72))
        yield (
            "tickets",
            [
                f"T{index:07d}-{number:03d}",
                account,
                rng.choice(("Low", "Normal", "High", "Urgent")),
                "Solved",
                _iso(opened),
                _iso(answered),
                _iso(solved),
                rng.choice(("Export fails", "SSO question", "Slow dashboard", "Invoice")),
                rng.choice(("bug", "question", "billing")),
            ],
        )
    events += 3 * tickets
    surveys = max(1, (per_account - events) // 10)
    for number in range(surveys):
        kind = rng.choice(("NPS", "CSAT", "CES"))
        score = {"NPS": rng.randint(0, 10), "CSAT": rng.randint(1, 5), "CES": rng.randint(1, 7)}
        yield (
            "surveys",
            [
                f"S{index:07d}-{number:03d}",
                account,
                kind,
                str(score[kind]),
                _iso(created + timedelta(seconds=rng.uniform(0.01, 0.99) * life)),
                f"person{number}@company{index}.example",
                rng.choice(("", "Great support", "Too pricey", "Easy to use")),
            ],
        )
    events += surveys
    for number in range(max(0, per_account - events)):
        yield (
            "activities",
            [
                f"00T{index:07d}{number:04d}",
                account,
                rng.choice(CHANNELS),
                _iso(created + timedelta(seconds=rng.uniform(0.001, 0.999) * life)),
                rng.choice(("Inbound", "Outbound")),
                rng.choice(SUBJECTS),
                str(rng.randrange(5, 90, 5)) if rng.random() < 0.5 else "",
            ],
        )


def write_csvs(directory: Path, accounts: int, per_account: int, seed: int) -> dict[str, Path]:
    """The five exports of the workload in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    end = START.replace(year=START.year + YEARS) - timedelta(days=1)
    paths = {kind: directory / f"{kind}.csv" for kind in KINDS}
    with ExitStack() as stack:
        writers = {
            kind: csv.writer(
                stack.enter_context(open(paths[kind], "w", newline="", encoding="utf-8"))
            )
            for kind in KINDS
        }
        for kind in KINDS:
            writers[kind].writerow(HEADERS[kind])
        for index in range(accounts):
            for kind, row in account_rows(index, seed, per_account, end):
                writers[kind].writerow(row)
    return paths


def cached_csvs(
    directory: Path, accounts: int, per_account: int, seed: int, *, fresh: bool
) -> tuple[dict[str, Path], dict[str, Any]]:
    name = f"ingest-a{accounts}-e{per_account}-s{seed}-g{GENERATOR_VERSION}"
    where = directory / name
    marker = where / "complete.json"
    if fresh or not marker.exists():
        shutil.rmtree(where, ignore_errors=True)
        started = time.perf_counter()
        write_csvs(where, accounts, per_account, seed)
        rows = {kind: _count_rows(where / f"{kind}.csv") for kind in KINDS}
        marker.write_text(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))
        reused = False
    else:
        reused = True
    info = json.loads(marker.read_text())
    paths = {kind: where / f"{kind}.csv" for kind in KINDS}
    size = sum(path.stat().st_size for path in paths.values())
    return paths, {
        "accounts": accounts,
        "events_per_account": per_account,
        "seed": seed,
        "rows": info["rows"],
        "csv_mb": round(size / 1e6, 1),
        "directory": str(where),
        "reused": reused,
    }


def _count_rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


# --- the three loops ---------------------------------------------------------------------------


def new_service(path: Path) -> AccountService:
    return AccountService(str(path), plugins=PluginHost(entry_points=False))


def import_ours(files: dict[str, Path], db: Path) -> tuple[float, int, dict[str, Any]]:
    """Seconds and events of our import, and what a second import of the same files did."""
    service = new_service(db)
    try:
        gc.collect()
        started = time.perf_counter()
        report = import_files(service, [(kind, files[kind]) for kind in KINDS])
        seconds = time.perf_counter() - started
        if report.errors:
            raise RuntimeError(f"the workload has bad rows: {report.errors[:3]}")
        started = time.perf_counter()
        again = import_files(service, [(kind, files[kind]) for kind in KINDS])
        reimport = {
            "events_appended": again.events_appended,
            "commands_already_imported": again.commands_already_imported,
            "seconds": round(time.perf_counter() - started, 2),
        }
        return seconds, report.events_appended, reimport
    finally:
        service.close()


class BareAccount(Aggregate):
    """A minimal aggregate: opened, then steps recorded with the row's cells."""

    @dataclass(frozen=True)
    class Opened(Aggregate.Created):
        name: str
        data: dict[str, str]

    @dataclass(frozen=True)
    class Recorded(Aggregate.Event):
        kind: str
        data: dict[str, str]

        def apply(self, aggregate: Any) -> None:
            aggregate.steps += 1

    def __init__(self) -> None:
        self.steps = 0

    @classmethod
    def open(cls, account_id: UUID, name: str, data: dict[str, str]) -> BareAccount:
        account = cls._create(cls.Opened, id=account_id, name=name, data=data)
        account.steps = 0
        return account

    def record(self, kind: str, data: dict[str, str]) -> None:
        self.trigger_event(self.Recorded, kind=kind, data=data)


class BareApplication(Application[UUID]):
    name = "bare"


BARE_NAMESPACE = UUID("3f0b8a52-8d1e-4c7a-9e55-4b3f2a1c0d99")


def _bare_steps(kind: str, row: dict[str, str]) -> list[str]:
    """The events our import appends for the row (one bare event each)."""
    if kind in ("activities", "surveys"):
        return [kind]
    if kind == "tickets":
        return (
            ["raised"]
            + ["responded"] * bool(row["First Response"])
            + ["resolved"] * bool(row["Resolved"])
        )
    stage, deal = row["Stage"], row["Type"]
    if deal == "New Business":
        return ["contract"] if stage == "Closed Won" else []
    closed = ["closed"] if stage in ("Closed Won", "Closed Lost") else []
    if deal == "Renewal":
        return ["due", *closed]
    return ["offered", *closed, *(["expanded"] if stage == "Closed Won" else [])]


def import_bare(files: dict[str, Path], db: Path) -> tuple[float, int]:
    """Seconds and events of the bare eventsourcing loop: one save per command."""
    app = BareApplication(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(db),
            "AGGREGATE_CACHE_MAXSIZE": "1000000",
        }
    )
    try:
        gc.collect()
        started = time.perf_counter()
        events = 0
        for kind in KINDS:
            with open(files[kind], newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    account_id = uuid5(BARE_NAMESPACE, row["Account ID"])
                    if kind == "accounts":
                        app.save(BareAccount.open(account_id, row["Account Name"], row))
                        events += 1
                        continue
                    for step in _bare_steps(kind, row):
                        account: BareAccount = app.repository.get(account_id)
                        account.record(step, row)
                        app.save(account)
                        events += 1
        return time.perf_counter() - started, events
    finally:
        app.close()


def import_sqlite(files: dict[str, Path], db: Path) -> float:
    """Seconds of plain sqlite3: csv.reader and executemany, one table per file."""
    connection = sqlite3.connect(db)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        gc.collect()
        started = time.perf_counter()
        for kind in KINDS:
            with open(files[kind], newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                header = next(reader)
                columns = ", ".join(f"c{i} TEXT" for i in range(len(header)))
                marks = ", ".join("?" * len(header))
                with connection:
                    connection.execute(f"CREATE TABLE {kind} ({columns})")
                    connection.executemany(f"INSERT INTO {kind} VALUES ({marks})", reader)
        return time.perf_counter() - started
    finally:
        connection.close()


def time_loops(
    files: dict[str, Path], directory: Path, repeat: int
) -> tuple[dict[str, list[float]], int, dict[str, Any]]:
    seconds: dict[str, list[float]] = {name: [] for name in LOOPS}
    counts: dict[str, int] = {}
    reimport: dict[str, Any] = {}
    for round_number in range(repeat):
        shift = round_number % len(LOOPS)
        with tempfile.TemporaryDirectory(dir=directory) as scratch:
            for name in LOOPS[shift:] + LOOPS[:shift]:
                db = Path(scratch) / f"{name}.db"
                if name == "acctdomain":
                    elapsed, counts[name], reimport = import_ours(files, db)
                elif name == "eventsourcing":
                    elapsed, counts[name] = import_bare(files, db)
                else:
                    elapsed = import_sqlite(files, db)
                seconds[name].append(elapsed)
                _progress(f"round {round_number + 1}: {name} {elapsed:.1f} s")
    _progress("")
    if counts["acctdomain"] != counts["eventsourcing"]:
        raise RuntimeError(f"the loops appended different numbers of events: {counts}")
    return seconds, counts["acctdomain"], reimport


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        print(f"\r{message:<78}", end="" if message else "\r", file=sys.stderr, flush=True)


BREAKDOWN_PHASES = (
    ("parse", "CSV rows read, checked and mapped to commands (import_files before bulk_write)"),
    ("decide", "accounts and ledgers loaded, commands authorised and decided by the aggregate"),
    ("encrypt", "personal fields sealed: AES-GCM, keys from the process cache"),
    ("encode", "event state transcoded to JSON bytes"),
    ("map_other", "the rest of turning a domain event into a stored event"),
    ("insert", "INSERT of the event rows (eventsourcing's recorder)"),
    ("hash", "hash chain links computed"),
    ("chain_and_keys_sql", "previous hash read, chain rows and key rows written and checked"),
    ("commit", "COMMITs (events and snapshots)"),
    ("snapshots", "snapshots taken and inserted (their sealing, encoding, commit: above)"),
    ("other", "the rest of bulk_write: collecting events, key prefetch, BEGIN, cache, notices"),
)


def breakdown_ours(files: dict[str, Path], directory: Path) -> dict[str, Any]:
    """One more import of ours with its phases timed: microseconds per event, by phase.

    Each phase is timed exclusively (time in a nested phase counts there only). The timers
    wrap a few hundred thousand calls, so the total is a little above an untimed run's."""
    from eventsourcing import sqlite as es_sqlite

    from acctdomain.application import bulk, personal, sqlite_persistence
    from acctdomain.application import service as service_module
    from acctdomain.importing import importer

    totals: dict[str, float] = dict.fromkeys((name for name, _ in BREAKDOWN_PHASES), 0.0)
    stack: list[list[float]] = []  # per open phase: time spent in its nested phases
    patched: list[tuple[Any, str, Any]] = []

    def timed(owner: Any, name: str, phase: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            stack.append([0.0])
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                nested = stack.pop()[0]
                totals[phase] += elapsed - nested
                if stack:
                    stack[-1][0] += elapsed

        setattr(owner, name, wrapper)
        patched.append((owner, name, original))

    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        service = new_service(Path(scratch) / "breakdown.db")
        timed(importer, "bulk_write", "other")
        timed(bulk, "_decide", "decide")
        timed(personal.PersonalData, "seal_state", "encrypt")
        timed(service.mapper.transcoder, "encode", "encode")
        timed(personal.PersonalDataMapper, "to_stored_event", "map_other")
        timed(sqlite_persistence, "link", "hash")
        timed(es_sqlite.SQLiteApplicationRecorder, "_insert_events", "insert")
        timed(
            sqlite_persistence.SubscribableSQLiteApplicationRecorder,
            "_insert_events",
            "chain_and_keys_sql",
        )
        timed(es_sqlite.SQLiteConnection, "commit", "commit")
        timed(service_module.AccountService, "_take_snapshots", "snapshots")
        try:
            gc.collect()
            started = time.perf_counter()
            report = importer.import_files(service, [(kind, files[kind]) for kind in KINDS])
            total = time.perf_counter() - started
        finally:
            for owner, name, original in reversed(patched):
                setattr(owner, name, original)
            service.close()
    totals["parse"] = total - sum(totals.values())
    events = report.events_appended
    return {
        "events": events,
        "total_us_per_event": round(1e6 * total / events, 1),
        "us_per_event": {name: round(1e6 * totals[name] / events, 1) for name in totals},
        "phases": dict(BREAKDOWN_PHASES),
    }


def profile_ours(files: dict[str, Path], directory: Path, top: int) -> None:
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        profiler = cProfile.Profile()
        profiler.runcall(import_ours, files, Path(scratch) / "profile.db")
    stats = pstats.Stats(profiler, stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(top)


# --- the run -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    directory = (
        Path(args.dir) if args.dir else Path(tempfile.gettempdir()) / "acctdomain-bench-ingest"
    )
    directory.mkdir(parents=True, exist_ok=True)
    files, workload = cached_csvs(
        directory, args.accounts, args.events_per_account, args.seed, fresh=args.fresh
    )
    seconds, events, reimport = time_loops(files, directory, args.repeat)
    if args.profile:
        profile_ours(files, directory, args.profile)
    breakdown = breakdown_ours(files, directory) if args.breakdown else None
    rates = {name: events / min(seconds[name]) for name in LOOPS}
    ratio_es = rates["acctdomain"] / rates["eventsourcing"]
    ratio_sqlite = rates["acctdomain"] / rates["sqlite"]
    return {
        "benchmark": "ingest",
        "ratio_vs_eventsourcing": round(ratio_es, 3),
        "ratio_vs_sqlite": round(ratio_sqlite, 3),
        "targets": {
            "ratio_vs_eventsourcing_min": TARGET_RATIO_ES,
            "ratio_vs_sqlite_min": TARGET_RATIO_SQLITE,
            "ratio_vs_eventsourcing_met": ratio_es >= TARGET_RATIO_ES,
            "ratio_vs_sqlite_met": ratio_sqlite >= TARGET_RATIO_SQLITE,
        },
        "events": events,
        "events_per_second": {name: round(rate) for name, rate in rates.items()},
        "us_per_event": {name: round(1e6 / rate, 1) for name, rate in rates.items()},
        "breakdown": breakdown,
        "seconds": {name: [round(s, 3) for s in seconds[name]] for name in LOOPS},
        "reimport": reimport,
        "workload": workload,
        "repeat": args.repeat,
        "python": platform.python_version(),
        "eventsourcing": dist_version("eventsourcing"),
        "acctdomain": dist_version("acctdomain"),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def render(result: dict[str, Any]) -> str:
    work, targets, rates = result["workload"], result["targets"], result["events_per_second"]
    labels = {
        "acctdomain": "acctdomain import_files()",
        "eventsourcing": "eventsourcing get + save per command",
        "sqlite": "sqlite3 csv.reader + executemany",
    }
    lines = [
        f"Import of CRM exports: {work['accounts']:,} accounts x ~{work['events_per_account']} "
        f"events = {result['events']:,} events from {sum(work['rows'].values()):,} CSV rows "
        f"({work['csv_mb']} MB)",
        f"python {result['python']}, eventsourcing {result['eventsourcing']}, "
        f"sqlite {result['sqlite']}, best of {result['repeat']}",
        "",
        f"{'loop':<40} {'events/s':>10} {'best s':>8}",
    ]
    for name in LOOPS:
        lines.append(f"{labels[name]:<40} {rates[name]:>10,} {min(result['seconds'][name]):>8.2f}")
    for label, key, target, met in (
        (
            "ours / eventsourcing",
            "ratio_vs_eventsourcing",
            TARGET_RATIO_ES,
            "ratio_vs_eventsourcing_met",
        ),
        ("ours / sqlite3", "ratio_vs_sqlite", TARGET_RATIO_SQLITE, "ratio_vs_sqlite_met"),
    ):
        verdict = "met" if targets[met] else "NOT met"
        lines.append(f"{label}: {result[key]:.2f} (target >= {target}: {verdict})")
    again = result["reimport"]
    lines.append(
        f"re-import of the same files: {again['events_appended']} events appended, "
        f"{again['commands_already_imported']:,} commands already imported "
        f"({again['seconds']:.1f} s)"
    )
    if result["breakdown"] is not None:
        parts = result["breakdown"]["us_per_event"]
        lines.append(
            f"our cost per event, by phase ({result['breakdown']['total_us_per_event']} us "
            "timed): " + ", ".join(f"{name} {value}" for name, value in parts.items())
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = workload_arguments(
        __doc__.split("\n", 1)[0],
        argv,
        repeat=1,
        repeat_help="timed rounds (best is reported)",
        extra=lambda parser: parser.add_argument(
            "--breakdown",
            action="store_true",
            help="one more import of ours, timed by phase (us per event, key 'breakdown')",
        ),
    )
    result = run(args)
    print(json.dumps(result) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
