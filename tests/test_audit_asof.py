"""Read models as known at a recorded time, on every backend: they are what the live read
models said then, the scorecard computed on them is ``scorecard(known_at=T)``, later and
unreadable events stay out, policies never run, and bad arguments are refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from acctdomain import AccountService, Money, ProductLine
from acctdomain.application.kpi_settings import KpiSettings
from acctdomain.application.scorecard import compute_scorecard
from acctdomain.audit.asof import AsOfReadModels, read_models_as_known_at, recorded_time
from acctdomain.demo import generate_book
from acctdomain.domain import events as ev
from acctdomain.domain.values import NpsScore
from acctdomain.errors import AccountNotFound, InvalidValue
from acctdomain.plugins import PluginHost, Policy, Projection, Reaction, Rows, hookimpl
from acctdomain.plugins.types import ReadModel
from tests.conftest import FakeClock

OPENED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def eur(amount: str) -> Money:
    return Money(amount, "EUR")


def open_account(service: AccountService, name: str) -> UUID:
    return service.open_account(
        name=name,
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        actor="amy",
    ).account_id


def dump(service: AccountService, read_model: Callable[[str], ReadModel]) -> dict[str, Any]:
    """Every row of every registered projection's tables."""
    return {
        name: {table: list(read_model(name).scan(table)) for table in projection.tables}
        for name, projection in service.plugins.projections().items()
    }


def live(service: AccountService) -> dict[str, Any]:
    service.catch_up()
    return dump(service, service.read_model)


# --- what the read models said then -------------------------------------------------------------


def test_read_models_are_what_they_said_at_each_moment(
    service: AccountService, clock: FakeClock
) -> None:
    acme, globex = open_account(service, "Acme"), open_account(service, "Globex")
    lines = [ProductLine("analytics", eur("10000"))]
    service.start_contract(acme, term_end=date(2027, 1, 31), lines=lines, actor="amy")
    first = clock.now
    said_first = live(service)

    clock.advance(days=30)
    service.start_contract(globex, term_end=date(2027, 2, 28), lines=lines, actor="amy")
    # Backdated: effective before the first moment, recorded after it.
    service.record_feedback(acme, score=NpsScore(4), actor="amy", effective_at=OPENED)
    service.upsell(acme, product="analytics", added_arr=eur("2000"), actor="amy")
    second = clock.now
    said_second = live(service)

    clock.advance(days=30)
    service.churn(globex, reason="price", actor="amy")
    said_now = live(service)

    assert said_first != said_second != said_now
    for moment, said in ((first, said_first), (second, said_second), (clock.now, said_now)):
        asof = read_models_as_known_at(service, moment)
        assert isinstance(asof, AsOfReadModels)
        assert asof.known_at == moment
        assert asof.failures == {}
        assert dump(service, asof.read_model) == said
    asof = read_models_as_known_at(service, first)
    assert (asof.events, asof.left_out, asof.unreadable) == (3, 4, ())
    assert asof.account(acme) == service.get_account_as_known_at(acme, first)
    with pytest.raises(AccountNotFound):
        read_models_as_known_at(service, OPENED - timedelta(seconds=1)).account(acme)


def test_a_date_means_the_end_of_that_day(service: AccountService, clock: FakeClock) -> None:
    open_account(service, "Acme")
    clock.advance(hours=14)  # 23:00 the same day
    open_account(service, "Globex")
    clock.advance(hours=1)  # the next day
    open_account(service, "Initech")
    asof = read_models_as_known_at(service, OPENED.date())
    assert asof.known_at == datetime(2026, 1, 5, 23, 59, 59, 999999, tzinfo=UTC)
    assert (asof.events, asof.left_out) == (2, 1)
    assert len(list(asof.read_model("accounts").scan("accounts"))) == 2


def test_before_the_first_event_every_read_model_is_empty(service: AccountService) -> None:
    open_account(service, "Acme")
    asof = read_models_as_known_at(service, OPENED - timedelta(microseconds=1))
    assert (asof.position, asof.events, asof.left_out) == (0, 0, 1)
    assert all(
        not rows for tables in dump(service, asof.read_model).values() for rows in tables.values()
    )
    empty = AccountService("memory:", plugins=PluginHost(entry_points=False))
    try:
        nothing = read_models_as_known_at(empty, OPENED)
        assert (nothing.position, nothing.events, nothing.left_out) == (0, 0, 0)
    finally:
        empty.close()


