"""What ``projected_renewal_rate`` costs a scorecard, and that making it cheap changed no
figure: lifetimes counted without being built (against a plain re-statement of the spells),
each account's revenue sorted once per scorecard for both periods, the same counts fitted
once per process, neither ``scipy.stats`` nor scikit-learn imported, and the report's trend
charts computing only their KPIs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import acctdomain.builtin.forecast as forecast_plugin
from acctdomain import AccountService
from acctdomain.application.scorecard import known_moment
from acctdomain.builtin.scorecard_kpis import scope
from acctdomain.domain.values import moment_of
from acctdomain.errors import InvalidValue
from acctdomain.forecasting.cohorts import (
    Observations,
    known_decisions,
    lifetimes_from_facts,
    observations,
    renewal_counts,
)
from acctdomain.forecasting.sbg import clear_fit_cache, fit_sbg
from acctdomain.plugins import KpiContext, KpiValue, PluginHost
from acctdomain.report import ReportRequest, gather_report
from tests.conftest import FakeClock
from tests.test_forecast_cohorts import account, at, churn, line, renew

ROOT = Path(__file__).resolve().parents[1]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KINDS = ("started", "reactivated", "renewed", "churned", "upsold", "downgraded")
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def quarters(first_year: int, last_year: int) -> list[tuple[date, date]]:
    found = []
    for year in range(first_year, last_year + 1):
        for month in (1, 4, 7, 10):
            after = date(year + 1, 1, 1) if month == 10 else date(year, month + 3, 1)
            found.append((date(year, month, 1), after - timedelta(days=1)))
    return found


@pytest.fixture
def book() -> Iterator[AccountService]:
    """18 accounts over 2022-2026: renewals, churns at various decisions, win-backs; the
    events of every fourth account recorded 40 days late (so ``known_at`` counts less)."""
    clock = FakeClock(datetime(2022, 1, 1, tzinfo=UTC))
    service = AccountService("memory:", clock=clock, plugins=PluginHost(entry_points=False))
    plan: list[tuple[datetime, int, str]] = []
    for n in range(18):
        start = at(2022 + n % 3, 1 + n % 12, 1)
        plan.append((start, n, "start"))
        for decision in range(n % 4):
            moment = start.replace(year=start.year + 1 + decision, day=10)
            if moment >= NOW:
                break
            if (n + decision) % 5 == 0:
                plan.append((moment, n, "churn"))
                if n % 2 and moment + timedelta(days=90) < NOW:
                    plan.append((moment + timedelta(days=90), n, "reactivate"))
                break
            plan.append((moment, n, "renew"))
    ids: dict[int, UUID] = {}
    for moment, n, action in sorted(plan):
        clock.now = max(clock.now, moment + timedelta(days=40 if n % 4 == 3 else 0))
        if action == "start":
            ids[n] = account(service, f"c{n}", moment)
        elif action == "renew":
            renew(service, ids[n], moment)
        elif action == "churn":
            churn(service, ids[n], moment)
        else:
            service.reactivate(
                ids[n],
                term_end=date(moment.year + 1, 12, 1),
                lines=line(700),
                actor="amy",
                effective_at=moment,
            )
    try:
        yield service
    finally:
        service.close()


def reference(service: AccountService, start: date, end: date, known: date | None) -> KpiValue:
    """The KPI as it was first written: every lifetime built, then fitted and averaged."""
    context = KpiContext(start, end, service.read_model, known_at=known_moment(known))
    lifetimes = lifetimes_from_facts(
        scope(context), as_of=moment_of("end", end, end=True), known_at=context.known_at
    )
    try:
        fit = fit_sbg(observations(lifetimes))
    except InvalidValue as error:
        return KpiValue(None, error.reason)
    active = [lifetime for lifetime in lifetimes if not lifetime.churned]
    if not active:
        return KpiValue(None, "no account is active at the end of the period")
    expected = sum(fit.renewal_probability(lifetime.renewals) for lifetime in active)
    return KpiValue(
        (Decimal(repr(expected)) / len(active)).quantize(Decimal("0.0001")),
        detail={
            "alpha": round(fit.alpha, 4),
            "beta": round(fit.beta, 4),
            "lifetimes": fit.lifetimes,
            "churns": fit.churns,
            "active_accounts": len(active),
        },
    )


def test_the_kpi_gives_what_building_every_lifetime_gives(book: AccountService) -> None:
    fitted = 0
    for start, end in quarters(2023, 2026):
        for known in (None, end, date(2024, 12, 31)):
            line = book.scorecard(start, end, known_at=known, kpis=["projected_renewal_rate"])[0]
            assert line.value == reference(book, start, end, known), (start, known)
            assert line.previous is not None
            fitted += line.value is not None and line.value.value is not None
    assert fitted >= 10  # the comparison covers real fits, not only reasons


def test_each_accounts_decisions_are_sorted_once_per_scorecard(
    book: AccountService, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def counted(row: Any, known: int | None = None) -> list[tuple[int, str]]:
        calls.append(id(row))  # the scorecard's rows of kpi_facts serve both periods
        return known_decisions(row, known)

    monkeypatch.setattr(forecast_plugin, "known_decisions", counted)
    line = book.scorecard(date(2025, 10, 1), date(2025, 12, 31), kpis=["projected_renewal_rate"])
    (figures,) = line
    assert figures.value is not None
    assert figures.previous is not None
    assert figures.value.value is not None
    assert figures.previous.value is not None
    assert len(calls) == len(set(calls)) == 18  # both quarters, every account once


def test_the_same_counts_give_the_same_fit_until_the_cache_is_cleared() -> None:
    clear_fit_cache()
    first = fit_sbg(Observations.from_survivors([1000, 631, 468, 382, 326]))
    same = fit_sbg(Observations({4: 56, 3: 86, 2: 163, 1: 369}, {4: 326}))
    assert same is first
    other = fit_sbg(Observations({4: 56, 3: 86, 2: 163, 1: 369}, {4: 325}))
    assert other != first
    clear_fit_cache()
    again = fit_sbg(Observations.from_survivors([1000, 631, 468, 382, 326]))
    assert again is not first
    assert again == first
    with pytest.raises(InvalidValue, match="no churn"):
        fit_sbg(Observations({}, {3: 10}))


facts = st.lists(
    st.tuples(
        st.integers(0, 40),
        st.integers(0, 20),
        st.sampled_from(KINDS),
        st.integers(0, 3),
    ),
    max_size=12,
)


def spells_by_hand(row: dict[str, Any], end: int, known: int | None) -> list[tuple[int, bool]]:
    """(renewals, churned) of each spell, as docs/forecasting.md states it."""
    found = []
    renewals: int | None = None
    for effective, recorded, kind, _ in sorted(row["revenue"], key=lambda fact: fact[0]):
        if effective > end or (known is not None and recorded > known):
            continue
        if renewals is None:
            renewals = 0 if kind in ("started", "reactivated") else None
        elif kind == "renewed":
            renewals += 1
        elif kind == "churned":
            found.append((renewals, True))
            renewals = None
    if renewals is not None:
        found.append((renewals, False))
    return found


@settings(max_examples=200, deadline=None)
@given(
    accounts=st.lists(facts, max_size=6),
    end=st.integers(0, 45),
    known=st.none() | st.integers(0, 60),
)
def test_counting_lifetimes_equals_building_them(
    accounts: list[list[tuple[int, int, str, int]]], end: int, known: int | None
) -> None:
    rows = [
        (
            UUID(int=number + 1).hex,
            {
                "revenue": [
                    [effective, effective + late, kind, {"core": str(100 * size)}]
                    for effective, late, kind, size in history
                ],
                "currency": "EUR",
                "segment": "smb",
            },
        )
        for number, history in enumerate(accounts)
    ]
    as_of = EPOCH + timedelta(microseconds=end)
    known_at = None if known is None else EPOCH + timedelta(microseconds=known)
    lifetimes = lifetimes_from_facts(rows, as_of=as_of, known_at=known_at)
    assert [(lifetime.renewals, lifetime.churned) for lifetime in lifetimes] == [
        spell for _, row in rows for spell in spells_by_hand(row, end, known)
    ]
    data, active = renewal_counts((known_decisions(row, known) for _, row in rows), as_of=as_of)
    assert data == observations(lifetimes)
    assert active == [lifetime.renewals for lifetime in lifetimes if not lifetime.churned]


def test_the_kpi_imports_neither_scipy_stats_nor_scikit_learn() -> None:
    code = """
