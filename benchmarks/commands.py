"""Latency of one command (load, validate, append) against bare ``eventsourcing``.

What it measures
----------------
The wall time of a single ``AccountService.log_contact(...)`` call on an SQLite *file* (in a
temporary directory), for accounts with about 10, 100 and 1000 events of prior history, and,
in the same run, the same work done by bare ``eventsourcing``: a minimal ``Application``
subclass with a minimal ``Aggregate`` whose explicit ``ContactLogged`` event carries the same
fields as acctdomain's, on its own SQLite file with the same recorder, snapshotting at the same
interval as ``AccountService.snapshotting_intervals``, doing ``repository.get(id)``, one
``trigger_event`` and ``save``.

How it is measured
------------------
- Histories are built quickly (aggregate methods, then ``save`` at every snapshot boundary, so
  both applications hold the same snapshots) before any timing.
- For sizes at or above the snapshot interval, each account takes ``interval`` consecutive
  commands starting from ``size - interval // 2`` events, so the samples cover every position
  relative to the last snapshot once and the history averages ``size``. Below the interval,
  each account takes one command at exactly ``size`` events.
- Measurements are interleaved in rounds: each round times one command per size for each
  application, alternating which application goes first, so machine noise hits both alike.
- A warm-up (untimed) precedes the rounds.

Figures
-------
``ratio_vs_eventsourcing`` is our p50 / bare p50 at 100 events (target: <= 1.2);
``flatness`` is our p50 at 1000 events / our p50 at 10 (target: <= 1.3). Per-size p50/p99 are
in microseconds. Each size also reports the median of the per-round ratios and differences
(ours / bare, ours - bare, timed back to back), which move less with machine noise than the
ratio of the two medians. On a disk-backed temp directory every command pays an fsync (SQLite
WAL, ``synchronous=FULL``) that dilutes the ratio and adds noise; ``--dir /dev/shm`` (tmpfs)
shows the CPU overhead alone.

How to run
----------
::

    .venv/bin/python benchmarks/commands.py            # readable table, about a minute
    .venv/bin/python benchmarks/commands.py --json     # one JSON object on stdout
    .venv/bin/python benchmarks/commands.py --quick    # a fast smoke run
    .venv/bin/python benchmarks/commands.py --samples 300 --dir /dev/shm

``--dir`` chooses where the temporary SQLite files go (default: the system temp directory);
``--interval`` overrides the snapshot interval of both applications (for experiments).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID, uuid4

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from acctdomain import AccountService
from acctdomain.domain import Account, EventContext

SIZES = (10, 100, 1000)
RATIO_SIZE = 100
TARGET_RATIO = 1.2
TARGET_FLATNESS = 1.3
SUMMARY = "Quarterly check-in about the renewal and the new reporting module."
SQLITE_LOCK_TIMEOUT = "30"


# --- the bare eventsourcing baseline -----------------------------------------------------------


class BareAccount(Aggregate):
    """A minimal aggregate: a name and what contacts change."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.contact_count = 0
        self.last_contact_at: datetime | None = None

    class ContactLogged(Aggregate.Event):
        """The same fields as acctdomain's ContactLogged, as plain JSON-friendly values."""

        effective_at: datetime
        actor: str
        correlation_id: UUID
        causation_id: UUID | None
        channel: str
        direction: str
        summary: str
        stakeholder_ids: tuple[UUID, ...]
        duration_minutes: int | None

        def apply(self, aggregate: Any) -> None:
            aggregate.contact_count += 1
            last = aggregate.last_contact_at
            if last is None or self.effective_at > last:
                aggregate.last_contact_at = self.effective_at

    def log_contact(self, *, channel: str, direction: str, summary: str, actor: str) -> None:
        now = datetime.now(UTC)
        self.trigger_event(
            self.ContactLogged,
            timestamp=max(now, self.modified_on),
            effective_at=now,
            actor=actor,
            correlation_id=uuid4(),
            causation_id=None,
            channel=channel,
            direction=direction,
            summary=summary,
            stakeholder_ids=(),
            duration_minutes=None,
        )


class BareApplication(Application[UUID]):
    """What a user of bare eventsourcing writes: get, one event, save. ``bare_application``
    sets the snapshot interval."""

    name = "bare"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {}

    def log_contact(self, account_id: UUID, *, summary: str, actor: str) -> None:
        account: BareAccount = self.repository.get(account_id)
        account.log_contact(channel="email", direction="outbound", summary=summary, actor=actor)
        self.save(account)


def bare_application(interval: int, path: Path) -> BareApplication:
    cls = type(
        "BareApplication",
        (BareApplication,),
        {"name": BareApplication.name, "snapshotting_intervals": {BareAccount: interval}},
    )
    app: BareApplication = cls(env=sqlite_env(path))
    return app


