"""What a report is asked for, what its sections read, and how their data is gathered.

A report is an ordered list of :class:`Section`: each has a ``gather`` function that returns
its data as plain JSON-ready values (strings, numbers, None, lists, dicts) from a
:class:`ReportContext`, and a ``render`` function that turns that data into HTML (see
:mod:`acctdomain.report.html`). :func:`gather_report` runs every ``gather`` in order; the
result is what ``acctdomain report --json`` prints, and what the page is rendered from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs

from acctdomain.application.health import HealthScore
from acctdomain.application.scorecard import KpiResult, previous_period
from acctdomain.domain import Money
from acctdomain.errors import InvalidValue

if TYPE_CHECKING:
    from acctdomain.application import AccountService
    from acctdomain.report.html import Charts

__all__ = [
    "ACCOUNT_FILTERS",
    "ReportContext",
    "ReportRequest",
    "Section",
    "gather_report",
    "plain",
]

ACCOUNT_FILTERS = ("manager", "segment", "manager_type", "product")
"""The filters a report takes: those of ``acctdomain kpis``."""


def plain(value: object) -> Any:
    """An enum as its value, anything else unchanged (read-model rows hold enums)."""
    return getattr(value, "value", value)


@attrs.frozen(kw_only=True)
class ReportRequest:
    """What the report covers: the scorecard period [start, end], the filters (``manager``,
    ``segment``, ``manager_type``, ``product``: a value or None), ``known_at``, the KPI
    ``conventions`` and the reporting ``currency`` (None: the store's settings), as
    ``acctdomain kpis`` takes them; ``db``, the store's location as shown; ``now``, the moment
    of the "now" views (pipeline, health; None: the service's clock)."""

    start: date
    end: date
    db: str = ""
    filters: Mapping[str, str | None] = attrs.field(factory=dict)
    known_at: date | datetime | None = None
    conventions: Mapping[str, str] = attrs.field(factory=dict)
    currency: str | None = None
    now: datetime | None = None

    def __attrs_post_init__(self) -> None:
        if self.end < self.start:
            raise InvalidValue(
                "end", f"{self.end.isoformat()} is before start {self.start.isoformat()}"
            )
        unknown = set(self.filters) - set(ACCOUNT_FILTERS)
        if unknown:
            raise InvalidValue(
                "filters", f"unknown filter(s) {sorted(unknown)}; use {list(ACCOUNT_FILTERS)}"
            )

    @property
    def given_filters(self) -> dict[str, str]:
        """The filters that have a value."""
        return {name: value for name, value in self.filters.items() if value}

    def all_filters(self) -> dict[str, str | None]:
        """Every filter, None where none is given (the ``filters`` of the JSON)."""
        return {name: self.filters.get(name) for name in ACCOUNT_FILTERS}


@attrs.define
class ReportContext:
    """What sections read: the service, the request, the moment ``now``, and what several
    sections share, computed once (the scorecards, the accounts in scope, their health)."""

    service: AccountService
    request: ReportRequest
    now: datetime
    _caught_up: bool = attrs.field(default=False, init=False)
    _scorecards: dict[tuple[date, date, tuple[str, ...] | None], list[KpiResult]] = attrs.field(
        factory=dict, init=False
    )
    _accounts: list[dict[str, Any]] | None = attrs.field(default=None, init=False)
    _health: dict[UUID, HealthScore] | None = attrs.field(default=None, init=False)

    @property
    def today(self) -> date:
        """The day of ``now`` (UTC as the clock gives it)."""
        return self.now.date()

    @property
    def reporting_currency(self) -> str | None:
        """The currency money is reported in: the request's, else the store's settings'."""
        return self.request.currency or self.service.kpi_settings.reporting_currency

    def catch_up(self) -> None:
        """Bring the read models up to date, once for the whole report (every section reads
        the store as it was then)."""
        if not self._caught_up:
            self.service.catch_up()
            self._caught_up = True

    def scorecard(
        self, start: date, end: date, kpis: Iterable[str] | None = None
    ) -> list[KpiResult]:
        """``service.scorecard`` for [start, end] with the request's filters, ``known_at``,
        conventions and currency, from the read models caught up once; ``kpis``: only those
        (the period's whole scorecard serves, if it was computed)."""
        names = None if kpis is None else tuple(kpis)
        key = (start, end, names)
        whole = self._scorecards.get((start, end, None))
        if names is not None and whole is not None:
            return [line for line in whole if line.name in names]
        if key not in self._scorecards:
            self.catch_up()
            self._scorecards[key] = self.service.scorecard(
                start,
                end,
                catch_up=False,
                known_at=self.request.known_at,
                conventions=self.request.conventions,
                currency=self.request.currency,
                kpis=names,
                **self.request.given_filters,
            )
        return self._scorecards[key]

    def accounts(self) -> list[dict[str, Any]]:
        """The rows of the ``accounts`` read model of the active accounts that the filters
        keep (by their manager, segment and manager type now; ``product``: those that have the
        line), ordered by name."""
        if self._accounts is None:
            self.catch_up()
            chosen = self.request.given_filters
            product = chosen.pop("product", None)
            rows = []
            for _, row in self.service.read_model("accounts").scan("accounts"):
                if row["status"] != "active":
                    continue
                if any(plain(row[name]) != value for name, value in chosen.items()):
                    continue
                if product is not None and product not in row["lines"]:
                    continue
                rows.append(row)
            self._accounts = sorted(rows, key=lambda row: (row["name"], row["account_id"]))
        return self._accounts

    def arr(self, row: Mapping[str, Any]) -> Money:
        """An account's ARR now (with a ``product`` filter: that line's)."""
        product = self.request.filters.get("product")
        lines: Mapping[str, Money] = row["lines"]
        zero = Money.zero(row["currency"])
        if product:
            return lines.get(product, zero)
        return sum(lines.values(), zero)

    def convert(self, money: Money) -> Money | None:
        """``money`` in the reporting currency at today's rate; None without a reporting
        currency or a rate."""
        target = self.reporting_currency
        if target is None:
            return None
        rate = self.service.exchange_rate(money.currency, target, self.today)
        if rate is None:
            return None
        return Money((money.amount * rate).quantize(Decimal("0.01")), target)

    def health(self) -> dict[UUID, HealthScore]:
        """``service.health`` of every account of :meth:`accounts`, at ``now``."""
        if self._health is None:
            accounts = self.accounts()  # caught up once, here
            self._health = {
                row["account_id"]: self.service.health(
                    row["account_id"], now=self.now, catch_up=False
                )
                for row in accounts
            }
        return self._health


@attrs.frozen
class Section:
    """One part of the report: ``name`` (its key in the JSON and its id on the page),
    ``title``, ``gather`` (its data, JSON-ready, from the context) and ``render`` (its HTML
    from that data; charts through the :class:`~acctdomain.report.html.Charts` given)."""

    name: str
    title: str
    gather: Callable[[ReportContext], dict[str, Any]]
    render: Callable[[dict[str, Any], Charts], str]


def gather_report(
    service: AccountService, request: ReportRequest, sections: Iterable[Section] | None = None
) -> dict[str, Any]:
    """The report's data: what it covers, and each section's data under its name, in order
    (default sections: :data:`~acctdomain.report.sections.SECTIONS`). Every value is plain
    JSON (the figures exactly as ``acctdomain kpis --json`` gives them)."""
    if sections is None:
        from acctdomain.report.sections import SECTIONS

        sections = SECTIONS
    now = request.now or service.clock()
    context = ReportContext(service, request, now)
    before = previous_period(request.start, request.end)
    report: dict[str, Any] = {
        "db": request.db,
        "generated_at": now.isoformat(),
        "start": request.start.isoformat(),
        "end": request.end.isoformat(),
        "previous_start": before[0].isoformat(),
        "previous_end": before[1].isoformat(),
        "filters": request.all_filters(),
        "known_at": None if request.known_at is None else request.known_at.isoformat(),
        "currency": context.reporting_currency,
        "sections": {},
    }
    titles: dict[str, str] = {}
    for section in sections:
        if section.name in titles:
            raise InvalidValue("sections", f"two sections are named {section.name!r}")
        titles[section.name] = section.title
        report["sections"][section.name] = section.gather(context)
    return report
