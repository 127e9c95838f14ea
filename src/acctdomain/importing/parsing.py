"""Cells of a CRM export as typed values: every parser raises InvalidValue with a reason a
person can act on, and the importer reports it with the file, line and column."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation

from acctdomain.domain import (
    Channel,
    ChurnReason,
    Direction,
    IssueSeverity,
    ManagerType,
    Segment,
)
from acctdomain.domain.currencies import ISO_4217_CODES
from acctdomain.errors import InvalidValue

__all__ = [
    "parse_amount",
    "parse_channel",
    "parse_churn_reason",
    "parse_currency",
    "parse_direction",
    "parse_minutes",
    "parse_moment",
    "parse_opportunity_type",
    "parse_owner_type",
    "parse_score",
    "parse_segment",
    "parse_severity",
    "parse_stage",
    "parse_survey_type",
    "parse_term",
    "parse_text",
    "word",
]

_WORD = re.compile(r"[\s_\-/]+")
_AMOUNT = re.compile(r"-?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?")


def word(text: str) -> str:
    """A value reduced for matching: ``"Closed-Won "`` -> ``"closed won"``."""
    return _WORD.sub(" ", text.strip()).casefold()


def _choice(column: str, text: str, choices: Mapping[str, str], allowed: str) -> str:
    try:
        return choices[word(text)]
    except KeyError:
        raise InvalidValue(column, f"{text!r} is not one of: {allowed}") from None


def parse_text(column: str, text: str) -> str:
    """Non-blank text, stripped."""
    if not text.strip():
        raise InvalidValue(column, "must not be blank")
    return text.strip()


def parse_moment(column: str, text: str, default_zone: tzinfo = UTC) -> datetime:
    """An ISO 8601 date or time: ``2024-03-05``, ``2024-03-05 14:30``,
    ``2024-03-05T14:30:00Z``, ``2024-03-05T14:30:00+01:00``. A time without an offset (and a
    date, at midnight) is in ``default_zone``."""
    value = text.strip()
    if not value:
        raise InvalidValue(column, "must not be blank")
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=default_zone)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValue(
            column,
            f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time (2024-03-05T14:30:00Z)",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=default_zone)
    return moment


def parse_amount(column: str, text: str) -> Decimal:
    """A number > 0, with ``.`` for decimals and optional ``,`` between thousands."""
    value = text.strip()
    if not _AMOUNT.fullmatch(value):
        raise InvalidValue(column, f"{text!r} is not an amount like 12500 or 12,500.00")
    try:
        amount = Decimal(value.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern only lets numbers through
        raise InvalidValue(column, f"{text!r} is not a number") from None
    if amount <= 0:
        raise InvalidValue(column, f"must be greater than zero, got {text.strip()}")
    return amount


def parse_currency(column: str, text: str) -> str:
    """An ISO 4217 code (case-insensitive)."""
    code = text.strip().upper()
    if code not in ISO_4217_CODES:
        raise InvalidValue(column, f"{text!r} is not an ISO 4217 currency code")
    return code


def _whole(column: str, text: str, low: int, high: int, what: str) -> int:
    value = text.strip()
    if value.endswith(".0"):
        value = value[:-2]  # spreadsheets write whole numbers as 9.0
    if not re.fullmatch(r"\d+", value) or not low <= int(value) <= high:
        raise InvalidValue(column, f"{text!r} is not {what} from {low} to {high}")
    return int(value)


def parse_minutes(column: str, text: str) -> int:
    """Whole minutes, 0 to 100,000."""
    return _whole(column, text, 0, 100_000, "a whole number of minutes")


def parse_term(column: str, text: str) -> int:
    """A contract term in whole months, 1 to 120."""
    return _whole(column, text, 1, 120, "a term in whole months")


def parse_score(column: str, text: str, low: int, high: int) -> int:
    """A survey score, a whole number in ``[low, high]``."""
    return _whole(column, text, low, high, "a whole score")


_SEGMENTS = {
    "smb": Segment.SMB,
    "small business": Segment.SMB,
    "small": Segment.SMB,
    "mid market": Segment.MID_MARKET,
    "midmarket": Segment.MID_MARKET,
    "mm": Segment.MID_MARKET,
    "enterprise": Segment.ENTERPRISE,
    "ent": Segment.ENTERPRISE,
    "large enterprise": Segment.ENTERPRISE,
}


def parse_segment(column: str, text: str) -> Segment:
    """SMB (Small Business), Mid-Market, Enterprise."""
    return Segment(_choice(column, text, _SEGMENTS, "SMB, Mid-Market, Enterprise"))


def parse_owner_type(column: str, text: str) -> ManagerType:
    """Sales, Technical or Strategic; blank: Sales."""
    if not text.strip():
        return ManagerType.SALES
    choices = {m.value: m.value for m in ManagerType}
    return ManagerType(_choice(column, text, choices, "Sales, Technical, Strategic"))


_CHANNELS = {
    "call": Channel.PHONE,
    "phone": Channel.PHONE,
    "phone call": Channel.PHONE,
    "email": Channel.EMAIL,
    "e mail": Channel.EMAIL,
    "meeting": Channel.MEETING,
    "in person meeting": Channel.MEETING,
    "video call": Channel.VIDEO_CALL,
    "video": Channel.VIDEO_CALL,
    "video meeting": Channel.VIDEO_CALL,
    "qbr": Channel.QBR,
    "quarterly business review": Channel.QBR,
    "chat": Channel.CHAT,
    "linkedin message": Channel.CHAT,
    "site visit": Channel.SITE_VISIT,
    "visit": Channel.SITE_VISIT,
    "event": Channel.EVENT,
}


def parse_channel(column: str, text: str) -> Channel:
    """Call, Email, Meeting, Video Call, QBR, Chat, Site Visit, Event."""
    allowed = "Call, Email, Meeting, Video Call, QBR, Chat, Site Visit, Event"
    return Channel(_choice(column, text, _CHANNELS, allowed))


_DIRECTIONS = {
    "inbound": Direction.INBOUND,
    "incoming": Direction.INBOUND,
    "in": Direction.INBOUND,
    "outbound": Direction.OUTBOUND,
    "outgoing": Direction.OUTBOUND,
    "out": Direction.OUTBOUND,
}


def parse_direction(column: str, text: str) -> Direction:
    """Inbound (Incoming) or Outbound (Outgoing); blank: Outbound."""
    if not text.strip():
        return Direction.OUTBOUND
    return Direction(_choice(column, text, _DIRECTIONS, "Inbound, Outbound"))


_SEVERITIES = {
    "low": IssueSeverity.LOW,
    "medium": IssueSeverity.MEDIUM,
    "normal": IssueSeverity.MEDIUM,
    "high": IssueSeverity.HIGH,
    "urgent": IssueSeverity.CRITICAL,
    "critical": IssueSeverity.CRITICAL,
}


def parse_severity(column: str, text: str) -> IssueSeverity:
    """Low, Medium (Normal), High, Urgent (Critical)."""
    return IssueSeverity(_choice(column, text, _SEVERITIES, "Low, Medium, High, Urgent"))


_STAGES = {"closed won": "won", "won": "won", "closed lost": "lost", "lost": "lost"}


def parse_stage(column: str, text: str) -> str:
    """``"won"``, ``"lost"`` or, for any other non-blank stage, ``"open"``."""
    return _STAGES.get(word(parse_text(column, text)), "open")


_OPPORTUNITY_TYPES = {
    "new business": "new",
    "new": "new",
    "new customer": "new",
    "renewal": "renewal",
    "upsell": "upsell",
    "up sell": "upsell",
    "expansion": "upsell",
    "cross sell": "cross_sell",
    "crosssell": "cross_sell",
}


def parse_opportunity_type(column: str, text: str) -> str:
    """``new``, ``renewal``, ``upsell`` or ``cross_sell``."""
    allowed = "New Business, Renewal, Upsell, Cross-sell"
    return _choice(column, text, _OPPORTUNITY_TYPES, allowed)


_SURVEYS = {"nps": "nps", "csat": "csat", "ces": "ces"}


def parse_survey_type(column: str, text: str) -> str:
    """``nps``, ``csat`` or ``ces``."""
    return _choice(column, text, _SURVEYS, "NPS, CSAT, CES")


_REASONS = (
    ("price", ChurnReason.PRICE),
    ("expensive", ChurnReason.PRICE),
    ("cost", ChurnReason.PRICE),
    ("competitor", ChurnReason.COMPETITOR),
    ("budget", ChurnReason.BUDGET_CUT),
    ("fit", ChurnReason.PRODUCT_FIT),
    ("feature", ChurnReason.PRODUCT_FIT),
    ("service", ChurnReason.POOR_SERVICE),
    ("support", ChurnReason.POOR_SERVICE),
    ("acquired", ChurnReason.ACQUIRED),
    ("acquisition", ChurnReason.ACQUIRED),
    ("out of business", ChurnReason.OUT_OF_BUSINESS),
    ("bankrupt", ChurnReason.OUT_OF_BUSINESS),
)


def parse_churn_reason(text: str) -> ChurnReason:
    """The churn reason a free-text loss reason names (the first match), else ``other``."""
    lowered = word(text)
    for fragment, reason in _REASONS:
        if fragment in lowered:
            return reason
    return ChurnReason.OTHER
