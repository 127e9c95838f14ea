"""Built-in plugin ``builtin.accounts``: the ``accounts`` read model, one row per account.

The row is what lists and portfolios need without replaying events: identity, manager,
status, revenue now (ARR by product line), renewal dates, engagement and open issues. It is
the account as it is now; the history the KPIs need (ARR and status at any date, as known at
any date) is in the ``kpi_facts`` read model of ``builtin.kpis``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar
from uuid import UUID

from acctdomain.domain import events as ev
from acctdomain.domain.values import Money, NpsScore
from acctdomain.plugins import Projection, Rows, hookimpl

__all__ = ["AccountsProjection", "acctdomain_register_projections"]

TABLE = "accounts"


class AccountsProjection(Projection):
    """Table ``accounts``: key = account id (hex), value = the account's summary."""

    name = "accounts"
    tables = (TABLE,)
    # 2: the row no longer keeps the revenue history (it grew with the account and was
    # written again, whole, after each of its events; the KPIs read ``kpi_facts``) nor
    # ``version`` (it was the only reason to decode events that change nothing in it).
    version = 2
    event_types: ClassVar[tuple[type, ...]]  # below: the events that change a row
    description = "One row per account: identity, manager, status, ARR, renewal, engagement."
    # Rows are built fresh or changed through ``rows``, never kept nor shared between rows:
    # the runner may keep them decoded from one batch to the next.
    cache_rows: ClassVar[bool] = True

    def account_share(self, account_id: UUID) -> dict[str, str]:
        """The account's row is under its hex (which has a fixed length)."""
        return {TABLE: account_id.hex}

    def apply(self, event: Any, rows: Rows) -> None:
        key = event.originator_id.hex
        if isinstance(event, ev.AccountOpened):
            rows.put(TABLE, key, self._opened(event))
            return
        row = rows.get(TABLE, key)
        if row is None:  # an account whose opening this read model never saw
            return
        self._update(event, row)
        rows.put(TABLE, key, row)

    @staticmethod
    def _opened(event: ev.AccountOpened) -> dict[str, Any]:
        return {
            "account_id": event.originator_id,
            "name": event.name,
            "segment": event.segment,
            "industry": event.industry,
            "currency": event.currency,
            "manager": event.manager,
            "manager_type": event.manager_type,
            "external_key": event.external_key,
            "status": "onboarding",
            "opened_at": event.effective_at,
            "lines": {},
            "term_end": None,
            "renewal_due_on": None,
            "churned_at": None,
            "contact_count": 0,
            "last_contact_at": None,
            "open_issues": [],
            "latest_nps": None,
            "latest_nps_at": None,
        }

    @staticmethod
    def _update(event: Any, row: dict[str, Any]) -> None:
        """Change the summary as ``event`` says (most events do not change it)."""
        cls = type(event)
        try:
            update = _RESOLVED[cls]
        except KeyError:
            update = _RESOLVED[cls] = _resolve(cls)
        if update is not None:
            update(event, row)


# --- what each event changes in the summary ---------------------------------------------------


def _manager_reassigned(event: ev.ManagerReassigned, row: dict[str, Any]) -> None:
    row["manager"], row["manager_type"] = event.manager, event.manager_type


def _contract(event: Any, row: dict[str, Any]) -> None:
    row["lines"] = {line.product: line.arr for line in event.lines}
    row["term_end"] = event.term_end
    row["renewal_due_on"] = None
    row["status"] = "active"
    row["churned_at"] = None


def _renewal_due(event: ev.RenewalDue, row: dict[str, Any]) -> None:
    row["renewal_due_on"] = event.due_on


def _churned(event: ev.Churned, row: dict[str, Any]) -> None:
    row.update(lines={}, renewal_due_on=None, status="churned", churned_at=event.effective_at)


def _upsold(event: ev.Upsold, row: dict[str, Any]) -> None:
    _change_line(row, event.product, lambda arr: arr + event.added_arr)


def _cross_sold(event: ev.CrossSold, row: dict[str, Any]) -> None:
    _change_line(row, event.product, lambda _: event.arr)


def _downgraded(event: ev.Downgraded, row: dict[str, Any]) -> None:
    _change_line(row, event.product, lambda arr: arr - event.reduced_by)


def _change_line(row: dict[str, Any], product: str, change: Callable[[Money], Money]) -> None:
    lines: dict[str, Money] = row["lines"]
    arr = change(lines.get(product, Money.zero(row["currency"])))
    if arr.amount > 0:
        lines[product] = arr
    else:
        lines.pop(product, None)


def _contact_logged(event: ev.ContactLogged, row: dict[str, Any]) -> None:
    row["contact_count"] += 1
    last = row["last_contact_at"]
    row["last_contact_at"] = event.effective_at if last is None else max(last, event.effective_at)


def _issue_raised(event: ev.IssueRaised, row: dict[str, Any]) -> None:
    row["open_issues"] = [*row["open_issues"], event.issue_id]


def _issue_resolved(event: ev.IssueResolved, row: dict[str, Any]) -> None:
    row["open_issues"] = [i for i in row["open_issues"] if i != event.issue_id]


def _feedback_recorded(event: ev.FeedbackRecorded, row: dict[str, Any]) -> None:
    if isinstance(event.score, NpsScore):
        latest = row["latest_nps_at"]
        if latest is None or event.effective_at >= latest:
            row["latest_nps"], row["latest_nps_at"] = event.score.value, event.effective_at


_Update = Callable[[Any, dict[str, Any]], None]

# By event class; a subclass is handled as its nearest registered base (other events: no change).
_UPDATES: dict[type, _Update] = {
    ev.ManagerReassigned: _manager_reassigned,
    ev.ContractStarted: _contract,
    ev.Renewed: _contract,
    ev.Reactivated: _contract,
    ev.RenewalDue: _renewal_due,
    ev.Churned: _churned,
    ev.Upsold: _upsold,
    ev.CrossSold: _cross_sold,
    ev.Downgraded: _downgraded,
    ev.ContactLogged: _contact_logged,
    ev.IssueRaised: _issue_raised,
    ev.IssueResolved: _issue_resolved,
    ev.FeedbackRecorded: _feedback_recorded,
}
_RESOLVED: dict[type, _Update | None] = {}


def _resolve(cls: type) -> _Update | None:
    for base in cls.__mro__:
        update = _UPDATES.get(base)
        if update is not None:
            return update
    return None


# Only the events that change a row are decoded for it (the others are skipped unread).
AccountsProjection.event_types = (ev.AccountOpened, *_UPDATES)


@hookimpl
def acctdomain_register_projections(register: Callable[[Projection], None]) -> None:
    """Register the ``accounts`` read model."""
    register(AccountsProjection())
