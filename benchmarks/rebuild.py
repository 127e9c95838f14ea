"""Full rebuild of every built-in projection against bare ``eventsourcing`` and plain ``sqlite3``.

What it measures
----------------
On one SQLite file holding the reference workload of DESIGN.md section 5 (10,000 accounts with
about 100 events each, 1,000,000 events over three years; ``--size`` and ``--accounts`` /
``--events-per-account`` for smaller runs), in the same run:

- **acctdomain**: ``AccountService(path, plugins=PluginHost(entry_points=False))`` then
  ``service.projections.rebuild()``: every built-in projection emptied and replayed, read
  models written to their tables in the same file. Only the ``rebuild()`` call is timed.
- **eventsourcing**: what a user of bare ``eventsourcing`` writes to feed a projection: pages
  of ``recorder.select_notifications`` and ``mapper.to_domain_event`` for each, with the
  service's own mapper (its transcodings are needed to decode the events at all), nothing
  applied or written.
- **sqlite**: a plain ``sqlite3`` scan of the stored events table in notification order with
  ``json.loads`` of each state.
- **peak RSS** of a rebuild at 10% of the events and at all of them, for the same number of
  accounts (100,000 and 1,000,000 events at the reference size: 10 and 100 events per
  account), each in a fresh child process: the child's own ``VmHWM`` (``getrusage`` where
  there is no ``/proc``; on Linux it would inherit the parent's peak).

How the workload is built
-------------------------
Each account is driven through the ``Account`` aggregate's command methods by a small seeded
simulation (open, stakeholders, contract, contacts, requests, issues, surveys, value,
opportunities, expansions and contractions, renewals, churn and win-back, account plans,
manager changes), so every event is one the domain would accept. The accounts' streams are
merged in recorded-time order, as three years of real use would interleave them, and stored
in chunks through the service's recorder (``service.mapper.to_stored_event``, then
``recorder.insert_events``): the rows are exactly those the service would write. Snapshots
are not written (a rebuild never reads them).

Databases are cached under ``--dir`` (default ``<tmp>/acctdomain-bench-rebuild``), named by
their parameters and the versions of the generator, acctdomain and eventsourcing; a sidecar
``.json`` written after a complete build marks one reusable. ``--fresh`` rebuilds them.

Figures
-------
Events per second are the best of ``--repeat`` runs of each loop; the three loops take turns
going first in each round, so the noise of this two-core machine hits all alike. Targets
(issue 4): ``ratio_vs_eventsourcing`` (ours / bare events/s) >= 2.0; ``ratio_vs_sqlite``
(ours / plain sqlite3 events/s) >= 0.5; ``rss_ratio_1m_vs_100k`` (peak RSS of the large
rebuild / the small one) <= 1.2. ``read_models`` reports the rows written and whether every
timed rebuild wrote the same rows.

How to run
----------
::

    .venv/bin/python benchmarks/rebuild.py --json                 # the reference size
    .venv/bin/python benchmarks/rebuild.py --size quick           # 1,000 x 100, a table
    .venv/bin/python benchmarks/rebuild.py --accounts 200 --events-per-account 50 --repeat 1
    .venv/bin/python benchmarks/rebuild.py --size quick --profile 25   # cProfile on stderr

Building the reference databases takes about two minutes the first time; a reference run
then takes about twelve (three rebuilds of 1,000,000 events dominate).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import heapq
import json
import os
import platform
import pstats
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any
from uuid import UUID

from acctdomain import AccountService
from acctdomain.domain import (
    Account,
    ChurnReason,
    CsatScore,
    EventContext,
    IssueSeverity,
    ManagerType,
    Money,
    NpsScore,
    OpportunityKind,
    ProductLine,
    Segment,
    Sentiment,
    StakeholderRole,
    account_id_for,
)
from acctdomain.domain.events import AccountEvent
from acctdomain.plugins import PluginHost

SIZES = {"reference": (10_000, 100), "quick": (1_000, 100), "smoke": (100, 20)}
TARGET_RATIO_ES = 2.0
TARGET_RATIO_SQLITE = 0.5
TARGET_RSS_RATIO = 1.2
# Bump when the simulation changes, so cached databases are not reused across versions.
GENERATOR_VERSION = 1
START = datetime(2023, 1, 2, 8, 0, tzinfo=UTC)
YEARS = 3
INSERT_CHUNK = 5_000
PAGE = 500  # the runner's default batch size, so both loops read pages of the same length
LOOPS = ("acctdomain", "eventsourcing", "sqlite")

PRODUCTS = ("Core", "Analytics", "Reporting", "Integrations", "Support Plus", "Mobile")
CURRENCIES = ("EUR", "EUR", "EUR", "USD", "USD", "GBP", "CHF")
MANAGERS = (("Ana Ruiz", "sales"), ("Ben Okafor", "technical"), ("Chloe Martin", "strategic"))


# --- the workload: seeded account streams through the aggregate --------------------------------


class AccountSim:
    """One account's life from its opening to the end of the period, one command at a time.

    A shadow of what the commands need (open items, product lines, renewal) picks only valid
    commands; the aggregate still checks every one. Effective times only move forward, at a
    random pace that spreads ``target`` events over the account's lifetime.
    """

    def __init__(self, index: int, seed: int, target: int, start: datetime, end: datetime):
        self.rng = random.Random(f"{seed}:{index}")
        self.target = target
        self.index = index
        self.external_key = f"bench-{seed}-{index:06d}"
        # Half the book is handed over on the first day; the rest is won during the first year.
        late = self.rng.random() < 0.5
        self.now = start + (end - start) * (self.rng.uniform(0, 0.33) if late else 0)
        self.end = end
        self.mean_gap = (end - self.now) / max(target, 1)
        self.currency = self.rng.choice(CURRENCIES)
        self.manager = ""
        self.account: Account | None = None
        self.lines: dict[str, Decimal] = {}
        self.term_end: date | None = None
        self.renewal_marked = False
        self.churned = False
        self.people: dict[UUID, Sentiment] = {}
        self.requests: list[UUID] = []
        self.issues: dict[UUID, bool] = {}  # open issue -> responded
        self.offers: dict[UUID, tuple[OpportunityKind, str]] = {}
        self.goal: UUID | None = None
        self.strategy: UUID | None = None
        self.tactics: list[UUID] = []

    def stream(self) -> Iterator[tuple[datetime, int, list[AccountEvent]]]:
        """(recorded time, account index, the events of one command), in time order."""
        yield self._step(self._open)
        assert self.account is not None
        while self.account.version < self.target:
            gap = self.mean_gap * self.rng.expovariate(1.0)
            self.now = min(self.now + gap, self.end)
            yield self._step(self._choose())

    def _step(
        self, command: Callable[[EventContext], None]
    ) -> tuple[datetime, int, list[AccountEvent]]:
        # Recorded a few minutes to a day after the fact, as people log their work.
        lag = timedelta(minutes=self.rng.randint(1, 24 * 60))
        ctx = EventContext(
            actor=self.rng.choice(MANAGERS)[0],
            effective_at=self.now,
            recorded_at=self.now + lag,
            correlation_id=self._id(),
        )
        command(ctx)
        assert self.account is not None
        events: list[AccountEvent] = self.account.collect_events()  # type: ignore[assignment]
        return events[0].timestamp, self.index, events

    def _id(self) -> UUID:
        return UUID(int=self.rng.getrandbits(128), version=4)

    def _money(self, low: int, high: int) -> Money:
        return Money(Decimal(self.rng.randrange(low, high, 100)), self.currency)

    def _choose(self) -> Callable[[EventContext], None]:
        """The next command: the contract's life first, then the relationship at random."""
        today = self.now.date()
        if self.term_end is None and not self.churned:
            return self._stakeholder_added if len(self.people) < 2 else self._contract
        if self.churned:
            return self._reactivate if self.rng.random() < 0.05 else self._relationship()
        assert self.term_end is not None
        if not self.renewal_marked and today >= self.term_end - timedelta(days=45):
            return self._renewal_due
        if self.renewal_marked and today >= self.term_end - timedelta(days=7):
            return self._churn if self.rng.random() < 0.08 else self._renew
        return self._relationship()

    def _relationship(self) -> Callable[[EventContext], None]:
        weighted = (
            (self._contact, 46),
            (self._request, 10),
            (self._issue, 10),
            (self._feedback, 6),
            (self._value, 3),
            (self._stakeholder, 5),
            (self._opportunity, 0 if self.churned else 5),
            (self._expansion, 0 if self.churned else 3),
            (self._plan, 10),
            (self._reassign, 2),
        )
        commands = [command for command, _ in weighted]
        chosen: Callable[[EventContext], None] = self.rng.choices(
            commands, [weight for _, weight in weighted]
        )[0]
        return chosen

    # --- lifecycle ----------------------------------------------------------------------------

    def _open(self, ctx: EventContext) -> None:
        manager, manager_type = self.rng.choice(MANAGERS)
        self.manager = manager
        self.account = Account.open(
            account_id=account_id_for(self.external_key),
            name=f"Bench Customer {self.index:06d}",
            segment=self.rng.choice(list(Segment)),
            industry=self.rng.choice(("Software", "Retail", "Logistics", "Health", "Finance")),
            currency=self.currency,
            manager=manager,
            manager_type=manager_type,
            external_key=self.external_key,
            ctx=ctx,
        )

    def _new_lines(self) -> tuple[ProductLine, ...]:
        count = self.rng.randint(1, 3)
        self.lines = {
            product: self._money(5_000, 80_000).amount
            for product in self.rng.sample(PRODUCTS, count)
        }
        return self._product_lines()

    def _product_lines(self) -> tuple[ProductLine, ...]:
        return tuple(ProductLine(p, Money(a, self.currency)) for p, a in self.lines.items())

    def _next_term(self) -> date:
        base = max(self.term_end or self.now.date(), self.now.date())
        self.term_end = base + timedelta(days=365)
        self.renewal_marked = False
        return self.term_end

    def _contract(self, ctx: EventContext) -> None:
        lines = self._new_lines()
        self._live.start_contract(term_end=self._next_term(), lines=lines, ctx=ctx)

    def _renewal_due(self, ctx: EventContext) -> None:
        assert self.term_end is not None
        self._live.mark_renewal_due(due_on=self.term_end, ctx=ctx)
        self.renewal_marked = True

    def _renew(self, ctx: EventContext) -> None:
        for product in list(self.lines):  # renewals reprice within +-10%
            factor = Decimal(self.rng.randint(90, 110)) / 100
            self.lines[product] = (self.lines[product] * factor).quantize(Decimal(1))
        term_end = self._next_term()
        self._live.renew(term_end=term_end, lines=self._product_lines(), ctx=ctx)

    def _churn(self, ctx: EventContext) -> None:
        reason = self.rng.choice(list(ChurnReason))
        self._live.churn(reason=reason, detail="Did not renew.", ctx=ctx)
        self.churned, self.lines, self.offers = True, {}, {}

    def _reactivate(self, ctx: EventContext) -> None:
        self.churned, self.term_end = False, None
        lines = self._new_lines()
        self._live.reactivate(term_end=self._next_term(), lines=lines, ctx=ctx)

    @property
    def _live(self) -> Account:
        assert self.account is not None
        return self.account

    # --- relationship -------------------------------------------------------------------------

    def _contact(self, ctx: EventContext) -> None:
        present = self.rng.sample(list(self.people), min(len(self.people), self.rng.randint(0, 2)))
        self._live.log_contact(
            channel=self.rng.choice(("email", "phone", "video_call", "meeting", "chat")),
            direction=self.rng.choice(("inbound", "outbound")),
            summary="Checked in on adoption, open questions and the roadmap for next quarter.",
            stakeholder_ids=present,
            duration_minutes=self.rng.choice((None, 15, 30, 45, 60)),
            ctx=ctx,
        )

    def _request(self, ctx: EventContext) -> None:
        if self.requests and self.rng.random() < 0.5:
            request_id = self.requests.pop(0)
            self._live.answer_request(request_id=request_id, response="Sent the guide.", ctx=ctx)
            return
        request_id = self._id()
        self.requests.append(request_id)
        self._live.receive_request(
            request_id=request_id, subject="How do we export reports?", channel="email", ctx=ctx
        )

    def _issue(self, ctx: EventContext) -> None:
        if not self.issues or self.rng.random() < 0.35:
            issue_id = self._id()
            self.issues[issue_id] = False
            self._live.raise_issue(
                issue_id=issue_id,
                title="Dashboard loads slowly",
                severity=self.rng.choice(list(IssueSeverity)),
                category=self.rng.choice(("performance", "billing", "bug", "access")),
                ctx=ctx,
            )
            return
        issue_id = next(iter(self.issues))
        if not self.issues[issue_id]:
            self.issues[issue_id] = True
            self._live.respond_to_issue(issue_id=issue_id, ctx=ctx)
        elif self.rng.random() < 0.2:
            self._live.escalate_issue(
                issue_id=issue_id, to_team="engineering", reason="Needs a fix.", ctx=ctx
            )
        else:
            del self.issues[issue_id]
            self._live.resolve_issue(issue_id=issue_id, resolution="Fixed.", ctx=ctx)

    def _feedback(self, ctx: EventContext) -> None:
        score: NpsScore | CsatScore = NpsScore(self.rng.randint(0, 10))
        if self.rng.random() < 0.5:
            score = CsatScore(self.rng.randint(1, 5))
        self._live.record_feedback(
            score=score, respondent="Survey", comment="Quarterly survey.", ctx=ctx
        )

    def _value(self, ctx: EventContext) -> None:
        self._live.record_value_delivered(
            amount=self._money(1_000, 20_000), description="Hours saved on reporting.", ctx=ctx
        )

    def _stakeholder(self, ctx: EventContext) -> None:
        roll = self.rng.random()
        if len(self.people) < 3 or roll < 0.3:
            self._stakeholder_added(ctx)
        elif roll < 0.85:
            person = self.rng.choice(list(self.people))
            sentiment = self.rng.choice([s for s in Sentiment if s != self.people[person]])
            self.people[person] = sentiment
            self._live.update_stakeholder(
                stakeholder_id=person, title=None, role=None, sentiment=sentiment, ctx=ctx
            )
        else:
            person = self.rng.choice(list(self.people))
            del self.people[person]
            self._live.remove_stakeholder(stakeholder_id=person, reason="Left.", ctx=ctx)

    def _stakeholder_added(self, ctx: EventContext) -> None:
        person = self._id()
        self.people[person] = Sentiment.NEUTRAL
        self._live.add_stakeholder(
            stakeholder_id=person,
            name=f"Person {person.hex[:6]}",
            title="Head of Operations",
            role=self.rng.choice(list(StakeholderRole)),
            sentiment=Sentiment.NEUTRAL,
            ctx=ctx,
        )

    def _reassign(self, ctx: EventContext) -> None:
        manager, manager_type = self.rng.choice(MANAGERS)
        if manager == self.manager:
            self._contact(ctx)
            return
        self.manager = manager
        self._live.reassign_manager(
            manager=manager, manager_type=ManagerType(manager_type), reason="Rebalance", ctx=ctx
        )

    # --- revenue beyond the contract ----------------------------------------------------------

    def _opportunity(self, ctx: EventContext) -> None:
        if self.offers and self.rng.random() < 0.6:
            self._close_offer(ctx)
            return
        missing = [p for p in PRODUCTS if p not in self.lines]
        kind = OpportunityKind.UPSELL
        product = self.rng.choice(list(self.lines))
        if missing and self.rng.random() < 0.5:
            kind, product = OpportunityKind.CROSS_SELL, self.rng.choice(missing)
        if any(offered == product for _, offered in self.offers.values()):
            self._contact(ctx)
            return
        opportunity_id = self._id()
        self.offers[opportunity_id] = (kind, product)
        self._live.offer_opportunity(
            opportunity_id=opportunity_id,
            kind=kind,
            product=product,
            estimated_arr=self._money(2_000, 20_000),
            ctx=ctx,
        )

    def _close_offer(self, ctx: EventContext) -> None:
        opportunity_id, (kind, product) = next(iter(self.offers.items()))
        del self.offers[opportunity_id]
        still_valid = (product in self.lines) == (kind is OpportunityKind.UPSELL)
        if not still_valid or self.rng.random() < 0.5:
            self._live.lose_opportunity(opportunity_id=opportunity_id, reason="Budget", ctx=ctx)
            return
        arr = self._money(2_000, 20_000)
        self.lines[product] = self.lines.get(product, Decimal(0)) + arr.amount
        self._live.win_opportunity(opportunity_id=opportunity_id, arr=arr, ctx=ctx)

    def _expansion(self, ctx: EventContext) -> None:
        product = self.rng.choice(list(self.lines))
        if self.rng.random() < 0.3 and self.lines[product] > 2_000:
            reduction = (self.lines[product] / 4).quantize(Decimal(1))
            self.lines[product] -= reduction
            self._live.downgrade(
                product=product,
                reduced_by=Money(reduction, self.currency),
                reason="Fewer seats",
                ctx=ctx,
            )
            return
        added = self._money(1_000, 10_000)
        self.lines[product] += added.amount
        self._live.upsell(product=product, added_arr=added, ctx=ctx)

    # --- account plan -------------------------------------------------------------------------

    def _plan(self, ctx: EventContext) -> None:
        if self.goal is None:
            self.goal = self._id()
            self._live.set_goal(
                goal_id=self.goal,
                title="Roll out to every region",
                measure="Regions live",
                target_date=self.now.date() + timedelta(days=180),
                ctx=ctx,
            )
        elif self.strategy is None:
            self.strategy = self._id()
            self._live.add_strategy(
                strategy_id=self.strategy, goal_id=self.goal, description="Pilot first", ctx=ctx
            )
        elif len(self.tactics) < 2 and self.rng.random() < 0.6:
            tactic = self._id()
            self.tactics.append(tactic)
            self._live.add_tactic(
                tactic_id=tactic,
                strategy_id=self.strategy,
                description="Run a workshop",
                owner="Ana Ruiz",
                due_on=self.now.date() + timedelta(days=30),
                ctx=ctx,
            )
        elif self.tactics:
            self._live.complete_tactic(tactic_id=self.tactics.pop(0), ctx=ctx)
        else:
            self._live.achieve_goal(goal_id=self.goal, ctx=ctx)
            self.goal = self.strategy = None


