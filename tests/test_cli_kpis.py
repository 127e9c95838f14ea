"""`acctdomain kpis`: the scorecard of a period from an SQLite file, as a table and as JSON,
with its filters, ``--known-at``, conventions, currency, and every refusal."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from acctdomain import AccountService, Money, ProductLine
from acctdomain.cli import build_app
from acctdomain.cli_kpis import parse_period
from acctdomain.errors import InvalidValue
from acctdomain.plugins import PluginHost
from tests.conftest import FakeClock

runner = CliRunner()

TOP_KEYS = {
    "db",
    "start",
    "end",
    "previous_start",
    "previous_end",
    "filters",
    "known_at",
    "currency",
    "kpis",
}
KPI_KEYS = {"name", "title", "unit", "convention", "value", "previous", "reason"}


def host() -> PluginHost:
    return PluginHost(entry_points=False)


def write_book(path: str) -> None:
    """Acme (smb, amy, sales) signed 5 January 2026 for 12,000 EUR; Globex (enterprise, bob,
    technical) signed 10 February, recorded that day, for 24,000 EUR."""
    clock = FakeClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    service = AccountService(path, clock=clock, plugins=host())
    try:
        for name, segment, manager, kind, day, arr in (
            ("Acme", "smb", "amy", "sales", datetime(2026, 1, 5, tzinfo=UTC), 12000),
            ("Globex", "enterprise", "bob", "technical", datetime(2026, 2, 10, tzinfo=UTC), 24000),
        ):
            clock.now = day.replace(hour=9)
            account_id = service.open_account(
                name=name,
                segment=segment,
                industry="retail",
                currency="EUR",
                manager=manager,
                manager_type=kind,
                actor=manager,
                effective_at=day,
            ).account_id
            service.start_contract(
                account_id,
                term_end=date(2027, 1, 4),
                lines=[ProductLine("tracking", Money(arr, "EUR"))],
                actor=manager,
                effective_at=day,
            )
    finally:
        service.close()


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "book.db")
    write_book(path)
    return path


def kpis(*args: str) -> Result:
    return runner.invoke(build_app(host()), ["kpis", *args])


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def lines(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {kpi["name"]: kpi for kpi in report["kpis"]}


def assert_one_line_error(result: Result, code: int, starts: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {starts}"), result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# --- periods --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
        ("2025-q4", date(2025, 10, 1), date(2025, 12, 31)),
        ("2026-02", date(2026, 2, 1), date(2026, 2, 28)),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("2026-12", date(2026, 12, 1), date(2026, 12, 31)),
        ("2026", date(2026, 1, 1), date(2026, 12, 31)),
    ],
)
def test_periods_are_quarters_months_and_years(text: str, start: date, end: date) -> None:
    assert parse_period(text) == (start, end)


@pytest.mark.parametrize("text", ["2026-Q5", "2026-13", "2026-00", "26", "Q1", "2026-1", ""])
def test_other_period_texts_are_refused(text: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        parse_period(text)
    assert refused.value.field == "period"


# --- the scorecard --------------------------------------------------------------------------------


def test_json_has_stable_keys_and_exact_figures(db: str) -> None:
    report = as_json(kpis("--db", db, "--period", "2026-Q1", "--json"))
    assert set(report) == TOP_KEYS
    assert (report["db"], report["start"], report["end"]) == (db, "2026-01-01", "2026-03-31")
    assert (report["previous_start"], report["previous_end"]) == ("2025-10-01", "2025-12-31")
    assert report["filters"] == {
        "manager": None,
        "segment": None,
        "manager_type": None,
        "product": None,
    }
    assert (report["known_at"], report["currency"]) == (None, None)
    assert report["kpis"]
    for kpi in report["kpis"]:
        assert set(kpi) == KPI_KEYS
        assert isinstance(kpi["reason"], str)
    found = lines(report)
    assert (found["new_accounts"]["value"], found["new_accounts"]["previous"]) == (2, 0)
    assert found["arr"]["value"] == "36000.00 EUR"
    assert found["arr"]["unit"] == "money"


def test_start_and_end_give_any_range_and_the_days_before(db: str) -> None:
    report = as_json(kpis("--db", db, "--start", "2026-02-01", "--end", "2026-02-14", "--json"))
    assert (report["start"], report["end"]) == ("2026-02-01", "2026-02-14")
    assert (report["previous_start"], report["previous_end"]) == ("2026-01-18", "2026-01-31")
    assert lines(report)["new_accounts"]["value"] == 1


def test_a_month_compares_with_the_month_before(db: str) -> None:
    report = as_json(kpis("--db", db, "--period", "2026-02", "--json"))
    assert (report["previous_start"], report["previous_end"]) == ("2026-01-01", "2026-01-31")
    found = lines(report)["new_accounts"]
    assert (found["value"], found["previous"]) == (1, 1)


def test_filters_narrow_the_accounts(db: str) -> None:
    by_manager = as_json(kpis("--db", db, "--period", "2026", "--manager", "amy", "--json"))
    assert by_manager["filters"]["manager"] == "amy"
    assert lines(by_manager)["arr"]["value"] == "12000.00 EUR"
    by_segment = as_json(kpis("--db", db, "--period", "2026", "--segment", "enterprise", "--json"))
    assert lines(by_segment)["arr"]["value"] == "24000.00 EUR"
    by_type = as_json(kpis("--db", db, "--period", "2026", "--manager-type", "sales", "--json"))
    assert lines(by_type)["new_accounts"]["value"] == 1
    by_product = as_json(kpis("--db", db, "--period", "2026", "--product", "other", "--json"))
    assert by_product["filters"]["product"] == "other"
    nobody = as_json(kpis("--db", db, "--period", "2026", "--manager", "zoe", "--json"))
    assert lines(nobody)["new_accounts"]["value"] == 0


def test_known_at_counts_only_what_was_recorded_by_then(db: str) -> None:
    report = as_json(kpis("--db", db, "--period", "2026-Q1", "--known-at", "2026-01-31", "--json"))
    assert report["known_at"] == "2026-01-31"
    assert lines(report)["new_accounts"]["value"] == 1
    moment = "2026-02-10T10:00:00+00:00"
    later = as_json(kpis("--db", db, "--period", "2026-Q1", "--known-at", moment, "--json"))
    assert later["known_at"] == moment
    assert lines(later)["new_accounts"]["value"] == 2


def test_currency_and_conventions_are_passed_on(db: str) -> None:
    report = as_json(
        kpis(
            "--db", db, "--period", "2026-Q1", "--currency", "eur",
            "--convention", "upsell_rate=offers", "--json",
        )
    )  # fmt: skip
    assert report["currency"] == "EUR"
    assert lines(report)["upsell_rate"]["convention"] == "offers"
    assert lines(report)["arr"]["value"] == "36000.00 EUR"


def test_the_table_shows_percent_and_rounded_money(db: str) -> None:
    result = kpis("--db", db, "--period", "2026-Q2", "--manager", "amy")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Scorecard 2026-04-01 to 2026-06-30" in out
    assert "previous period 2026-01-01 to 2026-03-31" in out
    assert "accounts of manager amy" in out
    assert "12,000 EUR" in out
    assert "100.0 %" in out  # logo retention of the cohort of 1 April
    assert "convention account_base" in out
    assert result.stderr == ""


def test_the_default_period_is_the_last_complete_quarter(db: str) -> None:
    report = as_json(kpis("--db", db, "--json"))
    start, end = date.fromisoformat(report["start"]), date.fromisoformat(report["end"])
    assert start.day == 1
    assert start.month in (1, 4, 7, 10)
    assert end < date.today()
    assert (end - start).days in range(89, 92)


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "starts"),
    [
        (["--period", "2026-Q7"], "--period: expected a quarter"),
        (["--period", "2026-Q1", "--start", "2026-01-01"], "give --period or --start/--end"),
        (["--start", "2026-01-01"], "give both --start and --end"),
        (["--start", "2026-02-30", "--end", "2026-03-01"], "--start: expected a date"),
        (["--start", "2026-01-01", "--end", "tomorrow"], "--end: expected a date"),
        (["--start", "2026-03-01", "--end", "2026-02-01"], "--end 2026-02-01 is before"),
        (["--segment", "huge"], "--segment: expected one of smb, mid_market, enterprise"),
        (["--manager-type", "boss"], "--manager-type: expected one of sales"),
        (["--manager", " "], "--manager: expected a non-empty value"),
        (["--known-at", "2026-02-10T10:00:00"], "--known-at: expected a date"),
        (["--known-at", "soon"], "--known-at: expected a date"),
        (["--currency", "EURO"], "--currency: 'EURO' is not an ISO 4217"),
        (["--convention", "upsell_rate"], "--convention: expected NAME=CONVENTION"),
        (["--convention", "arr=x"], "--convention: 'arr' is not a KPI with conventions"),
        (["--convention", "upsell_rate=dice"], "--convention: upsell_rate: expected one of"),
        (
            ["--convention", "upsell_rate=offers", "--convention", "upsell_rate=offers"],
            "--convention: 'upsell_rate' is given twice",
        ),
    ],
)
def test_mistakes_end_in_one_line_and_exit_code_2(db: str, args: list[str], starts: str) -> None:
    assert_one_line_error(kpis("--db", db, *args), 2, starts)


def test_a_missing_store_or_memory_is_refused(tmp_path: Path) -> None:
    missing = str(tmp_path / "nothing.db")
    assert_one_line_error(kpis("--db", missing), 2, "--db: there is no SQLite store")
    assert_one_line_error(kpis("--db", "memory:"), 2, "--db: an in-memory store")


def test_a_file_that_is_not_a_store_fails_without_a_traceback(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not an SQLite database at all" * 100)
    result = kpis("--db", str(junk), "--period", "2026")
    assert result.exit_code in (1, 2), result.output
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_settings_come_from_a_file_or_the_environment(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tmp_path / "kpis.toml"
    settings.write_text('reporting_currency = "USD"\n[rates]\n"EUR/USD" = "1.10"\n')
    report = as_json(kpis("--db", db, "--period", "2026-Q1", "--settings", str(settings), "--json"))
    assert report["currency"] == "USD"
    assert lines(report)["arr"]["value"] == "39600.00 USD"
    monkeypatch.setenv("ACCTDOMAIN_KPI_SETTINGS", str(settings))
    report = as_json(kpis("--db", db, "--period", "2026-Q1", "--json"))
    assert lines(report)["arr"]["value"] == "39600.00 USD"


def test_a_settings_file_that_cannot_be_read_is_a_usage_error(db: str, tmp_path: Path) -> None:
    result = kpis("--db", db, "--settings", str(tmp_path / "missing.toml"))
    assert_one_line_error(result, 2, "--settings: cannot read")
    bad = tmp_path / "bad.toml"
    bad.write_text('gross_margin = "2"\n')
    assert_one_line_error(kpis("--db", db, "--settings", str(bad)), 2, "--settings: ")


def test_a_bad_settings_file_in_the_environment_stops_the_service_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from acctdomain import KpiSettings
    from acctdomain.errors import InvalidValue

    monkeypatch.setenv("ACCTDOMAIN_KPI_SETTINGS", str(tmp_path / "missing.toml"))
    with pytest.raises(InvalidValue) as raised:
        AccountService("memory:", plugins=host())
    assert raised.value.field == "kpi_settings"
    monkeypatch.setenv("ACCTDOMAIN_KPI_SETTINGS", "  ")
    assert KpiSettings.from_environment() == KpiSettings()
