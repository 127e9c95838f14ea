"""``acctdomain import``: files in, a summary out, bad rows to a CSV, mistakes in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from acctdomain import AccountService
from acctdomain.cli import build_app
from acctdomain.domain import account_id_for
from acctdomain.plugins import PluginHost

runner = CliRunner()
DATA = Path(__file__).parent / "data" / "import"
KINDS = ("accounts", "activities", "opportunities", "tickets", "surveys")
EVERY_FILE = [arg for kind in KINDS for arg in (f"--{kind}", str(DATA / f"{kind}.csv"))]
JSON_KEYS = {
    "db",
    "files",
    "rows",
    "rows_rejected",
    "commands_applied",
    "commands_already_imported",
    "commands_skipped",
    "events_appended",
    "accounts_changed",
    "transactions",
    "committed",
    "all_or_nothing",
    "errors",
    "rejects_file",
    "seconds",
}


def run(*args: str) -> Result:
    return runner.invoke(build_app(PluginHost(entry_points=False)), ["import", *args])


def events(db: Path) -> int:
    service = AccountService(str(db), plugins=PluginHost(entry_points=False))
    try:
        return service.recorder.max_notification_id() or 0
    finally:
        service.close()


def as_json(result: Result, code: int = 0) -> Any:
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def test_import_into_a_new_store_then_again_appends_nothing(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    first = as_json(run(*EVERY_FILE, "--db", str(db), "--json"))
    assert set(first) == JSON_KEYS
    assert first["events_appended"] == 30
    assert first["rejects_file"] is None
    assert [f["kind"] for f in first["files"]] == list(KINDS)
    stored = events(db)
    again = as_json(run(*EVERY_FILE, "--db", str(db), "--json"))
    assert again["events_appended"] == 0
    assert again["commands_already_imported"] == first["commands_applied"]
    assert events(db) == stored


def test_the_table_summary(tmp_path: Path) -> None:
    result = run(*EVERY_FILE, "--db", str(tmp_path / "book.db"))
    assert result.exit_code == 0, result.output
    assert "30 events appended to 3 accounts" in result.stdout


def test_bad_rows_go_to_the_rejects_file_and_exit_1(tmp_path: Path) -> None:
    db, rejects = tmp_path / "book.db", tmp_path / "rejects.csv"
    result = run(
        "--accounts",
        str(DATA / "accounts.csv"),
        "--activities",
        str(DATA / "bad" / "activities.csv"),
        "--db",
        str(db),
        "--rejects",
        str(rejects),
        "--json",
    )
    report = as_json(result, code=1)
    assert report["rejects_file"] == str(rejects)
    assert report["rows_rejected"] == 8
    with rejects.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["file", "line", "column", "reason"]
    assert [row[1:3] for row in rows[1:3]] == [["3", "Type"], ["4", "Date"]]
    assert report["events_appended"] == 4  # three accounts opened, one contact logged
    table = run(
        "--activities",
        str(DATA / "bad" / "activities.csv"),
        "--db",
        str(db),
        "--rejects",
        str(rejects),
    )
    assert table.exit_code == 1
    assert "row(s) rejected: see" in table.stdout


def test_all_or_nothing_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    report = as_json(
        run(
            "--accounts",
            str(DATA / "accounts.csv"),
            "--activities",
            str(DATA / "bad" / "activities.csv"),
            "--db",
            str(db),
            "--rejects",
            str(tmp_path / "r.csv"),
            "--all-or-nothing",
            "--json",
        ),
        code=1,
    )
    assert report["committed"] is False
    assert report["events_appended"] == 0
    assert events(db) == 0


def test_times_without_offset_are_read_in_the_given_zone(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    as_json(
        run(
            "--accounts",
            str(DATA / "accounts.csv"),
            "--timezone",
            "Asia/Tokyo",
            "--db",
            str(db),
            "--json",
        )
    )
    service = AccountService(str(db), plugins=PluginHost(entry_points=False))
    try:
        cobalt = service.get_account(account_id_for("crm:0017Q00000KlMnO"))
        assert cobalt.opened_at.isoformat() == "2024-03-10T10:30:00+09:00"
    finally:
        service.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give at least one file"),
        (("--accounts", "missing.csv"), "--accounts missing.csv: there is no such file"),
        (("--accounts", str(DATA / "activities.csv")), "is not a valid accounts export"),
        (("--accounts", str(DATA / "accounts.csv"), "--timezone", "Mars/Base"), "--timezone"),
        (("--accounts", str(DATA / "accounts.csv"), "--db", "memory:"), "in-memory store"),
        (("--accounts", str(DATA / "accounts.csv"), "--db", "/no/such/dir/x.db"), "does not exist"),
        (("--accounts", str(DATA / "accounts.csv"), "--db", "mysql://x"), "--db"),
        (("--accounts", str(DATA / "accounts.csv"), "--actor", " "), "actor"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_a_directory_as_db_or_rejects_is_a_mistake(tmp_path: Path) -> None:
    for option in ("--db", "--rejects"):
        result = run("--accounts", str(DATA / "accounts.csv"), option, str(tmp_path))
        assert result.exit_code == 2
        assert "is a directory" in result.stderr


def test_a_rejects_file_that_cannot_be_written_is_reported(tmp_path: Path) -> None:
    result = run(
        "--activities",
        str(DATA / "bad" / "activities.csv"),
        "--db",
        str(tmp_path / "b.db"),
        "--rejects",
        str(tmp_path / "nowhere" / "r.csv"),
    )
    assert result.exit_code == 2
    assert "cannot write there" in result.stderr
