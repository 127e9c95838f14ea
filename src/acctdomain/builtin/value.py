"""The ``value_realised`` read model and the value-realised view.

Value realised is what the customer got from us in money (saved or earned), recorded as
``ValueDelivered`` events: the story an AM tells at renewal time. The projection keeps

- table ``accounts``: one row per account (key: the account id's hex) with its currency, so
  that an account without any value delivered is known (and an unknown one is not);
- table ``items``: one row per ``ValueDelivered`` (key ``<account hex>:<event version>``, the
  version zero-padded so that the keys sort in store order) with ``amount`` (``Money``),
  ``description``, ``effective_at`` and ``version``. Rows are written once and never grow.

:func:`value_realised` sums an account's items of a period of whole days of effective time
(UTC, both ends included) per currency (amounts in different currencies are never added) and
lists them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar
from uuid import UUID

import attrs

from acctdomain.builtin.workday import account_row, require_day, require_read_model
from acctdomain.domain import events as ev
from acctdomain.domain.identifiers import event_id_for
from acctdomain.domain.values import Money
from acctdomain.errors import InvalidValue
from acctdomain.plugins import Projection, ReadModel, Rows

__all__ = [
    "ACCOUNTS",
    "ITEMS",
    "ValueItem",
    "ValueRealised",
    "ValueRealisedProjection",
    "item_key",
    "value_realised",
]

ACCOUNTS = "accounts"
ITEMS = "items"


def item_key(account_id: UUID, version: int) -> str:
    """The ``items`` key of the account's event number ``version``."""
    return f"{account_id.hex}:{version:012d}"


class ValueRealisedProjection(Projection):
    """Tables ``accounts`` (key: account hex, value ``{"currency"}``) and ``items`` (key
    ``<account hex>:<version>``, value ``{"amount", "description", "effective_at",
    "version"}``): the value delivered to each account."""

    name = "value_realised"
    tables = (ACCOUNTS, ITEMS)
    event_types: ClassVar[tuple[type, ...]] = (ev.AccountOpened, ev.ValueDelivered)
    description = "Value delivered to each account (money saved or earned), item by item."
    # Rows are written once, never read back by ``apply``: nothing to cache.

    def account_share(self, account_id: UUID) -> dict[str, str]:
        """The account's row is under its hex, its items under ``<hex>:``."""
        return {ACCOUNTS: account_id.hex, ITEMS: f"{account_id.hex}:"}

    def apply(self, event: Any, rows: Rows) -> None:
        if isinstance(event, ev.AccountOpened):
            rows.put(ACCOUNTS, event.originator_id.hex, {"currency": event.currency})
        elif isinstance(event, ev.ValueDelivered):
            rows.put(
                ITEMS,
                item_key(event.originator_id, event.originator_version),
                {
                    "amount": event.amount,
                    "description": event.description,
                    "effective_at": event.effective_at,
                    "version": event.originator_version,
                },
            )


# --- the view -----------------------------------------------------------------------------------


@attrs.frozen
class ValueItem:
    """One delivery of value; ``event_id`` is the ``ValueDelivered`` event's id."""

    event_id: UUID
    effective_at: datetime
    amount: Money
    description: str


@attrs.frozen
class ValueRealised:
    """An account's value realised in the whole days ``start`` to ``end``: ``totals`` has one
    ``Money`` per currency (by currency code; empty when nothing was delivered), ``items``
    every delivery, oldest first (in store order among equal times)."""

    account_id: UUID
    start: date
    end: date
    currency: str  # the account's currency
    totals: tuple[Money, ...]
    items: tuple[ValueItem, ...]

    def total(self, currency: str | None = None) -> Money:
        """The total in ``currency`` (default: the account's), zero when none."""
        wanted = self.currency if currency is None else currency
        for money in self.totals:
            if money.currency == wanted:
                return money
        return Money.zero(wanted)


def value_realised(
    read_model: ReadModel, account_id: UUID, *, start: date, end: date
) -> ValueRealised:
    """The value delivered to ``account_id`` effective in the whole days ``start`` to ``end``
    (dates, both included, UTC), from the ``value_realised`` read model, summed per currency.

    Raises ``InvalidValue`` naming ``read_model``, ``account_id``, ``start`` or ``end`` (also
    when ``end`` is before ``start``), and ``AccountNotFound`` when the read model has no row
    for the account.
    """
    require_read_model(read_model)
    first, last = require_day("start", start), require_day("end", end)
    if last < first:
        raise InvalidValue("end", f"{last.isoformat()} is before start ({first.isoformat()})")
    account = account_row(read_model, "value_realised", ACCOUNTS, account_id)
    items = []
    for _, row in read_model.scan(ITEMS, f"{account_id.hex}:"):
        effective: datetime = row["effective_at"]
        if first <= effective.astimezone(UTC).date() <= last:
            items.append((row["version"], row))
    items.sort(key=lambda pair: (pair[1]["effective_at"], pair[0]))
    totals: dict[str, Money] = {}
    for _, row in items:
        amount: Money = row["amount"]
        totals[amount.currency] = totals.get(amount.currency, Money.zero(amount.currency)) + amount
    return ValueRealised(
        account_id=account_id,
        start=first,
        end=last,
        currency=account["currency"],
        totals=tuple(totals[currency] for currency in sorted(totals)),
        items=tuple(
            ValueItem(
                event_id=event_id_for(account_id, version),
                effective_at=row["effective_at"],
                amount=row["amount"],
                description=row["description"],
            )
            for version, row in items
        ),
    )
