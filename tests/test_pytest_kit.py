"""The pytest kit (acctdomain.testing): its fixtures in generated test files run by pytester,
and its classes directly."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sqlite3
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import ConnectionPoolClosedError

from acctdomain import Money, NpsScore, ProductLine
from acctdomain.domain import Account, EventContext
from acctdomain.domain import events as ev
from acctdomain.errors import InvalidValue, RuleViolation
from acctdomain.plugins import (
    ALLOW_ENV_VAR,
    BLOCK_ENV_VAR,
    DEFAULT_PLUGINS,
    Policy,
    Reaction,
    hookimpl,
)
from acctdomain.testing import (
    START,
    AccountScenario,
    ManualClock,
    ProjectionScenarioFactory,
    ServiceFactory,
    open_account,
)

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "plugin_tests.py"
BUILTINS = [name for name, _ in DEFAULT_PLUGINS]

# A header for generated test files: a plugin that fails in a hook, and a projection.
PLUGINS = """
from datetime import date
from acctdomain.domain import events as ev
from acctdomain.plugins import Projection, hookimpl

class Broken:
    @hookimpl
    def acctdomain_register_kpis(self, register):
        raise RuntimeError("the kpi table is on fire")

class Misspelled:
    @hookimpl
    def acctdomain_register_kpi(self, register):
        pass

class Fragile(Projection):
    name = "fragile"
    tables = ("fragile",)
    event_types = (ev.ContactLogged,)

    def apply(self, event, rows):
        raise KeyError("no such row")

def scorecard(service):
    return {line.name: line for line in service.scorecard(date(2026, 1, 1), date(2026, 1, 31))}
