"""`acctdomain report`: the data of each section (KPI tiles, trends, pipeline, health, at
risk) on a book whose figures are known, the page it renders, and the command's refusals.

The browser test (tests/test_report_browser.py) opens the page in headless Chromium."""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from typer.testing import CliRunner, Result

from acctdomain import AccountService, Money, ProductLine
from acctdomain.application import KpiSettings
from acctdomain.cli import build_app
from acctdomain.domain import NpsScore
from acctdomain.plugins import PluginHost
from acctdomain.report import (
    EXTRA,
    SECTIONS,
    ReportRequest,
    Section,
    gather_report,
    render_html,
    require_plotly,
)
from acctdomain.report.model import ReportContext
from acctdomain.report.sections import kpi_change, quarters_ending, shown_change
from tests.conftest import FakeClock

runner = CliRunner()

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = KpiSettings(reporting_currency="EUR", rates={"USD/EUR": "0.9", "GBP/EUR": "1.2"})
SETTINGS_TOML = """reporting_currency = "EUR"
[rates]
"USD/EUR" = "0.9"
"GBP/EUR" = "1.2"
"""
TOP_KEYS = {
    "db",
    "generated_at",
    "start",
    "end",
    "previous_start",
    "previous_end",
    "filters",
    "known_at",
    "currency",
    "sections",
}


def host() -> PluginHost:
    return PluginHost(entry_points=False)


def write_book(path: str) -> dict[str, UUID]:
    """Seven accounts, opened 2 June 2025 (the clock is the effective time):

    - Acme (EUR, amy): 12,000 EUR to 2026-03-20; a call on 25 February, NPS 10: green.
    - Globex (USD, bob, enterprise): 100,000 + 20,000 USD (analytics) to 2026-05-31, renewal
      marked due 2026-04-30; a critical issue, never called: red.
    - Hooli (EUR, amy, mid market): 50,000 EUR to 2026-02-15 (overdue on 1 March); a high
      issue, NPS 3: red.
    - Initech (CHF, amy, no rate to EUR): 30,000 CHF to 2026-08-31; a medium issue: red.
    - Umbrella (GBP, bob): 8,000 GBP to 2027-06-30 (after the horizon); a call: green.
    - Soylent (EUR, bob): churned. Wayne (EUR, amy): opened, no contract (onboarding).
    """
    clock = FakeClock(datetime(2025, 6, 2, 9, 0, tzinfo=UTC))
    service = AccountService(path, clock=clock, plugins=host(), kpi_settings=SETTINGS)
    ids: dict[str, UUID] = {}
    plans: list[tuple[str, str, str, str, str, date | None, list[tuple[str, int]]]] = [
        ("Acme", "EUR", "smb", "amy", "sales", date(2026, 3, 20), [("core", 12000)]),
        (
            "Globex",
            "USD",
            "enterprise",
            "bob",
            "technical",
            date(2026, 5, 31),
            [("core", 100000), ("analytics", 20000)],
        ),
        ("Hooli", "EUR", "mid_market", "amy", "sales", date(2026, 2, 15), [("core", 50000)]),
        ("Initech", "CHF", "smb", "amy", "sales", date(2026, 8, 31), [("core", 30000)]),
        ("Umbrella", "GBP", "smb", "bob", "technical", date(2027, 6, 30), [("core", 8000)]),
        ("Soylent", "EUR", "smb", "bob", "technical", date(2026, 6, 30), [("core", 5000)]),
        ("Wayne", "EUR", "smb", "amy", "sales", None, []),
    ]
    try:
        for name, currency, segment, manager, kind, term_end, lines in plans:
            account_id = service.open_account(
                name=name,
                segment=segment,
                industry="retail",
                currency=currency,
                manager=manager,
                manager_type=kind,
                actor=manager,
            ).account_id
            ids[name] = account_id
            if term_end is not None:
                service.start_contract(
                    account_id,
                    term_end=term_end,
                    lines=[ProductLine(p, Money(arr, currency)) for p, arr in lines],
                    actor=manager,
                )
        service.mark_renewal_due(ids["Globex"], due_on=date(2026, 4, 30), actor="bob")
        for name, severity in (("Globex", "critical"), ("Hooli", "high"), ("Initech", "medium")):
            service.raise_issue(
                ids[name], title="it broke", severity=severity, category="bug", actor="amy"
            )
        service.record_feedback(ids["Hooli"], score=NpsScore(3), actor="amy")
        service.record_feedback(ids["Acme"], score=NpsScore(10), actor="amy")
        service.churn(ids["Soylent"], reason="price", actor="bob")
        clock.now = datetime(2026, 2, 25, 10, 0, tzinfo=UTC)
        for name in ("Acme", "Umbrella"):
            service.log_contact(ids[name], channel="phone", direction="outbound", actor="amy")
    finally:
        service.close()
    return ids


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, UUID]]:
    path = str(tmp_path_factory.mktemp("report") / "book.db")
    return path, write_book(path)


