"""The scorecard's configuration: reporting currency, fixed exchange rates, gross margin.

Given in code (``AccountService(kpi_settings=KpiSettings(...))``) or read from a TOML file
(:meth:`KpiSettings.from_toml`)::

    reporting_currency = "EUR"
    gross_margin = "0.78"          # for the predictive lifetime value

    [rates]                        # 1 BASE is worth RATE QUOTE; the inverse is implied
    "USD/EUR" = "0.92"
    "GBP/EUR" = "1.17"

A service given no settings reads the file named by the environment variable
``ACCTDOMAIN_KPI_SETTINGS``, if set (:meth:`KpiSettings.from_environment`). Rates from plugins
(hook ``acctdomain_register_exchange_rates``) are asked first; this table is the default.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import attrs

from acctdomain.domain.values import require_currency
from acctdomain.errors import InvalidValue

__all__ = ["SETTINGS_ENV_VAR", "KpiSettings"]

SETTINGS_ENV_VAR = "ACCTDOMAIN_KPI_SETTINGS"
"""The environment variable naming the TOML file of a service's default settings."""


def _positive(field: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise InvalidValue(field, f"expected a decimal number as text, got {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise InvalidValue(field, f"{value!r} is not a number") from None
    if not number.is_finite() or number <= 0:
        raise InvalidValue(field, f"expected a number > 0, got {value!r}")
    return number


def _rates(value: object) -> dict[tuple[str, str], Decimal]:
    if not isinstance(value, Mapping):
        raise InvalidValue("rates", f"expected a table of 'BASE/QUOTE' = rate, got {value!r}")
    rates: dict[tuple[str, str], Decimal] = {}
    for pair, rate in value.items():
        if isinstance(pair, tuple):
            base, quote = pair
        elif isinstance(pair, str) and pair.count("/") == 1:
            base, quote = pair.split("/")
        else:
            raise InvalidValue("rates", f"expected a pair like 'USD/EUR', got {pair!r}")
        field = f"rates.{base}/{quote}"
        rates[(require_currency(field, base), require_currency(field, quote))] = _positive(
            field, rate
        )
    return rates


def _margin(value: object) -> Decimal | None:
    if value is None:
        return None
    margin = _positive("gross_margin", value)
    if margin > 1:
        raise InvalidValue("gross_margin", f"expected a fraction from 0 to 1, got {value!r}")
    return margin


@attrs.frozen
class KpiSettings:
    """``reporting_currency`` (None: money figures only for a book in one currency),
    ``rates`` (``{"USD/EUR": "0.92"}``: one USD is 0.92 EUR; the inverse is implied) and
    ``gross_margin`` (a fraction, for the predictive lifetime value; None: not configured)."""

    reporting_currency: str | None = attrs.field(default=None)
    rates: Mapping[tuple[str, str], Decimal] = attrs.field(factory=dict, converter=_rates)
    gross_margin: Decimal | None = attrs.field(default=None, converter=_margin)

    @reporting_currency.validator
    def _check_currency(self, attribute: attrs.Attribute[str | None], value: object) -> None:
        if value is not None:
            require_currency("reporting_currency", value)

    @classmethod
    def from_toml(cls, path: str | Path) -> KpiSettings:
        """The settings of a TOML file (InvalidValue naming the file if it cannot be read)."""
        try:
            data: dict[str, Any] = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise InvalidValue("kpi_settings", f"cannot read {path}: {error}") from None
        unknown = set(data) - {"reporting_currency", "rates", "gross_margin"}
        if unknown:
            raise InvalidValue("kpi_settings", f"{path}: unknown setting(s) {sorted(unknown)}")
        return cls(
            reporting_currency=data.get("reporting_currency"),
            rates=data.get("rates", {}),
            gross_margin=data.get("gross_margin"),
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> KpiSettings:
        """The settings of the file named by ``ACCTDOMAIN_KPI_SETTINGS`` (empty settings when
        it is not set; InvalidValue if the file cannot be read)."""
        path = (os.environ if environ is None else environ).get(SETTINGS_ENV_VAR, "").strip()
        return cls.from_toml(path) if path else cls()

    def fixed_rate(self, base: str, quote: str, on: date) -> Decimal | None:
        """The configured rate from ``base`` to ``quote`` (the same on every day), from the
        table or its inverse; 1 between a currency and itself; None if not configured."""
        if base == quote:
            return Decimal(1)
        direct = self.rates.get((base, quote))
        if direct is not None:
            return direct
        inverse = self.rates.get((quote, base))
        return None if inverse is None else Decimal(1) / inverse
