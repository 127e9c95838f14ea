"""The built-in KPIs, computed from the ``kpi_facts`` read model (never by replaying events).

One scorecard computes many KPIs for two periods; what they share (the accounts in scope, the
revenue figures of a period, the activity facts of a period) is computed once per scorecard
and period, in ``context.memo``. Formulas, sources and edge cases: ``docs/kpis.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any

from acctdomain.builtin.kpi_facts import ACCOUNTS, ACTIVITY, REVENUE, micros
from acctdomain.domain.values import Money, moment_of
from acctdomain.metrics import (
    PeriodBook,
    Undefined,
    ces_mean,
    ces_share_easy,
    convert_churn_rate,
    csat,
    historical_value,
    manager_at,
    mean,
    median,
    nps,
    ratio,
)
from acctdomain.plugins import Kpi, KpiContext, KpiValue, ReadModel

__all__ = [
    "FACTS",
    "KPIS",
    "account_histories",
    "money_book",
    "period_book",
    "period_facts",
    "scope",
]

FACTS = "kpi_facts"
NEVER = 2**62  # "known at": later than any recorded time
CENT = Decimal("0.01")


# --- what the KPIs share --------------------------------------------------------------------------


def _bounds(context: KpiContext) -> tuple[int, int, int]:
    """The period's first and last microsecond, and the "known at" moment."""
    start = micros(moment_of("start", context.start, end=False))
    end = micros(moment_of("end", context.end, end=True))
    known = NEVER if context.known_at is None else micros(context.known_at)
    return start, end, known


def _all_rows(context: KpiContext) -> list[tuple[str, dict[str, Any]]]:
    key = ("kpi_facts.rows",)
    if key not in context.memo:
        context.memo[key] = list(account_histories(context.read_model(FACTS)))
    rows: list[tuple[str, dict[str, Any]]] = context.memo[key]
    return rows


def account_histories(facts: ReadModel) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each account of the ``kpi_facts`` read model (key: its hex) with its history:
    ``revenue``, its revenue facts ([effective, recorded, kind, lines after]), and
    ``renewals``, the renewals marked due ([effective, recorded, due, ARR at stake]), in
    order. Both tables are scanned once, in key order (a year's key is its account's
    followed by ``:<year>``)."""
    years = facts.scan(REVENUE)
    pending = next(years, None)
    for key, row in facts.scan(ACCOUNTS):
        revenue: list[list[Any]] = []
        renewals: list[list[Any]] = []
        while pending is not None:
            account = pending[0][:32]
            if account > key:
                break
            if account == key:
                revenue += pending[1]["revenue"]
                renewals += pending[1]["renewals"]
            pending = next(years, None)
        yield key, {**row, "revenue": revenue, "renewals": renewals}


def scope(context: KpiContext) -> list[tuple[str, dict[str, Any]]]:
    """The ``kpi_facts`` account rows that match the filters (the manager as at the end of the
    period, as known), opened by then, as known."""
    _, end, known = _bounds(context)
    key = ("kpi_facts.scope", context.end)
    if key in context.memo:
        found: list[tuple[str, dict[str, Any]]] = context.memo[key]
        return found
    filters = {name: value for name, value in context.filters.items() if name != "product"}
    fixed = {
        name: filters.pop(name) for name in ("segment", "industry", "currency") if name in filters
    }
    rows = []
    for hex_id, row in _all_rows(context):
        opened_at, opened_recorded = row["opened"]
        if opened_at > end or opened_recorded > known:
            continue
        if any(row[name] != value for name, value in fixed.items()):
            continue
        if filters:
            manager, manager_type = manager_at(row, end, known)
            if filters.get("manager", manager) != manager:
                continue
            if filters.get("manager_type", manager_type) != manager_type:
                continue
        rows.append((hex_id, row))
    context.memo[key] = rows
    return rows


def _currency(context: KpiContext) -> str:
    """The currency money is reported in: the reporting currency, else the one currency of
    the accounts in scope."""
    if context.reporting_currency is not None:
        return context.reporting_currency
    currencies = {row["currency"] for _, row in scope(context)}
    if len(currencies) > 1:
        raise Undefined(
            f"the book is in several currencies ({', '.join(sorted(currencies))}): amounts "
            "are never summed across them; choose a reporting currency"
        )
    return currencies.pop() if currencies else "EUR"


def _rate(context: KpiContext) -> Callable[[str], Decimal]:
    """Converts an account currency to the reporting currency at one rate for the whole
    period: the rate of its last day (so exchange-rate moves are neither expansion nor
    contraction)."""
    cache: dict[str, Decimal] = {}

    def rate(currency: str) -> Decimal:
        target = _currency(context)
        if currency not in cache:
            found = context.exchange_rate(currency, target, context.end)
            if found is None:
                raise Undefined(
                    f"no exchange rate from {currency} to {target} on {context.end.isoformat()}"
                )
            cache[currency] = found
        return cache[currency]

    return rate


def money_book(context: KpiContext) -> PeriodBook:
    """:func:`period_book`, for a figure made of amounts: Undefined if they could not be
    converted to one currency."""
    book = period_book(context)
    book.require_amounts()
    return book


def period_book(context: KpiContext) -> PeriodBook:
    """The revenue figures of the context's period (computed once per scorecard)."""
    key = ("kpi_facts.book", context.start, context.end)
    if key not in context.memo:
        start, end, known = _bounds(context)
        try:
            context.memo[key] = PeriodBook.of(
                scope(context), start, end, known, _rate(context), context.filters.get("product")
            )
        except Undefined as undefined:
            context.memo[key] = undefined
    found = context.memo[key]
    if isinstance(found, Undefined):
        raise found
    book: PeriodBook = found
    return book