@pytest.fixture
def service(book: tuple[str, dict[str, UUID]]) -> Iterator[AccountService]:
    opened = AccountService(book[0], plugins=host(), kpi_settings=SETTINGS)
    try:
        yield opened
    finally:
        opened.close()


def gather(service: AccountService, **options: Any) -> dict[str, Any]:
    request = ReportRequest(
        start=date(2026, 1, 1), end=date(2026, 3, 31), db="book.db", now=NOW, **options
    )
    return gather_report(service, request)


def amounts(values: list[str]) -> list[Decimal]:
    return [Decimal(value) for value in values]


# --- the sections' data ---------------------------------------------------------------------------


def test_the_report_names_what_it_covers_and_has_every_section_in_order(
    service: AccountService,
) -> None:
    report = gather(service, filters={"manager": "amy"})
    assert set(report) == TOP_KEYS
    assert list(report["sections"]) == ["kpis", "trends", "pipeline", "health", "at_risk", "today"]
    assert report["previous_start"] == "2025-10-01"
    assert report["previous_end"] == "2025-12-31"
    assert report["filters"] == {
        "manager": "amy",
        "segment": None,
        "manager_type": None,
        "product": None,
    }
    assert report["currency"] == "EUR"
    assert report["generated_at"] == NOW.isoformat()
    json.dumps(report)  # plain JSON, nothing else


def test_pipeline_puts_each_renewal_in_its_month_in_the_reporting_currency(
    service: AccountService,
) -> None:
    pipeline = gather(service)["sections"]["pipeline"]
    assert pipeline["as_of"] == "2026-03-01"
    assert pipeline["months"][:3] == ["overdue", "2026-03", "2026-04"]
    assert pipeline["months"][-1] == "2027-02"
    assert len(pipeline["months"]) == 13
    eur, chf = pipeline["series"]
    assert eur["currency"] == "EUR"
    assert chf["currency"] == "CHF"  # no CHF/EUR rate: shown apart, never added to EUR
    assert pipeline["unconverted"] == ["CHF"]
    slot = {label: number for number, label in enumerate(pipeline["months"])}
    expected_eur = [Decimal(0)] * 13
    expected_eur[slot["overdue"]] = Decimal(50000)  # Hooli, due 2026-02-15
    expected_eur[slot["2026-03"]] = Decimal(12000)  # Acme
    expected_eur[slot["2026-04"]] = Decimal(108000)  # Globex: the renewal due, 120,000 USD x 0.9
    assert amounts(eur["arr"]) == expected_eur
    expected_chf = [Decimal(0)] * 13
    expected_chf[slot["2026-08"]] = Decimal(30000)  # Initech
    assert amounts(chf["arr"]) == expected_chf
    assert pipeline["accounts"][slot["overdue"]] == 1
    assert sum(pipeline["accounts"]) == 4
    assert pipeline["later"] == 1  # Umbrella, 2027-06
    assert pipeline["no_date"] == 0


def test_pipeline_without_a_reporting_currency_keeps_each_currency_apart(
    book: tuple[str, dict[str, UUID]],
) -> None:
    bare = AccountService(book[0], plugins=host(), kpi_settings=KpiSettings())
    try:
        pipeline = gather(bare)["sections"]["pipeline"]
    finally:
        bare.close()
    assert pipeline["currency"] is None
    assert [line["currency"] for line in pipeline["series"]] == ["CHF", "EUR", "USD"]
    assert pipeline["unconverted"] == ["CHF", "EUR", "USD"]
    usd = pipeline["series"][2]
    assert sum(amounts(usd["arr"])) == Decimal(120000)


def test_health_counts_the_active_accounts_by_band(service: AccountService) -> None:
    health = gather(service)["sections"]["health"]
    assert health["bands"] == {"green": 2, "yellow": 0, "red": 3, "unscored": 0}
    assert health["accounts"] == 5  # neither the churned nor the onboarding account
    assert health["as_of"] == NOW.isoformat()


