"""Importing CRM exports: what the rows become, exactly once, and how bad rows are handled."""

from __future__ import annotations

import csv
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from acctdomain import AccountService
from acctdomain.domain import AccountStatus, Money, account_id_for
from acctdomain.errors import InvalidValue
from acctdomain.importing import REJECTS_HEADER, import_files, write_rejects
from acctdomain.plugins import AuthorizationRequest, Denial, PluginHost, hookimpl

DATA = Path(__file__).parent / "data" / "import"
KINDS = ("accounts", "activities", "opportunities", "tickets", "surveys")
GOOD = [(kind, DATA / f"{kind}.csv") for kind in KINDS]
ACME = account_id_for("crm:0017Q00000AbCdE")
BIRCH = account_id_for("crm:0017Q00000FgHiJ")
COBALT = account_id_for("crm:0017Q00000KlMnO")


def stored(service: AccountService) -> int:
    """The number of events in the store (every aggregate)."""
    return service.recorder.max_notification_id() or 0


def test_rows_become_the_accounts_history(service: AccountService) -> None:
    report = import_files(service, GOOD)
    assert report.errors == ()
    assert report.rows == 22
    assert report.rows_rejected == 0
    acme = service.get_account(ACME)
    assert acme.name == "Acme Logistics"
    assert acme.external_key == "crm:0017Q00000AbCdE"
    assert acme.manager == "Ana Ruiz"
    assert acme.manager_type.value == "strategic"
    assert acme.status is AccountStatus.ACTIVE
    assert acme.arr == Money(Decimal("135000.00"), "EUR")  # contract 120,000 + upsell 15,000
    assert acme.contact_count == 2
    assert [o.status.value for o in acme.opportunities] == ["won", "open"]
    (issue,) = acme.issues
    assert issue.severity.value == "critical"
    assert issue.resolved_at is not None
    assert acme.latest_nps is not None
    assert acme.latest_nps.value == 9
    birch = service.get_account(BIRCH)
    assert birch.arr == Money(52000, "USD")  # renewed at the new amount
    assert [o.status.value for o in birch.opportunities] == ["lost"]
    cobalt = service.get_account(COBALT)
    assert cobalt.status is AccountStatus.CHURNED
    assert cobalt.churn_reason is not None
    assert cobalt.churn_reason.value == "competitor"
    events = service.history(ACME)
    assert {e.actor for e in events} == {"crm-import"}
    assert len({e.correlation_id for e in events}) == 1


def test_importing_the_same_files_again_appends_nothing(service: AccountService) -> None:
    first = import_files(service, GOOD)
    before = stored(service)
    again = import_files(service, GOOD)
    assert stored(service) == before
    assert again.events_appended == 0
    assert again.transactions == 0
    assert again.commands_already_imported == first.commands_applied
    assert again.errors == ()


def test_a_later_export_adds_only_what_is_new(
    memory_service: AccountService, tmp_path: Path
) -> None:
    import_files(memory_service, GOOD)
    later = tmp_path / "opportunities.csv"
    text = (DATA / "opportunities.csv").read_text()
    later.write_text(
        text.replace(
            "0063,0017Q00000AbCdE,Cross-sell,Negotiation,30000",
            "0063,0017Q00000AbCdE,Cross-sell,Closed Won,30000",
        )
    )
    before = stored(memory_service)
    report = import_files(memory_service, [("opportunities", later)])
    assert report.errors == ()
    assert report.commands_applied == 1  # the win; the offer was imported before
    assert stored(memory_service) == before + 3  # won + cross-sold + the ledger entry
    assert memory_service.get_account(ACME).arr == Money(Decimal("165000.00"), "EUR")


def test_a_record_changed_since_its_import_is_rejected(
    memory_service: AccountService, tmp_path: Path
) -> None:
    import_files(memory_service, GOOD)
    changed = tmp_path / "surveys.csv"
    changed.write_text((DATA / "surveys.csv").read_text().replace("NPS,9,", "NPS,7,"))
    before = stored(memory_service)
    report = import_files(memory_service, [("surveys", changed)])
    assert stored(memory_service) == before
    (error,) = report.errors
    assert (error.line, error.column) == (2, "Response ID")
    assert "imported before with other values" in error.reason


def _bad_report(service: AccountService, **options: Any) -> Any:
    return import_files(
        service,
        [("accounts", DATA / "accounts.csv"), ("activities", DATA / "bad" / "activities.csv")],
        **options,
    )


