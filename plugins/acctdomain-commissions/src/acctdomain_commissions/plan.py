"""The commission plan: a rate on the revenue base, and flat bonuses for reaching targets.

A plan is a frozen, validated value. :func:`load_plan` reads it from the TOML file named by
``ACCTDOMAIN_COMMISSIONS_PLAN``, or returns :data:`DEFAULT_PLAN` when the variable is unset.
Every mistake in a plan raises :class:`~acctdomain.errors.InvalidValue` naming the field
(``rate``, ``targets[1].threshold``...) and, for a file, the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, cast, get_args

import attrs

from acctdomain.domain.currencies import ISO_4217_CODES
from acctdomain.domain.values import Money
from acctdomain.errors import InvalidValue
from acctdomain_commissions.money import Conversion

__all__ = [
    "DEFAULT_PLAN",
    "PLAN_ENV_VAR",
    "CommissionPlan",
    "RenewalBasis",
    "Target",
    "TargetKpi",
    "load_plan",
    "plan_from_mapping",
]

PLAN_ENV_VAR = "ACCTDOMAIN_COMMISSIONS_PLAN"
"""Names the TOML file of the plan; unset or empty means :data:`DEFAULT_PLAN`."""

TargetKpi = Literal["renewal_rate", "nrr"]
RenewalBasis = Literal["value", "count"]

TARGET_KPIS: tuple[str, ...] = get_args(TargetKpi)
RENEWAL_BASES: tuple[str, ...] = get_args(RenewalBasis)


def _number(field: str, value: object) -> Decimal:
    """A finite Decimal from a Decimal, an int or a numeric string (never a float)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise InvalidValue(field, f"expected a number, got {type(value).__name__}")
    try:
        number = Decimal(value)
    except ArithmeticError:
        raise InvalidValue(field, f"{value!r} is not a number") from None
    if not number.is_finite():
        raise InvalidValue(field, f"must be finite, got {value!r}")
    return number


def _check_kpi(_: object, __: attrs.Attribute[str], value: object) -> None:
    if value not in TARGET_KPIS:
        raise InvalidValue("kpi", f"expected one of {list(TARGET_KPIS)}, got {value!r}")


def _check_bonus(_: object, __: attrs.Attribute[Money], value: object) -> None:
    if not isinstance(value, Money):
        raise InvalidValue("bonus", f"expected Money, got {type(value).__name__}")
    if value.is_negative:
        raise InvalidValue("bonus", f"must not be negative, got {value}")


@attrs.frozen
class Target:
    """A flat ``bonus`` paid when the manager's ``kpi`` for the period reaches ``threshold``.

    ``kpi`` is ``"renewal_rate"`` (a ratio from 0 to 1) or ``"nrr"`` (net revenue retention, a
    ratio that may exceed 1); ``threshold`` is on the same scale (0.9 means 90 %).
    """

    kpi: TargetKpi = attrs.field(validator=_check_kpi)
    threshold: Decimal = attrs.field()
    bonus: Money = attrs.field(validator=_check_bonus)

    @threshold.validator
    def _check_threshold(self, _: attrs.Attribute[Decimal], value: object) -> None:
        if not isinstance(value, Decimal):
            raise InvalidValue("threshold", f"expected a Decimal, got {type(value).__name__}")
        if not value.is_finite() or value < 0:
            raise InvalidValue("threshold", f"must be a finite number >= 0, got {value}")
        if self.kpi == "renewal_rate" and value > 1:
            raise InvalidValue("threshold", f"a renewal rate is at most 1 (100 %), got {value}")


def _rates(value: Mapping[str, Decimal]) -> dict[str, Decimal]:
    if not isinstance(value, Mapping):
        raise InvalidValue("rates", f"expected a mapping of currency to rate, got {value!r}")
    return dict(sorted(value.items()))


def _targets(value: Iterable[Target]) -> tuple[Target, ...]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise InvalidValue("targets", f"expected a sequence of Target, got {type(value).__name__}")
    return tuple(value)


