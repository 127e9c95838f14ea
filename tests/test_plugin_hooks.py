"""One test per hook, through the service as a plugin author would use it.

``test_every_hook_has_its_own_test_and_documentation`` fails when a hook specification has no
``test_hook_<name>`` here or no section in docs/plugins.md.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import attrs
import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import StoredEvent, Transcoding

from acctdomain import AccountService, Money, ProductLine
from acctdomain.application.transcoding import AttrsTranscoding
from acctdomain.domain import events as ev
from acctdomain.domain.values import NpsScore
from acctdomain.errors import NotAuthorized
from acctdomain.plugins import (
    AuthorizationRequest,
    CliCommand,
    Denial,
    ExchangeRates,
    HealthSignal,
    Kpi,
    KpiContext,
    KpiValue,
    PluginHost,
    Policy,
    Projection,
    Reaction,
    Rows,
    Upcaster,
    hookimpl,
    hookspecs,
)
from tests.conftest import FakeClock

DOCS = Path(__file__).parent.parent / "docs" / "plugins.md"
HOOKS = sorted(name for name in vars(hookspecs) if name.startswith("acctdomain_"))
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def make_service(store_url: str, clock: FakeClock) -> Iterator[Callable[..., AccountService]]:
    services: list[AccountService] = []

    def make(*plugins: object) -> AccountService:
        host = PluginHost(entry_points=False, plugins=plugins)
        service = AccountService(store_url, clock=clock, plugins=host)
        services.append(service)
        return service

    yield make
    for service in services:
        service.close()


def open_account(service: AccountService, key: str = "crm:1") -> UUID:
    return service.open_account(
        name="Acme",
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        external_key=key,
        actor="amy",
        effective_at=START,
    ).account_id


def test_every_hook_has_its_own_test_and_documentation() -> None:
    assert len(HOOKS) >= 9
    text = DOCS.read_text(encoding="utf-8")
    tests = {name for name, _ in inspect.getmembers(sys.modules[__name__], inspect.isfunction)}
    for hook in HOOKS:
        assert f"test_hook_{hook}" in tests, f"hook {hook} has no test_hook_{hook}"
        assert re.search(rf"^### `{hook}`", text, re.M), f"docs/plugins.md lacks ### `{hook}`"
        spec = getattr(hookspecs, hook)
        assert (spec.__doc__ or "").strip(), f"hook {hook} has no docstring"


# --- projections --------------------------------------------------------------------------


class ContactCounts(Projection):
    name = "contact_counts"
    tables = ("counts",)
    event_types = (ev.ContactLogged,)

    def apply(self, event: Any, rows: Rows) -> None:
        key = event.originator_id.hex
        row = rows.get("counts", key) or {"count": 0}
        rows.put("counts", key, {"count": row["count"] + 1, "last": event.effective_at})


class ContactCountsPlugin:
    @hookimpl
    def acctdomain_register_projections(self, register: Callable[[Projection], None]) -> None:
        register(ContactCounts())


def test_hook_acctdomain_register_projections(
    make_service: Callable[..., AccountService],
) -> None:
    service = make_service(("counts", ContactCountsPlugin()))
    account_id = open_account(service)
    for _ in range(2):
        service.log_contact(account_id, channel="email", direction="outbound", actor="amy")
    service.catch_up()
    row = service.read_model("contact_counts").get("counts", account_id.hex)
    assert row is not None
    assert row["count"] == 2
    assert isinstance(row["last"], datetime)


# --- KPIs ---------------------------------------------------------------------------------


def accounts_in_book(context: KpiContext) -> KpiValue:
    rows = list(context.read_model("accounts").scan("accounts"))
    return KpiValue(len(rows)) if rows else KpiValue(None, "the book is empty")


class BookSizePlugin:
    @hookimpl
    def acctdomain_register_kpis(self, register: Callable[[Kpi], None]) -> None:
        register(
            Kpi(
                name="book_size",
                title="Accounts in the book",
                unit="count",
                compute=accounts_in_book,
                projections=("accounts",),
            )
        )


def test_hook_acctdomain_register_kpis(make_service: Callable[..., AccountService]) -> None:
    service = make_service(("book", BookSizePlugin()))
    empty = {line.name: line for line in service.scorecard(date(2026, 1, 1), date(2026, 3, 31))}
    assert empty["book_size"].value == KpiValue(None, "the book is empty")
    open_account(service)
    lines = {line.name: line for line in service.scorecard(date(2026, 1, 1), date(2026, 3, 31))}
    assert lines["book_size"].value == KpiValue(1)
    assert lines["book_size"].title == "Accounts in the book"
    assert "active_accounts" in lines  # the built-ins are there too


# --- exchange rates -----------------------------------------------------------------------


class TreasuryRates:
    """USD in EUR: 0.9 until the end of 2025, 0.8 after; knows nothing else."""

    @hookimpl
    def acctdomain_register_exchange_rates(self, register: Callable[[ExchangeRates], None]) -> None:
        register(ExchangeRates("treasury", self.rate, "the treasury's month-end rates"))

    def rate(self, base: str, quote: str, on: date) -> Decimal | None:
        if (base, quote) != ("USD", "EUR"):
            return None
        return Decimal("0.9") if on.year <= 2025 else Decimal("0.8")


class BrokenRates:
    @hookimpl
    def acctdomain_register_exchange_rates(self, register: Callable[[ExchangeRates], None]) -> None:
        register(ExchangeRates("broken", lambda base, quote, on: 1 / 0))
        register(ExchangeRates("sloppy", lambda base, quote, on: 0.9))


def test_hook_acctdomain_register_exchange_rates(
    make_service: Callable[..., AccountService],
) -> None:
    service = make_service(("broken", BrokenRates()), ("treasury", TreasuryRates()))
    assert service.exchange_rate("USD", "EUR", date(2026, 3, 31)) == Decimal("0.8")
    assert service.exchange_rate("USD", "EUR", date(2025, 12, 31)) == Decimal("0.9")
    assert service.exchange_rate("GBP", "EUR", date(2026, 3, 31)) is None
    assert service.exchange_rate("EUR", "EUR", date(2026, 3, 31)) == 1
    failures = [f.error for f in service.plugins.failures if f.plugin == "broken"]
    assert any("ZeroDivisionError" in error for error in failures)
    assert any("expected a Decimal" in error for error in failures)  # a float: not used
    account = service.open_account(
        name="Initech", segment="smb", industry="it", currency="USD", manager="amy",
        manager_type="sales", actor="amy", effective_at=START,
    ).account_id  # fmt: skip
    service.start_contract(
        account,
        term_end=date(2027, 1, 5),
        lines=[ProductLine("core", Money(1000, "USD"))],
        actor="amy",
        effective_at=START,
    )
    lines = {
        line.name: line
        for line in service.scorecard(date(2026, 1, 1), date(2026, 3, 31), currency="EUR")
    }
    assert lines["arr"].value == KpiValue(Money("800.00", "EUR"))


# --- health signals -----------------------------------------------------------------------


class HalfSignal:
    @hookimpl
    def acctdomain_register_health_signals(self, register: Callable[[HealthSignal], None]) -> None:
        register(HealthSignal("always_half", 1.0, lambda account, now: 0.5))


def test_hook_acctdomain_register_health_signals(
    make_service: Callable[..., AccountService],
) -> None:
    service = make_service(("half", HalfSignal()))
    account_id = open_account(service)
    health = service.health(account_id, now=START)
    signals = {signal.name: signal for signal in health.signals}
    assert signals["always_half"].score == 0.5
    # No contact yet: engagement 0 (weight 0.25); no issue: 1 (0.2); the other built-in
    # signals are silent (no survey, plan or contract yet).
    expected = (0.5 * 1.0 + 0.0 * 0.25 + 1.0 * 0.2) / (1.0 + 0.25 + 0.2)
    assert health.score == pytest.approx(expected)
    assert health.band == "yellow"  # 0.483: between the default red (0.4) and green (0.7) limits


# --- policies -----------------------------------------------------------------------------


def follow_up_detractors(event: ev.FeedbackRecorded) -> list[Reaction]:
    if isinstance(event.score, NpsScore) and event.score.value <= 6:
        arguments = {"title": "Detractor follow-up", "severity": "high", "category": "feedback"}
        return [Reaction("raise_issue", event.originator_id, arguments)]
    return []


class DetractorPolicy:
    @hookimpl
    def acctdomain_register_policies(self, register: Callable[[Policy], None]) -> None:
        register(Policy("detractor_follow_up", (ev.FeedbackRecorded,), follow_up_detractors))


def test_hook_acctdomain_register_policies(make_service: Callable[..., AccountService]) -> None:
    service = make_service(("detractors", DetractorPolicy()))
    account_id = open_account(service)
    service.record_feedback(account_id, score=NpsScore(9), actor="survey")
    service.record_feedback(account_id, score=NpsScore(3), actor="survey")
    service.policies.run()
    service.policies.run()  # exactly once
    [issue] = service.get_account(account_id).issues
    assert issue.title == "Detractor follow-up"
    cause = service.history(account_id)[2]
    raised = service.history(account_id)[-1]
    assert isinstance(raised, ev.IssueRaised)
    assert raised.causation_id == cause.id
    assert raised.actor == "policy:detractor_follow_up"


# --- CLI commands -------------------------------------------------------------------------


def test_hook_acctdomain_register_cli_commands() -> None:
    from typer.testing import CliRunner

    from acctdomain.cli import build_app

    class Hello:
        @hookimpl
        def acctdomain_register_cli_commands(self, register: Callable[[CliCommand], None]) -> None:
            register(CliCommand(name="hello", callback=lambda: print("hello")))

    app = build_app(PluginHost(entry_points=False, plugins=[("hello", Hello())]))
    result = CliRunner().invoke(app, ["hello"])
    assert (result.exit_code, result.output) == (0, "hello\n")


# --- transcodings and upcasters -----------------------------------------------------------


@attrs.frozen
class Quota:
    """A plugin's own value type."""

    manager: str
    amount: int
    period: date