def test_at_risk_lists_the_red_accounts_by_arr_in_the_reporting_currency(
    service: AccountService, book: tuple[str, dict[str, UUID]]
) -> None:
    at_risk = gather(service)["sections"]["at_risk"]
    assert at_risk["count"] == 3
    names = [account["name"] for account in at_risk["accounts"]]
    assert names == ["Globex", "Hooli", "Initech"]  # Initech has no rate: after the others
    globex = at_risk["accounts"][0]
    assert globex["account_id"] == str(book[1]["Globex"])
    assert globex["arr"] == "120000 USD"
    assert globex["arr_reporting"] == "108000.00 EUR"
    assert globex["renewal_on"] == "2026-04-30"
    assert globex["open_issues"] == 1
    assert globex["score"] == 0.0
    assert globex["segment"] == "enterprise"
    assert at_risk["accounts"][2]["arr_reporting"] is None
    assert at_risk["accounts"][1]["weakest_signals"] == ["engagement", "nps"]


def test_filters_narrow_the_accounts_of_every_section(service: AccountService) -> None:
    report = gather(service, filters={"manager": "amy"})["sections"]
    assert report["health"]["bands"] == {"green": 1, "yellow": 0, "red": 2, "unscored": 0}
    assert [a["name"] for a in report["at_risk"]["accounts"]] == ["Hooli", "Initech"]
    assert [line["currency"] for line in report["pipeline"]["series"]] == ["EUR", "CHF"]
    kpis = {kpi["name"]: kpi for kpi in report["kpis"]["kpis"]}
    assert kpis["active_accounts"]["value"] == 3  # Acme, Hooli, Initech


def test_a_product_filter_counts_that_line_only(service: AccountService) -> None:
    pipeline = gather(service, filters={"product": "analytics"})["sections"]["pipeline"]
    assert sum(pipeline["accounts"]) == 1
    (eur,) = pipeline["series"]
    assert sum(amounts(eur["arr"])) == Decimal(18000)  # 20,000 USD x 0.9


@pytest.mark.parametrize("manager", [None, "bob"])
def test_trends_give_each_quarter_its_own_scorecard(
    service: AccountService, manager: str | None
) -> None:
    filters = {"manager": manager} if manager else {}
    trends = gather(service, filters=filters)["sections"]["trends"]
    assert trends["quarters"] == [
        "2024-Q2",
        "2024-Q3",
        "2024-Q4",
        "2025-Q1",
        "2025-Q2",
        "2025-Q3",
        "2025-Q4",
        "2026-Q1",
    ]
    assert [kpi["name"] for kpi in trends["kpis"]] == ["nrr", "grr", "customer_churn"]
    quarters = zip(trends["starts"], trends["ends"], strict=True)
    for number, (first, last) in enumerate(quarters):
        scorecard = service.scorecard(
            date.fromisoformat(first), date.fromisoformat(last), currency="EUR", **filters
        )
        lines = {line.name: line for line in scorecard}
        for kpi in trends["kpis"]:
            value = lines[kpi["name"]].value
            assert value is not None
            shown = kpi["values"][number]
            assert (None if shown is None else Decimal(shown)) == value.value, (kpi, first)
            assert kpi["reasons"][number] == value.reason
    nrr = trends["kpis"][0]
    if manager is None:  # Initech's CHF has no rate to EUR
        assert nrr["values"][-1] is None
        assert nrr["reasons"][-1] == "no exchange rate from CHF to EUR on 2026-03-31"
    else:  # Globex and Umbrella, active from June 2025, nothing changed since
        assert nrr["values"][-4] is None
        assert nrr["reasons"][-4] == "the cohort's starting ARR is zero"
        assert [Decimal(value) for value in nrr["values"][-3:]] == [1, 1, 1]