@attrs.frozen
class CommissionPlan:
    """How account managers are paid on top of their base salary.

    - ``rate``: the share of the revenue base paid as commission (0.05 is 5 %), 0 to 1;
    - ``currency``: the currency of the flat bonuses (commission is paid in each account's own
      currency: amounts in different currencies are never added, except at ``rates``);
    - ``targets``: the bonuses; each met target pays its bonus (two targets on one KPI with
      different thresholds make a tiered bonus);
    - ``renewal_basis``: whether a ``renewal_rate`` target reads the rate by value (renewed
      ARR / ARR due) or by count (renewals / renewals due);
    - ``name``: shown on statements;
    - ``rates``: the plan's exchange rates, ``{"USD": Decimal("0.92")}`` meaning one USD
      counts as 0.92 of ``currency``. Only where figures in several currencies must meet
      (a ratio over a book in several currencies, the payout on the scorecard); without them
      such figures are undefined. Commission itself is always paid in the account's currency.
    """

    rate: Decimal = attrs.field()
    currency: str = attrs.field()
    targets: tuple[Target, ...] = attrs.field(converter=_targets, default=())
    renewal_basis: RenewalBasis = attrs.field(default="value")
    name: str = attrs.field(default="default")
    # Compared, not hashed (a dict): the plan stays hashable like any frozen value.
    rates: Mapping[str, Decimal] = attrs.field(factory=dict, converter=_rates, hash=False)

    @rate.validator
    def _check_rate(self, _: attrs.Attribute[Decimal], value: object) -> None:
        if not isinstance(value, Decimal):
            raise InvalidValue("rate", f"expected a Decimal, got {type(value).__name__}")
        if not (value.is_finite() and 0 <= value <= 1):
            raise InvalidValue("rate", f"must be between 0 and 1 (0.05 is 5 %), got {value}")

    @currency.validator
    def _check_currency(self, _: attrs.Attribute[str], value: object) -> None:
        if not isinstance(value, str) or value not in ISO_4217_CODES:
            raise InvalidValue("currency", f"{value!r} is not an ISO 4217 currency code")

    @targets.validator
    def _check_targets(self, _: attrs.Attribute[tuple[Target, ...]], value: object) -> None:
        seen: set[tuple[str, Decimal]] = set()
        for index, target in enumerate(cast(tuple[object, ...], value)):
            field = f"targets[{index}]"
            if not isinstance(target, Target):
                raise InvalidValue(field, f"expected a Target, got {type(target).__name__}")
            if target.bonus.currency != self.currency:
                raise InvalidValue(
                    f"{field}.bonus",
                    f"is in {target.bonus.currency}, the plan pays bonuses in {self.currency}",
                )
            if (target.kpi, target.threshold) in seen:
                raise InvalidValue(field, f"{target.kpi} >= {target.threshold} is listed twice")
            seen.add((target.kpi, target.threshold))

    @rates.validator
    def _check_rates(self, _: attrs.Attribute[Mapping[str, Decimal]], value: object) -> None:
        for code, rate in cast(Mapping[str, object], value).items():
            field = f"rates.{code}"
            if code not in ISO_4217_CODES:
                raise InvalidValue(field, f"{code!r} is not an ISO 4217 currency code")
            if code == self.currency:
                raise InvalidValue(field, f"{code} is the plan's own currency (its rate is 1)")
            if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
                raise InvalidValue(field, f"expected a Decimal above 0, got {rate!r}")

    @renewal_basis.validator
    def _check_basis(self, _: attrs.Attribute[str], value: object) -> None:
        if value not in RENEWAL_BASES:
            raise InvalidValue(
                "renewal_basis", f"expected one of {list(RENEWAL_BASES)}, got {value!r}"
            )

    @name.validator
    def _check_name(self, _: attrs.Attribute[str], value: object) -> None:
        if not isinstance(value, str) or not value.strip():
            raise InvalidValue("name", "expected non-blank text")

    @property
    def conversion(self) -> Conversion:
        """The plan's currency and rates, to combine amounts in several currencies."""
        return Conversion(self.currency, self.rates)

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (amounts and ratios as strings)."""
        return {
            "name": self.name,
            "rate": str(self.rate),
            "currency": self.currency,
            "renewal_basis": self.renewal_basis,
            "targets": [
                {
                    "kpi": target.kpi,
                    "threshold": str(target.threshold),
                    "bonus": {"amount": str(target.bonus.amount), "currency": self.currency},
                }
                for target in self.targets
            ],
            "rates": {code: str(rate) for code, rate in self.rates.items()},
        }


DEFAULT_PLAN = CommissionPlan(
    name="default",
    rate=Decimal("0.05"),
    currency="EUR",
    renewal_basis="value",
    targets=(
        Target("renewal_rate", Decimal("0.90"), Money("2000", "EUR")),
        Target("nrr", Decimal("1.05"), Money("3000", "EUR")),
    ),
)
"""5 % of the revenue base; 2,000 EUR for a renewal rate (by value) of at least 90 %, and
3,000 EUR for a net revenue retention of at least 105 %."""

_PLAN_KEYS = frozenset({"name", "rate", "currency", "renewal_basis", "targets", "rates"})
_TARGET_KEYS = frozenset({"kpi", "threshold", "bonus"})


def _no_unknown_keys(where: str, data: Mapping[str, object], allowed: frozenset[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise InvalidValue(
            f"{prefix}{unknown[0]}", f"unknown setting; expected one of {sorted(allowed)}"
        )


def _target(index: int, data: object, currency: str) -> Target:
    field = f"targets[{index}]"
    if not isinstance(data, Mapping):
        raise InvalidValue(field, f"expected a table, got {type(data).__name__}")
    _no_unknown_keys(field, data, _TARGET_KEYS)
    missing = sorted(_TARGET_KEYS - set(data))
    if missing:
        raise InvalidValue(f"{field}.{missing[0]}", "is required")
    try:
        bonus = Money(_number("bonus", data["bonus"]), currency)
        return Target(data["kpi"], _number("threshold", data["threshold"]), bonus)
    except InvalidValue as error:
        raise InvalidValue(f"{field}.{error.field}", error.reason) from None


def plan_from_mapping(data: Mapping[str, object]) -> CommissionPlan:
    """A plan from plain data (a parsed TOML document); bonuses are amounts in ``currency``.

    >>> plan_from_mapping({"rate": "0.04", "currency": "USD"}).rate
    Decimal('0.04')
    """
    _no_unknown_keys("", data, _PLAN_KEYS)
    for key in ("rate", "currency"):
        if key not in data:
            raise InvalidValue(key, "is required")
    currency = data["currency"]
    if not isinstance(currency, str) or currency not in ISO_4217_CODES:
        raise InvalidValue("currency", f"{currency!r} is not an ISO 4217 currency code")
    targets = data.get("targets", [])
    if not isinstance(targets, list):
        raise InvalidValue("targets", "expected an array of tables ([[targets]])")
    options: dict[str, Any] = {key: data[key] for key in ("name", "renewal_basis") if key in data}
    rates = data.get("rates", {})
    if not isinstance(rates, Mapping):
        raise InvalidValue("rates", "expected a table of currency = rate ([rates])")
    options["rates"] = {code: _number(f"rates.{code}", rate) for code, rate in rates.items()}
    return CommissionPlan(
        rate=_number("rate", data["rate"]),
        currency=currency,
        targets=tuple(_target(i, target, currency) for i, target in enumerate(targets)),
        **options,
    )


def load_plan(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> CommissionPlan:
    """The plan in ``path``, else in the file named by ``ACCTDOMAIN_COMMISSIONS_PLAN`` (read
    from ``env``, default ``os.environ``), else :data:`DEFAULT_PLAN`. Numbers in the file are
    read as exact decimals. A file that cannot be read or parsed is refused with the field
    ``plan`` (a path given) or ``ACCTDOMAIN_COMMISSIONS_PLAN``."""
    field = "plan"
    if path is None:
        field = PLAN_ENV_VAR
        path = (os.environ if env is None else env).get(PLAN_ENV_VAR) or None
        if path is None:
            return DEFAULT_PLAN
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidValue(
            field, f"cannot read the plan file {source}: {error.strerror or error}"
        ) from None
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as error:
        raise InvalidValue(field, f"{source} is not valid TOML: {error}") from None
    try:
        return plan_from_mapping(data)
    except InvalidValue as error:
        raise InvalidValue(error.field, f"{error.reason} (in the plan file {source})") from None
