"""The ``white_space`` read model and the white-space view.

White space is what each business unit of the customer could still buy from us. The
projection keeps one row per account (key: the account id's hex) in table ``white_space``:

- ``currency``: the account's contract currency;
- ``lines``: the account's current product lines (product -> ``Money``), as the aggregate
  keeps them (set by a contract start, renewal or reactivation, emptied by a churn, changed by
  upsells, cross-sells and downgrades);
- ``units``: the active business units (unit hex -> ``{"name", "added_at", "adopted",
  "ineligible"}``): ``adopted`` the products the unit uses, in adoption order, ``ineligible``
  product -> the reason it cannot use it. A removed unit leaves the row;
- ``open``: the open opportunities (opportunity hex -> ``{"product", "kind",
  "estimated_arr", "offered_at", "unit"}``), ``unit`` the hex of the unit it targets or None.
  A won or lost opportunity leaves the row;
- ``products``: every product ever in a line or offered to the account, sorted.

The row grows with the units, the products and the open opportunities, never with the history.

:func:`white_space` reads an account's row and builds its matrix of units by products, each
cell ``owned`` (with the unit's ARR), ``pipeline`` (with the open opportunities aimed at the
unit), ``not_eligible`` (with the reason) or ``gap``, and ranks the gaps by what the product is
worth elsewhere in the book (:func:`product_benchmarks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any, ClassVar, Literal
from uuid import UUID

import attrs

from acctdomain.builtin.workday import account_row, require_read_model
from acctdomain.domain import events as ev
from acctdomain.domain.values import Money, OpportunityKind, ProductLine
from acctdomain.errors import InvalidValue
from acctdomain.plugins import Projection, ReadModel, Rows

__all__ = [
    "WHITE_SPACE",
    "BookBenchmarks",
    "Cell",
    "CellStatus",
    "PipelineItem",
    "ProductBenchmark",
    "RankedGap",
    "UnitRow",
    "WhiteSpace",
    "WhiteSpaceProjection",
    "product_benchmarks",
    "split_evenly",
    "white_space",
]

WHITE_SPACE = "white_space"

_SETS_LINES = (ev.ContractStarted, ev.Renewed, ev.Reactivated)
_UNIT_EVENTS = (
    ev.BusinessUnitAdded,
    ev.BusinessUnitRenamed,
    ev.BusinessUnitRemoved,
    ev.ProductAdopted,
    ev.ProductAdoptionEnded,
    ev.ProductMarkedIneligible,
    ev.ProductEligibilityRestored,
)


class WhiteSpaceProjection(Projection):
    """Table ``white_space``: key = account id (hex), value = ``{"currency", "lines",
    "units", "open", "products"}`` (see the module's docstring); kinds are the values of
    ``OpportunityKind``, times are effective times."""

    name = "white_space"
    tables = (WHITE_SPACE,)
    event_types: ClassVar[tuple[type, ...]] = (
        ev.AccountOpened,
        *_SETS_LINES,
        ev.Churned,
        ev.Upsold,
        ev.CrossSold,
        ev.Downgraded,
        ev.OpportunityOffered,
        ev.OpportunityWon,
        ev.OpportunityLost,
        ev.OpportunityTargeted,
        *_UNIT_EVENTS,
    )
    description = "One row per account: lines, business units, adoptions and open opportunities."
    # Not cached between rebuild batches: rows grow with the account's units and lines, and
    # keeping them all decoded made a rebuild's memory grow with the history.

    def account_share(self, account_id: UUID) -> dict[str, str]:
        """The account's row is under its hex (which has a fixed length)."""
        return {WHITE_SPACE: account_id.hex}

    def apply(self, event: Any, rows: Rows) -> None:
        key = event.originator_id.hex
        if isinstance(event, ev.AccountOpened):
            rows.put(
                WHITE_SPACE,
                key,
                {"currency": event.currency, "lines": {}, "units": {}, "open": {}, "products": []},
            )
            return
        row = rows.get(WHITE_SPACE, key)
        if row is None:  # an account whose opening this read model never saw
            return
        if isinstance(event, _UNIT_EVENTS):
            _apply_unit_event(event, row["units"])
        elif isinstance(event, ev.OpportunityOffered | ev.OpportunityWon | ev.OpportunityLost):
            _apply_offer(event, row)
        elif isinstance(event, ev.OpportunityTargeted):
            offer = row["open"].get(event.opportunity_id.hex)
            if offer is None:  # cannot happen for events the aggregate accepted
                return
            offer["unit"] = event.unit_id.hex
        else:
            _apply_revenue(event, row)
        rows.put(WHITE_SPACE, key, row)


def _seen(row: dict[str, Any], product: str) -> None:
    if product not in row["products"]:
        row["products"] = sorted([*row["products"], product])


def _apply_revenue(event: Any, row: dict[str, Any]) -> None:
    lines: dict[str, Money] = row["lines"]
    if isinstance(event, _SETS_LINES):
        lines.clear()
        lines.update((line.product, line.arr) for line in event.lines)
    elif isinstance(event, ev.Churned):
        lines.clear()
    elif isinstance(event, ev.Upsold):
        current = lines.get(event.product, Money.zero(event.added_arr.currency))
        lines[event.product] = current + event.added_arr
    elif isinstance(event, ev.CrossSold):
        lines[event.product] = event.arr
    else:  # Downgraded
        current = lines.get(event.product, Money.zero(event.reduced_by.currency))
        remaining = current - event.reduced_by
        if remaining.amount > 0:
            lines[event.product] = remaining
        else:
            lines.pop(event.product, None)
    for product in lines:
        _seen(row, product)


def _apply_offer(event: Any, row: dict[str, Any]) -> None:
    if isinstance(event, ev.OpportunityOffered):
        row["open"][event.opportunity_id.hex] = {
            "product": event.product,
            "kind": event.kind.value,
            "estimated_arr": event.estimated_arr,
            "offered_at": event.effective_at,
            "unit": None,
        }
        _seen(row, event.product)
    else:
        row["open"].pop(event.opportunity_id.hex, None)


def _apply_unit_event(event: Any, units: dict[str, dict[str, Any]]) -> None:
    unit_key = event.unit_id.hex
    if isinstance(event, ev.BusinessUnitAdded):
        units[unit_key] = {
            "name": event.name,
            "added_at": event.effective_at,
            "adopted": [],
            "ineligible": {},
        }
        return
    unit = units.get(unit_key)
    if unit is None:  # cannot happen for events the aggregate accepted
        return
    if isinstance(event, ev.BusinessUnitRenamed):
        unit["name"] = event.name
    elif isinstance(event, ev.BusinessUnitRemoved):
        del units[unit_key]
    elif isinstance(event, ev.ProductAdopted):
        unit["adopted"] = [*unit["adopted"], event.product]
    elif isinstance(event, ev.ProductAdoptionEnded):
        unit["adopted"] = [p for p in unit["adopted"] if p != event.product]
    elif isinstance(event, ev.ProductMarkedIneligible):
        unit["ineligible"][event.product] = event.reason
    else:  # ProductEligibilityRestored
        unit["ineligible"].pop(event.product, None)


# --- shares and benchmarks -------------------------------------------------------------------


def split_evenly(total: Money, parts: int) -> tuple[Money, ...]:
    """``total`` split into ``parts`` shares that add up to it exactly: each share is rounded
    down to the cent (or to the finer precision of ``total``), and the cents left over go one
    each to the first shares."""
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise InvalidValue("parts", f"expected a whole number >= 1, got {parts!r}")
    if parts == 1:
        return (total,)
    exponent = total.amount.as_tuple().exponent
    assert isinstance(exponent, int)  # Money amounts are finite
    quantum = Decimal(1).scaleb(min(exponent, -2))
    base = (total.amount / parts).quantize(quantum, rounding=ROUND_DOWN)
    left_over = int((total.amount - base * parts) / quantum)
    return tuple(
        Money(base + quantum if index < left_over else base, total.currency)
        for index in range(parts)
    )


def _by_name(units: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return sorted(units.items(), key=lambda item: (item[1]["name"], item[0]))


def _owned_shares(row: dict[str, Any]) -> dict[tuple[str, str], Money]:
    """(unit hex, product) -> the unit's share of the line, for every owned cell: a line's ARR
    is split evenly among the active units that adopted it, in the order of their names."""
    lines: dict[str, Money] = row["lines"]
    owners: dict[str, list[str]] = {}
    for unit_key, unit in _by_name(row["units"]):
        for product in unit["adopted"]:
            if product in lines:
                owners.setdefault(product, []).append(unit_key)
    shares: dict[tuple[str, str], Money] = {}
    for product, unit_keys in owners.items():
        for unit_key, share in zip(
            unit_keys, split_evenly(lines[product], len(unit_keys)), strict=True
        ):
            shares[unit_key, product] = share
    return shares


@attrs.frozen
class ProductBenchmark:
    """What one product brings per owning business unit across the book, in one currency:
    ``owners`` owned cells (units with the product), ``median_arr`` the median of their ARR."""

    product: str
    currency: str
    owners: int
    median_arr: Money


@attrs.frozen
class BookBenchmarks:
    """The products seen in the book (in a line or an opportunity of any account, sorted)
    and, per product and currency, what an owning unit brings (by product, then currency)."""

    products: tuple[str, ...]
    benchmarks: tuple[ProductBenchmark, ...]

    def benchmark(self, product: str, currency: str) -> ProductBenchmark | None:
        """The benchmark of ``product`` in ``currency``, or None when no unit owns it there."""
        return next(
            (b for b in self.benchmarks if b.product == product and b.currency == currency), None
        )


def _median(amounts: list[Decimal]) -> Decimal:
    ordered = sorted(amounts)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def product_benchmarks(read_model: ReadModel) -> BookBenchmarks:
    """The products seen in the book and, per product and currency, the median ARR of the
    business units that own it, from every row of the ``white_space`` read model (one pass).
    Amounts in different currencies are never mixed. Compute it once to view many accounts."""
    require_read_model(read_model)
    products: set[str] = set()
    samples: dict[tuple[str, str], list[Decimal]] = {}
    for _, row in read_model.scan(WHITE_SPACE):
        products.update(row["products"])
        for (_, product), share in _owned_shares(row).items():
            samples.setdefault((product, share.currency), []).append(share.amount)
    return BookBenchmarks(
        products=tuple(sorted(products)),
        benchmarks=tuple(
            ProductBenchmark(product, currency, len(amounts), Money(_median(amounts), currency))
            for (product, currency), amounts in sorted(samples.items())
        ),
    )


# --- the view -----------------------------------------------------------------------------------


CellStatus = Literal["owned", "pipeline", "gap", "not_eligible"]


@attrs.frozen
class PipelineItem:
    """An open opportunity (upsell or cross-sell) of the account."""

    opportunity_id: UUID
    product: str
    kind: OpportunityKind
    estimated_arr: Money
    offered_at: datetime


@attrs.frozen
class Cell:
    """One business unit and one product: ``owned`` (``arr`` is the unit's share of the
    line), ``not_eligible`` (``reason`` says why), ``pipeline`` (open opportunities aim the
    product at the unit) or ``gap``. ``opportunities`` lists the open opportunities for the
    product aimed at the unit, whatever the status (an upsell of an owned product too)."""

    unit_id: UUID
    product: str
    status: CellStatus
    arr: Money | None = None
    reason: str = ""
    opportunities: tuple[PipelineItem, ...] = ()


@attrs.frozen
class UnitRow:
    """A business unit of the customer with one cell per product (in the matrix's order)
    and ``arr``, the sum of its owned cells."""

    unit_id: UUID
    name: str
    added_at: datetime
    arr: Money
    cells: tuple[Cell, ...]


@attrs.frozen
class RankedGap:
    """A gap, ranked from 1 (the most promising): the median ARR an owning unit brings in the
    book (None when no unit owns the product in the account's currency), how many units own
    it, and the reason in words."""

    rank: int
    unit_id: UUID
    unit_name: str
    product: str
    median_arr: Money | None
    owners: int
    reason: str


@attrs.frozen
class WhiteSpace:
    """An account's white space: ``products`` (the matrix's columns), ``units`` (its rows,
    by name then id), ``gaps`` ranked, the open opportunities aimed at no unit
    (``untargeted``) and the lines no unit has adopted (``unassigned``)."""

    account_id: UUID
    currency: str
    products: tuple[str, ...]
    units: tuple[UnitRow, ...]
    gaps: tuple[RankedGap, ...]
    untargeted: tuple[PipelineItem, ...]
    unassigned: tuple[ProductLine, ...]


def _catalogue(products: Iterable[str] | None) -> tuple[str, ...] | None:
    if products is None:
        return None
    if isinstance(products, str | bytes) or not isinstance(products, Iterable):
        raise InvalidValue("products", f"expected a sequence of products, got {products!r}")
    chosen: list[str] = []
    for product in products:
        if not isinstance(product, str) or not product.strip():
            raise InvalidValue("products", f"expected product names, got {product!r}")
        if product in chosen:
            raise InvalidValue("products", f"{product!r} appears twice")
        chosen.append(product)
    return tuple(sorted(chosen))


def _pipeline(opportunity_id: str, offer: dict[str, Any]) -> PipelineItem:
    return PipelineItem(
        opportunity_id=UUID(opportunity_id),
        product=offer["product"],
        kind=OpportunityKind(offer["kind"]),
        estimated_arr=offer["estimated_arr"],
        offered_at=offer["offered_at"],
    )


def white_space(
    read_model: ReadModel,
    account_id: UUID,
    *,
    products: Iterable[str] | None = None,
    benchmarks: BookBenchmarks | None = None,
) -> WhiteSpace:
    """The white space of ``account_id`` from the ``white_space`` read model: its business
    units by our products, and its gaps ranked.

    ``products`` is the catalogue (the matrix's columns, sorted); by default, every product
    seen in the book (``benchmarks.products``) and every product marked ineligible for one of
    the account's units. ``benchmarks`` is :func:`product_benchmarks` of the same read model
    (computed here when None; pass it when viewing many accounts). Gaps are ranked by the
    median ARR an owning unit brings in the book in the account's currency (highest first,
    products no unit owns there last), then by the number of owning units (most first), then
    by product, unit name and unit id. Raises ``InvalidValue`` naming ``read_model``,
    ``account_id``, ``products`` (not a sequence of distinct, non-blank names) or
    ``benchmarks``, and ``AccountNotFound`` when the read model has no row for the account.
    """
    require_read_model(read_model)
    catalogue = _catalogue(products)
    if benchmarks is not None and not isinstance(benchmarks, BookBenchmarks):
        raise InvalidValue("benchmarks", f"expected BookBenchmarks, got {benchmarks!r}")
    row = account_row(read_model, "white_space", WHITE_SPACE, account_id)
    book = benchmarks if benchmarks is not None else product_benchmarks(read_model)
    currency: str = row["currency"]
    units = _by_name(row["units"])
    if catalogue is None:
        named = {p for _, unit in units for p in unit["ineligible"]}
        catalogue = tuple(sorted(set(book.products) | named))
    shares = _owned_shares(row)
    aimed: dict[tuple[str, str], list[PipelineItem]] = {}
    untargeted: list[PipelineItem] = []
    for opportunity_id, offer in row["open"].items():
        item = _pipeline(opportunity_id, offer)
        if offer["unit"] in row["units"]:
            aimed.setdefault((offer["unit"], item.product), []).append(item)
        else:  # aimed at no unit, or at a unit removed since
            untargeted.append(item)
    unit_rows = [
        _unit_row(unit_key, unit, catalogue, shares, aimed, currency) for unit_key, unit in units
    ]
    adopted = {product for (_, product) in shares}
    return WhiteSpace(
        account_id=account_id,
        currency=currency,
        products=catalogue,
        units=tuple(unit_rows),
        gaps=tuple(_ranked(unit_rows, book, currency)),
        untargeted=tuple(sorted(untargeted, key=_offer_order)),
        unassigned=tuple(
            ProductLine(product, arr)
            for product, arr in sorted(row["lines"].items())
            if product not in adopted
        ),
    )


def _offer_order(item: PipelineItem) -> tuple[datetime, str]:
    return item.offered_at, item.opportunity_id.hex


def _unit_row(
    unit_key: str,
    unit: dict[str, Any],
    catalogue: tuple[str, ...],
    shares: dict[tuple[str, str], Money],
    aimed: dict[tuple[str, str], list[PipelineItem]],
    currency: str,
) -> UnitRow:
    unit_id = UUID(unit_key)
    cells = []
    total = Money.zero(currency)
    for product in catalogue:
        offers = tuple(sorted(aimed.get((unit_key, product), ()), key=_offer_order))
        share = shares.get((unit_key, product))
        if share is not None:
            total += share
            cell = Cell(unit_id, product, "owned", arr=share, opportunities=offers)
        elif product in unit["ineligible"]:
            cell = Cell(unit_id, product, "not_eligible", reason=unit["ineligible"][product])
        elif offers:
            cell = Cell(unit_id, product, "pipeline", opportunities=offers)
        else:
            cell = Cell(unit_id, product, "gap")
        cells.append(cell)
    return UnitRow(unit_id, unit["name"], unit["added_at"], total, tuple(cells))


def _ranked(unit_rows: list[UnitRow], book: BookBenchmarks, currency: str) -> Iterator[RankedGap]:
    gaps = []
    for unit in unit_rows:
        for cell in unit.cells:
            if cell.status == "gap":
                gaps.append((unit, cell.product, book.benchmark(cell.product, currency)))

    def order(gap: tuple[UnitRow, str, ProductBenchmark | None]) -> tuple[Any, ...]:
        unit, product, found = gap
        if found is None:
            return (1, Decimal(0), 0, product, unit.name, unit.unit_id.hex)
        return (0, -found.median_arr.amount, -found.owners, product, unit.name, unit.unit_id.hex)

    for rank, (unit, product, found) in enumerate(sorted(gaps, key=order), start=1):
        if found is None:
            reason = f"no business unit in the book owns {product!r} in {currency} yet"
        else:
            owners = (
                "1 business unit owns"
                if found.owners == 1
                else f"{found.owners} business units own"
            )
            reason = f"{owners} {product!r} in the book: median ARR {found.median_arr} per unit"
        yield RankedGap(
            rank=rank,
            unit_id=unit.unit_id,
            unit_name=unit.name,
            product=product,
            median_arr=None if found is None else found.median_arr,
            owners=0 if found is None else found.owners,
            reason=reason,
        )
