"""`acctdomain demo`: writes a book into an SQLite file and summarises it."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acctdomain import AccountService, account_id_for
from acctdomain.builtin.plans import account_plan
from acctdomain.cli import app
from acctdomain.cli_common import quarter_before
from acctdomain.demo.showcase import plan_items

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
    "plan",
    "audit",
    "report",
}


def test_demo_writes_the_book_and_prints_a_summary(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    result = runner.invoke(app, ["demo", "--db", str(db), "--accounts", "3", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "3 accounts" in result.stdout
    titles = ("Accounts by segment and status", "ARR by currency", "Top 10 accounts", "Scorecard")
    for title in titles:
        assert title in result.stdout
    # The report is written next to the book, and the last line says where.
    page = tmp_path / "book.html"
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert result.stdout.rstrip().endswith("open it in a browser")
    assert f"written to {page}; open it in a browser" in result.stdout
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
    assert report["report"] == {
        "path": str(tmp_path / "book.html"),
        "written": True,
        "reason": None,
        "sections": ["kpis", "trends", "pipeline", "health", "at_risk", "today"],
    }
    assert set(report["audit"]) == {"ok", "checked", "head_position", "head_hash"}
    assert report["audit"]["ok"] is True


def test_the_demo_shows_the_fullest_plan_of_the_chosen_manager(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    result = runner.invoke(app, ["demo", "--db", str(db), "--accounts", "12", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    plan = report["plan"]
    assert set(plan) == {
        "account_id",
        "name",
        "manager",
        "day",
        "items",
        "progress",
        "goals",
        "overdue",
    }
    assert plan["manager"] == report["today"]["manager"]
    assert plan["day"] == report["period"]["end"]
    goal = plan["goals"][0]
    assert set(goal) == {"title", "measure", "target_date", "status", "progress", "strategies"}
    assert set(plan["progress"]) == {"completed", "planned", "ratio", "reason"}
    counted = len(plan["goals"]) + sum(
        len(g["strategies"]) + sum(len(s["tactics"]) for s in g["strategies"])
        for g in plan["goals"]
    )
    assert plan["items"] == counted > 0
    # No other account of that manager has a plan with more items.
    service = AccountService(str(db))
    try:
        service.catch_up()
        day = date.fromisoformat(plan["day"])
        plans = service.read_model("account_plans")
        mine = [
            row["account_id"]
            for _, row in service.read_model("accounts").scan("accounts")
            if row["manager"] == plan["manager"]
        ]
        sizes = {str(i): plan_items(account_plan(plans, i, today=day)) for i in mine}
    finally:
        service.close()
    assert len(sizes) >= 2
    assert sizes[plan["account_id"]] == plan["items"] == max(sizes.values())


def test_the_plan_is_printed_in_the_tables(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    page = tmp_path / "page.html"
    result = runner.invoke(
        app, ["demo", "--db", str(db), "--accounts", "12", "--report", str(page)]
    )
    assert result.exit_code == 0, result.output
    assert "Account plan of " in result.stdout
    assert "goal: " in result.stdout
    assert page.is_file()
    assert not (tmp_path / "book.html").exists()


def test_without_plotly_the_demo_says_why_there_is_no_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "plotly.io", None)
    db = tmp_path / "book.db"
    result = runner.invoke(app, ["demo", "--db", str(db), "--accounts", "2"])
    assert result.exit_code == 0, result.output
    assert "Report: not written (the HTML report draws its charts with plotly" in result.stdout
    assert "pip install 'acctdomain[report]'" in result.stdout
    assert not (tmp_path / "book.html").exists()
    as_json = runner.invoke(app, ["demo", "--db", str(db), "--accounts", "2", "--json"])
    written = json.loads(as_json.stdout)["report"]
    assert written["written"] is False
    assert written["sections"] == []
    assert "acctdomain[report]" in written["reason"]


def test_with_the_workday_plugin_blocked_there_is_no_plan_and_no_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCTDOMAIN_PLUGINS_BLOCK", "builtin.workday")
    db = tmp_path / "book.db"
    result = runner.invoke(app, ["demo", "--db", str(db), "--accounts", "3", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["today"] is None
    assert report["plan"] is None
    assert report["report"]["written"] is True
    assert report["audit"]["ok"] is True


@pytest.mark.parametrize("where", ["missing/page.html", ".", "book.db"])
def test_a_report_path_that_cannot_be_written_is_a_usage_error(tmp_path: Path, where: str) -> None:
    db = tmp_path / "book.db"
    target = tmp_path / where
    result = runner.invoke(
        app, ["demo", "--db", str(db), "--accounts", "1", "--report", str(target)]
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: --report {target}")
    assert not db.exists()  # refused before any work


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
