"""The ``commission_ledger`` projection: what commission statements are computed from.

Table ``accounts`` (key: account id in hex) holds, per account, two timelines in business
(effective) time and its renewal opportunities:

- ``managers``: ``[effective_at, manager]`` from the opening and every reassignment;
- ``arr``: ``[effective_at, kind, ARR after]`` for every revenue event (contract started,
  renewed, reactivated, churned, upsold, cross-sold, downgraded);
- ``renewals``: one dict per renewal opportunity: ``due_on``, ``arr_at_stake``,
  ``marked_at`` (None when implied), ``outcome`` (``open``, ``renewed`` or ``churned``),
  ``closed_at`` and ``renewed_arr``.

Table ``managers`` (key: manager name) lists every account a manager was ever given, so a
statement for one manager reads only their accounts.

Revenue is credited to a manager from the timelines at query time: the manager in charge at
the effective time of each revenue change gets it. Keeping timelines rather than a running
total per manager is what makes a backdated reassignment (recorded after revenue events it
precedes in business time) credit the right person.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date
from typing import Any, ClassVar

from acctdomain.domain import events as ev
from acctdomain.domain.values import Money
from acctdomain.plugins import Projection, Rows

__all__ = ["ACCOUNTS", "LEDGER", "MANAGERS", "CommissionLedger"]

LEDGER = "commission_ledger"
ACCOUNTS = "accounts"
MANAGERS = "managers"

Row = dict[str, Any]


def _arr(row: Row) -> Money:
    return sum(row["lines"].values(), Money.zero(row["currency"]))


def _open_renewal(row: Row) -> Row | None:
    renewals: list[Row] = row["renewals"]
    if renewals and renewals[-1]["outcome"] == "open":
        return renewals[-1]
    return None


def _record_arr(row: Row, event: Any, kind: str) -> None:
    # Revenue events stand in business-time order within an account (the aggregate refuses
    # one that predates the last revenue change), so appending keeps the timeline sorted.
    row["arr"] = [*row["arr"], [event.effective_at, kind, _arr(row)]]


def _set_lines(row: Row, event: Any) -> None:
    row["lines"] = {line.product: line.arr for line in event.lines}
    row["term_end"] = event.term_end


def _change_line(row: Row, product: str, change: Callable[[Money], Money]) -> None:
    lines: dict[str, Money] = dict(row["lines"])
    arr = change(lines.get(product, Money.zero(row["currency"])))
    if arr.amount > 0:
        lines[product] = arr
    else:
        lines.pop(product, None)
    row["lines"] = lines


def _reassigned(row: Row, event: ev.ManagerReassigned) -> None:
    # Changes of manager also stand in business-time order (the aggregate checks it).
    row["managers"] = [*row["managers"], [event.effective_at, event.manager]]


def _contract_started(row: Row, event: ev.ContractStarted) -> None:
    _set_lines(row, event)
    _record_arr(row, event, "started")


def _renewal_due(row: Row, event: ev.RenewalDue) -> None:
    marked = {
        "due_on": event.due_on,
        "arr_at_stake": event.arr_at_stake,
        "marked_at": event.effective_at,
        "outcome": "open",
        "closed_at": None,
        "renewed_arr": None,
    }
    renewals = list(row["renewals"])
    if _open_renewal(row) is not None:
        # A new due date for the renewal in the pipeline: it is rescheduled, not doubled.
        renewals[-1] = marked
    else:
        renewals.append(marked)
    row["renewals"] = renewals


def _implied(due_on: date, at_stake: Money) -> Row:
    """An opportunity nobody marked due: the term that ended was up for renewal anyway."""
    return {
        "due_on": due_on,
        "arr_at_stake": at_stake,
        "marked_at": None,
        "outcome": "open",
        "closed_at": None,
        "renewed_arr": None,
    }


def _close(row: Row, opportunity: Row, outcome: str, event: Any, renewed: Money | None) -> None:
    closed = {**opportunity, "outcome": outcome, "closed_at": event.effective_at}
    closed["renewed_arr"] = renewed
    renewals = list(row["renewals"])
    if renewals and renewals[-1] is opportunity:
        renewals[-1] = closed
    else:
        renewals.append(closed)
    row["renewals"] = renewals


def _renewed(row: Row, event: ev.Renewed) -> None:
    opportunity = _open_renewal(row)
    if opportunity is None and row["term_end"] is not None:
        opportunity = _implied(row["term_end"], event.arr_before)
    _set_lines(row, event)
    _record_arr(row, event, "renewed")
    if opportunity is not None:
        _close(row, opportunity, "renewed", event, _arr(row))


def _churned(row: Row, event: ev.Churned) -> None:
    opportunity = _open_renewal(row)
    term_end = row["term_end"]
    if (
        opportunity is None
        and term_end is not None
        and event.effective_at.astimezone(UTC).date() >= term_end
    ):
        # Lost at (or after) the end of the term: a renewal lost, marked due or not. A churn
        # during the term is a cancellation: it counts in NRR, not in the renewal rate.
        opportunity = _implied(term_end, event.arr_lost)
    row["lines"] = {}
    _record_arr(row, event, "churned")
    if opportunity is not None:
        _close(row, opportunity, "churned", event, None)


def _reactivated(row: Row, event: ev.Reactivated) -> None:
    _set_lines(row, event)
    _record_arr(row, event, "reactivated")


def _upsold(row: Row, event: ev.Upsold) -> None:
    _change_line(row, event.product, lambda arr: arr + event.added_arr)
    _record_arr(row, event, "upsold")


def _cross_sold(row: Row, event: ev.CrossSold) -> None:
    _change_line(row, event.product, lambda _: event.arr)
    _record_arr(row, event, "cross_sold")


def _downgraded(row: Row, event: ev.Downgraded) -> None:
    _change_line(row, event.product, lambda arr: arr - event.reduced_by)
    _record_arr(row, event, "downgraded")


HANDLERS: dict[type, Callable[[Row, Any], None]] = {
    ev.ManagerReassigned: _reassigned,
    ev.ContractStarted: _contract_started,
    ev.RenewalDue: _renewal_due,
    ev.Renewed: _renewed,
    ev.Churned: _churned,
    ev.Reactivated: _reactivated,
    ev.Upsold: _upsold,
    ev.CrossSold: _cross_sold,
    ev.Downgraded: _downgraded,
}


class CommissionLedger(Projection):
    """Managers, ARR and renewal opportunities of each account over effective time."""

    name = LEDGER
    tables = (ACCOUNTS, MANAGERS)
    version = 1
    event_types: ClassVar[tuple[type, ...]] = (ev.AccountOpened, *HANDLERS)
    description = "Per account: manager and ARR timelines and renewal opportunities."

    def apply(self, event: Any, rows: Rows) -> None:
        key = event.originator_id.hex
        if isinstance(event, ev.AccountOpened):
            rows.put(ACCOUNTS, key, self._opened(event))
            self._index(rows, event.manager, key)
            return
        row = rows.get(ACCOUNTS, key)
        handler = HANDLERS.get(type(event))
        if row is None or handler is None:  # an opening this read model never saw
            return
        handler(row, event)
        rows.put(ACCOUNTS, key, row)
        if isinstance(event, ev.ManagerReassigned):
            self._index(rows, event.manager, key)

    @staticmethod
    def _opened(event: ev.AccountOpened) -> Row:
        return {
            "account_id": event.originator_id,
            "name": event.name,
            "currency": event.currency,
            "opened_at": event.effective_at,
            "managers": [[event.effective_at, event.manager]],
            "lines": {},
            "term_end": None,
            "arr": [],
            "renewals": [],
        }

    @staticmethod
    def _index(rows: Rows, manager: str, key: str) -> None:
        row = rows.get(MANAGERS, manager) or {"accounts": []}
        if key not in row["accounts"]:
            rows.put(MANAGERS, manager, {"accounts": [*row["accounts"], key]})