def workload(accounts: int, events_per_account: int, seed: int) -> Iterator[list[AccountEvent]]:
    """Every account's commands, merged in recorded-time order (ties by account)."""
    end = START.replace(year=START.year + YEARS) - timedelta(days=1)
    streams = [
        AccountSim(index, seed, events_per_account, START, end).stream()
        for index in range(accounts)
    ]
    for _, _, events in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        yield events


# --- the database, built once per parameters ---------------------------------------------------


def new_service(path: Path) -> AccountService:
    """The service as the benchmark's loops use it: built-in plugins only."""
    return AccountService(str(path), plugins=PluginHost(entry_points=False))


def database_name(accounts: int, events_per_account: int, seed: int) -> str:
    versions = (
        f"g{GENERATOR_VERSION}-ad{dist_version('acctdomain')}-es{dist_version('eventsourcing')}"
    )
    return f"rebuild-a{accounts}-e{events_per_account}-s{seed}-{versions}.db"


def build_database(path: Path, accounts: int, events_per_account: int, seed: int) -> int:
    """Write the workload into a new SQLite file at ``path``; the number of events."""
    service = new_service(path)
    total = 0
    expected = accounts * events_per_account
    chunk: list[Any] = []
    try:
        for events in workload(accounts, events_per_account, seed):
            chunk.extend(service.mapper.to_stored_event(event) for event in events)
            if len(chunk) >= INSERT_CHUNK:
                service.recorder.insert_events(chunk)
                total += len(chunk)
                chunk = []
                _progress(f"building {path.name}: {total:,} / ~{expected:,} events")
        if chunk:
            service.recorder.insert_events(chunk)
            total += len(chunk)
    finally:
        service.close()
    _progress("")
    return total