class QuotaBook(Aggregate):
    """A plugin's own aggregate, stored in the same event store."""

    @event("Created")
    def __init__(self, quota: Quota) -> None:
        self.quota = quota


class QuotaPlugin:
    @hookimpl
    def acctdomain_register_transcodings(self, register: Callable[[Transcoding], None]) -> None:
        register(AttrsTranscoding(Quota))


def test_hook_acctdomain_register_transcodings(
    make_service: Callable[..., AccountService],
) -> None:
    service = make_service(("quotas", QuotaPlugin()))
    book = QuotaBook(Quota("amy", 120_000, date(2026, 1, 1)))
    service.save(book)
    again = make_service(("quotas", QuotaPlugin()))
    if service.store.kind == "memory":
        again = service  # nothing survives in memory: read back from the same service
    loaded = again.repository.get(book.id)
    assert loaded.quota == Quota("amy", 120_000, date(2026, 1, 1))


class Note(Aggregate):
    """A plugin aggregate whose event moved to version 2 (``weight`` added)."""

    class Created(Aggregate.Created):
        class_version = 2
        text: str
        weight: int

    @event(Created)
    def __init__(self, text: str, weight: int) -> None:
        self.text = text
        self.weight = weight


def weight_one(state: dict[str, Any]) -> None:
    state["weight"] = 1