import sys
from datetime import UTC, date, datetime
from acctdomain import AccountService, Money, ProductLine
from acctdomain.plugins import PluginHost

def on(year, month, day):
    return {"actor": "amy", "effective_at": datetime(year, month, day, tzinfo=UTC)}

service = AccountService("memory:", plugins=PluginHost(entry_points=False))
lines = [ProductLine("core", Money(100, "EUR"))]
for n in range(6):
    account = service.open_account(name=f"c{n}", segment="smb", industry="retail",
        currency="EUR", manager="amy", manager_type="sales", **on(2023, 1, 1)).account_id
    service.start_contract(account, term_end=date(2024, 1, 1), lines=lines, **on(2023, 1, 1))
    if n % 3 == 0:
        service.churn(account, reason="price", **on(2024, 1, 1))
        continue
    service.renew(account, term_end=date(2025, 1, 1), lines=lines, **on(2024, 1, 1))
    if n % 3 == 1:
        service.churn(account, reason="price", **on(2025, 1, 1))
    else:
        service.renew(account, term_end=date(2026, 1, 1), lines=lines, **on(2025, 1, 1))
(line,) = service.scorecard(date(2025, 1, 1), date(2025, 3, 31), kpis=["projected_renewal_rate"])
assert line.value.value is not None, line.value
print(sorted(name for name in ("scipy.optimize", "scipy.stats", "sklearn") if name in sys.modules))
"""
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "['scipy.optimize']"


def test_the_reports_trend_charts_compute_only_their_kpis(
    book: AccountService, monkeypatch: pytest.MonkeyPatch
) -> None:
    periods: list[datetime] = []

    def counted(facts: Any, *, as_of: datetime) -> tuple[Observations, list[int]]:
        periods.append(as_of)
        return renewal_counts(facts, as_of=as_of)

    monkeypatch.setattr(forecast_plugin, "renewal_counts", counted)
    request = ReportRequest(start=date(2025, 10, 1), end=date(2025, 12, 31), now=NOW)
    report = gather_report(book, request)
    # Only the KPI tiles' scorecard (the quarter and the one before) computes the forecast.
    assert [moment.date() for moment in periods] == [date(2025, 12, 31), date(2025, 9, 30)]
    trends = report["sections"]["trends"]
    assert [kpi["name"] for kpi in trends["kpis"]] == ["nrr", "grr", "customer_churn"]
    assert any(value is not None for kpi in trends["kpis"] for value in kpi["values"])
    tiles = {kpi["name"] for kpi in report["sections"]["kpis"]["kpis"]}
    assert "projected_renewal_rate" in tiles