def cached_database(
    directory: Path, accounts: int, events_per_account: int, seed: int, *, fresh: bool
) -> dict[str, Any]:
    """The database for these parameters: reused if a complete one exists, else built."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / database_name(accounts, events_per_account, seed)
    marker = path.with_suffix(".json")
    if not fresh and marker.exists() and path.exists():
        info: dict[str, Any] = json.loads(marker.read_text())
        return {**info, "database": str(path), "reused": True}
    for stale in (marker, path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    started = time.perf_counter()
    events = build_database(path, accounts, events_per_account, seed)
    info = {
        "accounts": accounts,
        "events_per_account": events_per_account,
        "events": events,
        "seed": seed,
        "build_seconds": round(time.perf_counter() - started, 1),
        "size_mb": round(path.stat().st_size / 1e6, 1),
    }
    marker.write_text(json.dumps(info))  # written last: its presence means "complete"
    return {**info, "database": str(path), "reused": False}


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        print(f"\r{message:<78}", end="" if message else "\r", file=sys.stderr, flush=True)


# --- the three loops ---------------------------------------------------------------------------


def rebuild_ours(path: Path) -> tuple[float, int, str]:
    """Seconds and events of a full rebuild, and a digest of the read models it wrote."""
    service = new_service(path)
    try:
        runner = service.projections
        gc.collect()
        started = time.perf_counter()
        events = runner.rebuild()
        seconds = time.perf_counter() - started
        return seconds, events, read_model_digest(service)
    finally:
        service.close()


def read_model_digest(service: AccountService) -> str:
    """A hash of every row of every projection's tables, and how many rows there are."""
    digest = hashlib.sha256()
    rows = 0
    for name in service.projections.names:
        reader = service.read_model(name)
        for table in service.projections.projection(name).tables:
            for key, row in reader.scan(table):
                digest.update(f"{name}/{table}/{key}={row!r}\n".encode())
                rows += 1
    return f"{rows}:{digest.hexdigest()[:16]}"


