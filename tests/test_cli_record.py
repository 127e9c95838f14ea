"""`acctdomain record`: every command of the service from the command line, on SQLite files;
how option values are parsed (dates, times, money, product lines, ids, enums), how accounts
are found (id, external key, exact name), the JSON printed, and every refusal: one `error:`
line and exit code 2, nothing recorded."""

from __future__ import annotations

import inspect
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from typer.testing import CliRunner, Result

from acctdomain import AccountService, Money, ProductLine, account_id_for
from acctdomain.application.commands import CommandResult
from acctdomain.cli import app, build_app
from acctdomain.cli_record import COMMANDS, accounts_named
from acctdomain.domain import AccountStatus
from acctdomain.domain.records import GoalStatus, OpportunityStatus, TacticStatus
from acctdomain.domain.values import CsatScore, NpsScore
from acctdomain.plugins import PluginHost
from tests.conftest import FakeClock

runner = CliRunner()

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
RESULT_KEYS = {"db", "command", "account_id", "version", "entity_id"}
ACME = account_id_for("crm:1")


def host() -> PluginHost:
    return PluginHost(entry_points=False)


def record(*args: str, actor: str | None = "amy") -> Result:
    env = {"ACCTDOMAIN_ACTOR": actor} if actor is not None else {"ACCTDOMAIN_ACTOR": ""}
    return runner.invoke(build_app(host()), ["record", *args], env=env)


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
    assert result.exception is None or isinstance(result.exception, SystemExit)


def open_acme(service: AccountService, name: str = "Acme", key: str = "crm:1") -> UUID:
    account_id = service.open_account(
        name=name,
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        external_key=key,
        actor="amy",
        effective_at=datetime(2026, 1, 5, tzinfo=UTC),
    ).account_id
    service.start_contract(
        account_id,
        term_end=date(2027, 1, 4),
        lines=[ProductLine("core", Money("12000", "EUR"))],
        actor="amy",
        effective_at=datetime(2026, 1, 5, tzinfo=UTC),
    )
    return account_id


@pytest.fixture
def db(tmp_path: Path) -> str:
    """Acme (crm:1, active, core 12,000 EUR) and two accounts named Twin."""
    path = str(tmp_path / "book.db")
    service = AccountService(path, clock=FakeClock(), plugins=host())
    try:
        open_acme(service)
        open_acme(service, "Twin", "crm:2")
        open_acme(service, "Twin", "crm:3")
    finally:
        service.close()
    return path


@pytest.fixture
def empty(tmp_path: Path) -> str:
    path = str(tmp_path / "empty.db")
    AccountService(path, plugins=host()).close()
    return path


def state(db: str, account_id: UUID = ACME) -> Any:
    service = AccountService(db, plugins=host())
    try:
        return service.get_account(account_id)
    finally:
        service.close()


def events(db: str, account_id: UUID = ACME) -> int:
    service = AccountService(db, plugins=host())
    try:
        return len(service.history(account_id))
    finally:
        service.close()


# --- the table --------------------------------------------------------------------------------


def test_every_command_of_the_service_has_a_subcommand() -> None:
    commands = {
        name
        for name, method in inspect.getmembers(AccountService, inspect.isfunction)
        if not name.startswith("_")
        and method.__annotations__.get("return") in ("CommandResult", CommandResult)
    }
    assert len(commands) >= 40
    assert {command.method for command in COMMANDS} == commands
    assert len({command.name for command in COMMANDS}) == len(COMMANDS)


