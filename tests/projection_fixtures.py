"""Small projections, policies and helpers for the projection-engine tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, ClassVar
from uuid import UUID, uuid4

from eventsourcing.persistence import StoredEvent

from acctdomain import AccountService, Money, NpsScore, ProductLine
from acctdomain.domain import events as ev
from acctdomain.plugins.types import Policy, Projection, Reaction, Rows
from acctdomain.projections import ProjectionRunner

UNKNOWN_TOPIC = "acctdomain_plugin_that_is_gone.events:Vanished"
MISSING_CLASS_TOPIC = "acctdomain.domain.events:NoSuchEvent"


def eur(amount: int | str) -> Money:
    return Money(amount, "EUR")


def open_active(service: AccountService, key: str, arr: int = 1000) -> UUID:
    """An account with a started contract (one line, ``core``)."""
    opened = service.open_account(
        name=f"Company {key}",
        segment="enterprise",
        industry="logistics",
        currency="EUR",
        manager="amy",
        manager_type="strategic",
        external_key=key,
        actor="amy",
    )
    service.start_contract(
        opened.account_id,
        term_end=date(2027, 1, 6),
        lines=[ProductLine("core", eur(arr))],
        actor="amy",
    )
    return opened.account_id


def contact(service: AccountService, account_id: UUID, **options: Any) -> None:
    service.log_contact(account_id, channel="phone", direction="outbound", actor="amy", **options)


def insert_unknown_event(service: AccountService) -> UUID:
    """A stored event whose class no longer exists (a plugin that was uninstalled)."""
    originator_id = uuid4()
    service.recorder.insert_events(
        [StoredEvent(originator_id, 1, UNKNOWN_TOPIC, b'{"what": "ever"}')]
    )
    return originator_id


def notification_ids(service: AccountService) -> list[int]:
    return [n.id for n in service.recorder.select_notifications(start=None, limit=1_000_000)]


def notification_id_of(service: AccountService, originator_id: UUID, version: int) -> int:
    for notification in service.recorder.select_notifications(start=None, limit=1_000_000):
        if (notification.originator_id, notification.originator_version) == (
            originator_id,
            version,
        ):
            return notification.id
    raise LookupError((originator_id, version))


def dump(runner: ProjectionRunner) -> dict[str, dict[str, list[tuple[str, dict[str, Any]]]]]:
    """Every table of every projection of ``runner``, row by row."""
    return {
        name: {
            table: list(runner.read_model(name).scan(table))
            for table in runner.projection(name).tables
        }
        for name in runner.names
    }


# --- projections --------------------------------------------------------------------------------


class ContactCounts(Projection):
    """Per account: contacts logged, their channels (a tuple of enums), the last one's time."""

    name = "contact_counts"
    tables = ("per_account",)
    event_types: ClassVar[tuple[type, ...]] = (ev.AccountOpened, ev.ContactLogged)

    def apply(self, event: Any, rows: Rows) -> None:
        key = event.originator_id.hex
        if isinstance(event, ev.AccountOpened):
            rows.put(
                "per_account",
                key,
                {"account_id": event.originator_id, "count": 0, "channels": (), "last": None},
            )
            return
        row = rows.get("per_account", key)
        assert row is not None
        row["count"] += 1
        row["channels"] = (*row["channels"], event.channel)
        row["last"] = event.effective_at
        rows.put("per_account", key, row)


class ArrByAccount(Projection):
    """Per account: ARR by product line and in total (Money); per currency: the book's ARR.
    A churned account's row is deleted."""

    name = "arr"
    tables = ("accounts", "totals")
    event_types: ClassVar[tuple[type, ...]] = (
        ev.ContractStarted,
        ev.Renewed,
        ev.Reactivated,
        ev.Upsold,
        ev.CrossSold,
        ev.Downgraded,
        ev.Churned,
    )

    def apply(self, event: Any, rows: Rows) -> None:
        key = event.originator_id.hex
        row = rows.get("accounts", key)
        lines: dict[str, Money] = dict(row["lines"]) if row else {}
        before = sum(lines.values(), eur(0))
        if isinstance(event, ev.ContractStarted | ev.Renewed | ev.Reactivated):
            lines = {line.product: line.arr for line in event.lines}
        elif isinstance(event, ev.Upsold):
            lines[event.product] += event.added_arr
        elif isinstance(event, ev.CrossSold):
            lines[event.product] = event.arr
        elif isinstance(event, ev.Downgraded):
            lines[event.product] -= event.reduced_by
            if not lines[event.product].amount:
                del lines[event.product]
        elif isinstance(event, ev.Churned):
            lines = {}
        after = sum(lines.values(), eur(0))
        if lines:
            rows.put(
                "accounts",
                key,
                {"lines": lines, "arr": after, "since": event.effective_at.date()},
            )
        else:
            rows.delete("accounts", key)
        total = rows.get("totals", "EUR") or {"arr": eur(0), "changes": 0}
        rows.put(
            "totals",
            "EUR",
            {"arr": total["arr"] + after - before, "changes": total["changes"] + 1},
        )


