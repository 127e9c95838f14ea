"""The CSV formats the importer reads: one per kind of CRM export.

Each format names its columns as CRM exports head them (Salesforce and HubSpot style), with
the other headings the same column is known by. Headings match case-insensitively and
ignoring spaces, underscores, hyphens, dots and brackets, so ``Account ID``, ``account_id``
and ``AccountId`` are one column. Columns the format does not know are ignored.
"""

from __future__ import annotations

import re

import attrs

__all__ = [
    "ACCOUNTS",
    "ACTIVITIES",
    "FORMATS",
    "OPPORTUNITIES",
    "SURVEYS",
    "TICKETS",
    "Column",
    "FileFormat",
    "normalise_heading",
]

_NOISE = re.compile(r"[\s_\-./()\[\]]+")


def normalise_heading(text: str) -> str:
    """A heading reduced to what identifies it: ``"Account ID"`` -> ``"accountid"``."""
    return _NOISE.sub("", text.strip().lstrip("\ufeff")).casefold()


@attrs.frozen
class Column:
    """One column of a format: its heading, whether it must be there, other headings."""

    name: str
    required: bool = True
    aliases: tuple[str, ...] = ()
    help: str = ""

    def headings(self) -> tuple[str, ...]:
        """Every normalised heading that names this column."""
        return tuple(normalise_heading(h) for h in (self.name, *self.aliases))


@attrs.frozen
class FileFormat:
    """The columns of one kind of export; ``id_column`` holds the CRM's record id."""

    kind: str
    title: str
    columns: tuple[Column, ...]
    id_column: str

    def column(self, name: str) -> Column:
        """The column called ``name``."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)


ACCOUNT_ID = Column(
    "Account ID",
    aliases=("Company ID", "Associated Company ID", "Account Record ID", "Associated Company"),
    help="the CRM's id of the account the record belongs to",
)

ACCOUNTS = FileFormat(
    kind="accounts",
    title="Accounts (companies)",
    id_column="Account ID",
    columns=(
        Column("Account ID", aliases=("Company ID", "Record ID"), help="the CRM's account id"),
        Column("Account Name", aliases=("Company name", "Name"), help="non-blank"),
        Column("Industry", help="non-blank"),
        Column(
            "Segment",
            aliases=("Customer Segment", "Tier", "Account Segment"),
            help="SMB / Small Business, Mid-Market, Enterprise",
        ),
        Column(
            "Account Owner",
            aliases=("Owner", "Company owner", "Account Manager"),
            help="the account manager",
        ),
        Column(
            "Owner Type",
            required=False,
            aliases=("Account Manager Type", "Owner Role"),
            help="Sales, Technical or Strategic (default Sales)",
        ),
        Column(
            "Currency",
            aliases=("Account Currency", "Currency ISO Code", "Currency Code"),
            help="ISO 4217 code of the contract currency",
        ),
        Column(
            "Created Date",
            aliases=("Create Date", "Customer Since", "Created"),
            help="when the account was opened",
        ),
    ),
)

ACTIVITIES = FileFormat(
    kind="activities",
    title="Activities (calls, emails, meetings)",
    id_column="Activity ID",
    columns=(
        Column("Activity ID", aliases=("Task ID", "Engagement ID", "Event ID", "Record ID")),
        ACCOUNT_ID,
        Column(
            "Type",
            aliases=("Activity Type", "Task Subtype", "Engagement Type"),
            help="Call, Email, Meeting, Video Call, QBR, Chat, Site Visit, Event",
        ),
        Column("Date", aliases=("Activity Date", "Timestamp", "Activity Timestamp")),
        Column(
            "Direction",
            required=False,
            aliases=("Call Direction", "Email Direction"),
            help="Inbound / Incoming or Outbound / Outgoing (default Outbound)",
        ),
        Column("Subject", required=False, aliases=("Summary", "Title", "Body Preview")),
        Column(
            "Duration",
            required=False,
            aliases=("Duration (min)", "Duration Minutes", "Call Duration"),
            help="whole minutes",
        ),
    ),
)

OPPORTUNITIES = FileFormat(
    kind="opportunities",
    title="Deals / opportunities",
    id_column="Opportunity ID",
    columns=(
        Column("Opportunity ID", aliases=("Deal ID", "Record ID")),
        ACCOUNT_ID,
        Column(
            "Type",
            aliases=("Opportunity Type", "Deal Type"),
            help="New Business, Renewal, Upsell, Cross-sell",
        ),
        Column(
            "Stage",
            aliases=("Deal Stage", "Stage Name"),
            help="Closed Won / Won, Closed Lost / Lost; anything else is open",
        ),
        Column("Amount", aliases=("Deal Amount", "ARR", "Annual Amount"), help="a number > 0"),
        Column(
            "Currency",
            required=False,
            aliases=("Opportunity Currency", "Currency ISO Code", "Deal Currency"),
            help="ISO 4217 code (default: the account's currency)",
        ),
        Column("Created Date", aliases=("Create Date", "Created")),
        Column("Close Date", aliases=("Closed Date", "Expected Close Date")),
        Column("Product", aliases=("Product Name", "Line Item")),
        Column(
            "Term Months",
            required=False,
            aliases=("Contract Term", "Term", "Contract Term Months"),
            help="new business and renewals: the term in months (default 12)",
        ),
        Column(
            "Loss Reason",
            required=False,
            aliases=("Closed Lost Reason", "Reason Lost"),
            help="free text; price, competitor, budget... map to a churn reason",
        ),
    ),
)

TICKETS = FileFormat(
    kind="tickets",
    title="Support tickets (cases)",
    id_column="Ticket ID",
    columns=(
        Column("Ticket ID", aliases=("Case Number", "Case ID", "Record ID")),
        ACCOUNT_ID,
        Column(
            "Priority",
            aliases=("Severity", "Ticket Priority"),
            help="Low, Medium / Normal, High, Urgent / Critical",
        ),
        Column(
            "Status",
            required=False,
            aliases=("Ticket Status", "Case Status"),
            help="Solved / Closed / Resolved need a Resolved time",
        ),
        Column("Created", aliases=("Created Date", "Create Date", "Date/Time Opened")),
        Column(
            "First Response",
            required=False,
            aliases=("First Response Time", "First Reply", "First Response Date"),
        ),
        Column(
            "Resolved",
            required=False,
            aliases=("Resolved Date", "Closed Date", "Date/Time Closed", "Solved At"),
        ),
        Column("Subject", aliases=("Ticket name", "Title")),
        Column(
            "Category",
            required=False,
            aliases=("Case Reason", "Ticket Category", "Type"),
            help="default: support",
        ),
    ),
)

SURVEYS = FileFormat(
    kind="surveys",
    title="Survey responses (NPS, CSAT, CES)",
    id_column="Response ID",
    columns=(
        Column("Response ID", aliases=("Submission ID", "Survey Response ID", "Record ID")),
        ACCOUNT_ID,
        Column("Type", aliases=("Survey Type",), help="NPS (0-10), CSAT (1-5), CES (1-7)"),
        Column("Score", aliases=("Rating", "Answer")),
        Column("Date", aliases=("Submitted At", "Response Date", "Submission Date")),
        Column("Respondent", required=False, aliases=("Email", "Contact", "Respondent Email")),
        Column("Comment", required=False, aliases=("Feedback", "Comments", "Verbatim")),
    ),
)

FORMATS: dict[str, FileFormat] = {
    f.kind: f for f in (ACCOUNTS, ACTIVITIES, OPPORTUNITIES, TICKETS, SURVEYS)
}
"""Every format by kind, in the order files of those kinds are applied."""
