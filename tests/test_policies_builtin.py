"""The built-in policies (plugin ``builtin.policies``): a detractor gets a follow-up tactic, an
issue past its target is escalated, a renewal due within 90 days gets a preparation tactic;
each reaction once, with its cause, never from a rebuild; refusals recorded; settings checked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from acctdomain import AccountService, CsatScore, Money, NpsScore, ProductLine
from acctdomain.builtin.policies import (
    ESCALATE_OVERDUE_ISSUES,
    FOLLOW_UP_DETRACTORS,
    POLICY_NAMES,
    PREPARE_RENEWALS,
    SETTINGS_ENV_VAR,
    WATCH,
    PoliciesPlugin,
    PolicySettings,
    goal_id_for,
    strategy_id_for,
)
from acctdomain.builtin.targets import DEFAULT_TARGETS, ServiceTargets
from acctdomain.domain import events as ev
from acctdomain.domain.values import IssueSeverity
from acctdomain.errors import InvalidValue, PluginError
from acctdomain.plugins import AuthorizationRequest, Denial, PluginHost, hookimpl
from tests.conftest import FakeClock

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def policy_host(settings: PolicySettings | None = None, *extra: tuple[str, object]) -> PluginHost:
    """The built-in plugins, with the built-in policies configured by ``settings`` (default:
    all enabled)."""
    plugin = PoliciesPlugin(settings or PolicySettings.all_enabled())
    return PluginHost(
        entry_points=False, block=["builtin.policies"], plugins=[("policies", plugin), *extra]
    )


def policy_service(
    url: str, clock: Callable[[], datetime], settings: PolicySettings | None = None
) -> AccountService:
    service = AccountService(url, clock=clock, plugins=policy_host(settings))
    service.plugins.check()
    return service


@pytest.fixture
def service(store_url: str, clock: FakeClock) -> Iterator[AccountService]:
    """A service on each backend with every built-in policy enabled."""
    app = policy_service(store_url, clock)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def memory(clock: FakeClock) -> Iterator[AccountService]:
    app = policy_service("memory:", clock)
    try:
        yield app
    finally:
        app.close()


def open_account(
    service: AccountService, name: str = "Acme", *, term_end: date | None = None
) -> UUID:
    account = service.open_account(
        name=name, segment="smb", industry="retail", currency="EUR", manager="amy",
        manager_type="sales", actor="amy",
    ).account_id  # fmt: skip
    if term_end is not None:
        service.start_contract(
            account, term_end=term_end, lines=[ProductLine("core", Money(1000, "EUR"))],
            actor="amy",
        )  # fmt: skip
    return account


def by_policy(service: AccountService, account: UUID, policy: str) -> list[Any]:
    return [e for e in service.history(account) if e.actor == f"policy:{policy}"]


def of_type(events: list[Any], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def last(service: AccountService, account: UUID, cls: type) -> Any:
    return of_type(list(service.history(account)), cls)[-1]


def head(service: AccountService) -> int:
    return service.recorder.max_notification_id() or 0


# --- the detractor follow-up ---------------------------------------------------------------------


def test_a_detractor_answer_gets_one_follow_up_tactic_caused_by_it(
    service: AccountService,
) -> None:
    account = open_account(service)
    service.record_feedback(account, score=NpsScore(3), respondent="Bob", actor="survey")
    service.record_feedback(account, score=NpsScore(9), actor="survey")  # a promoter
    service.record_feedback(account, score=NpsScore(7), actor="survey")  # a passive
    service.record_feedback(account, score=CsatScore(1), actor="survey")  # not NPS
    service.policies.run()
    service.policies.run()

    detractor = of_type(list(service.history(account)), ev.FeedbackRecorded)[0]
    reactions = by_policy(service, account, FOLLOW_UP_DETRACTORS)
    assert [type(e) for e in reactions] == [ev.GoalSet, ev.StrategyAdded, ev.TacticAdded]
    goal, strategy, tactic = reactions
    assert goal.goal_id == goal_id_for(FOLLOW_UP_DETRACTORS, account)
    assert goal.title == "Keep the relationship healthy"
    assert strategy.strategy_id == strategy_id_for(FOLLOW_UP_DETRACTORS, account)
    assert (strategy.goal_id, strategy.description) == (goal.goal_id, "Follow up on feedback")
    assert tactic.strategy_id == strategy.strategy_id
    assert tactic.description == "Follow up on NPS 3 from Bob"
    assert tactic.owner == "amy"
    assert tactic.due_on == START.date() + timedelta(days=7)
    for reaction in reactions:
        assert reaction.causation_id == detractor.id
        assert reaction.correlation_id == detractor.correlation_id
    assert service.policies.refusals == ()
    assert service.policies.failures() == {}


def test_the_goal_and_strategy_are_set_once_per_account(memory: AccountService) -> None:
    account = open_account(memory)
    memory.record_feedback(account, score=NpsScore(2), actor="survey")
    memory.policies.run()
    memory.reassign_manager(account, manager="bob", manager_type="sales", actor="ops")
    memory.record_feedback(account, score=NpsScore(0), actor="survey")
    memory.policies.run()
    reactions = by_policy(memory, account, FOLLOW_UP_DETRACTORS)
    assert [type(e).__name__ for e in reactions] == [
        "GoalSet", "StrategyAdded", "TacticAdded", "TacticAdded",
    ]  # fmt: skip
    second = reactions[-1]
    assert (second.description, second.owner) == ("Follow up on NPS 0", "bob")
    assert second.causation_id == last(memory, account, ev.FeedbackRecorded).id


def test_a_fixed_owner_and_follow_up_delay_come_from_the_settings(clock: FakeClock) -> None:
    settings = PolicySettings(
        enabled=frozenset({FOLLOW_UP_DETRACTORS}), owner="care-team", follow_up_days=2
    )
    service = policy_service("memory:", clock, settings)
    try:
        assert list(service.plugins.policies()) == [FOLLOW_UP_DETRACTORS]
        assert WATCH not in service.plugins.projections()  # no clock-driven policy enabled
        account = open_account(service)
        service.record_feedback(account, score=NpsScore(5), actor="survey")
        service.policies.run()
        tactic = last(service, account, ev.TacticAdded)
        assert (tactic.owner, tactic.due_on) == ("care-team", START.date() + timedelta(days=2))
    finally:
        service.close()


def test_closing_the_policy_goal_switches_the_follow_up_off_for_that_account(
    memory: AccountService,
) -> None:
    account = open_account(memory)
    other = open_account(memory, "Globex")
    memory.record_feedback(account, score=NpsScore(4), actor="survey")
    memory.policies.run()
    memory.abandon_goal(
        account, goal_id=goal_id_for(FOLLOW_UP_DETRACTORS, account), reason="we call anyway",
        actor="amy",
    )  # fmt: skip
    memory.record_feedback(account, score=NpsScore(1), actor="survey")
    memory.record_feedback(other, score=NpsScore(1), actor="survey")
    memory.policies.run()
    assert len(of_type(by_policy(memory, account, FOLLOW_UP_DETRACTORS), ev.TacticAdded)) == 1
    assert len(of_type(by_policy(memory, other, FOLLOW_UP_DETRACTORS), ev.TacticAdded)) == 1
    assert memory.policies.refusals == ()


# --- escalation of issues past their target ------------------------------------------------------


def test_an_issue_is_escalated_once_per_missed_target_with_its_raising_as_cause(
    service: AccountService,
) -> None:
    account = open_account(service)
    issue = service.raise_issue(
        account, title="Export broken", severity="high", category="bug", actor="amy"
    ).entity_id
    raised = last(service, account, ev.IssueRaised)
    service.policies.run(now=START + timedelta(hours=3))  # within 4 hours: on time
    assert by_policy(service, account, ESCALATE_OVERDUE_ISSUES) == []

    service.policies.run(now=START + timedelta(hours=5))  # no first response in 4 hours
    service.policies.run(now=START + timedelta(hours=6))
    [response] = by_policy(service, account, ESCALATE_OVERDUE_ISSUES)
    assert (response.issue_id, response.to_team) == (issue, "support")
    assert response.reason == "past its response target of 4 hours for a high issue"
    assert response.causation_id == raised.id
    assert response.correlation_id == raised.correlation_id

    service.respond_to_issue(account, issue_id=issue, actor="amy")
    service.policies.run(now=START + timedelta(days=2))  # responded, within 3 days
    service.policies.run(now=START + timedelta(days=3, hours=1))  # past resolution
    service.policies.run(now=START + timedelta(days=4))
    escalations = by_policy(service, account, ESCALATE_OVERDUE_ISSUES)
    assert [(e.to_team, e.causation_id) for e in escalations] == [
        ("support", raised.id),
        ("engineering", raised.id),
    ]
    assert escalations[1].reason == "past its resolution target of 3 days for a high issue"


def test_handled_issues_are_not_escalated(memory: AccountService) -> None:
    account = open_account(memory)

    def issue(title: str) -> UUID:
        result = memory.raise_issue(
            account, title=title, severity="critical", category="outage", actor="amy"
        )
        assert result.entity_id is not None
        return result.entity_id

    resolved, escalated, answered = issue("resolved"), issue("escalated"), issue("answered")
    memory.resolve_issue(account, issue_id=resolved, actor="amy")
    memory.escalate_issue(account, issue_id=escalated, to_team="support", actor="amy")
    memory.respond_to_issue(account, issue_id=answered, actor="amy")
    memory.policies.run(now=START + timedelta(hours=2))  # critical: 1 hour to respond
    assert by_policy(memory, account, ESCALATE_OVERDUE_ISSUES) == []
    memory.policies.run(now=START + timedelta(days=1, hours=1))  # past resolution (1 day)
    escalations = by_policy(memory, account, ESCALATE_OVERDUE_ISSUES)
    assert sorted((e.issue_id, e.to_team) for e in escalations) == sorted(
        [(escalated, "engineering"), (answered, "engineering")]
    )


def test_targets_and_teams_come_from_the_settings(clock: FakeClock) -> None:
    settings = PolicySettings.from_mapping(
        {
            "enabled": [ESCALATE_OVERDUE_ISSUES],
            "targets": {"response": {"low": 1}},
            "escalate_to": {"response": "care"},
        }
    )
    assert settings.escalate_to == {"response": "care", "resolution": "engineering"}
    service = policy_service("memory:", clock, settings)
    try:
        account = open_account(service)
        service.raise_issue(account, title="Typo", severity="low", category="ui", actor="amy")
        service.policies.run(now=START + timedelta(hours=2))
        [escalation] = by_policy(service, account, ESCALATE_OVERDUE_ISSUES)
        assert escalation.to_team == "care"
        assert escalation.reason == "past its response target of 1 hour for a low issue"
    finally:
        service.close()


# --- renewal preparation --------------------------------------------------------------------------


def test_a_renewal_within_90_days_gets_one_preparation_tactic(service: AccountService) -> None:
    renewal = date(2026, 5, 5)  # 120 days after START
    account = open_account(service, term_end=renewal)
    contract = last(service, account, ev.ContractStarted)
    service.policies.run(now=START + timedelta(days=29))  # 91 days before: not yet
    assert by_policy(service, account, PREPARE_RENEWALS) == []

    service.policies.run(now=START + timedelta(days=30))  # 90 days before
    service.policies.run(now=START + timedelta(days=31))
    reactions = by_policy(service, account, PREPARE_RENEWALS)
    assert [type(e) for e in reactions] == [ev.GoalSet, ev.StrategyAdded, ev.TacticAdded]
    goal, strategy, tactic = reactions
    assert (goal.goal_id, goal.title) == (goal_id_for(PREPARE_RENEWALS, account), "Renew on time")
    assert strategy.description == "Prepare the renewal"
    assert tactic.description == "Prepare the renewal due on 2026-05-05"
    assert (tactic.owner, tactic.due_on) == ("amy", renewal - timedelta(days=60))
    for reaction in reactions:
        assert reaction.causation_id == contract.id
        assert reaction.correlation_id == contract.correlation_id

    # Marking the same renewal due in the pipeline changes nothing: it is prepared.
    service.mark_renewal_due(account, due_on=renewal, actor="amy")
    service.policies.run(now=START + timedelta(days=40))
    assert len(by_policy(service, account, PREPARE_RENEWALS)) == 3


def test_the_renewal_due_event_is_the_cause_and_renewing_starts_the_next_cycle(
    memory: AccountService, clock: FakeClock
) -> None:
    account = open_account(memory, term_end=date(2026, 12, 31))
    memory.mark_renewal_due(account, due_on=date(2026, 3, 1), actor="amy")  # brought forward
    due = last(memory, account, ev.RenewalDue)
    memory.policies.run()
    [tactic] = of_type(by_policy(memory, account, PREPARE_RENEWALS), ev.TacticAdded)
    assert tactic.causation_id == due.id
    # Set 55 days before the renewal: due the day it was set, not 60 days before.
    assert tactic.due_on == START.date()

    clock.advance(days=50)
    memory.renew(
        account, term_end=date(2027, 3, 1), lines=[ProductLine("core", Money(1100, "EUR"))],
        actor="amy",
    )  # fmt: skip
    renewed = last(memory, account, ev.Renewed)
    memory.policies.run()  # the next renewal is a year away
    assert len(of_type(by_policy(memory, account, PREPARE_RENEWALS), ev.TacticAdded)) == 1
    memory.policies.run(now=datetime(2026, 12, 15, tzinfo=UTC))
    tactics = of_type(by_policy(memory, account, PREPARE_RENEWALS), ev.TacticAdded)
    assert [t.description for t in tactics] == [
        "Prepare the renewal due on 2026-03-01",
        "Prepare the renewal due on 2027-03-01",
    ]
    assert tactics[1].causation_id == renewed.id
    assert len(by_policy(memory, account, PREPARE_RENEWALS)) == 4  # goal and strategy once


def test_churned_past_and_prepared_renewals_get_no_tactic(memory: AccountService) -> None:
    churned = open_account(memory, "Churned", term_end=date(2026, 3, 1))
    memory.churn(churned, reason="price", actor="amy")
    past = open_account(memory, "Past", term_end=date(2026, 1, 20))  # due the day before
    prepared = open_account(memory, "Prepared", term_end=date(2026, 3, 1))
    goal = memory.set_goal(
        prepared, title="Renew", goal_id=goal_id_for(PREPARE_RENEWALS, prepared), actor="amy"
    ).entity_id
    assert goal is not None
    memory.add_strategy(
        prepared, goal_id=goal, description="Ours",
        strategy_id=strategy_id_for(PREPARE_RENEWALS, prepared), actor="amy",
    )  # fmt: skip
    memory.add_tactic(
        prepared, strategy_id=strategy_id_for(PREPARE_RENEWALS, prepared),
        description="Book the renewal call", owner="amy", actor="amy",
    )  # fmt: skip
    opted_out = open_account(memory, "Opted out", term_end=date(2026, 3, 1))
    opted_goal = goal_id_for(PREPARE_RENEWALS, opted_out)
    memory.set_goal(opted_out, title="Renew", goal_id=opted_goal, actor="amy")
    memory.achieve_goal(opted_out, goal_id=opted_goal, actor="amy")
    memory.policies.run(now=datetime(2026, 1, 21, tzinfo=UTC))
    for account in (churned, past, prepared, opted_out):
        assert by_policy(memory, account, PREPARE_RENEWALS) == [], account
    assert memory.policies.refusals == ()


# --- never from a rebuild; refusals; failures -----------------------------------------------------


def scenario(service: AccountService) -> UUID:
    """One reaction of each policy waiting at START + 2 days."""
    account = open_account(service, term_end=date(2026, 3, 1))
    service.record_feedback(account, score=NpsScore(2), actor="survey")
    service.raise_issue(account, title="Down", severity="critical", category="outage", actor="amy")
    return account


def test_none_after_a_full_rebuild(service: AccountService) -> None:
    account = scenario(service)
    later = START + timedelta(days=2)
    service.policies.run(now=later)
    history, reached = service.history(account), head(service)
    assert len(history) == 4 + 3 + 1 + 3

    service.projections.rebuild()  # every read model from zero: no policy runs
    assert service.history(account) == history
    service.policies.run(now=later)
    service.policies.reset()  # even a policy that sees every event again
    service.policies.run(now=later)
    assert service.history(account) == history
    assert head(service) == reached  # not even an idempotency record was written
    outcomes = {r.outcome for r in service.policies.reactions}
    assert outcomes == {"issued", "done_before"}


def test_a_refused_reaction_is_recorded_and_the_others_go_on(clock: FakeClock) -> None:
    class NoPoliciesOnVip:
        vip: UUID | None = None

        @hookimpl
        def acctdomain_authorize(self, request: AuthorizationRequest) -> Denial | None:
            if request.actor.startswith("policy:") and request.account_id == self.vip:
                return Denial("hands off the VIP")
            return None

    veto = NoPoliciesOnVip()
    service = AccountService("memory:", clock=clock, plugins=policy_host(None, ("veto", veto)))
    try:
        veto.vip = scenario(service)
        other = scenario(service)
        service.policies.run(now=START + timedelta(days=2))
        refusals = service.policies.refusals
        assert {r.policy for r in refusals} == set(POLICY_NAMES)
        assert all(r.account_id == veto.vip and "NotAuthorized" in r.error for r in refusals)
        detractor = of_type(list(service.history(veto.vip)), ev.FeedbackRecorded)[0]
        [follow_up] = [r for r in refusals if r.policy == FOLLOW_UP_DETRACTORS][:1]
        assert (follow_up.event_id, follow_up.position) == (detractor.id, follow_up.position)
        assert follow_up.position > 0
        escalation = next(r for r in refusals if r.policy == ESCALATE_OVERDUE_ISSUES)
        raised = last(service, veto.vip, ev.IssueRaised)
        assert (escalation.event_id, escalation.position) == (raised.id, 0)
        assert len(service.history(veto.vip)) == 4
        assert len(service.history(other)) == 4 + 7
        assert service.policies.failures() == {}
    finally:
        service.close()


def test_a_stale_read_model_gives_a_refusal_not_a_crash(memory: AccountService) -> None:
    account = open_account(memory)
    issue = memory.raise_issue(
        account, title="Slow", severity="critical", category="perf", actor="amy"
    ).entity_id
    memory.catch_up()
    memory.resolve_issue(account, issue_id=issue, actor="amy")  # the read model lags
    assert memory.policies.tick(START + timedelta(hours=2), catch_up=False) == 0
    [refusal] = memory.policies.refusals
    assert (refusal.command, refusal.policy) == ("escalate_issue", ESCALATE_OVERDUE_ISSUES)
    assert "InvalidTransition" in refusal.error
    assert memory.policies.tick(START + timedelta(hours=2)) == 0  # caught up: nothing due
    assert len(memory.policies.refusals) == 1


def test_a_bad_now_is_refused(memory: AccountService) -> None:
    before = head(memory)
    with pytest.raises(InvalidValue, match="now"):
        memory.policies.run(now=datetime(2026, 1, 1))  # naive: no offset
    with pytest.raises(InvalidValue, match="now"):
        memory.policies.tick("2026-01-01")  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="catch_up"):
        memory.policies.tick(catch_up="yes")  # type: ignore[arg-type]
    assert head(memory) == before


# --- settings -------------------------------------------------------------------------------------


def test_the_built_in_plugin_registers_nothing_until_enabled() -> None:
    host = PluginHost(entry_points=False, env={})
    assert "builtin.policies" in host.loaded()
    assert not set(POLICY_NAMES) & set(host.policies())
    assert WATCH not in host.projections()
    assert not host.failures


def test_the_settings_file_of_the_environment_enables_policies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(
        'enabled = "all"\nrenewal_horizon_days = 30\nowner = "desk"\n'
        '[escalate_to]\nresolution = "sre"\n[targets.resolution]\ncritical = 12\n'
    )
    settings = PolicySettings.from_environment({SETTINGS_ENV_VAR: str(path)})
    assert settings.enabled == frozenset(POLICY_NAMES)
    assert (settings.renewal_horizon_days, settings.owner) == (30, "desk")
    assert settings.escalate_to == {"response": "support", "resolution": "sre"}
    assert settings.targets.resolution[IssueSeverity.CRITICAL] == timedelta(hours=12)
    assert settings.targets.response == DEFAULT_TARGETS.response
    assert PolicySettings.from_environment({}) == PolicySettings()

    monkeypatch.setenv(SETTINGS_ENV_VAR, str(path))
    host = PluginHost(entry_points=False)
    assert set(POLICY_NAMES) <= set(host.policies())
    assert host.owner("acctdomain_register_policies", PREPARE_RENEWALS) == "builtin.policies"
    assert WATCH in host.projections()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"colour": "red"}, "policy settings"),
        ({"enabled": ["follow_up"]}, "enabled"),
        ({"enabled": "some"}, "enabled"),
        ({"renewal_horizon_days": 0}, "renewal_horizon_days"),
        ({"prepare_days_before": -1}, "prepare_days_before"),
        ({"follow_up_days": 1.5}, "follow_up_days"),
        ({"follow_up_days": True}, "follow_up_days"),
        ({"owner": " "}, "owner"),
        ({"escalate_to": {"triage": "x"}}, "escalate_to"),
        ({"escalate_to": {"response": ""}}, "escalate_to.response"),
        ({"targets": {"response": {"urgent": 1}}}, "response.urgent"),
        ({"targets": {"resolution": {"low": -2}}}, "resolution.low"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        PolicySettings.from_mapping(data)
    assert raised.value.field == field


def test_bad_settings_objects_and_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue, match="policy settings"):
        PolicySettings.from_mapping(["enabled"])  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="enabled"):
        PolicySettings(enabled={"follow_up_detractors"})  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="targets"):
        PolicySettings(targets={"response": {}})  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="settings"):
        PoliciesPlugin({"enabled": "all"})  # type: ignore[arg-type]
    broken = tmp_path / "broken.toml"
    broken.write_text("enabled = [")
    with pytest.raises(InvalidValue, match="is not TOML"):
        PolicySettings.from_toml(broken)
    with pytest.raises(InvalidValue, match="cannot read"):
        PolicySettings.from_toml(tmp_path / "missing.toml")
    assert PolicySettings(targets=ServiceTargets.from_mapping({})).targets == DEFAULT_TARGETS


def test_a_bad_settings_file_fails_the_plugin_not_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "policies.toml"
    path.write_text("renewal_horizon_days = -3\n")
    monkeypatch.setenv(SETTINGS_ENV_VAR, str(path))
    host = PluginHost(entry_points=False)
    assert not set(POLICY_NAMES) & set(host.policies())
    assert "accounts" in host.projections()
    [failure, *_] = [f for f in host.failures if f.plugin == "builtin.policies"]
    assert "renewal_horizon_days" in failure.error
    with pytest.raises(PluginError):
        host.check()