def _months(start: date, end: date) -> Iterator[str]:
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        yield f"{year:04d}-{month:02d}:"
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def period_facts(context: KpiContext) -> list[tuple[str, list[Any]]]:
    """The activity facts effective in the period and recorded by "known at", of the accounts
    in scope: (account hex, fact) pairs, a fact being [effective, recorded, kind, values...]."""
    key = ("kpi_facts.activity", context.start, context.end)
    if key not in context.memo:
        start, end, known = _bounds(context)
        accounts = {hex_id for hex_id, _ in scope(context)}
        read_model = context.read_model(FACTS)
        facts = []
        for month in _months(context.start, context.end):  # a key range each
            for row_key, row in read_model.scan(ACTIVITY, month):
                account = row_key[8:]
                if account not in accounts:
                    continue
                for fact in row["facts"]:
                    if start <= fact[0] <= end and fact[1] <= known:
                        facts.append((account, fact))
        context.memo[key] = facts
    found: list[tuple[str, list[Any]]] = context.memo[key]
    return found


# --- the KPIs -------------------------------------------------------------------------------------


def _figure(compute: Callable[[KpiContext], Any]) -> Callable[[KpiContext], KpiValue]:
    """A KPI from a function that returns its value (or a KpiValue), or raises Undefined."""

    def kpi(context: KpiContext) -> KpiValue:
        try:
            value = compute(context)
        except Undefined as undefined:
            return KpiValue(None, undefined.reason)
        return value if isinstance(value, KpiValue) else KpiValue(value)

    return kpi


def _money(context: KpiContext, amount: Decimal) -> Money:
    return Money(amount.quantize(CENT), _currency(context))


def _cohort_ratio(numerator: Callable[[PeriodBook], Decimal | int]) -> Callable[[KpiContext], Any]:
    def compute(context: KpiContext) -> KpiValue:
        book = money_book(context)
        value = ratio(numerator(book), book.starting_arr, "the cohort's starting ARR")
        return KpiValue(
            value,
            detail={
                "cohort": book.cohort,
                "starting_arr": _money(context, book.starting_arr),
                "expansion": _money(context, book.expansion),
                "contraction": _money(context, book.contraction),
                "churned_arr": _money(context, book.churned_arr),
            },
        )

    return compute


def _logo(churn: bool) -> Callable[[KpiContext], Any]:
    """Logo retention, or (``churn``) customer churn with its annualized rate."""

    def compute(context: KpiContext) -> KpiValue:
        book = period_book(context)
        value = ratio(
            book.churned if churn else book.retained,
            book.cohort,
            "the cohort (accounts active at the start)",
        )
        detail: dict[str, Any] = {
            "cohort": book.cohort,
            "retained": book.retained,
            "churned": book.churned,
        }
        if churn:
            detail["annualized"] = convert_churn_rate(value, book.days, 365)
        return KpiValue(value, detail=detail)

    return compute


def _growth(context: KpiContext) -> KpiValue:
    book = money_book(context)
    value = ratio(book.ending_arr - book.starting_arr, book.starting_arr, "the starting ARR")
    return KpiValue(
        value,
        detail={
            "starting_arr": _money(context, book.starting_arr),
            "ending_arr": _money(context, book.ending_arr),
        },
    )


def _renewal_rate(context: KpiContext) -> KpiValue:
    book = period_book(context)
    renewals = book.renewals
    if not renewals:
        raise Undefined("no renewal due in the period")
    renewed = [r for r in renewals if r.outcome == "renewed"]
    detail: dict[str, Any] = {
        "due": len(renewals),
        "renewed": len(renewed),
        "lost": sum(1 for r in renewals if r.outcome == "lost"),
        "open": sum(1 for r in renewals if r.outcome == "open"),
    }
    if book.unconvertible is None:
        detail["at_stake"] = _money(context, sum((r.at_stake for r in renewals), Decimal(0)))
        detail["renewed_arr"] = _money(context, sum((r.renewed_arr for r in renewed), Decimal(0)))
    if context.convention("renewal_rate", "count") == "count":
        return KpiValue(Decimal(len(renewed)) / Decimal(len(renewals)), detail=detail)
    book.require_amounts()
    at_stake = sum((r.at_stake for r in renewals), Decimal(0))
    value = ratio(sum((r.renewed_arr for r in renewed), Decimal(0)), at_stake, "the ARR at stake")
    return KpiValue(value, detail=detail)


