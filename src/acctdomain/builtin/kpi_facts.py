"""The ``kpi_facts`` read model: the facts the built-in KPI scorecard is computed from.

The scorecard must answer for any period, any filter and both clocks (what was effective in a
period; what was known on a recorded date) without replaying events, fast. So this read model
keeps small, plain facts, each with its effective and recorded time (integers: microseconds
since 1970-01-01 UTC) and amounts as exact decimal text:

- table ``accounts``, one row per account (key: the account id's hex): segment, industry,
  currency, when it was opened, the history of its manager and its product lines now;
- table ``revenue``, one row per account and year of effective time (key ``<hex>:<YYYY>``, so
  an account's rows come together, in order): its revenue facts of that year, every contract
  start, renewal, reactivation, churn, upsell, cross-sell and downgrade with the product lines
  it left (revenue changes stand in business-time order, so the lines at any moment are those
  of the last fact before it), and the renewals marked due. A row holds a year at most, so no
  row grows with the whole history, and a scorecard reads a few rows per account;
- table ``activity``, one row per account and month of effective time (key
  ``YYYY-MM:<hex>``, so a period's rows are a few key ranges): survey answers, first responses
  to requests and issues, issue resolutions and decided offers, with what the KPIs need;
- table ``pending``: the open requests, issues and offers (key ``<hex>:<item id hex>``), to
  time their responses and remember an offer's kind.

``activity`` rows are keyed by month first, so the projection does not declare an account
share: it is rebuilt whole, by a runner without partition.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from acctdomain.domain import events as ev
from acctdomain.domain.values import CesScore, CsatScore, NpsScore
from acctdomain.plugins import Projection, Rows

__all__ = [
    "ACCOUNTS",
    "ACTIVITY",
    "PENDING",
    "REVENUE",
    "KpiFactsProjection",
    "activity_key",
    "micros",
    "revenue_key",
]

ACCOUNTS = "accounts"
REVENUE = "revenue"
ACTIVITY = "activity"
PENDING = "pending"

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# Revenue events and the kind of fact each one is.
REVENUE_KINDS: dict[type, str] = {
    ev.ContractStarted: "started",
    ev.Renewed: "renewed",
    ev.Reactivated: "reactivated",
    ev.Churned: "churned",
    ev.Upsold: "upsold",
    ev.CrossSold: "cross_sold",
    ev.Downgraded: "downgraded",
}

SURVEY_KINDS: dict[type, str] = {NpsScore: "nps", CsatScore: "csat", CesScore: "ces"}


def micros(moment: datetime) -> int:
    """``moment`` as whole microseconds since 1970-01-01 UTC (exact, unlike a float)."""
    return (moment - EPOCH) // _MICROSECOND


def revenue_key(account_hex: str, effective: datetime) -> str:
    """The ``revenue`` row of an account for the year of ``effective`` (UTC)."""
    return f"{account_hex}:{effective.astimezone(UTC).year:04d}"


def activity_key(account_hex: str, effective: datetime) -> str:
    """The ``activity`` row of an account for the month of ``effective`` (UTC)."""
    day = effective.astimezone(UTC)
    return f"{day.year:04d}-{day.month:02d}:{account_hex}"


def _amount(value: Any) -> str:
    return str(value.amount)


class KpiFactsProjection(Projection):
    """The facts of :mod:`acctdomain.builtin.kpi_facts`."""

    name = "kpi_facts"
    tables = (ACCOUNTS, REVENUE, ACTIVITY, PENDING)
    # 3: revenue facts in a row per account and year (version 1 had a row per fact: a
    # scorecard read ten times as many rows; version 2 kept them all in the account's row,
    # which grew with its history, and so did a rebuild's memory).
    version = 3
    description = "Revenue history and activity facts, with both clocks, for the KPI scorecard."
    # Not cached between rebuild batches: most rows are written once (revenue facts) or for
    # one month (activity), so a cache would only grow with the history, not save reads.

    def apply(self, event: Any, rows: Rows) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(event, rows)


def _times(event: Any) -> list[int]:
    return [micros(event.effective_at), micros(event.recorded_at)]


def _opened(event: ev.AccountOpened, rows: Rows) -> None:
    at = _times(event)
    rows.put(
        ACCOUNTS,
        event.originator_id.hex,
        {
            "segment": event.segment.value,
            "industry": event.industry,
            "currency": event.currency,
            "opened": at,
            "managers": [[*at, event.manager, event.manager_type.value]],
            "lines": {},
        },
    )


def _account(event: Any, rows: Rows) -> dict[str, Any] | None:
    return rows.get(ACCOUNTS, event.originator_id.hex)


def _reassigned(event: ev.ManagerReassigned, rows: Rows) -> None:
    row = _account(event, rows)
    if row is not None:
        row["managers"].append([*_times(event), event.manager, event.manager_type.value])
        rows.put(ACCOUNTS, event.originator_id.hex, row)


def _revenue(event: Any, rows: Rows) -> None:
    row = _account(event, rows)
    if row is None:  # an account whose opening this read model never saw
        return
    kind = REVENUE_KINDS[type(event)]
    lines: dict[str, str] = dict(row["lines"])
    if isinstance(event, ev.ContractStarted | ev.Renewed | ev.Reactivated):
        lines = {line.product: _amount(line.arr) for line in event.lines}
    elif isinstance(event, ev.Churned):
        lines = {}
    elif isinstance(event, ev.Upsold):
        lines[event.product] = str(_decimal(lines.get(event.product)) + event.added_arr.amount)
    elif isinstance(event, ev.CrossSold):
        lines[event.product] = str(_decimal(lines.get(event.product)) + event.arr.amount)
    elif isinstance(event, ev.Downgraded):
        left = _decimal(lines.get(event.product)) - event.reduced_by.amount
        if left > 0:
            lines[event.product] = str(left)
        else:
            lines.pop(event.product, None)
    row["lines"] = lines
    rows.put(ACCOUNTS, event.originator_id.hex, row)
    # [effective, recorded, kind, lines after]: the status after is "churned" after a churn
    # and "active" after any other revenue change.
    _year_row(event, rows, "revenue", [*_times(event), kind, lines])


def _year_row(event: Any, rows: Rows, field: str, fact: list[Any]) -> None:
    key = revenue_key(event.originator_id.hex, event.effective_at)
    row = rows.get(REVENUE, key) or {"revenue": [], "renewals": []}
    row[field].append(fact)
    rows.put(REVENUE, key, row)


def _decimal(text: str | None) -> Decimal:
    return Decimal(text) if text is not None else Decimal(0)


def _renewal_due(event: ev.RenewalDue, rows: Rows) -> None:
    if _account(event, rows) is not None:
        due = micros(datetime.combine(event.due_on, datetime.min.time(), tzinfo=UTC))
        # [effective, recorded, due on (the start of that day), ARR at stake]
        _year_row(event, rows, "renewals", [*_times(event), due, _amount(event.arr_at_stake)])


def _fact(event: Any, rows: Rows, *values: Any) -> None:
    key = activity_key(event.originator_id.hex, event.effective_at)
    row = rows.get(ACTIVITY, key) or {"facts": []}
    row["facts"].append([*_times(event), *values])
    rows.put(ACTIVITY, key, row)


def _pending_key(event: Any, item: Any) -> str:
    return f"{event.originator_id.hex}:{item.hex}"


def _feedback(event: ev.FeedbackRecorded, rows: Rows) -> None:
    _fact(event, rows, SURVEY_KINDS[type(event.score)], event.score.value)


def _opened_item(kind: str, item: Callable[[Any], Any], extra: Callable[[Any], Any]) -> Any:
    def handle(event: Any, rows: Rows) -> None:
        rows.put(
            PENDING,
            _pending_key(event, item(event)),
            {"kind": kind, "at": micros(event.effective_at), "extra": extra(event)},
        )

    return handle


def _request_answered(event: ev.RequestAnswered, rows: Rows) -> None:
    key = _pending_key(event, event.request_id)
    pending = rows.get(PENDING, key)
    if pending is None:  # answered before: only the first answer is the response
        return
    rows.delete(PENDING, key)
    _fact(event, rows, "request_response", _seconds(event, pending))


def _issue_responded(event: ev.IssueResponded, rows: Rows) -> None:
    key = _pending_key(event, event.issue_id)
    pending = rows.get(PENDING, key)
    if pending is None or pending.get("responded"):
        return
    pending["responded"] = True
    rows.put(PENDING, key, pending)
    _fact(event, rows, "issue_response", pending["extra"], _seconds(event, pending))


def _issue_resolved(event: ev.IssueResolved, rows: Rows) -> None:
    key = _pending_key(event, event.issue_id)
    pending = rows.get(PENDING, key)
    if pending is None:
        return
    rows.delete(PENDING, key)
    _fact(event, rows, "issue_resolution", pending["extra"], _seconds(event, pending))


def _offer_closed(outcome: str) -> Callable[[Any, Rows], None]:
    def handle(event: Any, rows: Rows) -> None:
        key = _pending_key(event, event.opportunity_id)
        pending = rows.get(PENDING, key)
        if pending is None:
            return
        rows.delete(PENDING, key)
        _fact(event, rows, outcome, pending["extra"])

    return handle


def _seconds(event: Any, pending: dict[str, Any]) -> float:
    return (micros(event.effective_at) - int(pending["at"])) / 1_000_000


_HANDLERS: dict[type, Callable[[Any, Rows], None]] = {
    ev.AccountOpened: _opened,
    ev.ManagerReassigned: _reassigned,
    **dict.fromkeys(REVENUE_KINDS, _revenue),
    ev.RenewalDue: _renewal_due,
    ev.FeedbackRecorded: _feedback,
    ev.RequestReceived: _opened_item("request", lambda e: e.request_id, lambda e: None),
    ev.RequestAnswered: _request_answered,
    ev.IssueRaised: _opened_item("issue", lambda e: e.issue_id, lambda e: e.severity.value),
    ev.IssueResponded: _issue_responded,
    ev.IssueResolved: _issue_resolved,
    ev.OpportunityOffered: _opened_item(
        "offer", lambda e: e.opportunity_id, lambda e: e.kind.value
    ),
    ev.OpportunityWon: _offer_closed("offer_won"),
    ev.OpportunityLost: _offer_closed("offer_lost"),
}

# Only these events are decoded for this projection.
KpiFactsProjection.event_types = tuple(_HANDLERS)
