"""`acctdomain account`: one account's state and health, plan, timeline, stakeholder map and
white space, on an SQLite file; the group comes from the built-in plugin ``builtin.workday``.
Accounts are found by id, external key or exact name; every mistake is one `error:` line and
exit code 2."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from typer.testing import CliRunner, Result

from acctdomain import AccountService, Money, ProductLine, account_id_for
from acctdomain.application.commands import CommandResult
from acctdomain.builtin.account_cli import account_app
from acctdomain.cli import CLI_HOOK, build_app
from acctdomain.domain.values import NpsScore
from acctdomain.plugins import HealthSignal, PluginHost, hookimpl
from tests.conftest import FakeClock

runner = CliRunner()

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
ACME, GLOBEX = account_id_for("crm:1"), account_id_for("crm:2")
SHOW_KEYS = {
    "db", "day", "account_id", "name", "external_key", "version", "status", "segment",
    "industry", "currency", "manager", "manager_type", "opened_at", "arr", "lines", "term_end",
    "renewal_due_on", "churned_at", "churn_reason", "contacts", "last_contact_at", "surveys",
    "value_delivered", "stakeholders", "open_issues", "open_requests", "open_opportunities",
    "health",
}  # fmt: skip
PLAN_KEYS = {"db", "account_id", "name", "day", "progress", "goals", "overdue"}
STAKEHOLDER_KEYS = {"db", "account_id", "name", "day", "not_met_days", "people", "former", "gaps"}
WHITE_SPACE_KEYS = {
    "db", "account_id", "name", "currency", "products", "units", "gaps", "untargeted",
    "unassigned",
}  # fmt: skip


def host(**options: Any) -> PluginHost:
    return PluginHost(entry_points=False, **options)


def at(day: date) -> dict[str, Any]:
    return {"actor": "amy", "effective_at": datetime(day.year, day.month, day.day, tzinfo=UTC)}


def open_account(service: AccountService, name: str, key: str, day: date) -> UUID:
    account_id = service.open_account(
        name=name,
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        external_key=key,
        **at(day),
    ).account_id
    service.start_contract(
        account_id,
        term_end=date(2027, 1, 4),
        lines=[ProductLine("core", Money("12000", "EUR"))],
        **at(day),
    )
    return account_id


def made(result: CommandResult) -> UUID:
    """The id of the item a command created."""
    assert result.entity_id is not None
    return result.entity_id


def write_book(path: str) -> dict[str, UUID]:
    """Acme (crm:1): stakeholders, a contact, an issue, a request, an offer, an NPS answer,
    a plan, two business units, an upsell on 1 March. Globex (crm:2) owns analytics in its
    Finance unit and churned. Two accounts are named Twin."""
    clock = FakeClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    service = AccountService(path, clock=clock, plugins=host())
    ids: dict[str, UUID] = {}
    try:
        jan5, feb1, mar1 = date(2026, 1, 5), date(2026, 2, 1), date(2026, 3, 1)
        acme = open_account(service, "Acme", "crm:1", jan5)
        for name, role, sentiment in (
            ("Ann", "champion", "positive"),
            ("Bob", "economic_buyer", "negative"),
            ("Cy", "user", "unknown"),
        ):
            ids[name.lower()] = made(
                service.add_stakeholder(acme, name=name, role=role, sentiment=sentiment, **at(jan5))
            )
        service.remove_stakeholder(acme, stakeholder_id=ids["cy"], reason="left", **at(jan5))
        service.log_contact(
            acme, channel="meeting", direction="outbound", stakeholder_ids=[ids["ann"]], **at(feb1)
        )
        raised = service.raise_issue(
            acme, title="Slow exports", severity="high", category="performance", **at(feb1)
        )
        ids["issue"] = made(raised)
        service.receive_request(acme, subject="SSO", channel="email", **at(feb1))
        offer = service.offer_opportunity(
            acme,
            kind="cross_sell",
            product="analytics",
            estimated_arr=Money("3000", "EUR"),
            **at(feb1),
        )
        ids["offer"] = made(offer)
        service.record_feedback(acme, score=NpsScore(9), respondent="Ann", **at(feb1))
        goal = service.set_goal(acme, title="Grow", target_date=date(2026, 6, 30), **at(jan5))
        strategy = service.add_strategy(acme, goal_id=made(goal), description="Expand", **at(jan5))
        for description, due in (("QBR", date(2026, 2, 15)), ("Pilot", date(2026, 5, 1))):
            service.add_tactic(
                acme,
                strategy_id=made(strategy),
                description=description,
                owner="amy",
                due_on=due,
                **at(jan5),
            )
        pilot = service.get_account(acme).tactics[1].tactic_id
        service.complete_tactic(acme, tactic_id=pilot, **at(feb1))
        for unit in ("Ops", "Sales"):
            ids[unit] = made(service.add_business_unit(acme, name=unit, **at(jan5)))
        service.adopt_product(acme, unit_id=ids["Ops"], product="core", **at(jan5))
        service.upsell(acme, product="core", added_arr=Money("1000", "EUR"), **at(mar1))
        globex = open_account(service, "Globex", "crm:2", jan5)
        service.cross_sell(globex, product="analytics", arr=Money("5000", "EUR"), **at(jan5))
        finance = made(service.add_business_unit(globex, name="Finance", **at(jan5)))
        service.adopt_product(globex, unit_id=finance, product="analytics", **at(jan5))
        service.churn(globex, reason="price", **at(mar1))
        open_account(service, "Twin", "crm:3", jan5)
        open_account(service, "Twin", "crm:4", jan5)
    finally:
        service.close()
    return ids


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, UUID]]:
    path = str(tmp_path_factory.mktemp("account") / "book.db")
    return path, write_book(path)


@pytest.fixture
def db(book: tuple[str, dict[str, UUID]]) -> str:
    return book[0]


def account(*args: str, plugins: PluginHost | None = None) -> Result:
    return runner.invoke(build_app(plugins or host()), ["account", *args])


def ok(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def assert_one_line_error(result: Result, starts: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {starts}"), result.stderr
    assert "Traceback" not in result.output


# --- show -------------------------------------------------------------------------------------


def test_show_prints_the_accounts_state_and_health(book: tuple[str, dict[str, UUID]]) -> None:
    db, ids = book
    report = ok(account("show", "Acme", "--on", "2026-03-05", "--db", db, "--json"))
    assert set(report) == SHOW_KEYS
    assert report["account_id"] == str(ACME)
    assert report["external_key"] == "crm:1"
    assert (report["name"], report["status"], report["day"]) == ("Acme", "active", "2026-03-05")
    assert report["arr"] == "13000"
    assert report["lines"] == [{"product": "core", "arr": "13000"}]
    assert [p["name"] for p in report["stakeholders"]] == ["Ann", "Bob"]
    assert report["stakeholders"][0] == {
        "stakeholder_id": str(ids["ann"]),
        "name": "Ann",
        "title": "",
        "role": "champion",
        "sentiment": "positive",
    }
    [issue] = report["open_issues"]
    assert issue["issue_id"] == str(ids["issue"])
    assert issue["severity"] == "high"
    assert [r["subject"] for r in report["open_requests"]] == ["SSO"]
    [offer] = report["open_opportunities"]
    assert offer["opportunity_id"] == str(ids["offer"])
    assert offer["estimated_arr"] == "3000"
    assert report["surveys"] == {"nps": 9, "csat": None, "ces": None}
    assert report["contacts"] == 1
    assert report["last_contact_at"].startswith("2026-02-01")
    health = report["health"]
    assert set(health) == {"score", "band", "signals", "reason"}
    assert 0 <= health["score"] <= 1
    assert health["band"] in ("green", "yellow", "red")
    assert health["reason"] == ""
    assert health["signals"]["nps"] is not None


def test_show_on_a_day_shows_the_account_as_in_effect_then(db: str) -> None:
    before = ok(account("show", "crm:1", "--on", "2026-02-15", "--db", db, "--json"))
    assert before["lines"] == [{"product": "core", "arr": "12000"}]
    assert before["version"] < ok(account("show", "crm:1", "--db", db, "--json"))["version"]


def test_show_of_a_churned_account_scores_no_health(db: str) -> None:
    report = ok(account("show", str(GLOBEX), "--db", db, "--json"))
    assert report["status"] == "churned"
    assert report["churn_reason"] == "price"
    assert report["health"] == {
        "score": None,
        "band": None,
        "signals": {},
        "reason": "the account has churned",
    }


def test_show_as_text(db: str) -> None:
    result = account("show", "crm:1", "--on", "2026-03-05", "--db", db)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith(f"Acme (crm:1) {ACME}, version ")
    assert "ARR 13,000 EUR (core 13,000)" in text
    assert "surveys NPS 9, CSAT -, CES -" in text
    assert "health on 2026-03-05: " in text
    for shown in ("Stakeholders:", "Ann", "Open issues:", "Slow exports", "Open requests:"):
        assert shown in text


def test_show_before_the_account_was_opened_is_refused(db: str) -> None:
    assert_one_line_error(
        account("show", "crm:1", "--on", "2025-12-31", "--db", db),
        "ACCOUNT crm:1: the account was not opened yet on 2025-12-31",
    )


# --- plan -------------------------------------------------------------------------------------


def test_plan_shows_goals_strategies_tactics_and_what_is_overdue(db: str) -> None:
    report = ok(account("plan", "Acme", "--on", "2026-03-01", "--db", db, "--json"))
    assert set(report) == PLAN_KEYS
    assert report["name"] == "Acme"
    assert report["progress"] == {"completed": 1, "planned": 2, "ratio": "0.5000", "reason": ""}
    [goal] = report["goals"]
    assert goal["title"] == "Grow"
    assert goal["status"] == "open"
    [strategy] = goal["strategies"]
    tactics = [(t["description"], t["status"]) for t in strategy["tactics"]]
    assert tactics == [("QBR", "open"), ("Pilot", "completed")]
    [late] = report["overdue"]
    assert (late["kind"], late["title"], late["days_overdue"]) == ("tactic", "QBR", 14)
    early = ok(account("plan", "crm:1", "--on", "2026-02-01", "--db", db, "--json"))
    assert early["overdue"] == []
    assert early["progress"]["completed"] == 1


def test_plan_as_text(db: str) -> None:
    result = account("plan", "crm:1", "--on", "2026-03-01", "--db", db)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Plan of Acme on 2026-03-01: 1 of 2 tactics done (50 %)"
    assert any("goal: Grow" in line for line in lines)
    assert lines[-1] == "overdue 14 days: tactic QBR (amy), due 2026-02-15"


# --- timeline ---------------------------------------------------------------------------------


def test_timeline_by_name_is_the_audit_timeline(db: str) -> None:
    by_name = account("timeline", "Acme", "--order", "effective", "--db", db, "--json")
    audit = runner.invoke(
        build_app(host()),
        ["audit", "timeline", "crm:1", "--order", "effective", "--db", db, "--json"],
    )
    assert ok(by_name) == ok(audit)
    assert ok(by_name)["account_id"] == str(ACME)
    upsold = account("timeline", "Acme", "--type", "Upsold", "--db", db)
    assert upsold.exit_code == 0
    assert "Upsold: core +1,000.00 EUR ARR" in upsold.stdout


# --- stakeholders -----------------------------------------------------------------------------


def test_stakeholders_shows_the_map_and_its_gaps(book: tuple[str, dict[str, UUID]]) -> None:
    db, ids = book
    report = ok(account("stakeholders", "Acme", "--on", "2026-03-01", "--db", db, "--json"))
    assert set(report) == STAKEHOLDER_KEYS
    assert report["not_met_days"] == 90
    assert [p["name"] for p in report["people"]] == ["Ann", "Bob"]
    assert [p["name"] for p in report["former"]] == ["Cy"]
    assert report["people"][0]["days_since_contact"] == 28
    gaps = [(g["kind"], g["stakeholder_id"]) for g in report["gaps"]]
    assert gaps == [("not_met", str(ids["bob"])), ("detractor", str(ids["bob"]))]
    strict = ok(account("stakeholders", "crm:1", "--not-met-days", "0", "--db", db, "--json"))
    assert strict["not_met_days"] == 0
    text = account("stakeholders", "crm:1", "--on", "2026-03-01", "--db", db).stdout
    assert text.startswith("Stakeholders of Acme on 2026-03-01: 2 on the map, 1 former\n")
    assert "gap (detractor): Bob (economic buyer) is negative about us" in text


# --- white space ------------------------------------------------------------------------------


def test_white_space_shows_units_by_products_and_the_gaps(
    book: tuple[str, dict[str, UUID]],
) -> None:
    db, ids = book
    report = ok(account("white-space", "crm:1", "--db", db, "--json"))
    assert set(report) == WHITE_SPACE_KEYS
    assert report["currency"] == "EUR"
    assert report["products"] == ["analytics", "core"]
    assert [u["name"] for u in report["units"]] == ["Ops", "Sales"]
    ops = {cell["product"]: cell for cell in report["units"][0]["cells"]}
    assert ops["core"]["status"] == "owned"
    assert ops["core"]["arr"] == "13000"
    assert ops["analytics"]["status"] == "gap"
    gaps = [(g["rank"], g["unit"], g["product"], g["median_arr"]) for g in report["gaps"]]
    assert gaps == [  # by what an owning unit brings in the book; Globex's unit churned
        (1, "Sales", "core", "13000"),
        (2, "Ops", "analytics", None),
        (3, "Sales", "analytics", None),
    ]
    assert [item["opportunity_id"] for item in report["untargeted"]] == [str(ids["offer"])]
    only = ok(account("white-space", "crm:1", "--product", "bi", "--db", db, "--json"))
    assert only["products"] == ["bi"]
    text = account("white-space", "crm:1", "--db", db).stdout
    assert text.startswith("White space of Acme: 2 business units by 2 products, 3 gaps\n")


def test_a_blank_product_is_refused(db: str) -> None:
    assert_one_line_error(
        account("white-space", "crm:1", "--product", " ", "--db", db), "--product: "
    )


# --- mistakes and registration ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["show", "plan", "timeline", "stakeholders", "white-space"])
def test_an_unknown_or_ambiguous_account_is_refused(db: str, command: str) -> None:
    assert_one_line_error(
        account(command, "Nobody", "--db", db),
        "ACCOUNT 'Nobody': no account has this id, external key or name",
    )
    twins = sorted([str(account_id_for("crm:3")), str(account_id_for("crm:4"))])
    assert_one_line_error(
        account(command, "Twin", "--db", db),
        f"ACCOUNT 'Twin': 2 accounts have this name ({', '.join(twins)}); give the id",
    )
    unknown = "00000000-0000-0000-0000-000000000001"
    assert_one_line_error(
        account(command, unknown, "--db", db), f"ACCOUNT {unknown}: the store has no such account"
    )


@pytest.mark.parametrize("command", ["show", "plan", "stakeholders"])
def test_a_bad_day_is_refused(db: str, command: str) -> None:
    assert_one_line_error(
        account(command, "crm:1", "--on", "31/03/2026", "--db", db),
        "--on: expected a date like 2026-03-31, got '31/03/2026'",
    )


def test_a_missing_store_is_refused(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.db")
    assert_one_line_error(
        account("show", "crm:1", "--db", missing), f"--db: there is no SQLite store at {missing}"
    )


def test_the_group_comes_from_the_built_in_workday_plugin(db: str) -> None:
    plugins = host()
    assert "account" in plugins.cli_commands()
    assert plugins.owner(CLI_HOOK, "account") == "builtin.workday"
    blocked = account("show", "crm:1", "--db", db, plugins=host(block=["builtin.workday"]))
    assert blocked.exit_code == 2
    assert "No such command 'account'" in blocked.output


class Sunny:
    """A plugin whose health signal always says 1."""

    @hookimpl
    def acctdomain_register_health_signals(self, register: Any) -> None:
        register(HealthSignal("sunny", 1.0, lambda facts, now: 1.0))


def test_the_commands_use_the_plugins_of_the_command_line(db: str) -> None:
    plugins = host(plugins=[("sunny", Sunny())])
    report = ok(account("show", "crm:1", "--db", db, "--json", plugins=plugins))
    assert report["health"]["signals"]["sunny"] == 1.0
    assert "sunny" not in ok(account("show", "crm:1", "--db", db, "--json"))["health"]["signals"]


def test_the_docs_have_an_example_of_every_subcommand() -> None:
    text = DOCS.read_text(encoding="utf-8")
    names = [info.name for info in account_app().registered_commands]
    assert names == ["show", "plan", "timeline", "stakeholders", "white-space"]
    for name in names:
        assert re.search(rf"^### `acctdomain account {name}`$", text, re.M), name
        assert re.search(rf"^\$ acctdomain account {name} ", text, re.M), name
