"""The demo book: deterministic, always valid, and realistic enough for risk models."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from statistics import mean
from uuid import UUID

import pytest

from acctdomain import AccountService, AccountStatus, IssueSeverity, StakeholderRole
from acctdomain.builtin.whitespace import product_benchmarks, white_space
from acctdomain.demo import BookSummary, eur_at_demo_rate, generate_book
from acctdomain.domain.events import (
    ACCOUNT_EVENT_TYPES,
    Churned,
    Downgraded,
    ProductAdoptionEnded,
    Renewed,
)
from acctdomain.errors import InvalidValue

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
START = date(2023, 1, 2)
END = datetime(2026, 1, 2, tzinfo=UTC)


def new_service(now: datetime = NOW) -> AccountService:
    """An in-memory service whose recorded-time clock stands still (so two runs compare)."""
    return AccountService("memory:", clock=lambda: now)


@pytest.fixture(scope="module")
def book() -> Iterator[tuple[AccountService, BookSummary]]:
    """One moderate book shared by the realism checks (writing it takes a few seconds)."""
    service = new_service()
    try:
        yield service, generate_book(service, accounts=60, seed=7)
    finally:
        service.close()


def test_same_seed_writes_identical_accounts() -> None:
    first, second = new_service(), new_service()
    one = generate_book(first, accounts=10, seed=3)
    two = generate_book(second, accounts=10, seed=3)
    assert one == two
    assert [first.get_account(i) for i in one.account_ids] == [
        second.get_account(i) for i in two.account_ids
    ]
    effective = [[e.effective_at for e in first.history(i)] for i in one.account_ids]
    assert effective == [[e.effective_at for e in second.history(i)] for i in two.account_ids]


def test_another_seed_writes_another_book() -> None:
    first, second = new_service(), new_service()
    one = generate_book(first, accounts=10, seed=3)
    two = generate_book(second, accounts=10, seed=4)
    assert one.account_ids != two.account_ids
    names = [first.get_account(i).name for i in one.account_ids]
    assert names != [second.get_account(i).name for i in two.account_ids]


@pytest.mark.parametrize("seed", [1, 2, 5, 9])
def test_generated_commands_are_never_rejected(seed: int) -> None:
    service = new_service()
    summary = generate_book(service, accounts=6, seed=seed)
    assert summary.accounts == 6
    assert summary.events == sum(len(service.history(i)) for i in summary.account_ids)


def test_progress_is_reported_after_each_account() -> None:
    calls: list[tuple[int, int]] = []
    generate_book(new_service(), accounts=3, seed=1, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_effective_times_stop_at_the_service_clock() -> None:
    now = datetime(2023, 9, 1, 15, 30, tzinfo=UTC)
    service = new_service(now)
    summary = generate_book(service, accounts=4, seed=2)
    assert summary.end == now.date()
    for account_id in summary.account_ids:
        assert all(e.effective_at <= now for e in service.history(account_id))


def test_nonsense_arguments_are_refused() -> None:
    with pytest.raises(InvalidValue, match="accounts"):
        generate_book(new_service(), accounts=0)
    with pytest.raises(InvalidValue, match="start"):
        generate_book(new_service(), start=date(2027, 1, 1))


def test_every_event_type_appears(book: tuple[AccountService, BookSummary]) -> None:
    service, summary = book
    seen = {type(e) for i in summary.account_ids for e in service.history(i)}
    missing = [t.__name__ for t in ACCOUNT_EVENT_TYPES if t not in seen]
    assert missing == []


def test_effective_times_are_utc_within_the_period_and_in_order(
    book: tuple[AccountService, BookSummary],
) -> None:
    service, summary = book
    begin = datetime.combine(START, datetime.min.time(), UTC)
    for account_id in summary.account_ids:
        times = [e.effective_at for e in service.history(account_id)]
        assert all(t.utcoffset() == timedelta(0) for t in times)
        assert begin <= times[0]
        assert times[-1] < END
        assert times == sorted(times)


def test_book_has_the_expected_shape(book: tuple[AccountService, BookSummary]) -> None:
    service, summary = book
    states = [service.get_account(i) for i in summary.account_ids]
    assert {s.segment for s in states} == {"smb", "mid_market", "enterprise"}
    assert len({s.manager for s in states}) >= 6
    assert len({s.industry for s in states}) >= 5
    assert {"EUR", "USD"} <= {s.currency for s in states}
    for state in states:
        assert {line.arr.currency for line in state.lines} <= {state.currency}
    assert 60 <= summary.events_per_account <= 140
    assert 0.05 <= summary.churned_accounts / summary.accounts <= 0.30
    assert summary.reactivated_accounts >= 1


def _eur_arr(service: AccountService, account_id: UUID, when: datetime) -> tuple[bool, Decimal]:
    state = service.get_account_as_effective_at(account_id, when)
    active = state.status is AccountStatus.ACTIVE
    return active, eur_at_demo_rate(state.arr)


def test_yearly_logo_churn_and_net_revenue_retention_are_plausible(
    book: tuple[AccountService, BookSummary],
) -> None:
    service, summary = book
    churned = cohort = 0
    arr_start = arr_end = Decimal(0)
    for year in (2024, 2025):
        start, end = datetime(year, 1, 2, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
        for account_id in summary.account_ids:
            if service.get_account(account_id).opened_at > start:
                continue
            was_active, before = _eur_arr(service, account_id, start)
            if not was_active:
                continue
            still_active, after = _eur_arr(service, account_id, end)
            cohort += 1
            churned += not still_active
            arr_start += before
            arr_end += after
    assert 0.04 <= churned / cohort <= 0.25
    assert Decimal("0.95") <= arr_end / arr_start <= Decimal("1.30")


def _signals(
    service: AccountService, account_id: UUID, moment: datetime
) -> tuple[int | None, bool, int]:
    """Latest NPS, whether a champion is in place, and high/critical issues of the last half
    year, as an account manager saw them just before ``moment``."""
    state = service.get_account_as_effective_at(account_id, moment - timedelta(microseconds=1))
    champion = any(p.is_active and p.role is StakeholderRole.CHAMPION for p in state.stakeholders)
    severe = sum(
        1
        for issue in state.issues
        if issue.severity in (IssueSeverity.HIGH, IssueSeverity.CRITICAL)
        and issue.raised_at >= moment - timedelta(days=180)
    )
    return (state.latest_nps.value if state.latest_nps else None), champion, severe


def test_churned_accounts_showed_warning_signs(book: tuple[AccountService, BookSummary]) -> None:
    service, summary = book
    churned, renewed = [], []
    for account_id in summary.account_ids:
        for event in service.history(account_id):
            if isinstance(event, Churned):
                churned.append(_signals(service, account_id, event.effective_at))
            elif isinstance(event, Renewed):
                renewed.append(_signals(service, account_id, event.effective_at))
    assert len(churned) >= 5

    def mean_nps(signals: list[tuple[int | None, bool, int]]) -> float:
        return mean(nps for nps, _, _ in signals if nps is not None)

    def without_champion(signals: list[tuple[int | None, bool, int]]) -> float:
        return mean(not champion for _, champion, _ in signals)

    def severe_issues(signals: list[tuple[int | None, bool, int]]) -> float:
        return mean(severe for _, _, severe in signals)

    assert mean_nps(churned) < mean_nps(renewed) - 1
    assert without_champion(churned) > without_champion(renewed)
    assert severe_issues(churned) > severe_issues(renewed)


def test_business_units_are_mapped_mostly_for_larger_accounts(
    book: tuple[AccountService, BookSummary],
) -> None:
    service, summary = book
    states = [service.get_account(i) for i in summary.account_ids]
    with_units: dict[str, list[bool]] = {}
    for state in states:
        with_units.setdefault(state.segment.value, []).append(bool(state.business_units))
        if state.business_units:
            assert len(state.business_units) >= 2, state.name
    share = {segment: mean(found) for segment, found in with_units.items()}
    assert share["enterprise"] >= 0.7
    assert 0.3 <= share["mid_market"] <= 0.9
    assert share["smb"] <= 0.2
    assert share["enterprise"] > share["mid_market"] > share["smb"]


def test_units_of_accounts_that_never_churned_use_only_current_lines(
    book: tuple[AccountService, BookSummary],
) -> None:
    # Adoptions end with the line (a downgrade to zero, a product dropped at a renewal); only
    # a churn leaves them, so that they count again if the line comes back.
    service, summary = book
    checked = 0
    for account_id in summary.account_ids:
        history = service.history(account_id)
        if any(isinstance(event, Churned) for event in history):
            continue
        state = service.get_account(account_id)
        lines = {line.product for line in state.lines}
        for unit in state.business_units:
            if unit.is_active:
                checked += 1
                assert set(unit.products) <= lines, (state.name, unit.name)
                assert not set(unit.products) & {i.product for i in unit.ineligible}
    assert checked >= 20


def test_adoptions_end_after_a_downgrade(book: tuple[AccountService, BookSummary]) -> None:
    service, summary = book
    ended_by_downgrade = 0
    for account_id in summary.account_ids:
        history = service.history(account_id)
        for before, event in pairwise(history):
            if isinstance(event, ProductAdoptionEnded) and isinstance(before, Downgraded):
                assert (event.product, event.reason) == (before.product, before.reason)
                assert event.effective_at == before.effective_at
                ended_by_downgrade += 1
    assert ended_by_downgrade >= 1


def test_the_demo_has_white_space_to_show(book: tuple[AccountService, BookSummary]) -> None:
    service, summary = book
    service.catch_up()
    read_model = service.read_model("white_space")
    benchmarks = product_benchmarks(read_model)
    statuses: set[str] = set()
    gaps = 0
    for account_id in summary.account_ids:
        if not service.get_account(account_id).business_units:
            continue
        space = white_space(read_model, account_id, benchmarks=benchmarks)
        statuses.update(cell.status for unit in space.units for cell in unit.cells)
        gaps += len(space.gaps)
    assert statuses == {"owned", "not_eligible", "pipeline", "gap"}
    assert gaps >= 20