def test_only_the_named_projections_are_built(service: AccountService) -> None:
    open_account(service, "Acme")
    asof = read_models_as_known_at(service, OPENED, names=["accounts"])
    assert asof.names == ["accounts"]
    assert [status.name for status in asof.status()] == ["accounts"]
    assert len(list(asof.read_model("accounts").scan("accounts"))) == 1
    with pytest.raises(InvalidValue) as raised:
        asof.read_model("kpi_facts")  # registered, but not built here
    assert raised.value.field == "name"


# --- which events count -------------------------------------------------------------------------


def test_events_are_judged_by_recorded_time_not_by_their_position(
    service: AccountService, clock: FakeClock
) -> None:
    """Recorded times need not follow notification order (a writer whose clock is behind):
    a later notification recorded earlier still counts, and an account whose event was
    recorded after T loses its later events too, even those stamped before T."""
    acme = open_account(service, "Acme")  # 09:00
    clock.advance(hours=2)
    service.record_feedback(acme, score=NpsScore(9), actor="amy")  # 11:00, Acme v2
    clock.advance(hours=-1)
    globex = open_account(service, "Globex")  # 10:00, written after 11:00
    service.record_feedback(acme, score=NpsScore(3), actor="amy")  # Acme v3 at 10:00
    moment = OPENED + timedelta(minutes=90)
    asof = read_models_as_known_at(service, moment)
    rows = dict(asof.read_model("accounts").scan("accounts"))
    assert set(rows) == {acme.hex, globex.hex}
    assert rows[acme.hex]["latest_nps"] is None  # neither v2 (later) nor v3 (after v2)
    assert (asof.events, asof.left_out) == (2, 2)
    assert asof.account(acme).version == service.get_account_as_known_at(acme, moment).version


def test_an_event_whose_recorded_time_cannot_be_read_is_left_out_and_reported(
    service: AccountService, clock: FakeClock
) -> None:
    acme = open_account(service, "Acme")
    stranger = uuid4()
    stored = [
        StoredEvent(stranger, 1, "acctdomain.domain.events:AccountOpened", b"not json"),
        StoredEvent(stranger, 2, "acctdomain.domain.events:ContractStarted", b"{}"),
    ]
    service.recorder.insert_events(stored)
    clock.advance(hours=1)
    service.record_feedback(acme, score=NpsScore(8), actor="amy")
    notifications = service.recorder.select_notifications(start=None, limit=10)
    damaged = notifications[1].id
    assert recorded_time(service.mapper, notifications[1]) is None
    assert recorded_time(service.mapper, notifications[0]) == OPENED
    asof = read_models_as_known_at(service, clock.now)
    assert asof.unreadable == (damaged,)
    assert (asof.events, asof.left_out) == (2, 2)  # the stranger's second event goes too
    assert asof.failures == {}
    [(key, row)] = asof.read_model("accounts").scan("accounts")
    assert (key, row["latest_nps"]) == (acme.hex, 8)


# --- the scorecard ------------------------------------------------------------------------------