class NotePlugin:
    @hookimpl
    def acctdomain_register_upcasters(self, register: Callable[[Upcaster], None]) -> None:
        register(Upcaster(Note.Created.__module__ + ":Note.Created", 1, weight_one))


def test_hook_acctdomain_register_upcasters(make_service: Callable[..., AccountService]) -> None:
    service = make_service(("notes", NotePlugin()))
    note = Note("call Kim", 3)
    service.save(note)
    [stored] = service.recorder.select_events(note.id)
    # Rewrite it as version 1 would have stored it: no weight, no class_version.
    state = service.mapper.transcoder.decode(stored.state)
    del state["weight"], state["class_version"]
    old_id = UUID(int=note.id.int ^ 1)
    state["originator_id"] = old_id
    service.recorder.insert_events(
        [StoredEvent(old_id, 1, stored.topic, service.mapper.transcoder.encode(state))]
    )
    old = service.repository.get(old_id)
    assert (old.text, old.weight) == ("call Kim", 1)
    assert service.repository.get(note.id).weight == 3


# --- authorization and start-up -----------------------------------------------------------


class ReadOnlyFriday:
    @hookimpl
    def acctdomain_authorize(self, request: AuthorizationRequest) -> Denial | None:
        if request.actor == "auditor":
            return Denial(f"auditors may not {request.command}")
        return None


def test_hook_acctdomain_authorize(make_service: Callable[..., AccountService]) -> None:
    service = make_service(("readonly", ReadOnlyFriday()))
    account_id = open_account(service)
    version = service.get_account(account_id).version
    with pytest.raises(NotAuthorized, match="auditors may not log_contact") as caught:
        service.log_contact(account_id, channel="email", direction="outbound", actor="auditor")
    assert caught.value.plugin == "readonly"
    assert service.get_account(account_id).version == version


class Recorder:
    def __init__(self) -> None:
        self.started: list[AccountService] = []

    @hookimpl
    def acctdomain_startup(self, service: AccountService) -> None:
        self.started.append(service)


def test_hook_acctdomain_startup(make_service: Callable[..., AccountService]) -> None:
    recorder = Recorder()
    service = make_service(("recorder", recorder))
    assert recorder.started == [service]