def decode_bare(path: Path, page: int = PAGE) -> tuple[float, int]:
    """Seconds and events of the bare eventsourcing read-and-decode loop."""
    service = new_service(path)
    recorder, mapper = service.recorder, service.mapper
    try:
        gc.collect()
        started = time.perf_counter()
        events, position = 0, 0
        while notifications := recorder.select_notifications(
            start=position, limit=page, inclusive_of_start=False
        ):
            for notification in notifications:
                mapper.to_domain_event(notification)
            events += len(notifications)
            position = notifications[-1].id
        return time.perf_counter() - started, events
    finally:
        service.close()


def scan_sqlite(path: Path) -> tuple[float, int]:
    """Seconds and events of a plain sqlite3 scan with json.loads of each state."""
    connection = sqlite3.connect(path)
    try:
        gc.collect()
        started = time.perf_counter()
        events = 0
        cursor = connection.execute(
            "SELECT rowid, originator_id, originator_version, topic, state "
            "FROM stored_events ORDER BY rowid"
        )
        for row in cursor:
            json.loads(row[4])
            events += 1
        return time.perf_counter() - started, events
    finally:
        connection.close()


def time_loops(path: Path, repeat: int) -> tuple[dict[str, list[float]], int, list[str]]:
    """Seconds of each loop per round (each loop goes first in turn), the events seen, and
    the read-model digest of each of our rebuilds."""
    seconds: dict[str, list[float]] = {name: [] for name in LOOPS}
    counts: set[int] = set()
    digests: list[str] = []
    scan_sqlite(path)  # untimed: warms the page cache for whichever loop runs first
    for round_number in range(repeat):
        shift = round_number % len(LOOPS)
        for name in LOOPS[shift:] + LOOPS[:shift]:
            if name == "acctdomain":
                elapsed, events, digest = rebuild_ours(path)
                digests.append(digest)
            elif name == "eventsourcing":
                elapsed, events = decode_bare(path)
            else:
                elapsed, events = scan_sqlite(path)
            seconds[name].append(elapsed)
            counts.add(events)
    if len(counts) != 1:
        raise RuntimeError(f"the loops saw different numbers of events: {sorted(counts)}")
    return seconds, counts.pop(), digests