def test_bad_rows_are_reported_with_file_line_column_and_reason(
    service: AccountService,
) -> None:
    report = _bad_report(service)
    where = {(e.line, e.column): e.reason for e in report.errors}
    assert set(where) == {
        (3, "Type"),
        (4, "Date"),
        (5, "Date"),
        (6, "Account ID"),
        (7, "Direction"),
        (8, ""),
        (9, "Activity ID"),
        (10, "Duration (min)"),
    }
    assert "Carrier pigeon" in where[3, "Type"]
    assert "before the account was opened" in where[5, "Date"]
    assert "no such account" in where[6, "Account ID"]
    assert "7 cells, the header 7" not in where[8, ""]
    assert "cells" in where[8, ""]
    assert "first at activities.csv line 2" in where[9, "Activity ID"]
    assert all(e.file.endswith("bad/activities.csv") for e in report.errors)
    # The good rows went in: the three accounts and the one good activity.
    assert report.committed
    assert report.rows_rejected == 8
    assert service.get_account(ACME).contact_count == 1
    (summary,) = [f for f in report.files if f.kind == "activities"]
    assert (summary.rows, summary.rejected) == (9, 8)


def test_rejected_rows_are_written_as_csv(memory_service: AccountService, tmp_path: Path) -> None:
    report = _bad_report(memory_service)
    out = tmp_path / "rejects.csv"
    write_rejects(out, report.errors)
    with out.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == REJECTS_HEADER
    assert [int(row[1]) for row in rows[1:]] == [3, 4, 5, 6, 7, 8, 9, 10]
    assert rows[1][2:] == ["Type", report.errors[0].reason]


def test_all_or_nothing_appends_nothing_when_a_row_is_bad(service: AccountService) -> None:
    report = _bad_report(service, all_or_nothing=True)
    assert stored(service) == 0
    assert not report.committed
    assert report.events_appended == 0
    assert len(report.errors) == 6  # rows bad in themselves; the domain was not asked


def test_all_or_nothing_appends_nothing_when_the_domain_refuses_a_row(
    memory_service: AccountService, tmp_path: Path
) -> None:
    early = tmp_path / "activities.csv"
    early.write_text(
        "Activity ID,Account ID,Type,Date\n"
        "A1,0017Q00000AbCdE,Call,2024-02-01\n"
        "A2,0017Q00000AbCdE,Call,2020-01-01\n"
    )
    report = import_files(
        memory_service,
        [("accounts", DATA / "accounts.csv"), ("activities", early)],
        all_or_nothing=True,
    )
    assert stored(memory_service) == 0
    assert not report.committed
    ((line, column),) = [(e.line, e.column) for e in report.errors]
    assert (line, column) == (3, "Date")


def test_all_or_nothing_imports_everything_when_every_row_is_good(
    memory_service: AccountService,
) -> None:
    report = import_files(memory_service, GOOD, all_or_nothing=True)
    assert report.committed
    assert report.transactions == 1
    assert report.errors == ()
    assert memory_service.get_account(ACME).contact_count == 2


def test_a_ticket_step_refused_stops_the_rows_later_steps(
    memory_service: AccountService, tmp_path: Path
) -> None:
    import_files(memory_service, [("accounts", DATA / "accounts.csv")])
    tickets = tmp_path / "tickets.csv"
    tickets.write_text(
        "Ticket ID,Account ID,Priority,Status,Created,First Response,Resolved,Subject\n"
        "9,0017Q00000AbCdE,High,Solved,2023-01-01T00:00:00Z,2023-01-01T01:00:00Z,"
        "2023-01-02T00:00:00Z,Too early\n"
        "10,0017Q00000AbCdE,High,Closed,2024-05-01T00:00:00Z,,,No resolved time\n"
        "11,0017Q00000AbCdE,High,Open,2024-05-01T00:00:00Z,2024-04-01T00:00:00Z,,Answer first\n"
    )
    report = import_files(memory_service, [("tickets", tickets)])
    assert [(e.line, e.column) for e in report.errors] == [
        (2, "Created"),
        (3, "Resolved"),
        (4, "First Response"),
    ]
    assert report.commands_skipped == 2  # the response and resolution of ticket 9
    assert memory_service.get_account(ACME).issues == ()


