"""Cells of CRM exports as typed values, and the reasons given for bad ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from acctdomain.domain import Channel, ChurnReason, Direction, IssueSeverity, ManagerType, Segment
from acctdomain.errors import InvalidValue
from acctdomain.importing import parsing as p
from acctdomain.importing.formats import FORMATS, normalise_heading


def test_dates_and_times_keep_their_offset_and_default_to_the_given_zone() -> None:
    assert p.parse_moment("Date", "2024-03-05") == datetime(2024, 3, 5, tzinfo=UTC)
    assert p.parse_moment("Date", "2024-03-05T14:30:00Z") == datetime(
        2024, 3, 5, 14, 30, tzinfo=UTC
    )
    plus_one = p.parse_moment("Date", "2024-03-05T14:30:00+01:00")
    assert plus_one.utcoffset() == timedelta(hours=1)
    paris = p.parse_moment("Date", "2024-07-01 09:00", ZoneInfo("Europe/Paris"))
    assert paris.astimezone(UTC) == datetime(2024, 7, 1, 7, 0, tzinfo=UTC)
    assert p.parse_moment("Date", "2024-07-01", timezone(timedelta(hours=-5))).hour == 0


@pytest.mark.parametrize("text", ["05/03/2024", "yesterday", "2024-13-01", "  "])
def test_a_date_that_is_not_iso_is_refused_with_the_column(text: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        p.parse_moment("Close Date", text)
    assert caught.value.field == "Close Date"


def test_amounts_accept_thousands_separators_and_refuse_the_rest() -> None:
    assert p.parse_amount("Amount", "120,000.50") == Decimal("120000.50")
    assert p.parse_amount("Amount", " 15000 ") == Decimal(15000)
    for bad in ("$15,000", "1.5e3", "12,50", "0", "-10", "abc", ""):
        with pytest.raises(InvalidValue, match="Amount"):
            p.parse_amount("Amount", bad)


def test_crm_words_map_to_the_domain_vocabulary() -> None:
    assert p.parse_segment("Segment", "Mid-Market") is Segment.MID_MARKET
    assert p.parse_segment("Segment", "Small Business") is Segment.SMB
    assert p.parse_channel("Type", "Call") is Channel.PHONE
    assert p.parse_channel("Type", "video call") is Channel.VIDEO_CALL
    assert p.parse_direction("Direction", "Incoming") is Direction.INBOUND
    assert p.parse_direction("Direction", "") is Direction.OUTBOUND
    assert p.parse_severity("Priority", "Urgent") is IssueSeverity.CRITICAL
    assert p.parse_severity("Priority", "Normal") is IssueSeverity.MEDIUM
    assert p.parse_owner_type("Owner Type", "") is ManagerType.SALES
    assert p.parse_stage("Stage", "Closed Won") == "won"
    assert p.parse_stage("Stage", "Negotiation/Review") == "open"
    assert p.parse_opportunity_type("Type", "Cross-sell") == "cross_sell"
    assert p.parse_survey_type("Type", "nps") == "nps"
    assert p.parse_churn_reason("Moved to a competitor") is ChurnReason.COMPETITOR
    assert p.parse_churn_reason("") is ChurnReason.OTHER
    assert p.parse_currency("Currency", "eur") == "EUR"


@pytest.mark.parametrize(
    ("parse", "text", "column"),
    [
        (p.parse_segment, "Galactic", "Segment"),
        (p.parse_channel, "Carrier pigeon", "Type"),
        (p.parse_direction, "Sideways", "Direction"),
        (p.parse_severity, "Meh", "Priority"),
        (p.parse_owner_type, "Wizard", "Owner Type"),
        (p.parse_opportunity_type, "Donation", "Type"),
        (p.parse_survey_type, "Vibes", "Type"),
        (p.parse_currency, "EURO", "Currency"),
        (p.parse_minutes, "-3", "Duration"),
        (p.parse_minutes, "ten", "Duration"),
        (p.parse_term, "0", "Term Months"),
        (p.parse_text, "   ", "Account Name"),
        (p.parse_stage, "", "Stage"),
    ],
)
def test_every_bad_value_names_its_column(parse: object, text: str, column: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse(column, text)  # type: ignore[operator]
    assert caught.value.field == column
    assert caught.value.reason


def test_scores_are_whole_and_in_range() -> None:
    assert p.parse_score("Score", "9", 0, 10) == 9
    assert p.parse_score("Score", "9.0", 0, 10) == 9
    for bad in ("11", "4.5", "", "x"):
        with pytest.raises(InvalidValue, match="Score"):
            p.parse_score("Score", bad, 0, 10)


def test_headings_match_whatever_their_spelling() -> None:
    assert normalise_heading("\ufeffAccount ID") == normalise_heading("account_id")
    assert normalise_heading("Duration (min)") == "durationmin"
    for file_format in FORMATS.values():
        headings = [h for column in file_format.columns for h in column.headings()]
        assert len(headings) == len(set(headings)), file_format.kind