def sqlite_env(path: Path) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path),
        "SQLITE_LOCK_TIMEOUT": SQLITE_LOCK_TIMEOUT,
    }


# --- building histories ------------------------------------------------------------------------


def _ctx() -> EventContext:
    now = datetime.now(UTC)
    return EventContext(actor="bench", effective_at=now, recorded_at=now, correlation_id=uuid4())


def build_ours(service: AccountService, events: int, interval: int) -> UUID:
    """An account with ``events`` events (opened, then contacts), saved at every snapshot
    boundary so that the service writes its snapshots as it would have command by command."""
    account = Account.open(
        account_id=uuid4(),
        name="Bench Ltd",
        segment="mid_market",
        industry="Software",
        currency="EUR",
        manager="Alice Example",
        manager_type="sales",
        external_key=None,
        ctx=_ctx(),
    )
    while account.version < events:
        account.log_contact(
            channel="email",
            direction="outbound",
            summary=SUMMARY,
            stakeholder_ids=(),
            duration_minutes=None,
            ctx=_ctx(),
        )
        if account.version % interval == 0:
            service.save(account)
    service.save(account)
    return account.id


def build_bare(app: BareApplication, events: int, interval: int) -> UUID:
    account = BareAccount(name="Bench Ltd")
    while account.version < events:
        account.log_contact(channel="email", direction="outbound", summary=SUMMARY, actor="bench")
        if account.version % interval == 0:
            app.save(account)
    app.save(account)
    return account.id


class Targets:
    """The accounts one (application, size) pair runs its commands on, in order."""

    def __init__(
        self, build: Callable[[int, int], UUID], size: int, interval: int, commands: int
    ) -> None:
        if size >= interval:
            self.uses = interval
            start = size - interval // 2
        else:
            self.uses = 1
            start = size
        count = math.ceil(commands / self.uses)
        self.ids = [build(start, interval) for _ in range(count)]

    def __iter__(self) -> Iterator[UUID]:
        for account_id in self.ids:
            for _ in range(self.uses):
                yield account_id


# --- measuring ---------------------------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(samples_ns: list[int]) -> dict[str, float]:
    values = sorted(ns / 1000 for ns in samples_ns)
    return {
        "p50_us": round(statistics.median(values), 1),
        "p90_us": round(percentile(values, 0.90), 1),
        "p99_us": round(percentile(values, 0.99), 1),
        "mean_us": round(statistics.fmean(values), 1),
        "min_us": round(values[0], 1),
    }