"""


def log_call(account: Account, ctx: EventContext) -> None:
    account.log_contact(
        channel="phone",
        direction="outbound",
        summary="check-in",
        stakeholder_ids=(),
        duration_minutes=15,
        ctx=ctx,
    )


def start_contract(account: Account, ctx: EventContext) -> None:
    lines = [ProductLine("core", Money(12_000, "EUR"))]
    account.start_contract(term_end=date(2027, 1, 31), lines=lines, ctx=ctx)


# --- registration -----------------------------------------------------------------------------


def test_the_kit_is_registered_as_the_pytest11_plugin_acctdomain() -> None:
    [entry_point] = [e for e in metadata.entry_points(group="pytest11") if e.name == "acctdomain"]
    assert entry_point.value == "acctdomain.testing.pytest_plugin"
    module = entry_point.load()
    assert module is importlib.import_module("acctdomain.testing.pytest_plugin")
    for fixture in ("acctdomain_service", "account_scenario", "projection_scenario"):
        assert callable(getattr(module, fixture))


def test_a_test_file_needs_nothing_but_acctdomain_installed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_fixtures_are_there(acctdomain_service, account_scenario, projection_scenario):
            assert acctdomain_service().plugins.loaded()
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_the_documented_example_tests_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_example=EXAMPLE.read_text(encoding="utf-8"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


# --- given / when / then ----------------------------------------------------------------------


def test_a_then_that_does_not_match_fails_naming_the_first_difference(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        from acctdomain.domain import events as ev

        def log(account, ctx):
            account.log_contact(channel="email", direction="inbound", summary="hello",
                                stakeholder_ids=(), duration_minutes=None, ctx=ctx)

        def test_summary(account_scenario):
            account_scenario.when(log).then((ev.ContactLogged, {"summary": "goodbye"}))
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*then(): event 1 (ContactLogged) field 'summary': expected 'goodbye', got 'hello'",
            "*expected:",
            "*1. ContactLogged(summary='goodbye')",
            "*got:",
            "*1. ContactLogged(channel=<Channel.EMAIL: 'email'>, *summary='hello'*",
        ]
    )


def test_then_shows_the_refusal_when_the_command_was_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from datetime import date
        from acctdomain import Money, NpsScore, ProductLine
        from acctdomain.domain import events as ev

        def test_renew(account_scenario):
            lines = [ProductLine("core", Money(1, "EUR"))]
            account_scenario.when(
                lambda account, ctx: account.renew(term_end=date(2027, 1, 1), lines=lines, ctx=ctx)
            ).then(ev.Renewed)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*then(): expected the events",
            "*1. Renewed()",
            "*but the command raised AccountNotActive on 'status': cannot renew: no contract "
            "has started yet",
        ]
    )


def test_then_checks_the_number_and_classes_of_events() -> None:
    scenario = AccountScenario().when(log_call)
    with pytest.raises(
        AssertionError, match=re.escape("expected 2 event(s), the command decided 1")
    ):
        scenario.then(ev.ContactLogged, ev.ContactLogged)
    with pytest.raises(AssertionError, match="event 1 is ContactLogged, expected Renewed"):
        scenario.then(ev.Renewed)
    with pytest.raises(AssertionError, match="has no field 'colour'"):
        scenario.then((ev.ContactLogged, {"colour": "red"}))
    [event] = scenario.then((ev.ContactLogged, {"duration_minutes": 15}))
    assert event.effective_at == START + timedelta(days=1)  # opening took the first step


def test_then_refused_checks_error_field_reason_and_that_nothing_changed() -> None:
    scenario = AccountScenario().given(start_contract)
    scenario.when(
        lambda account, ctx: account.start_contract(
            term_end=date(2028, 1, 1), lines=[ProductLine("core", Money(1, "EUR"))], ctx=ctx
        )
    )
    refusal = scenario.then_refused(RuleViolation, field="status", match="already started")
    assert refusal.field == "status"
    with pytest.raises(AssertionError, match="expected InvalidValue, got RuleViolation"):
        scenario.then_refused(InvalidValue)
    with pytest.raises(AssertionError, match="expected a refusal on 'lines'"):
        scenario.then_refused(RuleViolation, field="lines")
    with pytest.raises(AssertionError, match="does not match 'churned'"):
        scenario.then_refused(RuleViolation, match="churned")
    scenario.then_state(status="active", arr=Money(12_000, "EUR"))


def test_then_refused_fails_when_the_command_succeeded(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from acctdomain.errors import CommandRejected

        def test_refused(account_scenario):
            account_scenario.when(
                lambda account, ctx: account.log_contact(channel="qbr", direction="outbound",
                    summary="", stakeholder_ids=(), duration_minutes=None, ctx=ctx)
            ).then_refused(CommandRejected)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*then_refused(): expected CommandRejected, but the command succeeded with*"]
    )


def test_a_refused_given_step_is_a_mistake_in_the_test() -> None:
    scenario = AccountScenario()
    churn = lambda account, ctx: account.churn(reason="price", detail="", ctx=ctx)  # noqa: E731
    with pytest.raises(
        AssertionError, match=re.escape("given(): step 1 was refused: AccountNotActive")
    ):
        scenario.given(churn)


def test_given_events_are_applied_in_order_and_must_follow_on() -> None:
    earlier = AccountScenario().given(start_contract, log_call)
    opened, started, logged = earlier.history
    assert isinstance(opened, ev.AccountOpened)
    later = AccountScenario().given(opened, started)
    assert later.account_id == opened.originator_id
    assert later.now == started.effective_at + timedelta(days=1)
    with pytest.raises(AssertionError, match=r"event 1 \(ContactLogged v3\) cannot be applied"):
        AccountScenario().given(opened).given(logged)
    with pytest.raises(AssertionError, match="the first event must be AccountOpened"):
        AccountScenario().given(started)


def test_a_scenario_has_one_command_under_test() -> None:
    scenario = AccountScenario().when(log_call)
    with pytest.raises(AssertionError, match=re.escape("when() twice")):
        scenario.when(log_call)
    with pytest.raises(AssertionError, match=re.escape("given() after when()")):
        scenario.given(log_call)
    with pytest.raises(AssertionError, match=re.escape("then() before when()")):
        AccountScenario().then(ev.ContactLogged)


def test_the_scenario_builds_contexts_one_step_apart_from_its_start() -> None:
    moment = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    scenario = AccountScenario(start=moment, step=timedelta(hours=1), actor="bob")
    assert scenario.context(actor="kim").actor == "kim"
    scenario.given(log_call).at(moment + timedelta(days=3)).when(log_call)
    opened, logged = scenario.history
    [later] = scenario.events
    assert (opened.effective_at, logged.effective_at) == (moment, moment + timedelta(hours=1))
    assert later.effective_at == later.recorded_at == moment + timedelta(days=3)
    assert later.actor == "bob"


def test_opening_can_be_the_command_under_test() -> None:
    scenario = AccountScenario().when_opening(currency="USD")
    scenario.then((ev.AccountOpened, {"currency": "USD", "name": "Acme"}))
    refused = AccountScenario().when_opening(currency="EURO")
    refused.then_refused(InvalidValue, field="currency")


# --- plugin failures --------------------------------------------------------------------------


def test_a_plugin_raising_in_a_hook_fails_a_test_that_passed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        PLUGINS
        + """
