"""Import CRM exports (CSV) into the book: rows to commands, applied in bulk, exactly once.

Each row of a file maps to one to three commands, each keyed by ``<source>:<kind>:<record
id>:<step>`` so that importing the same file again appends nothing (see
:mod:`acctdomain.application.bulk`). A row is checked whole first; a bad cell rejects the row
with its file, line, column and reason. The commands of one account, from every file, are
applied in business-time order (the account's opening first).
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs

from acctdomain.application.bulk import BulkCommand, BulkResult, bulk_write
from acctdomain.application.idempotency import derived_id
from acctdomain.domain import (
    Account,
    CesScore,
    CsatScore,
    Money,
    NpsScore,
    OpportunityKind,
    ProductLine,
    account_id_for,
)
from acctdomain.errors import (
    AccountNotFound,
    AcctDomainError,
    CommandRejected,
    CurrencyMismatch,
    IdempotencyKeyReused,
    InvalidValue,
)
from acctdomain.importing import parsing as p
from acctdomain.importing.formats import FORMATS, FileFormat, normalise_heading

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = [
    "REJECTS_HEADER",
    "FileSummary",
    "ImportReport",
    "RowError",
    "import_files",
    "write_rejects",
]

REJECTS_HEADER = ("file", "line", "column", "reason")
"""The header of the rejected-rows CSV that :func:`write_rejects` writes."""

Progress = Callable[[str, int, int], None]


@attrs.frozen
class RowError:
    """A row that was not imported: where it is and why. ``line`` is the line the row starts
    on (1 is the header); ``column`` is the heading as the file has it ("" for the row as a
    whole)."""

    file: str
    line: int
    column: str
    reason: str


@attrs.frozen
class FileSummary:
    """One file of an import: its rows (without the header) and those rejected."""

    path: str
    kind: str
    rows: int
    rejected: int


@attrs.frozen
class ImportReport:
    """What an import did. With ``all_or_nothing`` and a bad row, ``committed`` is False and
    nothing was appended (``events_appended`` is 0)."""

    files: tuple[FileSummary, ...]
    rows: int
    rows_rejected: int
    commands_applied: int
    commands_already_imported: int
    commands_skipped: int
    events_appended: int
    accounts_changed: int
    transactions: int
    committed: bool
    all_or_nothing: bool
    errors: tuple[RowError, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the ``--json`` output of ``acctdomain import``)."""
        data = attrs.asdict(self, recurse=True)
        data["files"] = [attrs.asdict(f) for f in self.files]
        data["errors"] = [attrs.asdict(e) for e in self.errors]
        return data


@attrs.frozen
class _Row:
    """Where a row is, for the commands it maps to (their ``tag``)."""

    file: int
    line: int


@attrs.define
class _File:
    path: Path
    format: FileFormat
    headings: dict[str, str]  # column name -> heading as written in the file
    positions: dict[str, int]  # column name -> index in a row
    width: int  # cells in the header
    rows: int = 0
    rejected: int = 0


_FIELD_COLUMNS: dict[str, str] = {
    "name": "Account Name",
    "industry": "Industry",
    "segment": "Segment",
    "manager": "Account Owner",
    "manager_type": "Owner Type",
    "channel": "Type",
    "direction": "Direction",
    "summary": "Subject",
    "duration_minutes": "Duration",
    "product": "Product",
    "estimated_arr": "Amount",
    "arr": "Amount",
    "added_arr": "Amount",
    "lines": "Amount",
    "due_on": "Close Date",
    "term_end": "Term Months",
    "title": "Subject",
    "severity": "Priority",
    "category": "Category",
    "respondent": "Respondent",
    "comment": "Comment",
    "score": "Score",
    "status": "Stage",
}

# The column of each command's effective time, by kind of file.
_TIME_COLUMNS: dict[str, str] = {
    "open_account": "Created Date",
    "log_contact": "Date",
    "record_feedback": "Date",
    "raise_issue": "Created",
    "respond_to_issue": "First Response",
    "resolve_issue": "Resolved",
    "offer_opportunity": "Created Date",
    "mark_renewal_due": "Created Date",
    "win_opportunity": "Close Date",
    "lose_opportunity": "Close Date",
    "start_contract": "Close Date",
    "renew": "Close Date",
    "churn": "Close Date",
}

_SCORES: dict[str, type[NpsScore | CsatScore | CesScore]] = {
    "nps": NpsScore,
    "csat": CsatScore,
    "ces": CesScore,
}