def run(samples: int, warmup: int, interval: int | None, directory: str | None) -> dict[str, Any]:
    service_class: type[AccountService] = AccountService
    if interval is None:
        interval = AccountService.snapshotting_intervals[Account]
    elif interval != AccountService.snapshotting_intervals.get(Account):
        service_class = type(
            "AccountService",
            (AccountService,),
            {"name": AccountService.name, "snapshotting_intervals": {Account: interval}},
        )
    commands = samples + warmup

    with tempfile.TemporaryDirectory(prefix="acctdomain-bench-", dir=directory) as tmp:
        ours_db = Path(tmp) / "acctdomain.db"
        bare_db = Path(tmp) / "bare.db"
        service = service_class(str(ours_db))
        bare = bare_application(interval, bare_db)
        try:
            started = time.perf_counter()
            ours_targets = {
                size: iter(
                    Targets(lambda n, i: build_ours(service, n, i), size, interval, commands)
                )
                for size in SIZES
            }
            bare_targets = {
                size: iter(Targets(lambda n, i: build_bare(bare, n, i), size, interval, commands))
                for size in SIZES
            }
            setup_seconds = time.perf_counter() - started

            def ours_command(size: int) -> int:
                account_id = next(ours_targets[size])
                t0 = time.perf_counter_ns()
                service.log_contact(
                    account_id,
                    channel="email",
                    direction="outbound",
                    summary=SUMMARY,
                    actor="bench",
                )
                return time.perf_counter_ns() - t0

            def bare_command(size: int) -> int:
                account_id = next(bare_targets[size])
                t0 = time.perf_counter_ns()
                bare.log_contact(account_id, summary=SUMMARY, actor="bench")
                return time.perf_counter_ns() - t0

            ours: dict[int, list[int]] = {size: [] for size in SIZES}
            theirs: dict[int, list[int]] = {size: [] for size in SIZES}
            gc.collect()
            started = time.perf_counter()
            for round_number in range(commands):
                for size in SIZES:
                    if round_number % 2 == 0:
                        a, b = ours_command(size), bare_command(size)
                    else:
                        b, a = bare_command(size), ours_command(size)
                    if round_number >= warmup:
                        ours[size].append(a)
                        theirs[size].append(b)
            measure_seconds = time.perf_counter() - started
        finally:
            service.close()
            bare.close()

    per_size: dict[str, dict[str, Any]] = {}
    for size in SIZES:
        mine, base = summarize(ours[size]), summarize(theirs[size])
        pairs = [a / b for a, b in zip(ours[size], theirs[size], strict=True)]
        differences = [(a - b) / 1000 for a, b in zip(ours[size], theirs[size], strict=True)]
        per_size[str(size)] = {
            "acctdomain": mine,
            "eventsourcing": base,
            "ratio_p50": round(mine["p50_us"] / base["p50_us"], 3),
            "paired_ratio_p50": round(statistics.median(pairs), 3),
            "paired_overhead_p50_us": round(statistics.median(differences), 1),
        }
    ours_p50 = {size: summarize(ours[size])["p50_us"] for size in SIZES}
    bare_p50 = {size: summarize(theirs[size])["p50_us"] for size in SIZES}
    ratio = ours_p50[RATIO_SIZE] / bare_p50[RATIO_SIZE]
    flatness = ours_p50[SIZES[-1]] / ours_p50[SIZES[0]]
    return {
        "benchmark": "commands",
        "command": "log_contact",
        "ratio_vs_eventsourcing": round(ratio, 3),
        "flatness": round(flatness, 3),
        "eventsourcing_flatness": round(bare_p50[SIZES[-1]] / bare_p50[SIZES[0]], 3),
        "targets": {
            "ratio_vs_eventsourcing_max": TARGET_RATIO,
            "flatness_max": TARGET_FLATNESS,
            "ratio_met": ratio <= TARGET_RATIO,
            "flatness_met": flatness <= TARGET_FLATNESS,
        },
        "sizes": per_size,
        "snapshot_interval": interval,
        "samples": samples,
        "warmup": warmup,
        "store": "sqlite file",
        "directory": directory or tempfile.gettempdir(),
        "setup_seconds": round(setup_seconds, 1),
        "measure_seconds": round(measure_seconds, 1),
        "python": platform.python_version(),
        "eventsourcing": dist_version("eventsourcing"),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"One command (log_contact) on an SQLite file, {result['samples']} samples per size "
        f"after {result['warmup']} warm-up rounds, snapshots every "
        f"{result['snapshot_interval']} events",
        f"python {result['python']}, eventsourcing {result['eventsourcing']}, "
        f"sqlite {result['sqlite']}, files in {result['directory']}",
        "",
        f"{'history':>8}  {'acctdomain p50':>14} {'p99':>9}  {'eventsourcing p50':>17} "
        f"{'p99':>9}  {'ratio p50':>9}  {'paired ratio':>12}  {'paired extra':>12}",
    ]
    for size, row in result["sizes"].items():
        mine, base = row["acctdomain"], row["eventsourcing"]
        lines.append(
            f"{size:>8}  {mine['p50_us']:>12.0f}us {mine['p99_us']:>7.0f}us  "
            f"{base['p50_us']:>15.0f}us {base['p99_us']:>7.0f}us  {row['ratio_p50']:>9.2f}  "
            f"{row['paired_ratio_p50']:>12.2f}  {row['paired_overhead_p50_us']:>10.0f}us"
        )
    targets = result["targets"]
    lines += [
        "",
        f"ratio vs eventsourcing at {RATIO_SIZE} events: {result['ratio_vs_eventsourcing']:.2f}"
        f" (target <= {TARGET_RATIO}: {'met' if targets['ratio_met'] else 'NOT met'})",
        f"flatness (p50 at {SIZES[-1]} / p50 at {SIZES[0]}): {result['flatness']:.2f}"
        f" (target <= {TARGET_FLATNESS}: {'met' if targets['flatness_met'] else 'NOT met'});"
        f" bare eventsourcing: {result['eventsourcing_flatness']:.2f}",
        f"setup {result['setup_seconds']}s, measuring {result['measure_seconds']}s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a fast run (60 samples)")
    parser.add_argument("--samples", type=int, help="timed commands per size and application")
    parser.add_argument("--warmup", type=int, help="untimed rounds first")
    parser.add_argument("--interval", type=int, help="override the snapshot interval")
    parser.add_argument("--dir", help="directory for the temporary SQLite files")
    args = parser.parse_args(argv)
    samples = args.samples or (60 if args.quick else 1000)
    warmup = args.warmup if args.warmup is not None else max(10, samples // 10)
    if samples < 1 or warmup < 0 or (args.interval is not None and args.interval < 1):
        parser.error("--samples and --interval must be positive, --warmup not negative")
    result = run(samples, warmup, args.interval, args.dir)
    print(json.dumps(result) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
