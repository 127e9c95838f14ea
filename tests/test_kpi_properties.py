"""Properties of the KPI scorecard over random books.

- GRR <= 100% and >= 0; NRR >= GRR; logo retention + customer churn = 100% of the cohort;
- the recording order of different accounts' events does not change a figure when the
  effective times are the same;
- the built-in read models caught up bit by bit equal a rebuild (so the scorecard is too).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acctdomain import AccountService, Money, ProductLine
from acctdomain.builtin.accounts import AccountsProjection
from acctdomain.builtin.kpi_facts import KpiFactsProjection
from acctdomain.plugins import PluginHost
from acctdomain.projections import ProjectionRunner
from tests.conftest import FakeClock
from tests.projection_fixtures import dump

DAY0 = datetime(2025, 1, 1, 9, tzinfo=UTC)
TINY = Decimal("1e-20")
QUARTERS = [
    (date(2025, 4, 1), date(2025, 6, 30)),
    (date(2025, 7, 1), date(2025, 9, 30)),
    (date(2025, 10, 1), date(2025, 12, 31)),
    (date(2026, 1, 1), date(2026, 3, 31)),
    (date(2025, 1, 1), date(2025, 12, 31)),
]

# An account's history: the day its contract starts, its ARR, then steps, each a number of
# days after the previous one and what happens.
step = st.tuples(
    st.integers(min_value=1, max_value=80),
    st.sampled_from(["upsell", "downgrade", "cross_sell", "churn", "renew", "due"]),
    st.integers(min_value=1, max_value=9),
)
history = st.tuples(
    st.integers(min_value=0, max_value=300),
    st.integers(min_value=1, max_value=20),
    st.lists(step, max_size=6),
)
books = st.lists(history, min_size=1, max_size=5)


def eur(hundreds: int) -> Money:
    return Money(hundreds * 100, "EUR")


def commands(key: str, account: tuple[int, int, list[Any]]) -> Iterator[tuple[datetime, Any]]:
    """The account's commands as (effective time, function of a service and its id): valid
    whatever the steps (a step that would be refused is turned into one that is not)."""
    start, arr, steps = account
    moment = DAY0 + timedelta(days=start)
    state = {"active": True, "core": arr, "extra": 0, "term": 2030}

    def opened(service: AccountService, opened_at: datetime = moment) -> Any:
        return service.open_account(
            name=key, segment="smb", industry="retail", currency="EUR", manager="amy",
            manager_type="sales", external_key=key, actor="amy", effective_at=opened_at,
        ).account_id  # fmt: skip

    def contract(method: str, hundreds: int, when: datetime) -> Any:
        state["term"] += 1
        state.update(active=True, core=hundreds, extra=0)
        term_end, lines = date(state["term"], 1, 1), [ProductLine("core", eur(hundreds))]
        return lambda s, a: getattr(s, method)(
            a, term_end=term_end, lines=lines, actor="amy", effective_at=when
        )

    yield moment, opened
    yield moment, contract("start_contract", arr, moment)
    for days, what, amount in steps:
        moment += timedelta(days=days)
        m = moment
        if not state["active"]:
            yield m, contract("reactivate", amount, m)
        elif what == "churn":
            state["active"] = False
            yield m, lambda s, a, m=m: s.churn(a, reason="price", actor="amy", effective_at=m)
        elif what == "renew":
            yield m, contract("renew", amount, m)
        elif what == "downgrade" and state["core"] > amount:
            state["core"] -= amount
            yield (
                m,
                lambda s, a, m=m, n=amount: s.downgrade(
                    a, product="core", reduced_by=eur(n), actor="amy", effective_at=m
                ),
            )
        elif what == "cross_sell" and not state["extra"]:
            state["extra"] = amount
            yield (
                m,
                lambda s, a, m=m, n=amount: s.cross_sell(
                    a, product="extra", arr=eur(n), actor="amy", effective_at=m
                ),
            )
        elif what == "due":
            yield (
                m,
                lambda s, a, m=m: s.mark_renewal_due(
                    a, due_on=(m + timedelta(days=30)).date(), actor="amy", effective_at=m
                ),
            )
        else:
            state["core"] += amount
            yield (
                m,
                lambda s, a, m=m, n=amount: s.upsell(
                    a, product="core", added_arr=eur(n), actor="amy", effective_at=m
                ),
            )


def write(book: list[Any], interleaved: bool, catch_up: bool = False) -> AccountService:
    """A service holding ``book``: account after account, or all commands in effective-time
    order (a different recording order, the same effective times)."""
    clock = FakeClock(DAY0)
    service = AccountService("memory:", clock=clock, plugins=PluginHost(entry_points=False))
    plans = [list(commands(f"crm:{n}", account)) for n, account in enumerate(book)]
    order = [(n, i) for n, plan in enumerate(plans) for i in range(len(plan))]
    if interleaved:
        order.sort(key=lambda item: (plans[item[0]][item[1]][0], -item[0]))
    ids: dict[int, Any] = {}
    for n, i in order:
        effective, command = plans[n][i]
        clock.now = max(clock.now, effective)
        if i == 0:
            ids[n] = command(service)
        else:
            command(service, ids[n])
        if catch_up:
            service.catch_up()
    return service


def figures(service: AccountService, period: tuple[date, date]) -> dict[str, Any]:
    return {
        line.name: None if line.value is None else line.value.value
        for line in service.scorecard(*period)
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books, st.sampled_from(QUARTERS))
def test_retention_figures_stay_in_their_bounds(book: list[Any], period: tuple[date, date]) -> None:
    service = write(book, interleaved=False)
    try:
        lines = figures(service, period)
    finally:
        service.close()
    grr, nrr = lines["grr"], lines["nrr"]
    if grr is not None:
        assert Decimal(0) <= grr <= Decimal(1)
        assert nrr >= grr
        # (equal up to the 28 significant digits of Decimal arithmetic)
        assert abs(lines["gross_revenue_churn"] - (1 - grr)) < TINY
        assert abs(lines["net_revenue_churn"] - (1 - nrr)) < TINY
    if lines["logo_retention"] is not None:
        assert abs(lines["logo_retention"] + lines["customer_churn"] - 1) < TINY


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books, st.sampled_from(QUARTERS))
def test_recording_order_does_not_change_the_figures(
    book: list[Any], period: tuple[date, date]
) -> None:
    one_by_one, interleaved = write(book, False), write(book, True)
    try:
        assert figures(one_by_one, period) == figures(interleaved, period)
    finally:
        one_by_one.close()
        interleaved.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books)
def test_built_in_read_models_caught_up_bit_by_bit_equal_a_rebuild(book: list[Any]) -> None:
    service = write(book, interleaved=True, catch_up=True)
    try:
        with ProjectionRunner(service, [AccountsProjection(), KpiFactsProjection()]) as runner:
            incremental = {
                name: {table: list(service.read_model(name).scan(table)) for table in tables}
                for name, tables in (
                    ("accounts", AccountsProjection.tables),
                    ("kpi_facts", KpiFactsProjection.tables),
                )
            }
            runner.rebuild()
            assert dump(runner) == incremental
    finally:
        service.close()
