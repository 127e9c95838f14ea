"""`acctdomain report` in a real browser: Debian's headless Chromium (``make chromium``
installs it; ``make test`` does so first) opens the page written for a demo book, offline.

The page loads without console errors and without a single request (a proxy that answers
nothing would turn one into an error), every chart is drawn by plotly with its data, the
figures of the tiles are those ``acctdomain kpis --json`` prints for the same options, and
today's priorities are those of ``acctdomain today --json`` for the same day.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from typer.testing import CliRunner

from acctdomain import AccountService
from acctdomain.cli import build_app
from acctdomain.cli_common import shown
from acctdomain.demo import DEMO_KPI_SETTINGS, generate_book
from acctdomain.plugins import PluginHost

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHARTS = ["trends", "pipeline", "health"]
OPTIONS = ["--period", "2025-Q4"]

runner = CliRunner()


def host() -> PluginHost:
    return PluginHost(entry_points=False)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A demo book of 30 accounts (2023 to 2025), its report, its `kpis --json` and its
    `today --json` for the day of the report."""
    folder = tmp_path_factory.mktemp("browser")
    db = folder / "book.db"
    service = AccountService(str(db), plugins=host())
    try:
        generate_book(service, accounts=30, seed=11)
    finally:
        service.close()
    settings = folder / "settings.toml"
    rates = "".join(
        f'"{base}/{quote}" = "{rate}"\n' for (base, quote), rate in DEMO_KPI_SETTINGS.rates.items()
    )
    settings.write_text(f'reporting_currency = "EUR"\n[rates]\n{rates}', encoding="utf-8")
    common = ["--db", str(db), *OPTIONS, "--settings", str(settings)]
    page = folder / "report.html"
    app = build_app(host())
    report = runner.invoke(app, ["report", *common, "--out", str(page), "--json"])
    assert report.exit_code == 0, report.output
    kpis = runner.invoke(app, ["kpis", *common, "--json"])
    assert kpis.exit_code == 0, kpis.output
    data = json.loads(report.stdout)
    day = datetime.fromisoformat(data["generated_at"]).date().isoformat()
    today = runner.invoke(app, ["today", "--db", str(db), "--on", day, "--json"])
    assert today.exit_code == 0, today.output
    return {
        "common": common,
        "page": page,
        "report": data,
        "kpis": json.loads(kpis.stdout),
        "today": json.loads(today.stdout),
    }


@pytest.fixture(scope="module")
def browser(written: dict[str, Any]) -> Iterator[webdriver.Chrome]:
    for program in (CHROMIUM, CHROMEDRIVER):
        assert program.is_file(), f"{program} is missing: run `make chromium` (as root)"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1400,1000",
        # Offline: any request would go to a proxy that is not there, and fail loudly.
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get(written["page"].as_uri())
        WebDriverWait(driver, 60).until(
            lambda d: (
                d.execute_script(
                    "return document.querySelectorAll('[data-chart] .main-svg').length"
                )
                >= len(CHARTS)
            )
        )
        yield driver
    finally:
        driver.quit()


def test_the_page_loads_without_console_errors(browser: webdriver.Chrome) -> None:
    entries = browser.get_log("browser")
    severe = [entry for entry in entries if entry["level"] == "SEVERE"]
    assert severe == []
    assert browser.title.startswith("Book of business 2025-10-01 to 2025-12-31")


def test_the_page_requests_nothing_from_elsewhere(browser: webdriver.Chrome) -> None:
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name)"
    )
    assert resources == []
    references = browser.execute_script(
        "return Array.from(document.querySelectorAll('[src], [href]'))"
        ".map(e => e.getAttribute('src') || e.getAttribute('href'))"
    )
    assert not [r for r in references if r.startswith(("http:", "https:", "//"))], references
    # plotly's "Share chart" button would upload the chart to Plotly Cloud.
    titles = browser.execute_script(
        "return Array.from(document.querySelectorAll('.modebar-btn'))"
        ".map(button => button.getAttribute('data-title'))"
    )
    assert titles
    assert "Share chart..." not in titles


@pytest.mark.parametrize("name", CHARTS)
def test_every_chart_is_drawn_with_its_data(
    browser: webdriver.Chrome, written: dict[str, Any], name: str
) -> None:
    chart = browser.find_element(By.CSS_SELECTOR, f'[data-chart="{name}"]')
    assert chart.find_elements(By.CSS_SELECTOR, ".main-svg")
    drawn = browser.execute_script(
        "const plot = document.getElementById(arguments[0]);"
        "return {traces: plot.data.length,"
        " points: plot.data.map(trace => trace.y.filter(y => y !== null).length),"
        " svg: plot.querySelectorAll('g.trace').length,"
        " marks: Array.from(plot.querySelectorAll('g.trace path'))"
        "  .filter(path => (path.getAttribute('d') || '').length > 8).length};",
        f"chart-{name}",
    )
    assert drawn["traces"] >= 1
    assert drawn["svg"] == drawn["traces"]
    assert all(points > 0 for points in drawn["points"]), drawn
    assert drawn["marks"] > 0, drawn
    if name == "trends":
        assert drawn["traces"] == len(written["report"]["sections"]["trends"]["kpis"]) == 3


