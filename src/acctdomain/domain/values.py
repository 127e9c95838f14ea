"""Value objects: frozen, validated, compared by value.

Every constructor validates its input and raises :class:`~acctdomain.errors.InvalidValue`
naming the field, so a malformed value never reaches an event.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, ClassVar, Self, TypeVar

import attrs

from acctdomain.domain.currencies import ISO_4217_CODES
from acctdomain.errors import CurrencyMismatch, InvalidValue

__all__ = [
    "AccountStatus",
    "CesScore",
    "Channel",
    "ChurnReason",
    "CsatScore",
    "Direction",
    "IssueSeverity",
    "ManagerType",
    "Money",
    "NpsScore",
    "OpportunityKind",
    "ProductLine",
    "Segment",
    "Sentiment",
    "StakeholderRole",
    "SurveyScore",
    "moment_of",
    "require_aware",
    "require_currency",
    "require_date",
    "require_enum",
    "require_text",
]


# --- enums -------------------------------------------------------------------------------------


class Channel(StrEnum):
    """How a contact with the customer took place."""

    EMAIL = "email"
    PHONE = "phone"
    VIDEO_CALL = "video_call"
    MEETING = "meeting"
    QBR = "qbr"  # quarterly business review
    CHAT = "chat"
    SITE_VISIT = "site_visit"
    EVENT = "event"


class Direction(StrEnum):
    """Who started a contact."""

    INBOUND = "inbound"  # the customer reached out
    OUTBOUND = "outbound"  # the account manager reached out


class IssueSeverity(StrEnum):
    """How badly an issue hurts the customer."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class StakeholderRole(StrEnum):
    """A customer-side person's part in buying and renewal decisions."""

    CHAMPION = "champion"
    ECONOMIC_BUYER = "economic_buyer"
    DECISION_MAKER = "decision_maker"
    EXECUTIVE_SPONSOR = "executive_sponsor"
    INFLUENCER = "influencer"
    TECHNICAL_BUYER = "technical_buyer"
    USER = "user"
    DETRACTOR = "detractor"


class Sentiment(StrEnum):
    """How a stakeholder feels about us."""

    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"
    UNKNOWN = "unknown"


class ManagerType(StrEnum):
    """The three kinds of account manager."""

    SALES = "sales"
    TECHNICAL = "technical"
    STRATEGIC = "strategic"


class Segment(StrEnum):
    """Customer size segment."""

    SMB = "smb"
    MID_MARKET = "mid_market"
    ENTERPRISE = "enterprise"


class OpportunityKind(StrEnum):
    """Upsell: more of a product the customer has. Cross-sell: a product it does not have."""

    UPSELL = "upsell"
    CROSS_SELL = "cross_sell"


class ChurnReason(StrEnum):
    """Why a customer left."""

    PRICE = "price"
    PRODUCT_FIT = "product_fit"
    COMPETITOR = "competitor"
    BUDGET_CUT = "budget_cut"
    POOR_SERVICE = "poor_service"
    ACQUIRED = "acquired"
    OUT_OF_BUSINESS = "out_of_business"
    OTHER = "other"


class AccountStatus(StrEnum):
    """Lifecycle of an account."""

    ONBOARDING = "onboarding"  # opened, no contract yet
    ACTIVE = "active"
    CHURNED = "churned"


E = TypeVar("E", bound=StrEnum)


# --- validators -------------------------------------------------------------------------------