# --- peak memory in a child process ------------------------------------------------------------


def peak_rss_kb() -> tuple[int, str]:
    """This process's peak resident set size in KiB, and where it was read.

    Linux carries ``ru_maxrss`` over ``execve`` from the process that spawned us (here the
    parent benchmark, hundreds of MB), so a child would report the parent's peak; the
    ``VmHWM`` of ``/proc/self/status`` belongs to the child's own address space. Elsewhere,
    ``getrusage`` (macOS reports bytes).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]), "VmHWM"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak // 1024 if sys.platform == "darwin" else peak), "ru_maxrss"


def child_rebuild(path: Path) -> dict[str, Any]:
    """Run in the child: one full rebuild, with the peak RSS before and after."""
    service = new_service(path)
    try:
        runner = service.projections
        before, _ = peak_rss_kb()
        started = time.perf_counter()
        events = runner.rebuild()
        seconds = time.perf_counter() - started
    finally:
        service.close()
    peak, source = peak_rss_kb()
    return {
        "events": events,
        "seconds": seconds,
        "before_kb": before,
        "peak_kb": peak,
        "source": source,
    }


def measure_rss(path: Path) -> dict[str, Any]:
    """Peak RSS of a rebuild of ``path`` in a fresh interpreter."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child-rebuild", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