class Ticking:
    """A recorded-time clock that moves on a minute at every reading."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def demo_book(store_url: str) -> Iterator[tuple[AccountService, datetime, datetime]]:
    """A small demo book (effective 2023-2025), recorded a minute per command from 2026."""
    clock = Ticking(datetime(2026, 1, 1, tzinfo=UTC))
    settings = KpiSettings(
        reporting_currency="EUR",
        rates={"USD/EUR": "0.92", "GBP/EUR": "1.16", "CHF/EUR": "1.04"},
        gross_margin="0.8",
    )
    service = AccountService(
        store_url, clock=clock, plugins=PluginHost(entry_points=False), kpi_settings=settings
    )
    try:
        begin = clock.now
        generate_book(service, accounts=8, seed=11, years=3)
        yield service, begin, clock.now
    finally:
        service.close()


PERIODS = [
    (date(2024, 1, 1), date(2024, 12, 31)),
    (date(2025, 4, 1), date(2025, 6, 30)),
    (date(2025, 1, 1), date(2025, 12, 31)),
]


def test_the_scorecard_on_the_read_models_then_is_the_scorecard_known_then(
    demo_book: tuple[AccountService, datetime, datetime],
) -> None:
    service, begin, end = demo_book
    settings = service.kpi_settings
    differs = False
    for fraction in (3, 2, 1):
        moment = begin + (end - begin) / fraction
        asof = read_models_as_known_at(service, moment)
        assert asof.failures == {}
        assert asof.events > 0
        for start, stop in PERIODS:
            known = service.scorecard(start, stop, known_at=moment)
            replayed = compute_scorecard(
                service.plugins.kpis(),
                asof.read_model,
                start,
                stop,
                reporting_currency=settings.reporting_currency,
                exchange_rate=service.exchange_rate,
                settings={"gross_margin": settings.gross_margin},
            )
            assert replayed == known, (moment, start, stop)
            defined = [line.name for line in known if line.value and line.value.value is not None]
            assert {"arr", "nrr", "active_accounts"} <= set(defined)
            differs |= known != service.scorecard(start, stop)
            enterprise = service.scorecard(start, stop, known_at=moment, segment="enterprise")
            assert enterprise == compute_scorecard(
                service.plugins.kpis(),
                asof.read_model,
                start,
                stop,
                filters={"segment": "enterprise"},
                reporting_currency=settings.reporting_currency,
                exchange_rate=service.exchange_rate,
                settings={"gross_margin": settings.gross_margin},
            )
    assert differs, "expected some period whose scorecard changed after the first moment"


# --- policies never run; projections may fail ---------------------------------------------------


def follow_up_detractors(event: ev.FeedbackRecorded) -> list[Reaction]:
    if isinstance(event.score, NpsScore) and event.score.value <= 6:
        arguments = {"title": "Detractor follow-up", "severity": "high", "category": "feedback"}
        return [Reaction("raise_issue", event.originator_id, arguments)]
    return []


class DetractorPolicy:
    @hookimpl
    def acctdomain_register_policies(self, register: Callable[[Policy], None]) -> None:
        register(Policy("detractor_follow_up", (ev.FeedbackRecorded,), follow_up_detractors))


def test_policies_never_run(service: AccountService) -> None:
    service.plugins.register(DetractorPolicy(), "detractors")
    acme = open_account(service, "Acme")
    service.record_feedback(acme, score=NpsScore(2), actor="survey")
    asof = read_models_as_known_at(service, OPENED)
    assert asof.events == 2
    assert len(service.history(acme)) == 2
    assert service.policies.position("detractor_follow_up") == 0
    service.policies.run()  # the policy still has its reaction to make
    assert len(service.history(acme)) == 3


class FragileProjection(Projection):
    name = "fragile"
    tables = ("counts",)
    event_types = (ev.FeedbackRecorded,)

    def apply(self, event: Any, rows: Rows) -> None:
        raise RuntimeError("cannot count feedback")


class FragilePlugin:
    @hookimpl
    def acctdomain_register_projections(self, register: Callable[[Projection], None]) -> None:
        register(FragileProjection())


def test_a_projection_that_fails_is_reported_and_the_others_are_built(
    service: AccountService,
) -> None:
    service.plugins.register(FragilePlugin(), "fragile")
    acme = open_account(service, "Acme")
    service.record_feedback(acme, score=NpsScore(9), actor="survey")
    asof = read_models_as_known_at(service, OPENED)
    assert set(asof.failures) == {"fragile"}
    assert "cannot count feedback" in asof.failures["fragile"].error
    assert {s.name: s.state for s in asof.status()}["fragile"] == "failed"
    [(_, row)] = asof.read_model("accounts").scan("accounts")
    assert row["latest_nps"] == 9


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"t": datetime(2026, 1, 5)}, "t"),
        ({"t": "2026-01-05"}, "t"),
        ({"t": None}, "t"),
        ({"t": OPENED, "names": "accounts"}, "names"),
        ({"t": OPENED, "names": ["accounts", "nope"]}, "names"),
        ({"t": OPENED, "names": [3]}, "names"),
        ({"t": OPENED, "names": []}, "names"),
        ({"t": OPENED, "names": 7}, "names"),
    ],
)
def test_bad_arguments_are_refused_naming_them(
    service: AccountService, arguments: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidValue) as raised:
        read_models_as_known_at(service, **arguments)
    assert raised.value.field == field


def test_an_unknown_read_model_is_refused(service: AccountService) -> None:
    asof = read_models_as_known_at(service, OPENED)
    for name in ("nope", 3):
        with pytest.raises(InvalidValue) as raised:
            asof.read_model(name)  # type: ignore[arg-type]
        assert raised.value.field == "name"