def require_aware(field: str, value: object) -> datetime:
    """Return ``value`` if it is a timezone-aware datetime, else raise InvalidValue."""
    if not isinstance(value, datetime):
        raise InvalidValue(field, f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValue(field, "datetime must be timezone-aware")
    return value


def require_text(field: str, value: object, *, allow_empty: bool = False) -> str:
    """Return ``value`` if it is a string (non-blank unless ``allow_empty``)."""
    if not isinstance(value, str):
        raise InvalidValue(field, f"expected text, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise InvalidValue(field, "must not be blank")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate cannot be stored as UTF-8: refuse it here, not at save time.
        raise InvalidValue(field, "is not valid Unicode text (it has a lone surrogate)") from None
    return value


def moment_of(field: str, value: object, *, end: bool) -> datetime:
    """``value`` as a moment: an aware datetime as it is, a date as the start of that day
    (UTC), or with ``end`` its last microsecond; else InvalidValue about ``field``."""
    if isinstance(value, datetime):
        return require_aware(field, value)
    if isinstance(value, date):
        start = datetime.combine(value, datetime.min.time(), tzinfo=UTC)
        return start + timedelta(days=1) - timedelta(microseconds=1) if end else start
    raise InvalidValue(field, f"expected a date or an aware datetime, got {value!r}")


def require_date(field: str, value: object) -> date:
    """Return ``value`` if it is a date (and not a datetime)."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise InvalidValue(field, f"expected a date, got {type(value).__name__}")
    return value


def require_enum(field: str, enum: type[E], value: object) -> E:
    """Coerce ``value`` (a member or its string value) to ``enum``."""
    if isinstance(value, enum):
        return value
    allowed = ", ".join(member.value for member in enum)
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    raise InvalidValue(field, f"{value!r} is not one of: {allowed}")


# --- money ------------------------------------------------------------------------------------


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, bool | float):
        # Floats cannot hold most decimal fractions exactly; money never goes through them.
        raise InvalidValue("amount", f"expected Decimal, int or str, got {type(value).__name__}")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int | str):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise InvalidValue("amount", f"{value!r} is not a number") from None
    else:
        raise InvalidValue("amount", f"expected Decimal, int or str, got {type(value).__name__}")
    if not amount.is_finite():
        raise InvalidValue("amount", "must be finite")
    return amount


def require_currency(field: str, value: object) -> str:
    """Return ``value`` if it is an ISO 4217 currency code, else raise InvalidValue."""
    if not isinstance(value, str) or value not in ISO_4217_CODES:
        raise InvalidValue(field, f"{value!r} is not an ISO 4217 currency code")
    return value


def _check_currency(_: object, __: attrs.Attribute[str], value: str) -> None:
    require_currency("currency", value)


@attrs.frozen(order=False)
class Money:
    """An exact amount in one ISO 4217 currency.

    Arithmetic and comparison between different currencies raise CurrencyMismatch: converting
    is always an explicit step with a stated rate.

    >>> Money("1200.50", "EUR") + Money(100, "EUR")
    Money(amount=Decimal('1300.50'), currency='EUR')
    """

    amount: Decimal = attrs.field(converter=_to_decimal)
    currency: str = attrs.field(validator=_check_currency)

    @classmethod
    def zero(cls, currency: str) -> Self:
        """Zero in ``currency``."""
        return cls(Decimal(0), currency)

    def _same_currency(self, other: object, operation: str) -> Money:
        if not isinstance(other, Money):
            raise InvalidValue("amount", f"cannot {operation} Money and {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(
                "currency", f"cannot {operation} {self.currency} and {other.currency}"
            )
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._same_currency(other, "add").amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._same_currency(other, "subtract").amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, Decimal | int):
            raise InvalidValue("factor", f"expected Decimal or int, got {type(factor).__name__}")
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same_currency(other, "compare").amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same_currency(other, "compare").amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same_currency(other, "compare").amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same_currency(other, "compare").amount

    @property
    def is_zero(self) -> bool:
        """True for an amount of zero."""
        return self.amount == 0

    @property
    def is_negative(self) -> bool:
        """True for an amount below zero."""
        return self.amount < 0

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


# --- survey scores ----------------------------------------------------------------------------


def _score_validator(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    low, high = instance.RANGE
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(attribute.name, f"expected an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidValue(type(instance).__name__, f"{value} is outside the range {low}-{high}")


@attrs.frozen
class NpsScore:
    """Net Promoter Score answer: 0-10 ("how likely are you to recommend us")."""

    RANGE: ClassVar[tuple[int, int]] = (0, 10)
    value: int = attrs.field(validator=_score_validator)


@attrs.frozen
class CsatScore:
    """Customer satisfaction answer: 1-5."""

    RANGE: ClassVar[tuple[int, int]] = (1, 5)
    value: int = attrs.field(validator=_score_validator)


@attrs.frozen
class CesScore:
    """Customer effort score answer: 1-7 (7 = very easy)."""

    RANGE: ClassVar[tuple[int, int]] = (1, 7)
    value: int = attrs.field(validator=_score_validator)


SurveyScore = NpsScore | CsatScore | CesScore


# --- contract lines ---------------------------------------------------------------------------


def _check_product(_: object, __: attrs.Attribute[str], value: str) -> None:
    require_text("product", value)


def _check_arr(_: object, __: attrs.Attribute[Money], value: Money) -> None:
    if not isinstance(value, Money):
        raise InvalidValue("arr", f"expected Money, got {type(value).__name__}")
    if value.is_negative:
        raise InvalidValue("arr", f"must not be negative, got {value}")


@attrs.frozen
class ProductLine:
    """One product on the contract with its annual recurring revenue (ARR)."""

    product: str = attrs.field(validator=_check_product)
    arr: Money = attrs.field(validator=_check_arr)