def test_scorecard(acctdomain_service):
    service = acctdomain_service(("broken", Broken()))
    assert "arr" in scorecard(service)
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*1 plugin failure(s) during the test (pass allow_failures=True to "
            "acctdomain_service() if the test expects them):",
            "- plugin 'broken' in acctdomain_register_kpis: RuntimeError: the kpi table is on fire",
            "*Traceback (most recent call last):",
            '*raise RuntimeError("the kpi table is on fire")',
        ]
    )


def test_a_plugin_that_cannot_load_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        PLUGINS
        + """
def test_load(acctdomain_service):
    acctdomain_service(("misspelled", Misspelled()))
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "- plugin 'misspelled' in load: implements unknown hook 'acctdomain_register_kpi' "
            "(did you mean 'acctdomain_register_kpis'?)"
        ]
    )


def test_plugin_failures_are_shown_beside_the_error_of_a_failing_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        PLUGINS
        + """
def test_scorecard(acctdomain_service):
    service = acctdomain_service(("broken", Broken()))
    assert "mine" in scorecard(service)
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)  # and no error at teardown: reported once
    result.stdout.fnmatch_lines(
        [
            "E * assert 'mine' in *",
            "E * 1 plugin failure(s) during the test*",
            "E * - plugin 'broken' in acctdomain_register_kpis: RuntimeError: *",
        ]
    )


