"""Value objects: validation, exact money arithmetic, scores, enums and derived ids."""

from __future__ import annotations

from decimal import Decimal

import pytest

from acctdomain import CesScore, CsatScore, Money, NpsScore, ProductLine, account_id_for
from acctdomain.domain.values import Channel, require_enum
from acctdomain.errors import CurrencyMismatch, InvalidValue


def test_money_keeps_exact_decimal_amounts() -> None:
    total = Money("0.10", "EUR") + Money("0.20", "EUR")
    assert total == Money(Decimal("0.30"), "EUR")
    assert total.amount == Decimal("0.30")


def test_money_accepts_int_and_str_amounts() -> None:
    assert Money(100, "USD") == Money("100", "USD")


@pytest.mark.parametrize("amount", [0.1, 1.0, True])
def test_money_refuses_floats_and_bools(amount: object) -> None:
    with pytest.raises(InvalidValue) as refused:
        Money(amount, "EUR")  # type: ignore[arg-type]
    assert refused.value.field == "amount"


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "ten", ""])
def test_money_refuses_non_finite_or_non_numeric_amounts(amount: str) -> None:
    with pytest.raises(InvalidValue, match="amount"):
        Money(amount, "EUR")


@pytest.mark.parametrize("currency", ["eur", "EURO", "XXX", "", 978])
def test_money_refuses_unknown_currency_codes(currency: object) -> None:
    with pytest.raises(InvalidValue) as refused:
        Money(1, currency)  # type: ignore[arg-type]
    assert refused.value.field == "currency"


def test_adding_different_currencies_is_refused() -> None:
    with pytest.raises(CurrencyMismatch, match="EUR and USD"):
        Money(1, "EUR") + Money(1, "USD")


def test_subtracting_different_currencies_is_refused() -> None:
    with pytest.raises(CurrencyMismatch):
        Money(1, "EUR") - Money(1, "USD")


def test_comparing_different_currencies_is_refused() -> None:
    with pytest.raises(CurrencyMismatch):
        assert Money(1, "EUR") < Money(2, "USD")


def test_money_compares_and_scales_within_one_currency() -> None:
    assert Money(1, "EUR") < Money(2, "EUR") <= Money(2, "EUR")
    assert Money("2.50", "EUR") * 2 == Money("5.00", "EUR")
    assert 2 * Money(3, "EUR") == Money(6, "EUR")
    assert -Money(3, "EUR") == Money(-3, "EUR")
    assert Money.zero("GBP").is_zero


def test_money_refuses_float_factor() -> None:
    with pytest.raises(InvalidValue, match="factor"):
        Money(1, "EUR") * 1.5  # type: ignore[operator]


def test_money_refuses_arithmetic_with_plain_numbers() -> None:
    with pytest.raises(InvalidValue):
        Money(1, "EUR") + 1  # type: ignore[operator]


@pytest.mark.parametrize(
    ("score_type", "low", "high"), [(NpsScore, 0, 10), (CsatScore, 1, 5), (CesScore, 1, 7)]
)
def test_scores_accept_their_range_and_refuse_outside(
    score_type: type[NpsScore | CsatScore | CesScore], low: int, high: int
) -> None:
    assert score_type(low).value == low
    assert score_type(high).value == high
    for bad in (low - 1, high + 1):
        with pytest.raises(InvalidValue, match="outside the range"):
            score_type(bad)


@pytest.mark.parametrize("value", ["9", 9.0, True, None])
def test_scores_refuse_non_integers(value: object) -> None:
    with pytest.raises(InvalidValue, match="integer"):
        NpsScore(value)  # type: ignore[arg-type]


def test_product_line_refuses_negative_arr_and_blank_product() -> None:
    with pytest.raises(InvalidValue, match="arr"):
        ProductLine("core", Money(-1, "EUR"))
    with pytest.raises(InvalidValue, match="product"):
        ProductLine("  ", Money(1, "EUR"))


def test_enum_coercion_accepts_members_and_values_and_names_the_field() -> None:
    assert require_enum("channel", Channel, "qbr") is Channel.QBR
    assert require_enum("channel", Channel, Channel.EMAIL) is Channel.EMAIL
    with pytest.raises(InvalidValue, match="channel: 'fax' is not one of"):
        require_enum("channel", Channel, "fax")
    with pytest.raises(InvalidValue, match="channel"):
        require_enum("channel", Channel, 3)


def test_account_id_from_external_key_is_deterministic_and_distinct() -> None:
    assert account_id_for("crm:42") == account_id_for("crm:42")
    assert account_id_for("crm:42") != account_id_for("crm:43")
    assert account_id_for("crm:42") != account_id_for("CRM:42")


def test_account_id_from_blank_key_is_refused() -> None:
    with pytest.raises(InvalidValue, match="external_key"):
        account_id_for(" ")


def test_text_that_cannot_be_stored_as_utf8_is_refused() -> None:
    with pytest.raises(InvalidValue, match="product: is not valid Unicode"):
        ProductLine("core\ud800", Money(1, "EUR"))