class Ledger(Projection):
    """Every event it is offered (all kinds), with how many times it was applied."""

    name = "ledger"
    tables = ("events",)

    def apply(self, event: Any, rows: Rows) -> None:
        key = f"{event.originator_id.hex}/{event.originator_version:06d}"
        row = rows.get("events", key)
        times = 0 if row is None else row["times"]
        rows.put("events", key, {"topic": type(event).__qualname__, "times": times + 1})


class AccountLedger(Ledger):
    """The ledger, with its rows kept apart by account (so it can be split in partitions)."""

    name = "account_ledger"

    def account_share(self, account_id: UUID) -> dict[str, str]:
        return {"events": f"{account_id.hex}/"}


class Boom(Exception):
    """A projection's bug."""


class Crash(BaseException):
    """The process dies (nothing catches it)."""


class Exploding(Ledger):
    """A ledger that raises ``error`` on the ``at``-th event it applies after being armed."""

    name = "exploding"

    def __init__(self) -> None:
        self.applied = 0
        self.at: int | None = None
        self.error: type[BaseException] = Boom
        self.explode_on: Callable[[Any], bool] | None = None

    def arm(self, at: int, error: type[BaseException] = Boom) -> None:
        self.applied, self.at, self.error = 0, at, error

    def apply(self, event: Any, rows: Rows) -> None:
        self.applied += 1
        if self.applied == self.at:
            self.at = None
            raise self.error(f"exploded on {event.originator_id} v{event.originator_version}")
        if self.explode_on is not None and self.explode_on(event):
            raise Boom(f"cannot handle {event.originator_id} v{event.originator_version}")
        super().apply(event, rows)


# --- policies -----------------------------------------------------------------------------------


class Spy:
    """Counts the events a policy's ``react`` was called with."""

    def __init__(self, react: Callable[[Any], list[Reaction]]) -> None:
        self.calls = 0
        self._react = react

    def __call__(self, event: Any) -> list[Reaction]:
        self.calls += 1
        return self._react(event)


def detractor_follow_up(event: ev.FeedbackRecorded) -> list[Reaction]:
    """A detractor (NPS 0-6) gets a follow-up call."""
    score = event.score
    if isinstance(score, NpsScore) and score.value <= 6:
        arguments = {"channel": "phone", "direction": "outbound", "summary": "detractor follow-up"}
        return [Reaction("log_contact", event.originator_id, arguments)]
    return []


def follow_up_policy(spy: Spy | None = None) -> Policy:
    return Policy(
        name="follow_up",
        event_types=(ev.FeedbackRecorded,),
        react=spy or detractor_follow_up,
    )


def upsell_on_contact(event: ev.ContactLogged) -> list[Reaction]:
    """Every contact becomes an upsell of ``core`` (refused where the account is not active)."""
    return [Reaction("upsell", event.originator_id, {"product": "core", "added_arr": eur(10)})]


class AccountHistory(Projection):
    """Per account: the versions applied, in order (a reordering shows); per event: a row
    keyed ``<account hex>/<version>``. Every row is its account's, under the account's hex:
    it declares that share. Raises Boom on the events ``fails`` picks."""

    name = "account_history"
    tables = ("accounts", "events")

    def __init__(self, fails: Callable[[Any], bool] | None = None) -> None:
        self.fails = fails

    def account_share(self, account_id: UUID) -> dict[str, str]:
        return {"accounts": account_id.hex, "events": account_id.hex}

    def apply(self, event: Any, rows: Rows) -> None:
        if self.fails is not None and self.fails(event):
            raise Boom(f"cannot handle {event.originator_id} v{event.originator_version}")
        key = event.originator_id.hex
        row = rows.get("accounts", key) or {"versions": ()}
        rows.put("accounts", key, {"versions": (*row["versions"], event.originator_version)})
        rows.put("events", f"{key}/{event.originator_version:06d}", {"topic": type(event).__name__})
        if isinstance(event, ev.Churned):
            rows.delete("events", f"{key}/000001")  # (a delete, to rebuild one too)


class TopicTotals(Projection):
    """Events by type over the whole book (one row per type): shared by all accounts, so it
    declares no account share. Raises Boom on the events ``fails`` picks."""

    name = "topic_totals"
    tables = ("totals",)

    def __init__(self, fails: Callable[[Any], bool] | None = None) -> None:
        self.fails = fails

    def apply(self, event: Any, rows: Rows) -> None:
        if self.fails is not None and self.fails(event):
            raise Boom(f"cannot handle {event.originator_id} v{event.originator_version}")
        topic = type(event).__name__
        row = rows.get("totals", topic) or {"count": 0}
        rows.put("totals", topic, {"count": row["count"] + 1})


class Sleeps:
    """A ``sleep`` for runners that records the delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def of(account_id: UUID, *versions: int) -> Callable[[Any], bool]:
    """Picks the events of ``account_id`` with these versions (all if none given)."""
    return lambda event: (
        event.originator_id == account_id and (not versions or event.originator_version in versions)
    )