def test_allow_failures_lets_a_test_expect_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        PLUGINS
        + """
def test_contained(acctdomain_service):
    service = acctdomain_service(("broken", Broken()), allow_failures=True)
    assert "arr" in scorecard(service)
    [failure] = service.plugins.failures
    assert (failure.plugin, failure.hook) == ("broken", "acctdomain_register_kpis")
"""
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_failing_projection_fails_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        PLUGINS
        + """
def test_fragile(projection_scenario):
    scenario = projection_scenario(Fragile)
    account_id = scenario.open_account()
    scenario.service.log_contact(account_id, channel="chat", direction="inbound", actor="amy")
    scenario.project()


def test_allowed_failures_let_project_pass(projection_scenario):
    scenario = projection_scenario(Fragile(), allow_failures=True)
    account_id = scenario.open_account()
    scenario.service.log_contact(account_id, channel="chat", direction="inbound", actor="amy")
    [status] = [s for s in scenario.project().service.projections.status() if s.name == "fragile"]
    assert (status.state, status.last_error.position) == ("failed", 2)
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*- projection 'fragile' failed at notification 2: KeyError('no such row') "
            "(its traceback is in the captured log)",
        ]
    )


# --- services and projection scenarios ----------------------------------------------------------


class Quiet:
    @hookimpl
    def acctdomain_startup(self, service: Any) -> None:
        pass


def test_a_service_has_exactly_the_plugins_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BLOCK_ENV_VAR, "builtin.kpis,quiet")
    monkeypatch.setenv(ALLOW_ENV_VAR, "nothing")
    factory = ServiceFactory()
    try:
        service = factory(("quiet", Quiet()))
        assert service.plugins.loaded() == [*BUILTINS, "quiet"]
        assert {info.source for info in service.plugins.infos} == {"builtin", "explicit"}
        bare = factory(("quiet", Quiet()), builtins=False)
        assert bare.plugins.loaded() == ["quiet"]
        blocked = factory(block=["builtin.kpis"])
        assert "builtin.kpis" not in blocked.plugins.loaded()
        clocked = factory(clock=ManualClock())
        assert clocked.clock() == START
        assert factory.services == (service, bare, blocked, clocked)
    finally:
        factory.close()


def test_closing_closes_every_service_and_its_read_models(tmp_path: Path) -> None:
    factory = ServiceFactory()
    service = factory(store=str(tmp_path / "events.db"))
    open_account(service)
    service.catch_up()
    runner = service.projections
    [projection] = [p for name, p in service.plugins.projections().items() if name == "accounts"]
    factory.close()
    with pytest.raises(sqlite3.ProgrammingError):
        runner.store.position(projection)
    with pytest.raises(ConnectionPoolClosedError):
        service.recorder.max_notification_id()
    assert factory.services == ()


def test_a_projection_scenario_finds_the_projections_of_a_plugin() -> None:
    plugin = load_example().TouchpointsPlugin()
    factory = ServiceFactory()
    try:
        scenario = ProjectionScenarioFactory(factory)(("touch", plugin))
        assert scenario.names == ("touchpoints",)
        account_id = scenario.open_account(name="Globex")
        scenario.project()
        assert scenario.rows("touchpoints") == {}
        with pytest.raises(
            AssertionError, match=r"no row '\w+' in table 'touchpoints' .* \(it has 0 row\(s\)"
        ):
            scenario.row("touchpoints", account_id)
        accounts = scenario.row("accounts", account_id, projection="accounts")
        assert accounts["name"] == "Globex"
    finally:
        factory.close()


class Detractors:
    @hookimpl
    def acctdomain_register_policies(self, register: Any) -> None:
        def react(event: ev.FeedbackRecorded) -> list[Reaction]:
            arguments = {"title": "Call back", "severity": "high", "category": "feedback"}
            return [Reaction("raise_issue", event.originator_id, arguments)]

        register(Policy("call_back", (ev.FeedbackRecorded,), react))


def test_project_with_policies_projects_their_reactions_too() -> None:
    factory = ServiceFactory()
    try:
        scenario = ProjectionScenarioFactory(factory)(("detractors", Detractors()))
        account_id = scenario.open_account()
        scenario.service.record_feedback(account_id, score=NpsScore(2), actor="survey")
        assert (
            scenario.project().row("accounts", account_id, projection="accounts")["open_issues"]
            == []
        )
        row = scenario.project(policies=True).row("accounts", account_id, projection="accounts")
        [issue_id] = row["open_issues"]
        assert scenario.service.get_account(account_id).issues[0].issue_id == issue_id
    finally:
        factory.close()


def test_a_projection_scenario_reports_a_plugin_that_registered_nothing() -> None:
    factory = ServiceFactory()
    try:
        scenario = ProjectionScenarioFactory(factory)(("quiet", Quiet()))
        with pytest.raises(AssertionError, match="registered no projection"):
            scenario.rows("anything")
    finally:
        factory.close()


def load_example() -> Any:
    """docs/examples/plugin_tests.py as a module."""
    spec = importlib.util.spec_from_file_location("docs_plugin_tests", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_manual_clock_moves_only_forward_unless_set() -> None:
    clock = ManualClock()
    assert clock.advance(hours=2) == START + timedelta(hours=2)
    with pytest.raises(ValueError, match="does not go backwards"):
        clock.advance(days=-1)
    assert clock.set(START) == clock() == START