def test_quarters_ending_cross_the_year() -> None:
    assert quarters_ending(date(2026, 2, 14), 3) == [
        ("2025-Q3", date(2025, 7, 1), date(2025, 9, 30)),
        ("2025-Q4", date(2025, 10, 1), date(2025, 12, 31)),
        ("2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
    ]
    assert quarters_ending(date(2024, 12, 31), 1) == [
        ("2024-Q4", date(2024, 10, 1), date(2024, 12, 31))
    ]


@pytest.mark.parametrize(
    ("kpi", "change", "text"),
    [
        (
            {"name": "active_accounts", "unit": "count", "value": 12, "previous": 10},
            {"delta": 2, "relative": "0.2", "better": True},
            "+2",
        ),
        (
            {"name": "churned_accounts", "unit": "count", "value": 3, "previous": 1},
            {"delta": 2, "relative": "2", "better": False},
            "+2",
        ),
        (
            {"name": "nrr", "unit": "ratio", "value": "0.95", "previous": "1.05"},
            {"delta": "-0.10", "relative": "-0.09523809523809523809523809524", "better": False},
            "-10.0 pp",
        ),
        (
            {"name": "customer_churn", "unit": "ratio", "value": "0.05", "previous": "0.10"},
            {"delta": "-0.05", "relative": "-0.5", "better": True},
            "-5.0 pp",
        ),
        (
            {"name": "arr", "unit": "money", "value": "110.00 EUR", "previous": "100.00 EUR"},
            {"delta": "10.00 EUR", "relative": "0.1", "better": True},
            "+10.0 %",
        ),
        (
            {"name": "expansion", "unit": "money", "value": "500 EUR", "previous": "0 EUR"},
            {"delta": "500 EUR", "relative": None, "better": True},
            "+500 EUR",
        ),
        (
            {"name": "plugin_kpi", "unit": "hours", "value": "4.5", "previous": "3.0"},
            {"delta": "1.5", "relative": "0.5", "better": False},
            "+1.5 h",
        ),
        (
            {"name": "nps", "unit": "score", "value": "20", "previous": "20"},
            {"delta": "0", "relative": "0", "better": None},
            "+0.0",
        ),
        (
            {"name": "nps", "unit": "score", "value": None, "previous": "20"},
            {"delta": None, "relative": None, "better": None},
            "",
        ),
        (
            {"name": "arr", "unit": "money", "value": "1 EUR", "previous": "1 USD"},
            {"delta": None, "relative": None, "better": None},
            "",
        ),
    ],
)
def test_the_change_against_the_previous_period(
    kpi: dict[str, Any], change: dict[str, Any], text: str
) -> None:
    assert kpi_change(kpi) == change
    assert shown_change(kpi, change) == text


def test_a_new_section_is_a_gather_and_a_render_function(service: AccountService) -> None:
    def gather_names(context: ReportContext) -> dict[str, Any]:
        return {"names": [row["name"] for row in context.accounts()]}

    def render_names(data: dict[str, Any], charts: Any) -> str:
        return "<ul>" + "".join(f"<li>{name}</li>" for name in data["names"]) + "</ul>"

    sections = (*SECTIONS[:1], Section("names", "Accounts", gather_names, render_names))
    request = ReportRequest(start=date(2026, 1, 1), end=date(2026, 3, 31), now=NOW)
    report = gather_report(service, request, sections)
    assert list(report["sections"]) == ["kpis", "names"]
    assert report["sections"]["names"] == {
        "names": ["Acme", "Globex", "Hooli", "Initech", "Umbrella"]
    }
    page = render_html(report, sections)
    assert '<section id="section-names" data-section="names"><h2>Accounts</h2>' in page
    assert "<li>Umbrella</li>" in page
    with pytest.raises(ValueError, match="two sections are named 'names'"):
        gather_report(service, request, (*sections, sections[-1]))


# --- the page -------------------------------------------------------------------------------------


def test_the_page_holds_every_figure_and_every_chart_without_external_resources(
    service: AccountService,
) -> None:
    report = gather(service)
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    for kpi in report["sections"]["kpis"]["kpis"]:
        tile = re.search(rf'data-kpi="{kpi["name"]}" data-unit="[a-z]+" data-value="([^"]*)"', page)
        assert tile is not None, kpi["name"]
        assert json.loads(tile[1].replace("&quot;", '"')) == kpi["value"]
    assert re.findall(r'data-chart="([a-z_]+)"', page) == ["trends", "pipeline", "health"]
    assert page.count("Plotly.newPlot(") == 3
    # plotly.js is inlined once; the page itself refers to nothing elsewhere (the browser
    # test checks that the page, plotly.js included, loads nothing).
    plotly_js = importlib.import_module("plotly.offline").get_plotlyjs()
    assert page.count(plotly_js) == 1
    rest = page.replace(plotly_js, "")
    assert rest.count("<script") == 4  # plotly.js, then one per chart
    assert not re.search(r"<script[^>]*\bsrc=", rest)
    assert not re.search(r"<link\b", rest)
    assert not re.search(r"""(?:src|href|url)\s*[=(]\s*["']?(?:https?:)?//""", rest)
    assert 'data-account="' in page  # the accounts at risk


def test_missing_plotly_is_an_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plotly.io", None)
    with pytest.raises(ModuleNotFoundError, match=re.escape(f"pip install '{EXTRA}'")):
        require_plotly()


# --- the command --------------------------------------------------------------------------------


def invoke(*args: str) -> Result:
    return runner.invoke(build_app(host()), list(args))


def assert_one_line_error(result: Result, code: int, starts: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {starts}"), result.stderr
    assert "Traceback" not in result.output


@pytest.fixture
def settings(tmp_path: Path) -> str:
    path = tmp_path / "settings.toml"
    path.write_text(SETTINGS_TOML, encoding="utf-8")
    return str(path)


def test_report_writes_the_page_and_its_kpis_are_those_of_kpis_json(
    book: tuple[str, dict[str, UUID]], tmp_path: Path, settings: str
) -> None:
    out = tmp_path / "report.html"
    common = ["--db", book[0], "--period", "2026-Q1", "--settings", settings, "--manager", "amy"]
    result = invoke("report", *common, "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == TOP_KEYS
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    kpis = invoke("kpis", *common, "--json")
    assert kpis.exit_code == 0, kpis.output
    scorecard = json.loads(kpis.stdout)
    section = report["sections"]["kpis"]
    assert {key: section[key] for key in scorecard} == scorecard
    assert set(section) == {*scorecard, "changes"}


def test_report_prints_one_line_naming_the_file(
    book: tuple[str, dict[str, UUID]], tmp_path: Path
) -> None:
    out = tmp_path / "page.html"
    result = invoke("report", "--db", book[0], "--period", "2026-Q1", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"wrote {out}: 6 sections, scorecard 2026-01-01 to 2026-03-31, trends 2024-Q2 to 2026-Q1\n"
    )
    assert out.is_file()


@pytest.mark.parametrize(
    ("args", "starts"),
    [
        (["--period", "2026-Q5"], "--period: expected a quarter (2026-Q1)"),
        (["--start", "2026-02-30", "--end", "2026-03-31"], "--start: expected a date"),
        (["--start", "2026-03-01", "--end", "2026-02-01"], "--end 2026-02-01 is before --start"),
        (["--start", "2026-03-01"], "give both --start and --end"),
        (["--period", "2026-Q1", "--start", "2026-01-01"], "give --period or --start/--end"),
        (["--segment", "huge"], "--segment: expected one of smb, mid_market, enterprise"),
        (["--currency", "EURO"], "--currency: 'EURO' is not an ISO 4217 currency code"),
        (["--known-at", "2026-03-01T10:00"], "--known-at: expected a date"),
        (["--convention", "upsell_rate=dice"], "--convention: upsell_rate: expected one of"),
    ],
)
def test_mistakes_in_the_options_are_one_line_and_exit_code_2(
    book: tuple[str, dict[str, UUID]], tmp_path: Path, args: list[str], starts: str
) -> None:
    out = tmp_path / "report.html"
    result = invoke("report", "--db", book[0], "--out", str(out), *args)
    assert_one_line_error(result, 2, starts)
    assert not out.exists()


def test_a_missing_store_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    result = invoke("report", "--db", str(missing), "--out", str(tmp_path / "r.html"))
    assert_one_line_error(result, 2, f"--db: there is no SQLite store at {missing}")
    assert not missing.exists()


def test_an_out_that_cannot_be_written_is_refused(
    book: tuple[str, dict[str, UUID]], tmp_path: Path
) -> None:
    cases = [
        (tmp_path, f"--out {tmp_path} is a directory, expected a file path"),
        (tmp_path / "no" / "r.html", f"--out {tmp_path / 'no' / 'r.html'}: the directory"),
        (tmp_path / ("x" * 300 + ".html"), "--out "),
    ]
    for out, starts in cases:
        result = invoke("report", "--db", book[0], "--period", "2026-Q1", "--out", str(out))
        assert_one_line_error(result, 2, starts)
    assert result.stderr.endswith(": cannot write there: File name too long\n")
    assert sorted(tmp_path.iterdir()) == []


def test_report_without_plotly_names_the_extra(
    book: tuple[str, dict[str, UUID]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "plotly.io", None)
    out = tmp_path / "r.html"
    result = invoke("report", "--db", book[0], "--out", str(out))
    assert_one_line_error(result, 2, "the HTML report draws its charts with plotly")
    assert "pip install 'acctdomain[report]'" in result.stderr
    assert not out.exists()
