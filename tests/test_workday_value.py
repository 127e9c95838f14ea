"""The ``value_realised`` read model and the ``value_realised`` view (plugin ``builtin.workday``):
the value delivered to an account in a period of whole days, per currency, item by item."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from uuid import UUID

import pytest

from acctdomain import AccountService, Money
from acctdomain.builtin.value import ValueItem, ValueRealised, item_key, value_realised
from acctdomain.errors import AccountNotFound, InvalidValue


def at(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def open_account(service: AccountService, name: str = "Acme", currency: str = "EUR") -> UUID:
    return service.open_account(
        name=name, segment="smb", industry="retail", currency=currency, manager="amy",
        manager_type="sales", actor="amy", effective_at=at(1, 1),
    ).account_id  # fmt: skip


def deliver(
    service: AccountService, account: UUID, amount: Money, what: str, when: datetime
) -> None:
    service.record_value_delivered(
        account, amount=amount, description=what, actor="amy", effective_at=when
    )


def value_of(service: AccountService, account: UUID, start: date, end: date) -> ValueRealised:
    service.catch_up()
    return value_realised(service.read_model("value_realised"), account, start=start, end=end)


def test_value_of_a_period_on_every_backend(service: AccountService) -> None:
    acme = open_account(service)
    other = open_account(service, "Other")
    deliver(service, acme, Money("1200.50", "EUR"), "invoicing automated", at(1, 31, 23))
    deliver(service, acme, Money(800, "EUR"), "fewer tickets", at(3, 31, 23))
    deliver(service, acme, Money(300, "EUR"), "after the quarter", at(4, 1, 0))
    deliver(service, acme, Money(50, "EUR"), "before the quarter", at(1, 1, 10))
    deliver(service, acme, Money(99, "EUR"), "same time, recorded later", at(3, 31, 23))
    deliver(service, other, Money(10_000, "EUR"), "another account", at(2, 1))

    quarter = value_of(service, acme, date(2026, 1, 2), date(2026, 3, 31))
    assert (quarter.account_id, quarter.start, quarter.end) == (
        acme,
        date(2026, 1, 2),
        date(2026, 3, 31),
    )
    assert quarter.currency == "EUR"
    assert quarter.totals == (Money("2099.50", "EUR"),)
    assert quarter.total() == quarter.total("EUR") == Money("2099.50", "EUR")
    # Oldest first; among equal times, in recording order.
    assert [(i.description, i.amount) for i in quarter.items] == [
        ("invoicing automated", Money("1200.50", "EUR")),
        ("fewer tickets", Money(800, "EUR")),
        ("same time, recorded later", Money(99, "EUR")),
    ]
    first = quarter.items[0]
    assert first.effective_at == at(1, 31, 23)
    [event] = [
        e for e in service.history(acme) if getattr(e, "description", None) == first.description
    ]
    assert first.event_id == event.id

    one_day = value_of(service, acme, date(2026, 4, 1), date(2026, 4, 1))  # both ends included
    assert [i.description for i in one_day.items] == ["after the quarter"]


def test_an_account_without_value_sums_to_nothing(service: AccountService) -> None:
    empty = open_account(service, "Empty", currency="USD")
    view = value_of(service, empty, date(2026, 1, 1), date(2026, 12, 31))
    assert (view.totals, view.items, view.currency) == ((), (), "USD")
    assert view.total() == Money(0, "USD")
    assert view.total("EUR") == Money(0, "EUR")


def test_days_are_utc_days_of_effective_time(memory_service: AccountService) -> None:
    service = memory_service
    acme = open_account(service)
    # 1 March 00:30 in Paris is 28 February 23:30 UTC: February's.
    paris = timezone(timedelta(hours=1))
    deliver(
        service, acme, Money(5, "EUR"), "late evening", datetime(2026, 3, 1, 0, 30, tzinfo=paris)
    )
    february = value_of(service, acme, date(2026, 2, 1), date(2026, 2, 28))
    assert february.total() == Money(5, "EUR")
    assert value_of(service, acme, date(2026, 3, 1), date(2026, 3, 31)).items == ()


def test_totals_are_per_currency_never_summed_across() -> None:
    """The read model may hold items in several currencies (one account's rows, written by
    hand here): each currency has its own total, by currency code."""
    account = UUID(int=42)

    class Rows:
        def __init__(self) -> None:
            def row(version: int, amount: Money) -> tuple[str, dict[str, object]]:
                return item_key(account, version), {
                    "amount": amount, "description": f"item {version}",
                    "effective_at": at(2, version), "version": version,
                }  # fmt: skip

            self.items = dict(
                [row(2, Money(10, "USD")), row(3, Money(5, "EUR")), row(4, Money(7, "USD"))]
            )

        def get(self, table: str, key: str) -> dict[str, object] | None:
            return {"currency": "USD"} if (table, key) == ("accounts", account.hex) else None

        def scan(self, table: str, prefix: str = "") -> list[tuple[str, dict[str, object]]]:
            assert (table, prefix) == ("items", f"{account.hex}:")
            return sorted(self.items.items())

    view = value_realised(Rows(), account, start=date(2026, 2, 1), end=date(2026, 2, 28))
    assert view.totals == (Money(5, "EUR"), Money(17, "USD"))
    assert view.total() == Money(17, "USD")
    assert [item.amount for item in view.items] == [
        Money(10, "USD"), Money(5, "EUR"), Money(7, "USD"),
    ]  # fmt: skip
    assert isinstance(view.items[0], ValueItem)


def test_one_row_per_delivery_under_the_account_share(memory_service: AccountService) -> None:
    service = memory_service
    acme = open_account(service)
    for day in (2, 3):
        deliver(service, acme, Money(day, "EUR"), f"day {day}", at(1, day))
    service.catch_up()
    reader = service.read_model("value_realised")
    keys = [key for key, _ in reader.scan("items")]
    assert (
        keys
        == [item_key(acme, 2), item_key(acme, 3)]
        == [f"{acme.hex}:000000000002", f"{acme.hex}:000000000003"]
    )
    projection = service.plugins.projections()["value_realised"]
    assert projection.account_share(acme) == {"accounts": acme.hex, "items": f"{acme.hex}:"}
    service.projections.rebuild("value_realised", account_id=acme)
    assert [key for key, _ in reader.scan("items")] == keys


def test_bad_arguments_and_unknown_accounts_are_refused(memory_service: AccountService) -> None:
    service = memory_service
    acme = open_account(service)
    service.catch_up()
    values = service.read_model("value_realised")
    start, end = date(2026, 1, 1), date(2026, 3, 31)
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: value_realised("db", acme, start=start, end=end), "read_model"),  # type: ignore[arg-type]
        (lambda: value_realised(values, 42, start=start, end=end), "account_id"),  # type: ignore[arg-type]
        (lambda: value_realised(values, acme, start=at(1, 1), end=end), "start"),
        (lambda: value_realised(values, acme, start=start, end="2026-03-31"), "end"),  # type: ignore[arg-type]
        (lambda: value_realised(values, acme, start=end, end=start), "end"),
    ]
    for call, field in cases:
        with pytest.raises(InvalidValue) as error:
            call()
        assert error.value.field == field
    with pytest.raises(AccountNotFound, match="value_realised"):
        value_realised(values, UUID(int=5), start=start, end=end)
