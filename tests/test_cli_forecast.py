"""`acctdomain forecast`: the retention forecast and churn risk of an SQLite store, as JSON
and as tables, and every refusal (one line, exit code 2)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from acctdomain import AccountService
from acctdomain.cli import build_app
from acctdomain.demo import generate_book
from acctdomain.plugins import PluginHost

runner = CliRunner()
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
TOP_KEYS = {"db", "as_of", "known_at", "cohort_by", "discount_rate", "horizon", "retention", "risk"}
RETENTION_KEYS = {
    "as_of", "discount_rate", "lifetimes", "churns", "decisions", "sbg", "sbg_reason", "naive",
    "fit", "survival", "curve", "cohorts", "accounts",
}  # fmt: skip
RISK_KEYS = {"horizon_days", "evaluation", "evaluation_reason", "accounts", "accounts_reason"}


def host() -> PluginHost:
    return PluginHost(entry_points=False)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("forecast") / "book.db")
    service = AccountService(path, clock=lambda: NOW, plugins=host())
    try:
        generate_book(service, accounts=60, seed=5)
    finally:
        service.close()
    return path


def forecast(*args: str) -> Result:
    return runner.invoke(build_app(host()), ["forecast", *args])


def test_json_report_has_every_key(db: str) -> None:
    result = forecast("--db", db, "--as-of", "2026-01-01", "--top", "3", "--json")
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    assert set(report) == TOP_KEYS
    assert set(report["retention"]) == RETENTION_KEYS
    assert set(report["risk"]) == RISK_KEYS
    retention = report["retention"]
    assert retention["lifetimes"] >= 60
    assert retention["churns"] > 0
    assert len(retention["curve"]) == report["horizon"] + 1 == 11
    assert retention["sbg"] is not None or retention["sbg_reason"]
    assert {c["cohort"] for c in retention["cohorts"]} <= {"2023", "2024", "2025"}
    risk = report["risk"]
    assert risk["horizon_days"] == 180
    assert len(risk["accounts"]) == 3
    assert {"account_id", "name", "probability", "reasons"} == set(risk["accounts"][0])
    assert risk["evaluation"] is not None or risk["evaluation_reason"]


def test_table_output_names_the_models(db: str) -> None:
    result = forecast("--db", db, "--as-of", "2026-01-01", "--cohort-by", "quarter")
    assert result.exit_code == 0, result.output
    assert "Retention forecast of" in result.stdout
    assert "Survival after each renewal decision" in result.stdout
    assert "Residual lifetime value per cohort" in result.stdout
    assert "Churn risk in the next 180 days" in result.stdout
    assert "2023-Q1" in result.stdout


def test_as_of_before_any_history_has_no_lifetime(db: str) -> None:
    result = forecast("--db", db, "--as-of", "2020-01-01")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot forecast retention: ")
    assert "nothing to fit" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cohort-by", "week"], "--cohort-by: expected one of year, quarter, month"),
        (["--discount-rate", "0"], "--discount-rate"),
        (["--horizon", "0"], "--horizon"),
        (["--risk-days", "0"], "--risk-days"),
        (["--top", "-1"], "--top"),
        (["--as-of", "yesterday"], "--as-of: expected a date"),
        (["--known-at", "2026-01-01T10:00"], "--known-at: expected a date"),
    ],
)
def test_bad_options_are_one_line_and_exit_code_2(db: str, args: list[str], message: str) -> None:
    result = forecast("--db", db, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}")
    assert result.stderr.count("\n") == 1


def test_a_missing_store_is_refused(tmp_path: Path) -> None:
    result = forecast("--db", str(tmp_path / "none.db"))
    assert result.exit_code == 2
    assert "there is no SQLite store" in result.stderr


def test_without_the_extra_the_command_names_it(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.linear_model", None)
    result = forecast("--db", db)
    assert result.exit_code == 2
    assert "acctdomain[forecast]" in result.stderr