def _expansion_rate(kind: str) -> Callable[[KpiContext], Any]:
    """Upsell or cross-sell rate, by the chosen convention."""
    name = f"{kind}_rate"

    def compute(context: KpiContext) -> KpiValue:
        book = period_book(context)
        convention = context.convention(name, "account_base")
        if convention == "account_base":
            accounts = book.upsell_accounts if kind == "upsell" else book.cross_sell_accounts
            detail = {"accounts": accounts, "cohort": book.cohort}
            return KpiValue(ratio(accounts, book.cohort, "the cohort"), detail=detail)
        if convention == "revenue":
            book.require_amounts()
            added = book.upsell_arr if kind == "upsell" else book.cross_sell_arr
            value = ratio(added, book.starting_arr, "the cohort's starting ARR")
            return KpiValue(value, detail={"added_arr": _money(context, added)})
        won = lost = 0
        for _, fact in period_facts(context):
            if fact[3] == kind and fact[2] in ("offer_won", "offer_lost"):
                won += fact[2] == "offer_won"
                lost += fact[2] == "offer_lost"
        value = ratio(won, won + lost, f"the {kind} offers decided in the period")
        return KpiValue(value, detail={"won": won, "lost": lost})

    return compute


def _survey(kind: str, formula: Callable[[list[int]], Decimal]) -> Callable[[KpiContext], Any]:
    def compute(context: KpiContext) -> KpiValue:
        scores = [fact[3] for _, fact in period_facts(context) if fact[2] == kind]
        return KpiValue(formula(scores), detail={"answers": len(scores)})

    return compute


def _ces(context: KpiContext) -> KpiValue:
    """CES by the chosen convention: the mean answer, or the share of easy answers (5-7)."""
    scores = [fact[3] for _, fact in period_facts(context) if fact[2] == "ces"]
    formula = ces_share_easy if context.convention("ces", "mean") == "share_easy" else ces_mean
    return KpiValue(formula(scores), detail={"answers": len(scores)})


def _timing(kind: str, what: str) -> Callable[[KpiContext], Any]:
    name = f"{kind}_time"

    def compute(context: KpiContext) -> KpiValue:
        hours = [
            Decimal(str(fact[-1])) / 3600 for _, fact in period_facts(context) if fact[2] == kind
        ]
        if not hours:
            raise Undefined(f"no {what} in the period")
        middle, average = median(hours, what), mean(hours, what)
        value = average if context.convention(name, "median") == "mean" else middle
        return KpiValue(
            value.quantize(CENT), detail={"count": len(hours), "median": middle, "mean": average}
        )

    return compute


def _lifetime_value(context: KpiContext) -> KpiValue:
    if context.convention("ltv", "predictive") == "historical":
        _, end, known = _bounds(context)
        rate = _rate(context)
        values = [
            historical_value(row, end, known) * rate(row["currency"])
            for _, row in scope(context)
            if row["revenue"] and row["revenue"][0][1] <= known and row["revenue"][0][0] <= end
        ]
        if not values:
            raise Undefined("no account has had revenue")
        total = sum(values, Decimal(0))
        return KpiValue(
            _money(context, total / len(values)),
            detail={"accounts": len(values), "total": _money(context, total)},
        )
    book = money_book(context)
    margin = context.settings.get("gross_margin")
    if margin is None:
        raise Undefined("gross margin not configured (KpiSettings.gross_margin)")
    arpa = ratio(book.ending_arr, book.active, "the number of active accounts")
    churn = ratio(book.churned, book.cohort, "the cohort (accounts active at the start)")
    if churn == 0:
        raise Undefined("no churn in the period: the expected lifetime is unbounded")
    annual_churn = convert_churn_rate(churn, book.days, 365)
    return KpiValue(
        _money(context, arpa * margin / annual_churn),
        detail={
            "arpa": _money(context, arpa),
            "gross_margin": margin,
            "annual_churn": annual_churn,
        },
    )


def _count(field: str) -> Callable[[KpiContext], Any]:
    return lambda context: int(getattr(period_book(context), field))


def _amount(field: str) -> Callable[[KpiContext], Any]:
    return lambda context: _money(context, getattr(money_book(context), field))