def test_the_group_is_in_the_module_app_and_in_the_built_app() -> None:
    for cli in (app, build_app(host())):
        result = runner.invoke(cli, ["record", "--help"])
        assert result.exit_code == 0, result.output
        for command in COMMANDS:
            assert command.name in result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_each_subcommand_explains_its_options(command: Any) -> None:
    result = runner.invoke(build_app(host()), ["record", command.name, "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert command.help.split(";")[0][:30] in text
    for field in command.fields:
        assert field.option in text
    for option in ("--actor", "--at", "--idempotency-key", "--db", "--json"):
        assert option in text
    assert ("--account " in text) is command.addressed


def test_the_docs_list_every_subcommand_with_its_options() -> None:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("\n## `acctdomain record`\n")
    section = text[start : text.index("\n## ", start + 1)]
    for command in COMMANDS:
        row = re.search(rf"^\| `{command.name}` \|.*$", section, re.M)
        assert row is not None, f"docs/cli.md: no row for record {command.name}"
        for field in command.fields:
            shown = f"`{field.option} {field.metavar}`" + ("*" if field.required else "")
            assert shown in row[0], (command.name, field.option)
    examples = re.findall(r"^\$ acctdomain record ([a-z-]+) ", section, re.M)
    assert len(set(examples)) >= 10


# --- every subcommand, in the life of one account -------------------------------------------------


def test_every_subcommand_records_its_command(empty: str) -> None:
    ran: set[str] = set()

    def run(name: str, *args: str) -> dict[str, Any]:
        ran.add(name)
        report = ok(record(name, "--db", empty, "--json", *args))
        assert set(report) == RESULT_KEYS
        assert report["command"] == name
        assert report["db"] == empty
        return report

    key = "crm:9"
    opened = run(
        "open-account",
        *("--name", "Initech", "--segment", "mid_market", "--industry", "software"),
        *("--currency", "EUR", "--manager", "amy", "--manager-type", "sales"),
        *("--external-key", key, "--at", "2026-01-05"),
    )
    account_id = UUID(opened["account_id"])
    assert account_id == account_id_for(key)
    assert opened["version"] == 1
    on = ("--account", key)
    run("start-contract", *on, "--term-end", "2027-01-04", "--line", "core=12000")
    ann = run("add-stakeholder", *on, "--name", "Ann", "--role", "champion")["entity_id"]
    bo = run("add-stakeholder", *on, "--name", "Bo", "--role", "user", "--title", "Ops")
    run("update-stakeholder", *on, "--stakeholder", ann, "--sentiment", "positive")
    run(
        "log-contact",
        *on,
        *("--channel", "meeting", "--direction", "outbound", "--stakeholder", ann),
        *("--stakeholder", bo["entity_id"], "--minutes", "30", "--summary", "kick-off"),
    )
    asked = run("receive-request", *on, "--subject", "SSO", "--channel", "email")["entity_id"]
    run("answer-request", *on, "--request", asked, "--response", "done")
    run("record-feedback", *on, "--survey", "nps", "--score", "9", "--respondent", "Ann")
    run("record-feedback", *on, "--survey", "csat", "--score", "4")
    run("record-feedback", *on, "--survey", "ces", "--score", "6", "--comment", "easy")
    run("record-value", *on, "--amount", "5000", "--description", "fewer returns")
    run("reassign-manager", *on, "--manager", "bob", "--manager-type", "technical")
    run("mark-renewal-due", *on, "--due-on", "2026-12-01")
    run("upsell", *on, "--product", "core", "--added-arr", "1000 EUR")
    run("cross-sell", *on, "--product", "analytics", "--arr", "3000")
    run("downgrade", *on, "--product", "analytics", "--reduced-by", "500", "--reason", "cut")
    offer = ("--kind", "upsell", "--product", "core", "--estimated-arr", "2000")
    won = run("offer-opportunity", *on, *offer)["entity_id"]
    run("win-opportunity", *on, "--opportunity", won, "--arr", "2000 EUR")
    offer = ("--kind", "cross_sell", "--product", "ai", "--estimated-arr", "4000")
    lost = run("offer-opportunity", *on, *offer)["entity_id"]
    unit = run("add-business-unit", *on, "--name", "Ops")["entity_id"]
    run("adopt-product", *on, "--unit", unit, "--product", "core")
    run("target-opportunity", *on, "--opportunity", lost, "--unit", unit)
    run("lose-opportunity", *on, "--opportunity", lost, "--reason", "price")
    run("mark-product-ineligible", *on, "--unit", unit, "--product", "ai", "--reason", "none")
    run("restore-product-eligibility", *on, "--unit", unit, "--product", "ai")
    run("end-product-adoption", *on, "--unit", unit, "--product", "core")
    run("rename-business-unit", *on, "--unit", unit, "--name", "Operations")
    run("remove-business-unit", *on, "--unit", unit, "--reason", "merged")
    issue = ("--title", "Down", "--severity", "high", "--category", "outage")
    issue_id = run("raise-issue", *on, *issue)["entity_id"]
    run("respond-issue", *on, "--issue", issue_id)
    run("escalate-issue", *on, "--issue", issue_id, "--to-team", "engineering")
    run("resolve-issue", *on, "--issue", issue_id, "--resolution", "fixed")
    goal = run("set-goal", *on, "--title", "Grow", "--target-date", "2026-12-31")["entity_id"]
    strategy = run("add-strategy", *on, "--goal", goal, "--description", "Expand")["entity_id"]
    tactic = ("--strategy", strategy, "--owner", "bob", "--due-on", "2026-06-01")
    done = run("add-tactic", *on, *tactic, "--description", "QBR")["entity_id"]
    dropped = run("add-tactic", *on, *tactic, "--description", "Dinner")["entity_id"]
    run("complete-tactic", *on, "--tactic", done)
    run("drop-tactic", *on, "--tactic", dropped, "--reason", "later")
    run("achieve-goal", *on, "--goal", goal)
    other = run("set-goal", *on, "--title", "Enter AI", "--measure", "a pilot")["entity_id"]
    run("abandon-goal", *on, "--goal", other, "--reason", "no budget")
    run("renew", *on, "--term-end", "2028-01-04", "--line", "core=15000", "--line", "bi=1 EUR")
    run("remove-stakeholder", *on, "--stakeholder", bo["entity_id"], "--reason", "left")
    run("erase-subject", *on, "--subject", bo["entity_id"], "--reason", "asked to")
    run("churn", *on, "--reason", "competitor", "--detail", "went cheaper")
    last = run("reactivate", *on, "--term-end", "2029-01-04", "--line", "core=10000")

    assert ran == {command.name for command in COMMANDS}
    assert last["version"] == events(empty, account_id)
    now = state(empty, account_id)
    assert now.name == "Initech"
    assert now.manager == "bob"
    assert now.status is AccountStatus.ACTIVE
    assert now.opened_at == datetime(2026, 1, 5, tzinfo=UTC)
    assert now.lines == (ProductLine("core", Money("10000", "EUR")),)
    assert now.term_end == date(2029, 1, 4)
    assert [p.name for p in now.stakeholders if p.removed_at is None] == ["Ann"]
    assert now.latest_nps == NpsScore(9)
    assert now.latest_csat == CsatScore(4)
    assert now.value_delivered == Money("5000", "EUR")
    assert now.contact_count == 1
    assert not now.open_issues
    assert [o.status for o in now.opportunities] == [OpportunityStatus.WON, OpportunityStatus.LOST]
    assert [g.status for g in now.goals] == [GoalStatus.ACHIEVED, GoalStatus.ABANDONED]
    assert [t.status for t in now.tactics] == [TacticStatus.COMPLETED, TacticStatus.DROPPED]
    assert [u.name for u in now.business_units] == ["Operations"]


# --- accounts, options, output ----------------------------------------------------------------


@pytest.mark.parametrize("account", [str(ACME), "crm:1", "Acme"])
def test_an_account_is_found_by_id_external_key_or_name(db: str, account: str) -> None:
    report = ok(record("upsell", "--db", db, "--account", account, *UPSELL, "--json"))
    assert report["account_id"] == str(ACME)
    assert report["version"] == 3


def test_accounts_named_reads_the_opening_events(db: str) -> None:
    service = AccountService(db, plugins=host())
    try:
        assert accounts_named(service, "Acme") == [ACME]
        assert sorted(accounts_named(service, "Twin", page=1)) == sorted(
            [account_id_for("crm:2"), account_id_for("crm:3")]
        )
        assert accounts_named(service, "acme") == []
    finally:
        service.close()


UPSELL = ("--product", "core", "--added-arr", "1000")


def test_text_output_names_the_account_version_and_new_item(db: str) -> None:
    result = record("upsell", "--db", db, "--account", "crm:1", *UPSELL)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"recorded upsell on account {ACME} (version 3)\n"
    result = record(
        "raise-issue",
        *("--db", db, "--account", "crm:1", "--title", "Slow", "--severity", "low"),
        *("--category", "performance", "--idempotency-key", "issue-1"),
    )
    assert result.exit_code == 0, result.output
    issue_id = state(db).issues[0].issue_id
    assert result.stdout == (
        f"recorded raise-issue on account {ACME} (version 4); issue {issue_id}\n"
    )


def test_the_actor_comes_from_the_option_or_the_environment(db: str) -> None:
    ok(record("upsell", "--db", db, "--account", "crm:1", *UPSELL, "--json", actor="eve"))
    ok(record("upsell", "--db", db, "--account", "crm:1", *UPSELL, "--actor", "sam", "--json"))
    service = AccountService(db, plugins=host())
    try:
        assert [e.actor for e in service.history(ACME)[-2:]] == ["eve", "sam"]
    finally:
        service.close()


@pytest.mark.parametrize(
    ("at", "effective"),
    [
        ("2026-02-01", datetime(2026, 2, 1, tzinfo=UTC)),
        ("2026-02-01T10:30:00+01:00", datetime(2026, 2, 1, 9, 30, tzinfo=UTC)),
    ],
)
def test_at_sets_the_effective_time(db: str, at: str, effective: datetime) -> None:
    ok(record("upsell", "--db", db, "--account", "crm:1", *UPSELL, "--at", at, "--json"))
    service = AccountService(db, plugins=host())
    try:
        assert service.history(ACME)[-1].effective_at == effective
    finally:
        service.close()


def test_money_and_lines_take_the_accounts_currency_or_their_own(db: str) -> None:
    ok(record("upsell", "--db", db, "--account", "crm:1", "--product", "core",
              "--added-arr", "1000.50", "--json"))  # fmt: skip
    ok(record("renew", "--db", db, "--account", "crm:1", "--term-end", "2028-01-04",
              "--line", "core=13000 EUR", "--line", " bi = 250.5 ", "--json"))  # fmt: skip
    assert state(db).lines == (
        ProductLine("core", Money("13000", "EUR")),
        ProductLine("bi", Money(Decimal("250.5"), "EUR")),
    )


def test_an_idempotency_key_records_once(db: str) -> None:
    args = ("--db", db, "--account", "crm:1", *UPSELL, "--idempotency-key", "u-1", "--json")
    first, again = ok(record("upsell", *args)), ok(record("upsell", *args))
    assert first == again
    assert events(db) == 3


def test_expected_version_guards_the_account(db: str) -> None:
    args = ("--db", db, "--account", "crm:1", *UPSELL)
    assert_one_line_error(
        record("upsell", *args, "--expected-version", "1"),
        f"upsell refused: account {ACME}: expected version 1, the account is at 2",
    )
    ok(record("upsell", *args, "--expected-version", "2", "--json"))


# --- mistakes ---------------------------------------------------------------------------------

ON_ACME = ("--account", "crm:1")
MISTAKES = [
    (["mark-renewal-due", *ON_ACME, "--due-on", "2026-13-01"],
     "--due-on: expected a date (YYYY-MM-DD), got '2026-13-01'"),
    (["upsell", *ON_ACME, "--product", "core", "--added-arr", "lots"],
     "--added-arr: expected an amount and its currency (12000 EUR), got 'lots'"),
    (["upsell", *ON_ACME, "--product", "core", "--added-arr", "12 EUR extra"],
     "--added-arr: expected an amount and its currency"),
    (["upsell", *ON_ACME, "--product", "core", "--added-arr", "NaN"],
     "--added-arr: expected an amount and its currency"),
    (["upsell", *ON_ACME, "--product", "core", "--added-arr", "100 EURO"],
     "--added-arr: 'EURO' is not an ISO 4217 currency code"),
    (["renew", *ON_ACME, "--term-end", "2028-01-04", "--line", "core"],
     "--line: expected PRODUCT=AMOUNT (analytics=12000), got 'core'"),
    (["renew", *ON_ACME, "--term-end", "2028-01-04", "--line", "core=1,000"],
     "--line: expected an amount and its currency (12000 EUR), got '1,000'"),
    (["renew", *ON_ACME, "--term-end", "2028-01-04"], "--line is required"),
    (["answer-request", *ON_ACME, "--request", "42"],
     "--request: expected an id (a UUID), got '42'"),
    (["log-contact", *ON_ACME, "--channel", "fax", "--direction", "inbound"],
     "--channel: expected one of email, phone, video_call, meeting, qbr, chat, site_visit, "
     "event, got 'fax'"),
    (["log-contact", *ON_ACME, "--channel", "phone", "--direction", "in", "--minutes", "5"],
     "--direction: expected one of inbound, outbound, got 'in'"),
    (["log-contact", *ON_ACME, "--channel", "phone", "--direction", "inbound", "--minutes", "½"],
     "--minutes: expected a whole number, got '½'"),
    (["record-feedback", *ON_ACME, "--survey", "nps", "--score", "11"],
     "--score: nps scores go from 0 to 10, got 11"),
    (["record-feedback", *ON_ACME, "--survey", "csat", "--score", "0"],
     "--score: csat scores go from 1 to 5, got 0"),
    (["record-feedback", *ON_ACME, "--survey", "promoter", "--score", "9"],
     "--survey: expected one of nps, csat, ces, got 'promoter'"),
    (["churn", *ON_ACME], "--reason is required"),
    (["upsell", *UPSELL], "--account is required"),
    (["upsell", "--account", "Nobody", *UPSELL],
     "--account 'Nobody': no account has this id, external key or name"),
    (["upsell", "--account", " ", *UPSELL], "--account: expected an account's id"),
    (["upsell", "--account", "00000000-0000-0000-0000-000000000001", *UPSELL],
     "--account 00000000-0000-0000-0000-000000000001: the store has no such account"),
    (["upsell", "--account", "Twin", *UPSELL], "--account 'Twin': 2 accounts have this name ("),
    (["upsell", *ON_ACME, *UPSELL, "--at", "2026-02-01T10:00"],
     "--at: a time needs its offset (2026-03-02T10:00+00:00), got '2026-02-01T10:00'"),
    (["upsell", *ON_ACME, *UPSELL, "--at", "yesterday"],
     "--at: expected a date (2026-03-02) or a time with its offset, got 'yesterday'"),
    (["upsell", *ON_ACME, *UPSELL, "--expected-version", "two"],
     "--expected-version: expected a whole number, got 'two'"),
    (["upsell", *ON_ACME, *UPSELL, "--expected-version", "0"],
     "--expected-version: expected a version >= 1, got '0'"),
    (["upsell", *ON_ACME, *UPSELL, "--idempotency-key", " "],
     "--idempotency-key: expected a non-empty key"),
    # refused by the account
    (["upsell", *ON_ACME, "--product", "core", "--added-arr", "10 USD"],
     "upsell refused: added_arr: amount is in USD, the account's contract currency is EUR"),
    (["reactivate", *ON_ACME, "--term-end", "2028-01-04", "--line", "core=1"],
     "reactivate refused: "),
    (["start-contract", *ON_ACME, "--term-end", "2028-01-04", "--line", "core=1"],
     "start-contract refused: "),
    (["resolve-issue", *ON_ACME, "--issue", "00000000-0000-0000-0000-000000000002"],
     "resolve-issue refused: issue_id: "),
    (["open-account", "--name", "Acme", "--segment", "smb", "--industry", "retail",
      "--currency", "EUR", "--manager", "amy", "--manager-type", "sales",
      "--external-key", "crm:1"],
     f"open-account refused: account_id: account {ACME} exists already"),
    (["open-account", "--name", "Acme", "--segment", "big", "--industry", "retail",
      "--currency", "EUR", "--manager", "amy", "--manager-type", "sales"],
     "--segment: expected one of smb, mid_market, enterprise, got 'big'"),
    (["open-account", "--name", "Acme", "--segment", "smb", "--industry", "retail",
      "--currency", "EURO", "--manager", "amy", "--manager-type", "sales"],
     "open-account refused: currency: 'EURO' is not an ISO 4217 currency code"),
    (["add-stakeholder", *ON_ACME, "--name", " ", "--role", "champion"],
     "add-stakeholder refused: name: must not be blank"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), MISTAKES, ids=lambda v: str(v)[:60])
def test_a_mistake_is_one_line_and_records_nothing(db: str, args: list[str], message: str) -> None:
    assert_one_line_error(record(*args, "--db", db), message)
    assert events(db) == 2


def test_the_same_idempotency_key_for_other_arguments_is_refused(db: str) -> None:
    args = ("--db", db, "--account", "crm:1", "--product", "core", "--idempotency-key", "k")
    ok(record("upsell", *args, "--added-arr", "10", "--json"))
    assert_one_line_error(
        record("upsell", *args, "--added-arr", "20"),
        "upsell refused: idempotency key 'k': it was first used for 'upsell' with other",
    )
    assert events(db) == 3


def test_without_an_actor_nothing_is_recorded(db: str) -> None:
    assert_one_line_error(
        record("upsell", "--db", db, "--account", "crm:1", *UPSELL, actor=None),
        "--actor: who records the command is required (or set $ACCTDOMAIN_ACTOR)",
    )
    assert events(db) == 2


def test_a_missing_store_is_a_usage_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.db")
    assert_one_line_error(
        record("upsell", "--db", missing, "--account", "crm:1", *UPSELL),
        f"--db: there is no SQLite store at {missing}",
    )
    assert not Path(missing).exists()