def test_opportunity_refusals_name_the_column(
    memory_service: AccountService, tmp_path: Path
) -> None:
    import_files(memory_service, [("accounts", DATA / "accounts.csv")])
    before = stored(memory_service)
    deals = tmp_path / "deals.csv"
    deals.write_text(
        "Deal ID,Company ID,Deal Type,Deal Stage,Amount,Currency,Create Date,Close Date,"
        "Product Name\n"
        "D1,0017Q00000AbCdE,Upsell,Closed Won,100,EUR,2024-02-01,2024-02-10,Core\n"
        "D2,0017Q00000AbCdE,New Business,Closed Won,100,USD,2024-02-01,2024-02-10,Core\n"
        "D3,0017Q00000AbCdE,New Business,Closed Won,100,EUR,2024-02-01,2024-01-10,Core\n"
        "D4,0017Q00000AbCdE,Renewal,Closed Won,100,EUR,2024-02-01,2024-03-10,Core\n"
    )
    report = import_files(memory_service, [("opportunities", deals)])
    reasons = {e.line: (e.column, e.reason) for e in report.errors}
    assert reasons[2][0] == "Deal Stage"
    assert "no contract" in reasons[2][1]
    assert reasons[3][0] == "Currency"
    assert "USD" in reasons[3][1]
    assert reasons[4][0] == "Close Date"
    assert "before Created Date" in reasons[4][1]
    assert reasons[5][0] == "Deal Stage"  # a renewal before any contract
    assert stored(memory_service) == before


def test_a_denied_import_appends_nothing_and_names_the_actor(tmp_path: Path) -> None:
    class ReadOnly:
        @hookimpl
        def acctdomain_authorize(self, request: AuthorizationRequest) -> Denial | None:
            if request.command == "log_contact":
                return Denial("importers may not log contacts")
            return None

    host = PluginHost(entry_points=False, plugins=[("read-only", ReadOnly())])
    service = AccountService("memory:", plugins=host)
    try:
        report = import_files(service, GOOD[:2], actor="bulk-bot")
        assert {e.column for e in report.errors} == {""}
        assert all("importers may not log contacts" in e.reason for e in report.errors)
        assert service.get_account(ACME).contact_count == 0
    finally:
        service.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"Account ID,Name\n1,x\n", "missing column(s) 'Industry'"),
        (b"Account ID,Account Name,Name,Industry\n", "both give 'Account Name'"),
        ("Account ID,Account Name\nAcme,M\xfcller\n".encode("latin-1"), "is not UTF-8"),
        (
            b"Account ID,Account Name,Industry,Segment,Account Owner,Currency,Created Date\n"
            b'1,"quoted"then,x,SMB,A,EUR,2024-01-01\n',
            "line 2: malformed CSV",
        ),
    ],
)
def test_a_file_that_cannot_be_imported_is_refused_before_anything_is_appended(
    memory_service: AccountService, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "accounts.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidValue) as caught:
        import_files(memory_service, [("activities", DATA / "activities.csv"), ("accounts", path)])
    assert message in caught.value.reason
    assert stored(memory_service) == 0


def test_unknown_kinds_missing_files_and_no_files_are_refused(
    memory_service: AccountService, tmp_path: Path
) -> None:
    with pytest.raises(InvalidValue, match="not one of"):
        import_files(memory_service, [("leads", DATA / "accounts.csv")])
    with pytest.raises(InvalidValue, match="no such file"):
        import_files(memory_service, [("accounts", tmp_path / "none.csv")])
    with pytest.raises(InvalidValue, match="at least one file"):
        import_files(memory_service, [])
    with pytest.raises(InvalidValue, match="actor"):
        import_files(memory_service, GOOD, actor=" ")
    with pytest.raises(InvalidValue, match="source"):
        import_files(memory_service, GOOD, source="")
    assert stored(memory_service) == 0


def test_hubspot_headings_and_a_bom_are_understood(
    memory_service: AccountService, tmp_path: Path
) -> None:
    companies = tmp_path / "companies.csv"
    companies.write_text(
        "\ufeffRecord ID,Company name,Industry,Tier,Company owner,Currency Code,Create Date\n"
        "42,Delta,Software,Enterprise,Dee Jones,CHF,2024-01-01 08:00:00\n",
        encoding="utf-8",
    )
    report = import_files(memory_service, [("accounts", companies)], source="hubspot")
    assert report.errors == ()
    delta = memory_service.get_account(account_id_for("hubspot:42"))
    assert (delta.name, delta.currency, delta.segment.value) == ("Delta", "CHF", "enterprise")


def test_a_copy_of_the_files_elsewhere_is_the_same_import(
    memory_service: AccountService, tmp_path: Path
) -> None:
    import_files(memory_service, GOOD)
    before = stored(memory_service)
    for _kind, path in GOOD:
        shutil.copy(path, tmp_path / path.name)
    again = import_files(memory_service, [(kind, tmp_path / f"{kind}.csv") for kind in KINDS])
    assert again.events_appended == 0
    assert stored(memory_service) == before
