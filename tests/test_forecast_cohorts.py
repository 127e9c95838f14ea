"""Contract lifetimes from the ``kpi_facts`` read model, cohort survival tables, the whole
retention forecast of a book, and the ``projected_renewal_rate`` KPI of ``builtin.forecast``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import pytest

from acctdomain import AccountService, Money, ProductLine
from acctdomain.errors import InvalidValue
from acctdomain.forecasting import EXTRA, missing_extra
from acctdomain.forecasting.cohorts import cohort_of, observations, survival_table
from acctdomain.forecasting.retention import book_lifetimes, forecast_retention
from acctdomain.plugins import DEFAULT_PLUGINS, PluginHost

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 10, tzinfo=UTC)


def when(moment: datetime) -> dict[str, object]:
    return {"actor": "amy", "effective_at": moment}


def line(arr: int) -> list[ProductLine]:
    return [ProductLine("core", Money(arr, "EUR"))]


def account(service: AccountService, name: str, start: datetime, arr: int = 1000) -> UUID:
    account_id = service.open_account(
        name=name,
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        **when(start),
    ).account_id
    service.start_contract(
        account_id, term_end=date(start.year + 1, start.month, 1), lines=line(arr), **when(start)
    )
    return account_id


def renew(service: AccountService, account_id: UUID, moment: datetime, arr: int = 1000) -> None:
    service.renew(account_id, term_end=date(moment.year + 1, 1, 1), lines=line(arr), **when(moment))


def churn(service: AccountService, account_id: UUID, moment: datetime) -> None:
    service.churn(account_id, reason="price", **when(moment))


@pytest.fixture
def book() -> Iterator[tuple[AccountService, dict[str, UUID]]]:
    """2023: A renews twice and stays; B churns at its first decision; C renews once then
    churns, comes back in 2025 and stays. 2024: D renews once and stays; E churns at its
    first decision; F stays without a decision yet."""
    service = AccountService("memory:", clock=lambda: NOW, plugins=PluginHost(entry_points=False))
    ids = {
        name: account(service, name, at(2023 if name in "ABC" else 2024, 2, 1)) for name in "ABCDEF"
    }
    renew(service, ids["A"], at(2024, 1, 20))
    renew(service, ids["A"], at(2025, 1, 20), arr=1500)
    churn(service, ids["B"], at(2024, 1, 20))
    renew(service, ids["C"], at(2024, 1, 20))
    churn(service, ids["C"], at(2025, 1, 10))
    service.reactivate(ids["C"], term_end=date(2026, 6, 1), lines=line(700), **when(at(2025, 6, 1)))
    renew(service, ids["D"], at(2025, 1, 20))
    churn(service, ids["E"], at(2025, 1, 20))
    try:
        yield service, ids
    finally:
        service.close()


def test_lifetimes_count_renewals_and_churns_per_contract_spell(
    book: tuple[AccountService, dict[str, UUID]],
) -> None:
    service, ids = book
    found = {(item.account_id, item.started): item for item in book_lifetimes(service, as_of=NOW)}
    a = found[ids["A"], date(2023, 2, 1)]
    assert (a.cohort, a.renewals, a.churned, a.arr, a.currency) == (
        "2023",
        2,
        False,
        Decimal(1500),
        "EUR",
    )
    b = found[ids["B"], date(2023, 2, 1)]
    assert (b.renewals, b.churned, b.decisions, b.arr) == (0, True, 1, Decimal(0))
    c1, c2 = found[ids["C"], date(2023, 2, 1)], found[ids["C"], date(2025, 6, 1)]
    assert (c1.renewals, c1.churned, c2.cohort, c2.renewals, c2.churned) == (
        1,
        True,
        "2025",
        0,
        False,
    )
    f = found[ids["F"], date(2024, 2, 1)]
    assert (f.renewals, f.churned, f.decisions) == (0, False, 0)
    assert len(found) == 7


def test_lifetimes_as_of_an_earlier_day_and_as_known_then(
    book: tuple[AccountService, dict[str, UUID]],
) -> None:
    service, ids = book
    then = {item.account_id: item for item in book_lifetimes(service, as_of=date(2024, 6, 30))}
    assert then[ids["A"]].renewals == 1
    assert not then[ids["C"]].churned
    assert ids["E"] in then
    assert not then[ids["E"]].churned
    assert book_lifetimes(service, known_at=datetime(2020, 1, 1, tzinfo=UTC)) == []
    quarters = {item.cohort for item in book_lifetimes(service, as_of=NOW, cohort_by="quarter")}
    assert quarters == {"2023-Q1", "2024-Q1", "2025-Q2"}


def test_survival_table_per_cohort(book: tuple[AccountService, dict[str, UUID]]) -> None:
    service, _ = book
    rows = survival_table(book_lifetimes(service, as_of=NOW))
    table = {(row.cohort, row.period): row for row in rows}
    first = table["2023", 1]
    assert (first.at_risk, first.churned, first.renewed) == (3, 1, 2)
    assert first.survival == pytest.approx(2 / 3)
    second = table["2023", 2]
    assert (second.at_risk, second.churned, second.renewed) == (2, 1, 1)
    assert second.survival == pytest.approx(1 / 3)
    # 2024: D renewed, E churned, F has not come to a decision: it is not at risk yet
    assert (table["2024", 1].at_risk, table["2024", 1].churned) == (2, 1)
    assert ("2025", 1) not in table  # C's return has no decision yet


def test_forecast_of_a_small_book_without_heterogeneity_says_so(
    book: tuple[AccountService, dict[str, UUID]],
) -> None:
    service, ids = book
    forecast = forecast_retention(book_lifetimes(service, as_of=NOW), as_of=NOW, horizon=3)
    assert (forecast.lifetimes, forecast.churns, forecast.decisions) == (7, 3, 7)
    # churn does not fall with tenure here (2 of 4, then 1 of 2): sBG runs to constant churn
    # and says so
    assert forecast.sbg is not None
    assert forecast.sbg_reason == ""
    assert "no heterogeneity" in forecast.sbg.boundary
    assert forecast.sbg.mean_churn == pytest.approx(3 / 7, abs=0.01)
    assert forecast.naive.churn == pytest.approx(3 / 7)
    assert [point.period for point in forecast.curve] == [0, 1, 2, 3]
    assert forecast.curve[1].naive_survival == pytest.approx(4 / 7)
    assert forecast.curve[0].observed_survival == 1.0
    assert forecast.curve[3].observed_survival is None
    values = {value.account_id: value for value in forecast.accounts}
    assert set(values) == {ids[name] for name in "ACDF"}
    keep = 4 / 7
    naive_derl = keep / (1 - keep / 1.1)
    assert values[ids["A"]].naive_derl == pytest.approx(naive_derl)
    assert values[ids["A"]].naive_residual_value == (
        Decimal(1500) * Decimal(repr(naive_derl))
    ).quantize(Decimal("0.01"))
    cohorts = {cohort.cohort: cohort for cohort in forecast.cohorts}
    assert (cohorts["2023"].lifetimes, cohorts["2023"].active) == (3, 1)
    assert set(cohorts["2024"].naive_residual_value) == {"EUR"}
    plain = forecast.as_dict()
    assert plain["accounts"][0]["account_id"] in {str(ids[name]) for name in "ACDF"}
    assert isinstance(plain["cohorts"][0]["naive_residual_value"]["EUR"], str)


def test_forecast_with_sbg_fitted_values_every_active_account() -> None:
    from acctdomain.forecasting.cohorts import Lifetime

    def lifetime(n: int, renewals: int, churned: bool) -> Lifetime:
        return Lifetime(
            account_id=UUID(int=n),
            cohort="2020",
            started=date(2020, 1, 1),
            renewals=renewals,
            churned=churned,
            arr=Decimal(0 if churned else 100),
            currency="USD",
            segment="smb",
        )

    counts = {(0, True): 300, (1, True): 150, (2, True): 80, (3, False): 470}
    items = [
        lifetime(index, renewals, churned)
        for (renewals, churned), n in counts.items()
        for index in range(n)
    ]
    forecast = forecast_retention(items, as_of=NOW, discount_rate=0.1)
    assert forecast.sbg is not None
    assert forecast.fit is not None
    value = forecast.accounts[0]
    assert value.derl == pytest.approx(forecast.sbg.derl(3, 0.1))
    assert value.renewal_probability == pytest.approx(forecast.sbg.retention(4))
    total = sum((v.residual_value or Decimal(0) for v in forecast.accounts), Decimal(0))
    assert forecast.cohorts[0].residual_value == {"USD": total}
    assert forecast.curve[2].sbg_survival == pytest.approx(forecast.sbg.survival(2))


def test_forecast_refuses_what_it_cannot_compute() -> None:
    with pytest.raises(InvalidValue, match="nothing to fit"):
        forecast_retention([], as_of=NOW)
    data = observations([])
    assert data.lifetimes == 0


@pytest.mark.parametrize("horizon", [0, 101, 2.5, True])
def test_forecast_refuses_a_bad_horizon(horizon: object) -> None:
    with pytest.raises(InvalidValue, match="horizon"):
        forecast_retention([], as_of=NOW, horizon=horizon)  # type: ignore[arg-type]


def test_bad_cohort_period_and_naive_moment_are_refused(
    book: tuple[AccountService, dict[str, UUID]],
) -> None:
    service, _ = book
    with pytest.raises(InvalidValue, match="cohort_by"):
        cohort_of(date(2024, 5, 1), "week")
    with pytest.raises(InvalidValue, match="cohort_by"):
        book_lifetimes(service, cohort_by="decade")
    with pytest.raises(InvalidValue, match="as_of"):
        book_lifetimes(service, as_of=datetime(2025, 1, 1))
    assert cohort_of(date(2024, 5, 1), "month") == "2024-05"


def test_builtin_forecast_plugin_is_a_default_plugin_with_its_kpi() -> None:
    assert ("builtin.forecast", "acctdomain.builtin.forecast") in DEFAULT_PLUGINS
    host = PluginHost(entry_points=False)
    assert "projected_renewal_rate" in host.kpis()
    assert host.owner("acctdomain_register_kpis", "projected_renewal_rate") == "builtin.forecast"


def test_projected_renewal_rate_on_the_scorecard(
    book: tuple[AccountService, dict[str, UUID]],
) -> None:
    service, _ = book
    lines = {line.name: line for line in service.scorecard(date(2025, 10, 1), date(2025, 12, 31))}
    value = lines["projected_renewal_rate"].value
    assert value is not None
    # sBG is at constant churn (3 churns in 7 decisions): A, C (back), D and F renew with 4/7
    assert value.value == pytest.approx(Decimal(4) / 7, abs=Decimal("0.002"))
    assert value.detail["active_accounts"] == 4
    assert value.detail["churns"] == 3


def test_projected_renewal_rate_of_an_empty_book_has_a_reason() -> None:
    service = AccountService("memory:", clock=lambda: NOW, plugins=PluginHost(entry_points=False))
    try:
        lines = {line.name: line for line in service.scorecard(date(2025, 1, 1), date(2025, 3, 31))}
    finally:
        service.close()
    value = lines["projected_renewal_rate"].value
    assert value is not None
    assert value.value is None
    assert "nothing to fit" in value.reason


def test_projected_renewal_rate_names_the_extra_when_scipy_is_missing(
    book: tuple[AccountService, dict[str, UUID]], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, _ = book
    assert missing_extra() == ""
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)
    assert EXTRA in missing_extra()
    lines = {line.name: line for line in service.scorecard(date(2025, 10, 1), date(2025, 12, 31))}
    value = lines["projected_renewal_rate"].value
    assert value is not None
    assert value.value is None
    assert "acctdomain[forecast]" in value.reason
