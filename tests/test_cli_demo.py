"""`acctdomain demo`: writes a book into an SQLite file and summarises it."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acctdomain import AccountService, account_id_for
from acctdomain.cli import app, quarter_before

runner = CliRunner()

JSON_KEYS = {
    "db",
    "seed",
    "period",
    "accounts",
    "commands",
    "events",
    "events_per_account",
    "elapsed_seconds",
    "accounts_by_segment",
    "arr_by_currency",
    "renewals",
    "churns",
    "churned_accounts",
    "reactivated_accounts",
    "churned_now",
    "open_issues",
    "open_critical_issues",
    "top_accounts",
    "scorecard",
    "today",
    "audit",
}


def test_demo_writes_the_book_and_prints_a_summary(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    result = runner.invoke(app, ["demo", "--db", str(db), "--accounts", "3", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "3 accounts" in result.stdout
    titles = ("Accounts by segment and status", "ARR by currency", "Top 10 accounts", "Scorecard")
    for title in titles:
        assert title in result.stdout
    # The book is in the file: the first account (its id comes from its external key).
    service = AccountService(str(db))
    try:
        assert len(service.history(account_id_for("demo-5-00001"))) > 1
    finally:
        service.close()


def test_demo_json_summary_has_stable_keys(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    db.write_text("not a database")  # replaced, as are its WAL files
    (tmp_path / "book.db-wal").write_text("stale")
    result = runner.invoke(app, ["demo", "--db", str(db), "--accounts", "3", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == JSON_KEYS
    assert report["accounts"] == 3
    assert report["seed"] == 7
    assert sum(sum(row.values()) for row in report["accounts_by_segment"].values()) == 3
    assert set(report["accounts_by_segment"]) == {"smb", "mid_market", "enterprise"}
    assert report["events"] > 3 * 20
    assert 1 <= len(report["top_accounts"]) <= 3
    assert set(report["top_accounts"][0]) == {
        "name",
        "segment",
        "manager",
        "currency",
        "arr",
        "arr_eur",
    }
    scorecard = report["scorecard"]
    assert set(scorecard) == {"start", "end", "events_projected", "projection_seconds", "kpis"}
    assert scorecard["events_projected"] == report["events"]
    kpis = {kpi["name"]: kpi for kpi in scorecard["kpis"]}
    builtins = {
        "active_accounts",
        "arr",
        "new_accounts",
        "churned_accounts",
        "reactivated_accounts",
    }
    assert builtins <= set(kpis)
    assert set(kpis["active_accounts"]) == {"name", "title", "unit", "value", "previous", "reason"}
    assert 0 <= kpis["active_accounts"]["value"] <= 3
    # The demo reports its several currencies in EUR at its fixed rates.
    assert str(kpis["arr"]["value"]).endswith(" EUR")
    assert kpis["nrr"]["unit"] == "ratio"


def test_zero_accounts_is_a_one_line_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--db", str(tmp_path / "x.db"), "--accounts", "0"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: --accounts")
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.db").exists()


def test_unwritable_path_is_a_one_line_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for db in (tmp_path / "missing" / "x.db", blocker / "x.db", tmp_path):
        result = runner.invoke(app, ["demo", "--db", str(db), "--accounts", "1"])
        assert result.exit_code == 2, db
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("error: --db"), result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_no_arguments_shows_help() -> None:
    result = runner.invoke(app, [])
    assert "demo" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("day", "quarter"),
    [
        (date(2026, 1, 15), (date(2025, 10, 1), date(2025, 12, 31))),
        (date(2026, 3, 31), (date(2025, 10, 1), date(2025, 12, 31))),
        (date(2026, 4, 1), (date(2026, 1, 1), date(2026, 3, 31))),
        (date(2026, 12, 1), (date(2026, 7, 1), date(2026, 9, 30))),
    ],
)
def test_the_demo_scores_the_last_complete_quarter(day: date, quarter: tuple[date, date]) -> None:
    assert quarter_before(day) == quarter