def _arr(context: KpiContext) -> KpiValue:
    book = money_book(context)
    if not book.active:
        raise Undefined("no active account at the end of the period")
    return KpiValue(_money(context, book.ending_arr))


# name, title, unit, compute, conventions, description
_Definition = tuple[str, str, str, Callable[[KpiContext], Any], tuple[str, ...], str]
_DEFINITIONS: tuple[_Definition, ...] = (
    ("active_accounts", "Active accounts", "count", _count("active"), (),
     "Accounts under contract at the end of the period."),
    ("new_accounts", "New accounts", "count", _count("new"), (),
     "Accounts whose first contract started in the period."),
    ("churned_accounts", "Churned accounts", "count", _count("churn_events"), (),
     "Accounts with a churn effective in the period."),
    ("reactivated_accounts", "Reactivated accounts", "count", _count("reactivated"), (),
     "Churned accounts won back in the period."),
    ("arr", "Annual recurring revenue", "money", _arr, (),
     "ARR of the accounts active at the end of the period."),
    ("revenue_growth", "Revenue growth", "ratio", _growth, (),
     "ARR at the end over ARR at the start, minus one (newcomers included)."),
    ("logo_retention", "Logo retention", "ratio", _logo(churn=False), (),
     "Share of the accounts active at the start still active at the end."),
    ("customer_churn", "Customer churn", "ratio", _logo(churn=True), (),
     "Share of the accounts active at the start churned at the end."),
    ("grr", "Gross revenue retention", "ratio",
     _cohort_ratio(lambda b: b.starting_arr - b.contraction - b.churned_arr), (),
     "The cohort's starting ARR, less contraction and churn, over its starting ARR."),
    ("nrr", "Net revenue retention", "ratio", _cohort_ratio(lambda b: b.cohort_arr), (),
     "The cohort's ARR at the end over its ARR at the start."),
    ("gross_revenue_churn", "Gross revenue churn", "ratio",
     _cohort_ratio(lambda b: b.contraction + b.churned_arr), (),
     "Contraction and churned ARR of the cohort over its starting ARR."),
    ("net_revenue_churn", "Net revenue churn", "ratio",
     _cohort_ratio(lambda b: b.contraction + b.churned_arr - b.expansion), (),
     "Contraction and churn less expansion, over the cohort's starting ARR."),
    ("expansion", "Expansion", "money", _amount("expansion"), (),
     "Net ARR growth of the cohort accounts that grew (netted per account)."),
    ("contraction", "Contraction", "money", _amount("contraction"), (),
     "Net ARR loss of the cohort accounts that shrank but stayed (netted per account)."),
    ("renewal_rate", "Renewal rate", "ratio", _renewal_rate, ("count", "value"),
     "Renewals due in the period that were renewed, by count or by ARR."),
    ("upsell_rate", "Upsell rate", "ratio", _expansion_rate("upsell"),
     ("account_base", "offers", "revenue"),
     "Upsells in the period: by account base, by offers accepted, or by revenue."),
    ("cross_sell_rate", "Cross-sell rate", "ratio", _expansion_rate("cross_sell"),
     ("account_base", "offers", "revenue"),
     "Cross-sells in the period: by account base, by offers accepted, or by revenue."),
    ("ltv", "Customer lifetime value", "money", _lifetime_value, ("predictive", "historical"),
     "Predictive (ARPA x gross margin / annual churn) or historical (paid to date, mean)."),
    ("nps", "Net Promoter Score", "score", _survey("nps", nps), (),
     "Promoters (9-10) minus detractors (0-6), in percent of the answers."),
    ("csat", "Customer satisfaction", "ratio", _survey("csat", csat), (),
     "Share of CSAT answers 4 or 5."),
    ("ces", "Customer effort score", "score", _ces, ("mean", "share_easy"),
     "Mean CES answer (1-7, 7 = easiest), or the share of answers 5-7."),
    ("request_response_time", "Request first response", "hours",
     _timing("request_response", "answered request"), ("median", "mean"),
     "Hours from a customer request to its answer, for answers in the period."),
    ("issue_response_time", "Issue first response", "hours",
     _timing("issue_response", "issue response"), ("median", "mean"),
     "Hours from an issue to its first response, for responses in the period."),
    ("issue_resolution_time", "Issue resolution", "hours",
     _timing("issue_resolution", "resolved issue"), ("median", "mean"),
     "Hours from an issue to its resolution, for resolutions in the period."),
)  # fmt: skip

KPIS: tuple[Kpi, ...] = tuple(
    Kpi(
        name=name,
        title=title,
        unit=unit,
        compute=_figure(compute),
        projections=(FACTS,),
        description=description,
        conventions=conventions,
    )
    for name, title, unit, compute, conventions, description in _DEFINITIONS
)
"""The built-in KPIs, in scorecard order."""