# --- the run -----------------------------------------------------------------------------------


def profile_rebuild(path: Path, top: int) -> None:
    """One more rebuild under cProfile; the top functions by own time go to stderr."""
    service = new_service(path)
    try:
        runner = service.projections
        profiler = cProfile.Profile()
        profiler.runcall(runner.rebuild)
    finally:
        service.close()
    stats = pstats.Stats(profiler, stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def events_per_second(events: int, seconds: Iterable[float]) -> float:
    return events / min(seconds)


def run(args: argparse.Namespace) -> dict[str, Any]:
    accounts, per_account = args.accounts, args.events_per_account
    directory = (
        Path(args.dir) if args.dir else Path(tempfile.gettempdir()) / "acctdomain-bench-rebuild"
    )
    large = cached_database(directory, accounts, per_account, args.seed, fresh=args.fresh)
    small_per_account = max(1, per_account // 10)
    small = cached_database(directory, accounts, small_per_account, args.seed, fresh=args.fresh)
    path = Path(large["database"])
    seconds, events, digests = time_loops(path, args.repeat)
    rss_small, rss_large = measure_rss(Path(small["database"])), measure_rss(path)
    if args.profile:
        profile_rebuild(path, args.profile)
    rates = {name: events_per_second(events, seconds[name]) for name in LOOPS}
    ratio_es = rates["acctdomain"] / rates["eventsourcing"]
    ratio_sqlite = rates["acctdomain"] / rates["sqlite"]
    rss_ratio = rss_large["peak_kb"] / rss_small["peak_kb"]
    return {
        "benchmark": "rebuild",
        "ratio_vs_eventsourcing": round(ratio_es, 3),
        "ratio_vs_sqlite": round(ratio_sqlite, 3),
        "rss_ratio_1m_vs_100k": round(rss_ratio, 3),
        "targets": {
            "ratio_vs_eventsourcing_min": TARGET_RATIO_ES,
            "ratio_vs_sqlite_min": TARGET_RATIO_SQLITE,
            "rss_ratio_1m_vs_100k_max": TARGET_RSS_RATIO,
            "ratio_vs_eventsourcing_met": ratio_es >= TARGET_RATIO_ES,
            "ratio_vs_sqlite_met": ratio_sqlite >= TARGET_RATIO_SQLITE,
            "rss_ratio_met": rss_ratio <= TARGET_RSS_RATIO,
        },
        "events": events,
        "events_per_second": {name: round(rate) for name, rate in rates.items()},
        "seconds": {name: [round(s, 3) for s in seconds[name]] for name in LOOPS},
        "median_seconds": {name: round(statistics.median(seconds[name]), 3) for name in LOOPS},
        "rss": {
            "small": {**_rss_figures(rss_small), "events_per_account": small_per_account},
            "large": {**_rss_figures(rss_large), "events_per_account": per_account},
        },
        "read_models": {"digest": digests[0], "stable": len(set(digests)) == 1},
        "workload": large,
        "small_workload": small,
        "repeat": args.repeat,
        "page": PAGE,
        "python": platform.python_version(),
        "eventsourcing": dist_version("eventsourcing"),
        "acctdomain": dist_version("acctdomain"),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def _rss_figures(child: dict[str, Any]) -> dict[str, Any]:
    return {
        "events": child["events"],
        "peak_mb": round(child["peak_kb"] / 1024, 1),
        "before_rebuild_mb": round(child["before_kb"] / 1024, 1),
        "rebuild_seconds": round(child["seconds"], 2),
        "measured_by": child["source"],
    }


def render(result: dict[str, Any]) -> str:
    work, targets = result["workload"], result["targets"]
    rates, medians = result["events_per_second"], result["median_seconds"]
    lines = [
        f"Full rebuild of every built-in projection: {work['accounts']:,} accounts x "
        f"~{work['events_per_account']} events = {result['events']:,} events "
        f"({'reused' if work['reused'] else 'built'} {work['database']})",
        f"python {result['python']}, eventsourcing {result['eventsourcing']}, "
        f"sqlite {result['sqlite']}, best of {result['repeat']}",
        "",
        f"{'loop':<40} {'events/s':>10} {'best s':>8} {'median s':>9}",
    ]
    labels = {
        "acctdomain": "acctdomain projections.rebuild()",
        "eventsourcing": "eventsourcing select + to_domain_event",
        "sqlite": "sqlite3 scan + json.loads",
    }
    for name in LOOPS:
        best = min(result["seconds"][name])
        lines.append(f"{labels[name]:<40} {rates[name]:>10,} {best:>8.2f} {medians[name]:>9.2f}")
    small, large = result["rss"]["small"], result["rss"]["large"]
    lines += [
        "",
        _verdict(
            "ours / eventsourcing",
            result["ratio_vs_eventsourcing"],
            ">=",
            TARGET_RATIO_ES,
            targets["ratio_vs_eventsourcing_met"],
        ),
        _verdict(
            "ours / sqlite3",
            result["ratio_vs_sqlite"],
            ">=",
            TARGET_RATIO_SQLITE,
            targets["ratio_vs_sqlite_met"],
        ),
        f"peak RSS: {small['peak_mb']} MB at {small['events']:,} events, {large['peak_mb']} MB "
        f"at {large['events']:,} (before rebuilding: {small['before_rebuild_mb']} / "
        f"{large['before_rebuild_mb']} MB)",
        _verdict(
            "RSS large / small",
            result["rss_ratio_1m_vs_100k"],
            "<=",
            TARGET_RSS_RATIO,
            targets["rss_ratio_met"],
        ),
        f"read models: {result['read_models']['digest']} "
        f"({'identical' if result['read_models']['stable'] else 'DIFFERENT'} across rebuilds)",
    ]
    return "\n".join(lines)


def _verdict(label: str, value: float, op: str, target: float, met: bool) -> str:
    return f"{label}: {value:.2f} (target {op} {target}: {'met' if met else 'NOT met'})"


def workload_arguments(
    description: str, argv: list[str] | None, *, repeat: int, repeat_help: str, extra: Any = None
) -> argparse.Namespace:
    """The options of a benchmark on this workload (also benchmarks/scorecard.py's), parsed,
    with the preset's sizes filled in; ``extra(parser)`` adds a script's own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--size", choices=SIZES, default="reference", help="preset workload")
    parser.add_argument("--accounts", type=int, help="override the preset's accounts")
    parser.add_argument("--events-per-account", type=int, help="override its events per account")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulation")
    parser.add_argument("--repeat", type=int, default=repeat, help=repeat_help)
    parser.add_argument("--dir", help="where the cached databases live (one per workload)")
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached databases")
    parser.add_argument("--profile", type=int, metavar="N", help="cProfile top N, on stderr")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    preset_accounts, preset_per_account = SIZES[args.size]
    args.accounts = args.accounts or preset_accounts
    args.events_per_account = args.events_per_account or preset_per_account
    if min(args.accounts, args.events_per_account, args.repeat) < 1:
        parser.error("--accounts, --events-per-account and --repeat must be positive")
    return args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return workload_arguments(
        __doc__.split("\n", 1)[0],
        argv,
        repeat=3,
        repeat_help="timed rounds (best is reported)",
        extra=lambda parser: parser.add_argument("--child-rebuild", help=argparse.SUPPRESS),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_rebuild:
        print(json.dumps(child_rebuild(Path(args.child_rebuild))))
        return 0
    result = run(args)
    print(json.dumps(result) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
