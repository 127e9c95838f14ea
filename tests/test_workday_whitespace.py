"""The ``white_space`` read model and the ``white_space`` view (plugin ``builtin.workday``):
business units by products (owned with ARR, pipeline, gap, not eligible), the gaps ranked by
what the product brings elsewhere in the book, ties, empty accounts, and that catching up bit
by bit equals a rebuild."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acctdomain import AccountService, Money, ProductLine
from acctdomain.builtin.whitespace import (
    BookBenchmarks,
    Cell,
    PipelineItem,
    ProductBenchmark,
    WhiteSpace,
    WhiteSpaceProjection,
    product_benchmarks,
    split_evenly,
    white_space,
)
from acctdomain.domain.values import OpportunityKind
from acctdomain.errors import AccountNotFound, CommandRejected, InvalidValue
from acctdomain.plugins import PluginHost
from acctdomain.projections import ProjectionRunner
from tests.conftest import FakeClock
from tests.projection_fixtures import dump

AMY: dict[str, Any] = {"actor": "amy"}


def at(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def eur(amount: int | str) -> Money:
    return Money(amount, "EUR")


class Book:
    """Commands on one service, effective on 2 January 2026 unless told."""

    def __init__(self, service: AccountService) -> None:
        self.service = service

    def account(self, name: str, currency: str = "EUR", **lines: int | str) -> UUID:
        account = self.service.open_account(
            name=name, segment="smb", industry="retail", currency=currency, manager="amy",
            manager_type="sales", effective_at=at(1, 1), **AMY,
        ).account_id  # fmt: skip
        if lines:
            self.service.start_contract(
                account, term_end=date(2027, 1, 1), effective_at=at(1, 2), **AMY,
                lines=[ProductLine(p, Money(a, currency)) for p, a in lines.items()],
            )  # fmt: skip
        return account

    def unit(self, account: UUID, name: str, *adopted: str) -> UUID:
        unit_id = self.service.add_business_unit(
            account, name=name, effective_at=at(1, 2), **AMY
        ).entity_id
        assert unit_id is not None
        for product in adopted:
            self.service.adopt_product(
                account, unit_id=unit_id, product=product, effective_at=at(1, 2), **AMY
            )
        return unit_id

    def offer(
        self, account: UUID, product: str, arr: Money, unit: UUID | None = None, kind: str = ""
    ) -> UUID:
        lines = {line.product for line in self.service.get_account(account).lines}
        chosen = kind or ("upsell" if product in lines else "cross_sell")
        opportunity = self.service.offer_opportunity(
            account, kind=chosen, product=product, estimated_arr=arr, effective_at=at(1, 3),
            **AMY,
        ).entity_id  # fmt: skip
        assert opportunity is not None
        if unit is not None:
            self.service.target_opportunity(
                account, opportunity_id=opportunity, unit_id=unit, effective_at=at(1, 3), **AMY
            )
        return opportunity

    def view(self, account: UUID, **options: Any) -> WhiteSpace:
        self.service.catch_up()
        return white_space(self.service.read_model("white_space"), account, **options)


def statuses(view: WhiteSpace) -> dict[str, list[str]]:
    return {unit.name: [cell.status for cell in unit.cells] for unit in view.units}


# --- the matrix -------------------------------------------------------------------------------


def test_matrix_and_ranked_gaps_on_every_backend(service: AccountService) -> None:
    book = Book(service)
    acme = book.account("Acme", crm=900, bi=300)
    finance = book.unit(acme, "Finance")
    logistics = book.unit(acme, "Logistics", "crm", "bi")
    retail = book.unit(acme, "Retail", "crm")
    service.mark_product_ineligible(
        acme, unit_id=finance, product="erp", reason="runs SAP", effective_at=at(1, 2), **AMY
    )
    hr_offer = book.offer(acme, "hr", eur(700), unit=retail)
    bi_offer = book.offer(acme, "bi", eur(100))  # aimed at no unit
    globex = book.account("Globex", crm=1000, erp=2000, hr=500)
    book.unit(globex, "Alpha", "crm", "erp")
    book.unit(globex, "Beta", "crm", "hr")
    initech = book.account("Initech", "USD", erp=9000)
    book.unit(initech, "Ops", "erp")

    view = book.view(acme)
    assert (view.account_id, view.currency) == (acme, "EUR")
    assert view.products == ("bi", "crm", "erp", "hr")
    assert [(u.unit_id, u.name, u.arr) for u in view.units] == [
        (finance, "Finance", eur(0)),
        (logistics, "Logistics", eur(750)),
        (retail, "Retail", eur(450)),
    ]
    assert statuses(view) == {
        "Finance": ["gap", "gap", "not_eligible", "gap"],
        "Logistics": ["owned", "owned", "gap", "gap"],
        "Retail": ["gap", "owned", "gap", "pipeline"],
    }
    finance_row, logistics_row, retail_row = view.units
    assert finance_row.cells[2] == Cell(finance, "erp", "not_eligible", reason="runs SAP")
    # crm's 900 EUR is shared by the two units that adopted it; bi's 300 is Logistics' alone.
    assert [c.arr for c in logistics_row.cells[:2]] == [eur(300), eur(450)]
    assert retail_row.cells[1] == Cell(retail, "crm", "owned", arr=eur(450))
    hr = PipelineItem(hr_offer, "hr", OpportunityKind.CROSS_SELL, eur(700), at(1, 3))
    assert retail_row.cells[3] == Cell(retail, "hr", "pipeline", opportunities=(hr,))
    assert view.untargeted == (
        PipelineItem(bi_offer, "bi", OpportunityKind.UPSELL, eur(100), at(1, 3)),
    )
    assert view.unassigned == ()

    # Per unit across the book, in EUR: crm 450, 450, 500, 500 (median 475); bi 300; erp 2000;
    # hr 500. Initech's erp is in USD and never mixed in.
    assert [(g.rank, g.unit_name, g.product, g.median_arr, g.owners) for g in view.gaps] == [
        (1, "Logistics", "erp", eur(2000), 1),
        (2, "Retail", "erp", eur(2000), 1),
        (3, "Finance", "hr", eur(500), 1),
        (4, "Logistics", "hr", eur(500), 1),
        (5, "Finance", "crm", eur(475), 4),
        (6, "Finance", "bi", eur(300), 1),
        (7, "Retail", "bi", eur(300), 1),
    ]
    assert view.gaps[0].unit_id == logistics
    assert (
        view.gaps[0].reason
        == "1 business unit owns 'erp' in the book: median ARR 2000 EUR per unit"
    )
    assert view.gaps[4].reason == (
        "4 business units own 'crm' in the book: median ARR 475.00 EUR per unit"
    )
    benchmarks = product_benchmarks(service.read_model("white_space"))
    assert benchmarks.benchmark("erp", "USD") == ProductBenchmark(
        "erp", "USD", 1, Money(9000, "USD")
    )
    assert benchmarks.benchmark("bi", "USD") is None
    assert book.view(acme, benchmarks=benchmarks) == view


def test_ties_are_broken_by_owners_then_product_then_unit(memory_service: AccountService) -> None:
    book = Book(memory_service)
    # In the book: "alpha" and "beta" bring a median of 100 per unit, "alpha" from 3 units,
    # "beta" from 1; "gamma" also 100 from 1 unit; "omega" was only ever offered; "zeta" is
    # owned only in USD.
    other = book.account("Other", alpha=300, beta=100, gamma=100)
    for name in ("A", "B", "C"):
        book.unit(other, name, "alpha")
    book.unit(other, "D", "beta", "gamma")
    book.offer(other, "omega", eur(5))
    dollars = book.account("Dollars", "USD", zeta=50)
    book.unit(dollars, "X", "zeta")
    target = book.account("Target", delta=10)
    book.unit(target, "Zulu")
    book.unit(target, "Yankee")

    view = book.view(target)
    assert view.products == ("alpha", "beta", "delta", "gamma", "omega", "zeta")
    ranked = [(g.rank, g.product, g.unit_name, g.median_arr, g.owners) for g in view.gaps]
    assert ranked == [
        (1, "alpha", "Yankee", eur(100), 3),  # same median as beta and gamma, more owners
        (2, "alpha", "Zulu", eur(100), 3),
        (3, "beta", "Yankee", eur(100), 1),  # same median and owners as gamma: by product
        (4, "beta", "Zulu", eur(100), 1),
        (5, "gamma", "Yankee", eur(100), 1),
        (6, "gamma", "Zulu", eur(100), 1),
        (7, "delta", "Yankee", None, 0),  # no unit owns these in EUR: last, by product
        (8, "delta", "Zulu", None, 0),
        (9, "omega", "Yankee", None, 0),
        (10, "omega", "Zulu", None, 0),
        (11, "zeta", "Yankee", None, 0),
        (12, "zeta", "Zulu", None, 0),
    ]
    assert view.gaps[-1].reason == "no business unit in the book owns 'zeta' in EUR yet"
    # The account's own line that no unit adopted is listed apart.
    assert view.unassigned == (ProductLine("delta", eur(10)),)


def test_a_line_is_split_evenly_with_the_cents_left_to_the_first_units(
    memory_service: AccountService,
) -> None:
    book = Book(memory_service)
    acme = book.account("Acme", crm=100)
    for name in ("Charlie", "Alpha", "Bravo"):
        book.unit(acme, name, "crm")
    view = book.view(acme)
    assert [(u.name, u.arr) for u in view.units] == [
        ("Alpha", eur("33.34")), ("Bravo", eur("33.33")), ("Charlie", eur("33.33")),
    ]  # fmt: skip
    assert split_evenly(eur("0.05"), 2) == (eur("0.03"), eur("0.02"))
    assert split_evenly(eur("10.001"), 3) == (eur("3.334"), eur("3.334"), eur("3.333"))
    assert split_evenly(Money(1000, "JPY"), 3) == (
        Money("333.34", "JPY"), Money("333.33", "JPY"), Money("333.33", "JPY"),
    )  # fmt: skip
    assert split_evenly(eur(7), 1) == (eur(7),)
    assert split_evenly(eur(0), 2) == (eur(0), eur(0))
    for parts in (0, -1, True, 1.0):
        with pytest.raises(InvalidValue) as error:
            split_evenly(eur(1), parts)  # type: ignore[arg-type]
        assert error.value.field == "parts"


def test_empty_accounts(service: AccountService) -> None:
    book = Book(service)
    service.catch_up()
    assert product_benchmarks(service.read_model("white_space")) == BookBenchmarks((), ())
    book.unit(book.account("Acme", crm=900), "Logistics", "crm")
    empty = book.account("Empty")  # opened only: no contract, no unit
    view = book.view(empty)
    assert view == WhiteSpace(
        account_id=empty, currency="EUR", products=("crm",), units=(), gaps=(), untargeted=(),
        unassigned=(),
    )  # fmt: skip
    # A contract but no unit: its lines are unassigned, and there is no gap to rank.
    lines_only = book.account("Lines only", crm=50, bi=20)
    view = book.view(lines_only)
    assert (view.units, view.gaps) == ((), ())
    assert view.unassigned == (ProductLine("bi", eur(20)), ProductLine("crm", eur(50)))
    # The book's products: those of lines (and of opportunities); one unit owns crm.
    assert product_benchmarks(service.read_model("white_space")) == BookBenchmarks(
        ("bi", "crm"), (ProductBenchmark("crm", "EUR", 1, eur(900)),)
    )


def test_the_matrix_follows_changes(memory_service: AccountService) -> None:
    service = memory_service
    book = Book(service)
    acme = book.account("Acme", crm=900, bi=300)
    logistics = book.unit(acme, "Logistics", "crm", "bi")
    retail = book.unit(acme, "Retail", "crm")
    hr = book.offer(acme, "hr", eur(50), unit=retail)
    assert statuses(book.view(acme)) == {
        "Logistics": ["owned", "owned", "gap"],
        "Retail": ["gap", "owned", "pipeline"],
    }
    options = {"effective_at": at(2, 1), **AMY}
    service.rename_business_unit(acme, unit_id=retail, name="Stores", **options)
    service.target_opportunity(acme, opportunity_id=hr, unit_id=logistics, **options)
    service.end_product_adoption(acme, unit_id=logistics, product="crm", **options)
    service.mark_product_ineligible(
        acme, unit_id=retail, product="bi", reason="no BI team", **options
    )
    view = book.view(acme)
    assert statuses(view) == {
        "Logistics": ["owned", "gap", "pipeline"],
        "Stores": ["not_eligible", "owned", "gap"],
    }
    assert [u.arr for u in view.units] == [eur(300), eur(900)]  # crm is Stores' alone now
    service.downgrade(acme, product="crm", reduced_by=eur(100), **options)
    assert book.view(acme).units[1].cells[1].arr == eur(800)

    # Removing the unit an opportunity aims at leaves the opportunity aimed at no unit.
    service.remove_business_unit(acme, unit_id=logistics, **options)
    view = book.view(acme)
    assert [u.name for u in view.units] == ["Stores"]
    assert [item.opportunity_id for item in view.untargeted] == [hr]
    assert view.unassigned == (ProductLine("bi", eur(300)),)

    # An adopted product whose line went away is no longer owned; won and lost offers leave.
    service.restore_product_eligibility(acme, unit_id=retail, product="bi", **options)
    service.adopt_product(acme, unit_id=retail, product="bi", **options)
    service.downgrade(acme, product="bi", reduced_by=eur(300), **options)
    service.win_opportunity(acme, opportunity_id=hr, arr=eur(60), **options)
    view = book.view(acme)
    assert view.products == ("bi", "crm", "hr")
    assert statuses(view) == {"Stores": ["gap", "owned", "gap"]}
    assert view.untargeted == ()
    assert view.unassigned == (ProductLine("hr", eur(60)),)
    service.churn(acme, reason="price", detail="", **options)
    assert statuses(book.view(acme)) == {"Stores": ["gap", "gap", "gap"]}
    service.reactivate(
        acme, term_end=date(2027, 6, 1), lines=[ProductLine("bi", eur(10))], **options
    )
    view = book.view(acme)
    assert statuses(view) == {"Stores": ["owned", "gap", "gap"]}  # the adoption stood
    assert view.units[0].cells[0].arr == eur(10)


def test_an_upsell_aimed_at_an_owner_stays_owned_with_its_opportunity(
    memory_service: AccountService,
) -> None:
    book = Book(memory_service)
    acme = book.account("Acme", crm=900)
    unit = book.unit(acme, "Logistics", "crm")
    upsell = book.offer(acme, "crm", eur(100), unit=unit)
    [cell] = book.view(acme).units[0].cells
    assert (cell.status, cell.arr) == ("owned", eur(900))
    assert [item.opportunity_id for item in cell.opportunities] == [upsell]


def test_a_catalogue_sets_the_columns(memory_service: AccountService) -> None:
    book = Book(memory_service)
    acme = book.account("Acme", crm=900, bi=300)
    unit = book.unit(acme, "Logistics", "crm")
    memory_service.mark_product_ineligible(
        acme, unit_id=unit, product="erp", reason="SAP", effective_at=at(1, 2), **AMY
    )
    default = book.view(acme)
    assert default.products == ("bi", "crm", "erp")  # erp is named by the ineligibility
    view = book.view(acme, products=["payroll", "crm"])
    assert view.products == ("crm", "payroll")
    assert [(c.product, c.status) for c in view.units[0].cells] == [
        ("crm", "owned"), ("payroll", "gap"),
    ]  # fmt: skip
    assert [(g.product, g.median_arr) for g in view.gaps] == [("payroll", None)]
    assert view.unassigned == (ProductLine("bi", eur(300)),)  # account facts, not columns
    assert book.view(acme, products=()).units[0].cells == ()


def test_bad_arguments_and_unknown_accounts_are_refused(memory_service: AccountService) -> None:
    book = Book(memory_service)
    acme = book.account("Acme", crm=1)
    memory_service.catch_up()
    model = memory_service.read_model("white_space")
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: white_space(None, acme), "read_model"),  # type: ignore[arg-type]
        (lambda: white_space(model, acme.hex), "account_id"),  # type: ignore[arg-type]
        (lambda: white_space(model, acme, products="crm"), "products"),
        (lambda: white_space(model, acme, products=3), "products"),  # type: ignore[arg-type]
        (lambda: white_space(model, acme, products=[" "]), "products"),
        (lambda: white_space(model, acme, products=[b"crm"]), "products"),  # type: ignore[list-item]
        (lambda: white_space(model, acme, products=["a", "a"]), "products"),
        (lambda: white_space(model, acme, benchmarks={}), "benchmarks"),  # type: ignore[arg-type]
        (lambda: product_benchmarks(object()), "read_model"),  # type: ignore[arg-type]
    ]
    for call, field in cases:
        with pytest.raises(InvalidValue) as error:
            call()
        assert error.value.field == field
    with pytest.raises(AccountNotFound, match="white_space"):
        white_space(model, UUID(int=3))


def test_registered_by_builtin_workday_with_an_account_share(
    memory_service: AccountService,
) -> None:
    service = memory_service
    host = service.plugins
    assert "white_space" in host.projections()
    assert host.owner("acctdomain_register_projections", "white_space") == "builtin.workday"
    assert (
        "white_space" not in PluginHost(entry_points=False, block=["builtin.workday"]).projections()
    )
    book = Book(service)
    first = book.account("First", crm=10)
    second = book.account("Second", crm=20)
    for account in (first, second):
        book.offer(account, "bi", eur(5), unit=book.unit(account, "Ops", "crm"))
    service.catch_up()
    assert host.projections()["white_space"].account_share(first) == {"white_space": first.hex}
    before = dump(service.projections)["white_space"]
    service.projections.rebuild("white_space", account_id=first)
    assert dump(service.projections)["white_space"] == before


# --- catching up bit by bit equals a rebuild --------------------------------------------------

PRODUCTS = ("crm", "bi", "erp")
OPERATIONS = (
    "unit", "unit", "rename", "remove", "adopt", "adopt", "adopt", "end", "ineligible",
    "restore", "offer", "offer", "offer", "target", "target", "target", "target", "win", "lose",
    "upsell", "cross_sell",
    "downgrade", "churn", "reactivate",
)  # fmt: skip
operation = st.tuples(
    st.integers(min_value=0, max_value=1),  # which account
    st.sampled_from(OPERATIONS),
    st.integers(min_value=0, max_value=5),  # which item or product
    st.integers(min_value=-1, max_value=6),  # days after the previous step (may go back)
)


def command(
    service: AccountService,
    account: UUID,
    kind: str,
    pick: int,
    moment: datetime,
    known: dict[str, list[UUID]],
) -> Any:
    """The service command of one step (a made-up id when there is nothing to pick from)."""

    def chosen(what: str) -> UUID:
        ids = known.get(what) or [UUID(int=pick + 1)]
        return ids[pick % len(ids)]

    product = PRODUCTS[pick % len(PRODUCTS)]
    amount = eur(pick * 10 + 10)
    options: dict[str, Any] = {"actor": "amy", "effective_at": moment}
    unit_kinds: dict[str, Callable[..., Any]] = {
        "adopt": service.adopt_product,
        "restore": service.restore_product_eligibility,
    }
    if kind == "unit":
        return service.add_business_unit(account, name=f"U{pick}", **options)
    if kind == "rename":
        return service.rename_business_unit(
            account, unit_id=chosen("unit"), name=f"R{pick}", **options
        )
    if kind == "remove":
        return service.remove_business_unit(account, unit_id=chosen("unit"), **options)
    if kind in unit_kinds:
        return unit_kinds[kind](account, unit_id=chosen("unit"), product=product, **options)
    if kind == "end":
        return service.end_product_adoption(
            account, unit_id=chosen("unit"), product=product, **options
        )
    if kind == "ineligible":
        return service.mark_product_ineligible(
            account, unit_id=chosen("unit"), product=product, reason=f"no {pick}", **options
        )
    if kind == "offer":
        return service.offer_opportunity(
            account, kind=("upsell", "cross_sell")[pick % 2], product=product,
            estimated_arr=amount, **options,
        )  # fmt: skip
    if kind == "target":
        return service.target_opportunity(
            account, opportunity_id=chosen("offer"), unit_id=chosen("unit"), **options
        )
    if kind in ("win", "lose"):
        if kind == "win":
            return service.win_opportunity(
                account, opportunity_id=chosen("offer"), arr=amount, **options
            )
        return service.lose_opportunity(account, opportunity_id=chosen("offer"), **options)
    if kind == "upsell":
        return service.upsell(account, product=product, added_arr=amount, **options)
    if kind == "cross_sell":
        return service.cross_sell(account, product=product, arr=amount, **options)
    if kind == "downgrade":
        return service.downgrade(account, product=product, reduced_by=amount, **options)
    if kind == "churn":
        return service.churn(account, reason="price", detail="", **options)
    lines = [ProductLine(product, amount)]
    return service.reactivate(account, term_end=date(2028, 1, 1), lines=lines, **options)


def run(service: AccountService, clock: FakeClock, steps: list[Any], catch_up: bool) -> None:
    """Apply ``steps`` to two of three accounts; a step the service refuses changes nothing."""
    book = Book(service)
    accounts = [book.account(name, crm=100, bi=50) for name in ("A", "B")]
    book.account("C")  # stays empty
    known: list[dict[str, list[UUID]]] = [{}, {}]
    moment = at(1, 3)
    for index, kind, pick, days in steps:
        moment = max(at(1, 3), moment + timedelta(days=days))
        clock.now = max(clock.now, moment)
        try:
            result = command(service, accounts[index], kind, pick, moment, known[index])
        except CommandRejected:
            continue
        if result.entity_id is not None:
            known[index].setdefault(kind, []).append(result.entity_id)
        if catch_up:
            service.catch_up()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=10, max_size=60), st.booleans())
def test_caught_up_bit_by_bit_equals_a_rebuild(steps: list[Any], every_step: bool) -> None:
    clock = FakeClock(at(1, 1))
    service = AccountService("memory:", clock=clock, plugins=PluginHost(entry_points=False))
    try:
        run(service, clock, steps, catch_up=every_step)
        service.catch_up()
        incremental = list(service.read_model("white_space").scan("white_space"))
        with ProjectionRunner(service, [WhiteSpaceProjection()]) as runner:
            runner.rebuild()
            assert dump(runner)["white_space"]["white_space"] == incremental
        # The view agrees with the aggregates: owned cells are the adopted current lines.
        model = service.read_model("white_space")
        for account_id in {account for account, _ in _accounts(model)}:
            state = service.get_account(account_id)
            view = white_space(model, account_id)
            active = sorted((u for u in state.business_units if u.is_active), key=lambda u: u.name)
            assert [u.unit_id for u in view.units] == [u.unit_id for u in active]
            lines = {line.product: line.arr for line in state.lines}
            for unit, row in zip(active, view.units, strict=True):
                owned = {c.product for c in row.cells if c.status == "owned"}
                assert owned == {p for p in unit.products if p in lines}
            owned_total = sum(
                (c.arr for u in view.units for c in u.cells if c.arr is not None), eur(0)
            )
            unassigned = sum((line.arr for line in view.unassigned), eur(0))
            assert owned_total + unassigned == state.arr
    finally:
        service.close()


def _accounts(model: Any) -> list[tuple[UUID, dict[str, Any]]]:
    return [(UUID(key), row) for key, row in model.scan("white_space")]


def test_the_medians_of_even_samples_are_the_mean_of_the_middle_two(
    memory_service: AccountService,
) -> None:
    book = Book(memory_service)
    for name, amount in (("A", 100), ("B", 201), ("C", 300), ("D", 1000)):
        book.unit(book.account(name, crm=amount), "Ops", "crm")
    memory_service.catch_up()
    found = product_benchmarks(memory_service.read_model("white_space")).benchmark("crm", "EUR")
    assert found == ProductBenchmark("crm", "EUR", 4, Money(Decimal("250.5"), "EUR"))