def test_the_tiles_show_the_figures_of_kpis_json(
    browser: webdriver.Chrome, written: dict[str, Any]
) -> None:
    expected = written["kpis"]["kpis"]
    tiles = browser.find_elements(By.CSS_SELECTOR, "[data-kpi]")
    assert [tile.get_attribute("data-kpi") for tile in tiles] == [kpi["name"] for kpi in expected]
    defined = 0
    for tile, kpi in zip(tiles, expected, strict=True):
        value = json.loads(tile.get_attribute("data-value") or "")
        previous = json.loads(tile.get_attribute("data-previous") or "")
        assert (value, previous) == (kpi["value"], kpi["previous"]), kpi["name"]
        text = tile.find_element(By.CSS_SELECTOR, ".value").text
        assert text == shown(kpi["value"], kpi["unit"]), kpi["name"]
        defined += value is not None
    assert defined >= 15  # a real book: most KPIs have a figure (NRR, GRR, ARR in EUR...)
    figures = {kpi["name"]: kpi["value"] for kpi in expected}
    assert figures["arr"].endswith(" EUR")
    assert figures["nrr"] is not None
    assert written["report"]["sections"]["kpis"]["kpis"] == expected


def test_the_trend_table_shows_the_quarters_of_the_report(
    browser: webdriver.Chrome, written: dict[str, Any]
) -> None:
    trends = written["report"]["sections"]["trends"]
    assert trends["quarters"][-1] == "2025-Q4"
    for kpi in trends["kpis"]:
        row = browser.find_element(By.CSS_SELECTOR, f'[data-trend="{kpi["name"]}"]')
        cells = [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "td.number")]
        assert cells == [shown(value, kpi["unit"]) for value in kpi["values"]]
    # The last quarter of the trend is the scorecard's period.
    last = {kpi["name"]: kpi["values"][-1] for kpi in trends["kpis"]}
    figures = {kpi["name"]: kpi["value"] for kpi in written["kpis"]["kpis"]}
    assert last == {name: figures[name] for name in last}


def test_todays_priorities_are_those_of_today_json(
    browser: webdriver.Chrome, written: dict[str, Any]
) -> None:
    expected = written["today"]
    assert written["report"]["sections"]["today"] == expected
    assert expected["manager"] is None
    assert expected["accounts"] == 30
    assert len(expected["items"]) == 20  # a book left alone since 2025 needs plenty of care
    rows = browser.find_elements(By.CSS_SELECTOR, "#section-today [data-priority]")
    shown_rows = [
        {
            "rank": int(row.find_element(By.CSS_SELECTOR, ".rank").text),
            "account": row.find_element(By.CSS_SELECTOR, ".account").text,
            "what": row.find_element(By.CSS_SELECTOR, ".what").text,
            "reasons": [li.text for li in row.find_elements(By.CSS_SELECTOR, ".reasons li")],
            "kind": row.get_attribute("data-kind"),
        }
        for row in rows
    ]
    assert shown_rows == [
        {
            "rank": item["rank"],
            "account": item["account"],
            "what": item["title"],
            "reasons": item["reasons"],
            "kind": item["kind"],
        }
        for item in expected["items"]
    ]
    assert [row["rank"] for row in shown_rows] == list(range(1, 21))


def test_a_blocked_workday_plugin_skips_the_sections_on_the_accounts_facts(
    written: dict[str, Any], tmp_path: Path
) -> None:
    page = tmp_path / "blocked.html"
    app = build_app(PluginHost(entry_points=False, block=["builtin.workday"]))
    result = runner.invoke(app, ["report", *written["common"], "--out", str(page), "--json"])
    assert result.exit_code == 0, result.output
    sections = json.loads(result.stdout)["sections"]
    for name in ("health", "at_risk", "today"):
        assert set(sections[name]) == {"skipped"}, name
        assert "attention" in sections[name]["skipped"]
        assert "builtin.workday" in sections[name]["skipped"]
    assert sections["kpis"] == written["report"]["sections"]["kpis"]
    html = page.read_text(encoding="utf-8")
    assert html.count("data-skipped") == 3
    assert 'data-chart="health"' not in html
    assert "data-priority" not in html