def import_files(
    service: AccountService,
    files: Sequence[tuple[str, str | Path]],
    *,
    actor: str = "crm-import",
    source: str = "crm",
    all_or_nothing: bool = False,
    default_zone: tzinfo = UTC,
    progress: Progress | None = None,
) -> ImportReport:
    """Import ``files``, each a ``(kind, path)`` with a kind of
    :data:`~acctdomain.importing.formats.FORMATS`.

    Good rows are imported and bad ones reported in ``errors`` (write them out with
    :func:`write_rejects`); with ``all_or_nothing`` nothing is appended unless every row is
    good. ``source`` prefixes the CRM's ids (accounts get ``external_key`` ``<source>:<Account
    ID>``); ``default_zone`` is the zone of times written without an offset. ``progress(phase,
    done, total)`` reports ``"reading"`` (rows) and ``"writing"`` (commands).

    Raises InvalidValue for a file that cannot be imported at all (missing, not UTF-8 CSV, a
    required column missing), before anything is appended.
    """
    source = p.parse_text("source", source) if isinstance(source, str) else source
    if not isinstance(source, str):
        raise InvalidValue("source", "expected text")
    opened = [_open(kind, Path(path)) for kind, path in files]
    if not opened:
        raise InvalidValue("files", "give at least one file to import")
    order = {kind: number for number, kind in enumerate(FORMATS)}
    opened.sort(key=lambda f: order[f.format.kind])
    errors: list[RowError] = []
    groups: dict[UUID, list[BulkCommand]] = defaultdict(list)
    seen: dict[tuple[str, str], tuple[str, int]] = {}
    rows = 0
    for number, file in enumerate(opened):
        for line, cells in _records(file, errors):
            rows += 1
            row = _Row(number, line)
            try:
                values = _cells(file, cells)
                record_id = p.parse_text(file.format.id_column, values[file.format.id_column])
                first = seen.setdefault((file.format.kind, record_id), (file.path.name, line))
                if first != (file.path.name, line):
                    raise InvalidValue(
                        file.format.id_column,
                        f"{record_id!r} is in the import twice (first at {first[0]} line "
                        f"{first[1]})",
                    )
                commands = _MAPPERS[file.format.kind](values, record_id, source, default_zone, row)
            except InvalidValue as error:
                errors.append(_row_error(file, line, error.field, error.reason))
                file.rejected += 1
                continue
            for command in commands:
                groups[command.account_id].append(command)
            if progress is not None and rows % 1000 == 0:
                progress("reading", rows, 0)
    if progress is not None:
        progress("reading", rows, rows)
    if all_or_nothing and errors:
        return _report(opened, errors, BulkResult(committed=False), all_or_nothing)
    total = sum(len(commands) for commands in groups.values())
    done = 0

    def written(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress("writing", done, total)

    result = bulk_write(
        service,
        _ordered(groups),
        actor=actor,
        all_or_nothing=all_or_nothing,
        progress=written,
    )
    for refusal in result.refused:
        row = refusal.command.tag
        assert isinstance(row, _Row)
        file = opened[row.file]
        file.rejected += 1
        column, reason = _explain(file, refusal.command, refusal.error)
        errors.append(RowError(str(file.path), row.line, column, reason))
    errors.sort(key=lambda e: (e.file, e.line))
    return _report(opened, errors, result, all_or_nothing)


def write_rejects(path: str | Path, errors: Sequence[RowError]) -> None:
    """Write ``errors`` as CSV: ``file,line,column,reason``, one row per rejected row."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(REJECTS_HEADER)
        writer.writerows((e.file, e.line, e.column, e.reason) for e in errors)


# --- files ------------------------------------------------------------------------------------


def _open(kind: str, path: Path) -> _File:
    if kind not in FORMATS:
        raise InvalidValue("kind", f"{kind!r} is not one of: {', '.join(FORMATS)}")
    if not path.is_file():
        raise InvalidValue(str(path), "there is no such file")
    file_format = FORMATS[kind]
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle, strict=True), None)
    except UnicodeDecodeError:
        raise InvalidValue(str(path), "is not UTF-8 text") from None
    except (OSError, csv.Error) as error:
        raise InvalidValue(str(path), f"cannot be read as CSV: {error}") from None
    if not header or not any(cell.strip() for cell in header):
        raise InvalidValue(str(path), "is empty: expected a header row")
    positions = {
        normalise_heading(cell): index for index, cell in reversed(list(enumerate(header)))
    }
    headings: dict[str, str] = {}
    missing: list[str] = []
    for column in file_format.columns:
        found = [h for h in column.headings() if h in positions]
        if len(found) > 1:
            names = " and ".join(repr(header[positions[h]]) for h in found)
            raise InvalidValue(str(path), f"columns {names} both give {column.name!r}")
        if found:
            headings[column.name] = header[positions[found[0]]]
        elif column.required:
            missing.append(column.name)
    if missing:
        raise InvalidValue(
            str(path),
            f"is not a valid {kind} export: missing column(s) {', '.join(map(repr, missing))} "
            f"(found: {', '.join(repr(h) for h in header)})",
        )
    return _File(
        path,
        file_format,
        headings,
        {name: positions[normalise_heading(heading)] for name, heading in headings.items()},
        len(header),
    )


def _records(file: _File, errors: list[RowError]) -> Iterator[tuple[int, list[str]]]:
    """The file's rows after the header, with the line each starts on; blank lines skipped."""
    try:
        with open(file.path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, strict=True)
            next(reader)
            while True:
                line = reader.line_num + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as error:
                    raise InvalidValue(
                        str(file.path), f"line {line}: malformed CSV: {error}"
                    ) from None
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                if len(cells) != file.width:
                    file.rows += 1
                    file.rejected += 1
                    errors.append(
                        RowError(
                            str(file.path),
                            line,
                            "",
                            f"the row has {len(cells)} cells, the header {file.width}",
                        )
                    )
                    continue
                file.rows += 1
                yield line, cells
    except UnicodeDecodeError:
        raise InvalidValue(str(file.path), "is not UTF-8 text") from None


def _cells(file: _File, cells: list[str]) -> dict[str, str]:
    """The row's values by column name ("" for an optional column the file does not have)."""
    values = {name: cells[index] for name, index in file.positions.items()}
    for column in file.format.columns:
        values.setdefault(column.name, "")
    return values


def _row_error(file: _File, line: int, field: str, reason: str) -> RowError:
    return RowError(str(file.path), line, file.headings.get(field, field), reason)


def _explain(file: _File, command: BulkCommand, error: AcctDomainError) -> tuple[str, str]:
    """The column and reason of a refused command."""
    if isinstance(error, AccountNotFound):
        return (
            file.headings.get("Account ID", "Account ID"),
            "no such account: not opened by an accounts file of this import nor in the store",
        )
    if isinstance(error, IdempotencyKeyReused):
        return (
            file.headings[file.format.id_column],
            "was imported before with other values; an import does not rewrite history "
            "(record the change with a command)",
        )
    assert isinstance(error, CommandRejected)
    if error.field == "effective_at":
        name = _TIME_COLUMNS.get(command.command, "")
    elif isinstance(error, CurrencyMismatch) and "Currency" in file.headings:
        name = "Currency"
    elif error.field == "account_id":
        name = "Account ID"
    else:
        name = _FIELD_COLUMNS.get(error.field, "")
    if name and name not in file.headings:
        name = ""
    return file.headings.get(name, ""), f"{error.reason} ({command.command})"


def _ordered(groups: Mapping[UUID, list[BulkCommand]]) -> Iterator[tuple[UUID, list[BulkCommand]]]:
    """Each account's commands in business-time order, its opening first."""
    for account_id, commands in groups.items():
        commands.sort(key=lambda c: (c.command != "open_account", c.effective_at))
        yield account_id, commands


def _report(
    files: list[_File],
    errors: list[RowError],
    result: BulkResult,
    all_or_nothing: bool,
) -> ImportReport:
    return ImportReport(
        files=tuple(FileSummary(str(f.path), f.format.kind, f.rows, f.rejected) for f in files),
        rows=sum(f.rows for f in files),
        rows_rejected=len({(e.file, e.line) for e in errors}),
        commands_applied=result.applied,
        commands_already_imported=result.replayed,
        commands_skipped=result.skipped,
        events_appended=result.events,
        accounts_changed=result.accounts,
        transactions=result.transactions,
        committed=result.committed,
        all_or_nothing=all_or_nothing,
        errors=tuple(errors),
    )


# --- rows to commands -------------------------------------------------------------------------


def _digest(*values: object) -> str:
    return hashlib.blake2b(repr(values).encode(), digest_size=8).hexdigest()


def _command(
    command: str,
    account_id: UUID,
    at: datetime,
    arguments: Any,
    key: str,
    digest: str,
    row: _Row,
) -> BulkCommand:
    return BulkCommand(command, account_id, at, arguments, key, digest, row)


def _account(values: Mapping[str, str], source: str) -> UUID:
    return account_id_for(f"{source}:{p.parse_text('Account ID', values['Account ID'])}")


def _accounts(
    values: Mapping[str, str], record_id: str, source: str, zone: tzinfo, row: _Row
) -> list[BulkCommand]:
    arguments = {
        "name": p.parse_text("Account Name", values["Account Name"]),
        "segment": p.parse_segment("Segment", values["Segment"]),
        "industry": p.parse_text("Industry", values["Industry"]),
        "currency": p.parse_currency("Currency", values["Currency"]),
        "manager": p.parse_text("Account Owner", values["Account Owner"]),
        "manager_type": p.parse_owner_type("Owner Type", values["Owner Type"]),
        "external_key": f"{source}:{record_id}",
    }
    opened = p.parse_moment("Created Date", values["Created Date"], zone)
    key = f"{source}:account:{record_id}:opened"
    digest = _digest(*arguments.values(), opened)
    account_id = account_id_for(arguments["external_key"])
    return [_command("open_account", account_id, opened, arguments, key, digest, row)]


def _activities(
    values: Mapping[str, str], record_id: str, source: str, zone: tzinfo, row: _Row
) -> list[BulkCommand]:
    account_id = _account(values, source)
    duration = values["Duration"].strip()
    arguments = {
        "channel": p.parse_channel("Type", values["Type"]),
        "direction": p.parse_direction("Direction", values["Direction"]),
        "summary": values["Subject"].strip(),
        "stakeholder_ids": (),
        "duration_minutes": p.parse_minutes("Duration", duration) if duration else None,
    }
    at = p.parse_moment("Date", values["Date"], zone)
    key = f"{source}:activity:{record_id}"
    digest = _digest(account_id, at, *arguments.values())
    return [_command("log_contact", account_id, at, arguments, key, digest, row)]


def _surveys(
    values: Mapping[str, str], record_id: str, source: str, zone: tzinfo, row: _Row
) -> list[BulkCommand]:
    account_id = _account(values, source)
    kind = p.parse_survey_type("Type", values["Type"])
    score_class = _SCORES[kind]
    low, high = score_class.RANGE
    score = score_class(p.parse_score("Score", values["Score"], low, high))
    at = p.parse_moment("Date", values["Date"], zone)
    arguments = {
        "score": score,
        "respondent": values["Respondent"].strip(),
        "comment": values["Comment"].strip(),
    }
    key = f"{source}:survey:{record_id}"
    digest = _digest(account_id, at, *arguments.values())
    return [_command("record_feedback", account_id, at, arguments, key, digest, row)]


def _tickets(
    values: Mapping[str, str], record_id: str, source: str, zone: tzinfo, row: _Row
) -> list[BulkCommand]:
    account_id = _account(values, source)
    created = p.parse_moment("Created", values["Created"], zone)
    responded = _optional_moment("First Response", values["First Response"], zone)
    resolved = _optional_moment("Resolved", values["Resolved"], zone)
    for column, moment in (("First Response", responded), ("Resolved", resolved)):
        if moment is not None and moment < created:
            raise InvalidValue(column, f"{moment.isoformat()} is before Created")
    status = p.word(values["Status"])
    if status in ("solved", "closed", "resolved") and resolved is None:
        raise InvalidValue("Resolved", f"the ticket is {values['Status'].strip()} but has no time")
    issue_id = derived_id(f"{source}:ticket:{record_id}", "issue")
    arguments = {
        "issue_id": issue_id,
        "title": p.parse_text("Subject", values["Subject"]),
        "severity": p.parse_severity("Priority", values["Priority"]),
        "category": values["Category"].strip() or "support",
    }
    base = f"{source}:ticket:{record_id}"
    commands = [
        _command(
            "raise_issue",
            account_id,
            created,
            arguments,
            f"{base}:raised",
            _digest(account_id, created, *arguments.values()),
            row,
        )
    ]
    if responded is not None:
        commands.append(
            _command(
                "respond_to_issue",
                account_id,
                responded,
                {"issue_id": issue_id},
                f"{base}:responded",
                _digest(responded),
                row,
            )
        )
    if resolved is not None:
        commands.append(
            _command(
                "resolve_issue",
                account_id,
                resolved,
                {"issue_id": issue_id, "resolution": values["Status"].strip()},
                f"{base}:resolved",
                _digest(resolved),
                row,
            )
        )
    return commands


def _optional_moment(column: str, text: str, zone: tzinfo) -> datetime | None:
    return p.parse_moment(column, text, zone) if text.strip() else None


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover


def _money(amount: Decimal, currency: str | None) -> Callable[[Account], Money]:
    """The amount in the given currency, else in the account's contract currency."""
    return lambda account: Money(amount, currency or account.arr.currency)


def _opportunities(
    values: Mapping[str, str], record_id: str, source: str, zone: tzinfo, row: _Row
) -> list[BulkCommand]:
    account_id = _account(values, source)
    kind = p.parse_opportunity_type("Type", values["Type"])
    stage = p.parse_stage("Stage", values["Stage"])
    amount = p.parse_amount("Amount", values["Amount"])
    currency = (
        p.parse_currency("Currency", values["Currency"]) if values["Currency"].strip() else None
    )
    created = p.parse_moment("Created Date", values["Created Date"], zone)
    closed = p.parse_moment("Close Date", values["Close Date"], zone)
    if closed < created:
        raise InvalidValue("Close Date", f"{closed.date().isoformat()} is before Created Date")
    product = p.parse_text("Product", values["Product"])
    term = values["Term Months"].strip()
    months = p.parse_term("Term Months", term) if term else 12
    term_end = _add_months(closed.date(), months)
    money = _money(amount, currency)
    base = f"{source}:opportunity:{record_id}"
    close_digest = _digest(account_id, closed, amount, currency, product, months)
    commands: list[BulkCommand] = []

    def add(command: str, at: datetime, arguments: Any, step: str, digest: str) -> None:
        commands.append(_command(command, account_id, at, arguments, f"{base}:{step}", digest, row))

    if kind == "new":
        if stage == "won":
            add(
                "start_contract",
                closed,
                lambda a: {"term_end": term_end, "lines": (ProductLine(product, money(a)),)},
                "won",
                close_digest,
            )
        return commands  # an open or lost new-business deal is a prospect: nothing to record
    if kind == "renewal":
        add("mark_renewal_due", created, {"due_on": closed.date()}, "due", _digest(created, closed))
        if stage == "won":
            add(
                "renew",
                closed,
                lambda a: {"term_end": term_end, "lines": _renewed_lines(a, product, money(a))},
                "won",
                close_digest,
            )
        elif stage == "lost":
            reason = values["Loss Reason"].strip()
            add(
                "churn",
                closed,
                {"reason": p.parse_churn_reason(reason), "detail": reason},
                "lost",
                _digest(closed, reason),
            )
        return commands
    opportunity_id = derived_id(base, "opportunity")
    offer_kind = OpportunityKind.UPSELL if kind == "upsell" else OpportunityKind.CROSS_SELL
    add(
        "offer_opportunity",
        created,
        lambda a: {
            "opportunity_id": opportunity_id,
            "kind": offer_kind,
            "product": product,
            "estimated_arr": money(a),
        },
        "offered",
        _digest(account_id, created, offer_kind, product),
    )
    if stage == "won":
        add(
            "win_opportunity",
            closed,
            lambda a: {"opportunity_id": opportunity_id, "arr": money(a)},
            "won",
            close_digest,
        )
    elif stage == "lost":
        reason = values["Loss Reason"].strip()
        add(
            "lose_opportunity",
            closed,
            {"opportunity_id": opportunity_id, "reason": reason},
            "lost",
            _digest(closed, reason),
        )
    return commands


def _renewed_lines(account: Account, product: str, arr: Money) -> tuple[ProductLine, ...]:
    """The account's lines with ``product`` renewed at ``arr`` (the others as they are)."""
    lines = {line.product: line.arr for line in account.state().lines}
    if product not in lines:
        raise InvalidValue("product", f"the customer has no {product!r} to renew")
    lines[product] = arr
    return tuple(ProductLine(name, value) for name, value in lines.items())


_MAPPERS: dict[str, Callable[[Mapping[str, str], str, str, tzinfo, _Row], list[BulkCommand]]] = {
    "accounts": _accounts,
    "activities": _activities,
    "opportunities": _opportunities,
    "tickets": _tickets,
    "surveys": _surveys,
}
