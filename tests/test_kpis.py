"""The KPI scorecard on books written by hand, every figure computed by hand beside it.

The book of Q1 2026 (``quarter_book``), all in EUR, ARR per account:

======== ============================== ============ ==========
account  what happens                    1 Jan        31 Mar
======== ============================== ============ ==========
A        +200 upsell 10 Feb, -100 5 Mar  1000         1100
B        churns 15 Feb                   2000         churned
C        renewal due 1 Feb, renewed 400  500          400
F        churns 20 Jan, back 20 Mar 700  600          700
D        new on 20 Feb (mid-period)      -            800
E        churned in Dec, back 10 Mar     churned      300
======== ============================== ============ ==========

Cohort (active on 1 Jan): A, B, C, F, starting ARR 4100. Netted per account: A +100 and F
+100 are expansion (200), C -100 contraction, B churn 2000.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from acctdomain import (
    AccountService,
    CesScore,
    CsatScore,
    KpiSettings,
    Money,
    NpsScore,
    ProductLine,
)
from acctdomain.errors import InvalidValue
from acctdomain.plugins import Kpi, KpiContext, PluginHost, hookimpl
from acctdomain.plugins.types import KpiValue
from tests.conftest import FakeClock

Q1 = (date(2026, 1, 1), date(2026, 3, 31))
MICRO = timedelta(microseconds=1)


def at(month: int, day: int, year: int = 2026) -> datetime:
    return datetime(year, month, day, 12, tzinfo=UTC)


def eur(amount: int | str) -> Money:
    return Money(amount, "EUR")


class Book:
    """Writes a book: each command effective when given, recorded at the clock's time (moved
    to the effective time, or later for backdated entries)."""

    def __init__(self, service: AccountService, clock: FakeClock) -> None:
        self.service = service
        self.clock = clock

    def when(self, effective: datetime, recorded: datetime | None = None) -> dict[str, Any]:
        self.clock.now = max(self.clock.now, recorded or effective)
        return {"actor": "amy", "effective_at": effective}

    def account(
        self,
        key: str,
        arr: int,
        started: datetime,
        *,
        currency: str = "EUR",
        manager: str = "amy",
        segment: str = "smb",
        product: str = "core",
    ) -> UUID:
        account_id = self.service.open_account(
            name=f"Company {key}",
            segment=segment,
            industry="retail",
            currency=currency,
            manager=manager,
            manager_type="sales",
            external_key=key,
            **self.when(started),
        ).account_id
        self.service.start_contract(
            account_id,
            term_end=date(started.year + 1, started.month, 1),
            lines=[ProductLine(product, Money(arr, currency))],
            **self.when(started),
        )
        return account_id


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 1, 1, tzinfo=UTC))


@pytest.fixture
def service(clock: FakeClock) -> Iterator[AccountService]:
    app = AccountService(
        "memory:",
        clock=clock,
        plugins=PluginHost(entry_points=False),
        kpi_settings=KpiSettings(gross_margin="0.8"),
    )
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def book(service: AccountService, clock: FakeClock) -> Book:
    return Book(service, clock)


def quarter_book(book: Book) -> dict[str, UUID]:
    service = book.service
    ids = {
        "E": book.account("E", 300, at(6, 1, 2025)),
        "F": book.account("F", 600, at(9, 1, 2025)),
        "B": book.account("B", 2000, at(10, 1, 2025)),
        "A": book.account("A", 1000, at(11, 1, 2025)),
        "C": book.account("C", 500, at(12, 1, 2025)),
    }
    service.churn(ids["E"], reason="price", **book.when(at(12, 15, 2025)))
    service.mark_renewal_due(ids["C"], due_on=date(2026, 2, 1), **book.when(at(1, 5)))
    service.churn(ids["F"], reason="budget_cut", **book.when(at(1, 20)))
    service.renew(
        ids["C"],
        term_end=date(2027, 2, 1),
        lines=[ProductLine("core", eur(400))],
        **book.when(at(2, 1)),
    )
    service.upsell(ids["A"], product="core", added_arr=eur(200), **book.when(at(2, 10)))
    service.churn(ids["B"], reason="competitor", **book.when(at(2, 15)))
    ids["D"] = book.account("D", 800, at(2, 20))
    service.downgrade(ids["A"], product="core", reduced_by=eur(100), **book.when(at(3, 5)))
    service.reactivate(
        ids["E"], term_end=date(2027, 3, 1), lines=[ProductLine("core", eur(300))],
        **book.when(at(3, 10)),
    )  # fmt: skip
    service.reactivate(
        ids["F"], term_end=date(2027, 3, 1), lines=[ProductLine("core", eur(700))],
        **book.when(at(3, 20)),
    )  # fmt: skip
    return ids


def card(service: AccountService, period: tuple[date, date] = Q1, **options: Any) -> dict[str, Any]:
    return {line.name: line for line in service.scorecard(*period, **options)}


def value(line: Any) -> Any:
    assert line.value is not None, line.error
    return line.value.value


# --- revenue and cohort figures -------------------------------------------------------------------


def test_the_quarter_by_hand(service: AccountService, book: Book) -> None:
    quarter_book(book)
    lines = card(service)
    assert value(lines["active_accounts"]) == 5  # A, C, F, D, E
    assert value(lines["new_accounts"]) == 1  # D
    assert value(lines["churned_accounts"]) == 2  # B, F (churn events, not netted)
    assert value(lines["reactivated_accounts"]) == 2  # E, F
    assert value(lines["arr"]) == eur("3300.00")
    assert value(lines["revenue_growth"]) == Decimal(3300 - 4100) / 4100
    assert value(lines["logo_retention"]) == Decimal("0.75")  # F reactivated: netted, kept
    assert value(lines["customer_churn"]) == Decimal("0.25")
    assert value(lines["grr"]) == Decimal(4100 - 100 - 2000) / 4100
    assert value(lines["nrr"]) == Decimal(1100 + 400 + 700) / 4100
    assert value(lines["gross_revenue_churn"]) == Decimal(100 + 2000) / 4100
    assert value(lines["net_revenue_churn"]) == Decimal(100 + 2000 - 200) / 4100
    assert value(lines["expansion"]) == eur("200.00")
    assert value(lines["contraction"]) == eur("100.00")
    detail = lines["grr"].value.detail
    assert (detail["cohort"], detail["starting_arr"]) == (4, eur("4100.00"))


def test_the_previous_quarter_is_beside_it_on_its_own_cohort(
    service: AccountService, book: Book
) -> None:
    quarter_book(book)
    lines = card(service)
    # Q4 2025: cohort E (300) and F (600); B, A, C join; E churns on 15 Dec.
    previous = lines["grr"].previous
    assert previous is not None
    assert previous.value == Decimal(900 - 300) / 900
    assert lines["active_accounts"].previous.value == 4  # F, B, A, C
    assert lines["new_accounts"].previous.value == 3


def test_a_downgrade_at_renewal_is_renewed_by_count_not_by_value(
    service: AccountService, book: Book
) -> None:
    quarter_book(book)
    by_count = card(service)["renewal_rate"]
    assert (by_count.convention, value(by_count)) == ("count", Decimal(1))
    assert by_count.value.detail["at_stake"] == eur("500.00")
    by_value = card(service, conventions={"renewal_rate": "value"})["renewal_rate"]
    assert (by_value.convention, value(by_value)) == ("value", Decimal("0.8"))


def test_upsell_and_cross_sell_rates_by_each_convention(
    service: AccountService, book: Book
) -> None:
    ids = quarter_book(book)
    offer = service.offer_opportunity(
        ids["C"], kind="cross_sell", product="analytics", estimated_arr=eur(100),
        **book.when(at(3, 21)),
    )  # fmt: skip
    opportunity = offer.entity_id
    assert opportunity is not None
    service.win_opportunity(
        ids["C"], opportunity_id=opportunity, arr=eur(150), **book.when(at(3, 25))
    )
    lost = service.offer_opportunity(
        ids["A"], kind="cross_sell", product="analytics", estimated_arr=eur(90),
        **book.when(at(3, 22)),
    )  # fmt: skip
    service.lose_opportunity(ids["A"], opportunity_id=lost.entity_id, **book.when(at(3, 26)))
    base = card(service)
    assert value(base["upsell_rate"]) == Decimal(1) / 4  # A, of the cohort of four
    assert value(base["cross_sell_rate"]) == Decimal(1) / 4  # C
    offers = card(service, conventions={"cross_sell_rate": "offers", "upsell_rate": "offers"})
    assert value(offers["cross_sell_rate"]) == Decimal("0.5")  # one won, one lost
    assert offers["upsell_rate"].value.reason == "the upsell offers decided in the period is zero"
    revenue = card(service, conventions={"upsell_rate": "revenue", "cross_sell_rate": "revenue"})
    assert value(revenue["upsell_rate"]) == Decimal(200) / 4100
    assert value(revenue["cross_sell_rate"]) == Decimal(150) / 4100


def test_an_empty_period_gives_zero_counts_and_reasons_not_zero_ratios(
    service: AccountService, book: Book
) -> None:
    quarter_book(book)
    lines = card(service, (date(2020, 1, 1), date(2020, 3, 31)))
    assert value(lines["active_accounts"]) == 0
    for name in ("grr", "nrr", "logo_retention", "customer_churn", "revenue_growth"):
        assert lines[name].value.value is None
        assert "zero" in lines[name].value.reason
    assert lines["arr"].value.reason == "no active account at the end of the period"
    assert lines["renewal_rate"].value.reason == "no renewal due in the period"
    assert lines["nps"].value.reason == "no NPS answer in the period"


def test_quarters_do_not_chain_into_the_year(service: AccountService, book: Book) -> None:
    x = book.account("X", 100, at(12, 1, 2025))
    book.account("Y", 100, at(12, 1, 2025))
    service.churn(x, reason="price", **book.when(at(2, 1)))
    z = book.account("Z", 100, at(2, 2))
    service.churn(z, reason="price", **book.when(at(5, 1)))
    q1 = value(card(service)["logo_retention"])
    q2 = value(card(service, (date(2026, 4, 1), date(2026, 6, 30)))["logo_retention"])
    year = value(card(service, (date(2026, 1, 1), date(2026, 6, 30)))["logo_retention"])
    assert (q1, q2) == (Decimal("0.5"), Decimal("0.5"))  # {X, Y}, then {Y, Z}
    assert year == Decimal("0.5") != q1 * q2  # the half-year's own cohort: {X, Y}


def test_a_backdated_upsell_changes_the_quarter_but_not_what_was_known_then(
    service: AccountService, book: Book
) -> None:
    account = book.account("A", 1000, at(12, 1, 2025))
    service.upsell(
        account, product="core", added_arr=eur(500), **book.when(at(3, 28), recorded=at(4, 3))
    )
    now = card(service)
    then = card(service, known_at=date(2026, 3, 31))
    assert value(now["expansion"]) == eur("500.00")
    assert value(then["expansion"]) == eur("0.00")
    assert value(now["nrr"]) == Decimal("1.5")
    assert value(then["nrr"]) == Decimal(1)
    assert value(card(service, known_at=at(4, 3))["nrr"]) == Decimal("1.5")


def test_mixed_currencies_are_never_summed(service: AccountService, book: Book) -> None:
    book.account("A", 1000, at(12, 1, 2025))
    book.account("U", 1000, at(12, 1, 2025), currency="USD")
    lines = card(service)
    assert value(lines["active_accounts"]) == 2
    assert "several currencies" in lines["arr"].value.reason
    assert "several currencies" in lines["nrr"].value.reason
    no_rate = card(service, currency="EUR")
    assert no_rate["arr"].value.reason == "no exchange rate from USD to EUR on 2026-03-31"


def test_a_reporting_currency_converts_at_one_rate_per_period(
    clock: FakeClock,
) -> None:
    settings = KpiSettings(reporting_currency="EUR", rates={"USD/EUR": "0.5"})
    service = AccountService(
        "memory:", clock=clock, plugins=PluginHost(entry_points=False), kpi_settings=settings
    )
    try:
        book = Book(service, clock)
        book.account("A", 1000, at(12, 1, 2025))
        us = book.account("U", 1000, at(12, 1, 2025), currency="USD")
        service.upsell(us, product="core", added_arr=Money(200, "USD"), **book.when(at(2, 1)))
        lines = card(service)
        assert value(lines["arr"]) == eur("1600.00")  # 1000 + 1200 x 0.5
        assert value(lines["expansion"]) == eur("100.00")
        assert value(lines["nrr"]) == Decimal(1600) / 1500
        assert value(card(service, currency="USD")["arr"]) == Money("3200.00", "USD")
    finally:
        service.close()


def test_filters_by_manager_segment_and_product_line(service: AccountService, book: Book) -> None:
    a = book.account("A", 1000, at(12, 1, 2025), manager="amy", segment="smb")
    book.account("B", 3000, at(12, 1, 2025), manager="bob", segment="enterprise")
    service.cross_sell(a, product="analytics", arr=eur(400), **book.when(at(2, 1)))
    service.reassign_manager(a, manager="bob", manager_type="sales", **book.when(at(3, 1)))
    assert value(card(service, manager="bob")["active_accounts"]) == 2  # A is bob's by March
    assert value(card(service, manager="amy")["active_accounts"]) == 0
    assert value(card(service, segment="smb")["arr"]) == eur("1400.00")
    analytics = card(service, product="analytics")
    assert value(analytics["arr"]) == eur("400.00")
    assert analytics["nrr"].value.reason == "the cohort's starting ARR is zero"
    assert value(card(service, product="core")["nrr"]) == Decimal(1)


# --- surveys, timings, lifetime value ------------------------------------------------------------


def test_survey_scores(service: AccountService, book: Book) -> None:
    account = book.account("A", 1000, at(12, 1, 2025))
    for score in (10, 9, 7, 3):
        service.record_feedback(account, score=NpsScore(score), **book.when(at(2, 1)))
    for score in (5, 4, 2):
        service.record_feedback(account, score=CsatScore(score), **book.when(at(2, 2)))
    lines = card(service)
    assert value(lines["nps"]) == Decimal(100 * (2 - 1)) / 4
    assert value(lines["csat"]) == Decimal(2) / 3
    assert lines["nps"].value.detail == {"answers": 4}


def test_response_and_resolution_times_mean_and_median(service: AccountService, book: Book) -> None:
    account = book.account("A", 1000, at(12, 1, 2025))
    for hours in (1, 2, 9):
        request = service.receive_request(
            account, subject="help", channel="email", **book.when(at(2, 1))
        ).entity_id
        assert request is not None
        service.answer_request(
            account, request_id=request,
            **book.when(datetime(2026, 2, 1, 12 + hours, tzinfo=UTC)),
        )  # fmt: skip
    issue = service.raise_issue(
        account, title="down", severity="high", category="outage", **book.when(at(3, 1))
    ).entity_id
    assert issue is not None
    service.respond_to_issue(account, issue_id=issue, **book.when(at(3, 2)))
    service.resolve_issue(account, issue_id=issue, resolution="fixed", **book.when(at(3, 4)))
    lines = card(service)
    assert value(lines["request_response_time"]) == Decimal("2.00")
    mean = card(service, conventions={"request_response_time": "mean"})
    assert value(mean["request_response_time"]) == Decimal("4.00")
    assert value(lines["issue_response_time"]) == Decimal("24.00")
    assert value(lines["issue_resolution_time"]) == Decimal("72.00")


def test_lifetime_value_predictive_and_historical(service: AccountService, book: Book) -> None:
    quarter_book(book)
    predictive = card(service)["ltv"]
    detail = predictive.value.detail
    assert detail["arpa"] == eur("660.00")  # 3300 / 5
    churn = Decimal("0.25")
    annual = detail["annual_churn"]
    assert annual == Decimal(1) - Decimal(str(0.75 ** (365 / 90)))
    assert churn < annual < 1
    assert value(predictive) == eur(
        (Decimal(660) * Decimal("0.8") / annual).quantize(Decimal("0.01"))
    )
    historical = card(service, conventions={"ltv": "historical"})["ltv"]
    assert historical.value.detail["accounts"] == 6


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"conventions": {"nrr": "x"}}, "conventions"),
        ({"conventions": {"upsell_rate": "by_mood"}}, "conventions"),
        ({"known_at": datetime(2026, 1, 1)}, "known_at"),
        ({"known_at": "yesterday"}, "known_at"),
        ({"currency": "XXY"}, "reporting_currency"),
        ({"colour": "red"}, "filters"),
    ],
)
def test_bad_scorecard_options_are_refused(
    service: AccountService, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidValue) as raised:
        service.scorecard(*Q1, **options)
    assert raised.value.field == field


def test_kpi_settings_refuse_bad_values(tmp_path: Any) -> None:
    for kwargs, field in (
        ({"reporting_currency": "EURO"}, "reporting_currency"),
        ({"rates": {"USD-EUR": "1"}}, "rates"),
        ({"rates": {"USD/EUR": "-1"}}, "rates.USD/EUR"),
        ({"rates": {"USD/EUR": 0.9}}, "rates.USD/EUR"),
        ({"gross_margin": "1.5"}, "gross_margin"),
    ):
        with pytest.raises(InvalidValue) as raised:
            KpiSettings(**kwargs)
        assert raised.value.field == field
    path = tmp_path / "kpis.toml"
    path.write_text(
        'reporting_currency = "EUR"\ngross_margin = "0.7"\n[rates]\n"USD/EUR" = "0.9"\n'
    )
    settings = KpiSettings.from_toml(path)
    assert settings.fixed_rate("EUR", "USD", date(2026, 1, 1)) == Decimal(1) / Decimal("0.9")
    path.write_text("colour = 1\n")
    with pytest.raises(InvalidValue, match="unknown setting"):
        KpiSettings.from_toml(path)
    with pytest.raises(InvalidValue, match="cannot read"):
        KpiSettings.from_toml(tmp_path / "missing.toml")


def test_every_builtin_kpi_value_is_a_kpi_value(service: AccountService, book: Book) -> None:
    quarter_book(book)
    for line in service.scorecard(*Q1):
        assert isinstance(line.value, KpiValue), line
        assert line.error == ""


def test_the_scorecard_leaves_the_garbage_collector_as_it_found_it(
    service: AccountService, book: Book
) -> None:
    import gc

    quarter_book(book)
    assert gc.isenabled()
    service.scorecard(*Q1)
    assert gc.isenabled()
    gc.disable()
    try:
        service.scorecard(*Q1)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_renewals_lost_and_still_open_count_as_not_renewed(
    service: AccountService, book: Book
) -> None:
    ids = quarter_book(book)  # C: due 1 Feb, renewed
    x = book.account("X", 700, at(11, 1, 2025))
    y = book.account("Y", 300, at(11, 1, 2025))
    service.mark_renewal_due(x, due_on=date(2026, 2, 15), **book.when(at(1, 6)))
    service.churn(x, reason="competitor", **book.when(at(2, 20)))
    service.mark_renewal_due(y, due_on=date(2026, 3, 15), **book.when(at(1, 7)))
    line = card(service)["renewal_rate"]
    assert value(line) == Decimal(1) / 3
    detail = line.value.detail
    assert (detail["due"], detail["renewed"], detail["lost"], detail["open"]) == (3, 1, 1, 1)
    assert detail["at_stake"] == eur("1500.00")  # 500 + 700 + 300
    by_value = card(service, conventions={"renewal_rate": "value"})["renewal_rate"]
    assert value(by_value) == Decimal(400) / 1500
    assert ids["C"] != x


def test_customer_effort_is_the_mean_answer(service: AccountService, book: Book) -> None:
    account = book.account("A", 1000, at(12, 1, 2025))
    for score in (7, 5, 3):
        service.record_feedback(account, score=CesScore(score), **book.when(at(2, 3)))
    service.record_feedback(account, score=CesScore(1), **book.when(at(4, 3)))  # Q2
    assert value(card(service)["ces"]) == Decimal(5)


def test_historical_lifetime_value_is_what_each_account_paid_on_average(
    service: AccountService, book: Book
) -> None:
    a = book.account("A", 1000, datetime(2025, 1, 1, tzinfo=UTC))
    book.account("B", 2000, datetime(2025, 7, 1, tzinfo=UTC))
    service.churn(a, reason="price", **book.when(datetime(2025, 7, 1, tzinfo=UTC)))
    year = (date(2025, 1, 1), date(2025, 12, 31))
    line = card(service, year, conventions={"ltv": "historical"})["ltv"]
    end = datetime(2026, 1, 1, tzinfo=UTC) - timedelta(microseconds=1)
    micros_a = (datetime(2025, 7, 1, tzinfo=UTC) - datetime(2025, 1, 1, tzinfo=UTC)) / MICRO
    micros_b = (end - datetime(2025, 7, 1, tzinfo=UTC)) / MICRO
    year_micros = Decimal(365 * 24 * 3600 * 1_000_000)
    paid = (
        Decimal(1000) * Decimal(micros_a) / year_micros
        + Decimal(2000) * Decimal(micros_b) / year_micros
    )
    assert value(line) == eur((paid / 2).quantize(Decimal("0.01")))
    assert line.value.detail["accounts"] == 2


def test_customer_effort_as_the_share_of_easy_answers(service: AccountService, book: Book) -> None:
    account = book.account("A", 1000, at(12, 1, 2025))
    for score in (7, 5, 3, 2):
        service.record_feedback(account, score=CesScore(score), **book.when(at(2, 3)))
    line = card(service, conventions={"ces": "share_easy"})["ces"]
    assert (line.convention, value(line)) == ("share_easy", Decimal("0.5"))


def test_with_a_product_line_only_the_facts_that_changed_it_count(
    service: AccountService, book: Book
) -> None:
    a = book.account("A", 1000, at(12, 1, 2025))
    book.account("B", 500, at(2, 1))  # new, but not on analytics
    service.cross_sell(a, product="analytics", arr=eur(300), **book.when(at(1, 10)))
    service.upsell(a, product="core", added_arr=eur(100), **book.when(at(1, 20)))
    service.upsell(a, product="analytics", added_arr=eur(50), **book.when(at(2, 20)))
    whole = card(service, conventions={"upsell_rate": "revenue"})
    assert value(whole["new_accounts"]) == 1
    assert value(whole["upsell_rate"]) == Decimal(150) / 1000
    analytics = card(service, product="analytics", conventions={"upsell_rate": "revenue"})
    assert value(analytics["new_accounts"]) == 0
    assert value(analytics["arr"]) == eur("350.00")
    assert analytics["upsell_rate"].value.reason == "the cohort's starting ARR is zero"
    core = card(service, product="core")
    assert value(core["new_accounts"]) == 1  # B's contract started the line
    assert value(core["upsell_rate"]) == Decimal(1)  # A, the cohort of one, upsold core
    assert (
        value(card(service, product="core", conventions={"upsell_rate": "revenue"})["upsell_rate"])
        == Decimal(100) / 1000
    )


# --- kpis=: computing only the KPIs named ---------------------------------------------------------


class CountingPlugin:
    """A KPI that counts the periods it was computed for."""

    def __init__(self) -> None:
        self.computed: list[tuple[date, date]] = []

    @hookimpl
    def acctdomain_register_kpis(self, register: Callable[[Kpi], None]) -> None:
        def compute(context: KpiContext) -> KpiValue:
            self.computed.append((context.start, context.end))
            return KpiValue(len(self.computed))

        register(Kpi(name="counted", title="Counted", unit="count", compute=compute))


def test_kpis_computes_only_those_named_in_the_scorecards_order(
    service: AccountService, book: Book
) -> None:
    quarter_book(book)
    whole = card(service)
    only = service.scorecard(*Q1, kpis=["nrr", "customer_churn", "grr", "nrr"])
    assert [line.name for line in only] == ["customer_churn", "grr", "nrr"]
    for line in only:
        assert line == whole[line.name]
    assert service.scorecard(*Q1, kpis=[]) == []
    assert [line.name for line in service.scorecard(*Q1, kpis=iter(["arr"]))] == ["arr"]


def test_a_kpi_not_named_is_not_computed(clock: FakeClock) -> None:
    counting = CountingPlugin()
    service = AccountService(
        "memory:",
        clock=clock,
        plugins=PluginHost(entry_points=False, plugins=[("counting", counting)]),
    )
    try:
        service.scorecard(*Q1, kpis=["active_accounts"])
        assert counting.computed == []
        lines = service.scorecard(*Q1, kpis=["counted"])
        assert [line.name for line in lines] == ["counted"]
        assert counting.computed == [Q1, (date(2025, 10, 1), date(2025, 12, 31))]
        service.scorecard(*Q1)
        assert len(counting.computed) == 4
    finally:
        service.close()


@pytest.mark.parametrize(
    ("kpis", "named"),
    [
        (["nrr", "arpu"], "'arpu'"),
        (["NRR"], "'NRR'"),
        ([None], "None"),
        ("nrr", "'nrr'"),
        (42, "42"),
    ],
)
def test_kpis_naming_no_registered_kpi_is_refused(
    service: AccountService, kpis: Any, named: str
) -> None:
    with pytest.raises(InvalidValue) as raised:
        service.scorecard(*Q1, kpis=kpis)
    assert raised.value.field == "kpis"
    assert named in raised.value.reason


def test_conventions_may_name_a_kpi_that_is_not_computed(
    service: AccountService, book: Book
) -> None:
    quarter_book(book)
    lines = service.scorecard(*Q1, kpis=["nrr"], conventions={"renewal_rate": "value"})
    assert [line.name for line in lines] == ["nrr"]
    with pytest.raises(InvalidValue) as raised:
        service.scorecard(*Q1, kpis=["nrr"], conventions={"nrr": "mean"})
    assert raised.value.field == "conventions"
