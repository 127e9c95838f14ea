"""The ``account_plans`` read model and the ``account_plan`` view (plugin ``builtin.workday``):
goals, strategies and tactics as of a day, progress, overdue items; and, for the three
workday read models together, that catching up bit by bit equals a rebuild."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acctdomain import AccountService, Money
from acctdomain.builtin.plans import AccountPlansProjection, Progress, account_plan
from acctdomain.builtin.stakeholders import StakeholdersProjection
from acctdomain.builtin.value import ValueRealisedProjection
from acctdomain.domain.records import GoalStatus, TacticStatus
from acctdomain.errors import AccountNotFound, CommandRejected, InvalidValue
from acctdomain.plugins import PluginHost
from acctdomain.projections import ProjectionRunner
from tests.conftest import FakeClock
from tests.projection_fixtures import dump


def at(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def open_account(service: AccountService, name: str = "Acme") -> UUID:
    return service.open_account(
        name=name, segment="smb", industry="retail", currency="EUR", manager="amy",
        manager_type="sales", actor="amy", effective_at=at(1, 1),
    ).account_id  # fmt: skip


class Plan:
    """Commands of an account plan, effective at the given day of 2026 (9:00 UTC)."""

    def __init__(self, service: AccountService, account: UUID) -> None:
        self.service, self.account = service, account

    def goal(self, title: str, when: datetime, target: date | None = None) -> UUID:
        result = self.service.set_goal(
            self.account, title=title, target_date=target, actor="amy", effective_at=when
        )
        assert result.entity_id is not None
        return result.entity_id

    def strategy(self, goal: UUID, description: str, when: datetime) -> UUID:
        result = self.service.add_strategy(
            self.account, goal_id=goal, description=description, actor="amy", effective_at=when
        )
        assert result.entity_id is not None
        return result.entity_id

    def tactic(
        self, strategy: UUID, description: str, when: datetime, due: date | None, owner: str = "amy"
    ) -> UUID:
        result = self.service.add_tactic(
            self.account, strategy_id=strategy, description=description, owner=owner,
            due_on=due, actor="amy", effective_at=when,
        )  # fmt: skip
        assert result.entity_id is not None
        return result.entity_id


def plan_of(service: AccountService, account: UUID, today: date) -> Any:
    service.catch_up()
    return account_plan(service.read_model("account_plans"), account, today=today)


def test_a_plan_with_progress_and_overdue_items_on_every_backend(
    service: AccountService,
) -> None:
    acme = open_account(service)
    plan = Plan(service, acme)
    grow = plan.goal("Grow to 3 teams", at(1, 2), target=date(2026, 3, 31))
    pilot = plan.strategy(grow, "Pilot with the sales team", at(1, 2))
    demo = plan.tactic(pilot, "Demo to sales", at(1, 2), date(2026, 1, 20), owner="bob")
    train = plan.tactic(pilot, "Train the admins", at(1, 3), date(2026, 2, 1))
    drop = plan.tactic(pilot, "Print flyers", at(1, 3), date(2026, 1, 10))
    keep = plan.goal("Keep the CFO happy", at(1, 4))
    lunch = plan.strategy(keep, "Quarterly lunch", at(1, 4))
    book = plan.tactic(lunch, "Book the restaurant", at(1, 4), None)
    service.complete_tactic(acme, tactic_id=demo, actor="bob", effective_at=at(1, 18))
    service.drop_tactic(
        acme, tactic_id=drop, reason="nobody reads", actor="amy", effective_at=at(1, 5)
    )

    view = plan_of(service, acme, date(2026, 4, 10))
    assert (view.account_id, view.today) == (acme, date(2026, 4, 10))
    assert [g.title for g in view.goals] == ["Grow to 3 teams", "Keep the CFO happy"]
    first = view.goals[0]
    assert (first.status, first.target_date) == (GoalStatus.OPEN, date(2026, 3, 31))
    [strategy] = first.strategies
    assert strategy.strategy_id == pilot
    assert [(t.tactic_id, t.status, t.owner) for t in strategy.tactics] == [
        (demo, TacticStatus.COMPLETED, "bob"),
        (train, TacticStatus.OPEN, "amy"),
        (drop, TacticStatus.DROPPED, "amy"),
    ]
    assert strategy.tactics[2].reason == "nobody reads"
    assert strategy.tactics[0].closed_at == at(1, 18)
    assert first.progress == Progress(1, 2, Decimal("0.5"))
    assert view.goals[1].progress == Progress(0, 1, Decimal(0))
    assert view.progress == Progress(1, 3, Decimal(1) / Decimal(3))
    # The most overdue first: "Train the admins" (due 1 Feb) then the goal (31 Mar); the
    # dropped tactic and the tactic without a due date are never overdue.
    assert [(o.kind, o.item_id, o.days_overdue) for o in view.overdue] == [
        ("tactic", train, 68),
        ("goal", grow, 10),
    ]
    assert (view.overdue[0].goal_id, view.overdue[0].owner) == (grow, "amy")
    assert (view.overdue[1].owner, view.overdue[1].due_on) == (None, date(2026, 3, 31))
    assert book in {t.tactic_id for t in view.goals[1].strategies[0].tactics}


def test_the_plan_is_as_of_the_end_of_the_day_asked_about(memory_service: AccountService) -> None:
    service = memory_service
    acme = open_account(service)
    plan = Plan(service, acme)
    goal = plan.goal("Renew early", at(1, 2), target=date(2026, 1, 31))
    strategy = plan.strategy(goal, "Show the value", at(1, 2))
    early = plan.tactic(strategy, "Value report", at(1, 2), date(2026, 1, 9))
    plan.tactic(strategy, "QBR", at(1, 20), date(2026, 1, 25))
    service.complete_tactic(acme, tactic_id=early, actor="amy", effective_at=at(1, 12, 23))
    service.achieve_goal(acme, goal_id=goal, actor="amy", effective_at=at(2, 3))

    before = plan_of(service, acme, date(2026, 1, 11))  # "QBR" not added, "Value report" open
    [tactic] = before.goals[0].strategies[0].tactics
    assert (tactic.tactic_id, tactic.status, tactic.closed_at) == (early, TacticStatus.OPEN, None)
    assert [(o.item_id, o.days_overdue) for o in before.overdue] == [(early, 2)]
    assert before.progress == Progress(0, 1, Decimal(0))

    on_the_day = plan_of(service, acme, date(2026, 1, 12))  # completed that evening: counted
    assert on_the_day.goals[0].strategies[0].tactics[0].status is TacticStatus.COMPLETED
    assert on_the_day.overdue == ()

    # 1 Feb: the goal is past its target and "QBR" past due; on 3 Feb the goal was achieved,
    # and the open tactics of a decided goal are overdue no more.
    first_of_feb = plan_of(service, acme, date(2026, 2, 1))
    assert [(o.kind, o.days_overdue) for o in first_of_feb.overdue] == [
        ("tactic", 7), ("goal", 1),
    ]  # fmt: skip
    after = plan_of(service, acme, date(2026, 2, 3))
    assert after.goals[0].status is GoalStatus.ACHIEVED
    assert after.goals[0].closed_at == at(2, 3)
    assert after.overdue == ()
    assert after.progress == Progress(1, 2, Decimal("0.5"))  # the open tactic still counts

    assert plan_of(service, acme, date(2026, 1, 1)).goals == ()  # before the goal was set


def test_overdue_ties_come_goals_first_then_by_title(memory_service: AccountService) -> None:
    service = memory_service
    acme = open_account(service)
    plan = Plan(service, acme)
    due = date(2026, 1, 10)
    zeta = plan.goal("Zeta goal", at(1, 2), target=due)
    alpha = plan.goal("Alpha goal", at(1, 2), target=due)
    strategy = plan.strategy(zeta, "Way", at(1, 2))
    b = plan.tactic(strategy, "B tactic", at(1, 2), due)
    a = plan.tactic(strategy, "A tactic", at(1, 2), due)
    older = plan.tactic(strategy, "Z older tactic", at(1, 2), date(2026, 1, 9))
    view = plan_of(service, acme, date(2026, 1, 15))
    assert [o.item_id for o in view.overdue] == [older, alpha, zeta, a, b]
    assert {o.days_overdue for o in view.overdue[1:]} == {5}
    # Goals set at the same moment come in recording order.
    assert [g.goal_id for g in view.goals] == [zeta, alpha]
    on_the_due_date = plan_of(service, acme, due)  # due today is not overdue yet
    assert [o.item_id for o in on_the_due_date.overdue] == [older]


def test_nothing_to_measure_has_a_reason(memory_service: AccountService) -> None:
    service = memory_service
    empty = open_account(service, "Empty")
    view = plan_of(service, empty, date(2026, 6, 1))
    assert (view.goals, view.overdue) == ((), ())
    assert view.progress == Progress(0, 0, None, "the plan has no goal")

    acme = open_account(service)
    plan = Plan(service, acme)
    bare = plan.goal("No strategy yet", at(1, 2))
    dropped = plan.goal("Everything dropped", at(1, 2))
    tactic = plan.tactic(plan.strategy(dropped, "Way", at(1, 2)), "Gone", at(1, 2), None)
    service.drop_tactic(acme, tactic_id=tactic, actor="amy", effective_at=at(1, 3))
    service.abandon_goal(acme, goal_id=dropped, reason="reorg", actor="amy", effective_at=at(1, 4))
    view = plan_of(service, acme, date(2026, 6, 1))
    goals = {goal.goal_id: goal for goal in view.goals}
    assert goals[bare].progress == Progress(0, 0, None, "the goal has no tactic")
    assert goals[dropped].progress == Progress(0, 0, None, "every tactic of the goal was dropped")
    assert (goals[dropped].status, goals[dropped].reason) == (GoalStatus.ABANDONED, "reorg")
    assert view.progress == Progress(0, 0, None, "every tactic of the plan was dropped")
    lone = open_account(service, "Lone")
    Plan(service, lone).goal("Just a goal", at(1, 2))
    assert plan_of(service, lone, date(2026, 6, 1)).progress == Progress(
        0, 0, None, "the plan has no tactic"
    )


def test_bad_arguments_and_unknown_accounts_are_refused(memory_service: AccountService) -> None:
    service = memory_service
    acme = open_account(service)
    service.catch_up()
    plans = service.read_model("account_plans")
    today = date(2026, 2, 1)
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: account_plan(object(), acme, today=today), "read_model"),  # type: ignore[arg-type]
        (lambda: account_plan(plans, acme.hex, today=today), "account_id"),  # type: ignore[arg-type]
        (lambda: account_plan(plans, acme, today=at(2, 1)), "today"),
        (lambda: account_plan(plans, acme, today="2026-02-01"), "today"),  # type: ignore[arg-type]
    ]
    for call, field in cases:
        with pytest.raises(InvalidValue) as error:
            call()
        assert error.value.field == field
    unknown = UUID(int=7)
    with pytest.raises(AccountNotFound, match="account_plans") as missing:
        account_plan(plans, unknown, today=today)
    assert missing.value.account_id == unknown


def test_registered_by_builtin_workday_with_an_account_share(
    memory_service: AccountService,
) -> None:
    service = memory_service
    host = service.plugins
    assert {"account_plans", "stakeholders", "value_realised"} <= set(host.projections())
    for name in ("account_plans", "stakeholders", "value_realised"):
        assert host.owner("acctdomain_register_projections", name) == "builtin.workday"
    blocked = PluginHost(entry_points=False, block=["builtin.workday"])
    assert not {"account_plans", "stakeholders", "value_realised"} & set(blocked.projections())

    first, second = open_account(service, "First"), open_account(service, "Second")
    for account in (first, second):
        plan = Plan(service, account)
        goal = plan.goal("Goal", at(1, 2), target=date(2026, 2, 1))
        plan.tactic(plan.strategy(goal, "Way", at(1, 2)), "Do", at(1, 3), date(2026, 1, 15))
    service.catch_up()
    projection = host.projections()["account_plans"]
    assert projection.account_share(first) == {"plans": first.hex}
    before = dump(service.projections)["account_plans"]
    service.projections.rebuild("account_plans", account_id=first)
    assert dump(service.projections)["account_plans"] == before


# --- catching up bit by bit equals a rebuild (all three workday read models) -----------------

# Plan steps come more often: a tactic needs a goal and a strategy of the same account first.
OPERATIONS = (
    "goal", "goal", "strategy", "strategy", "strategy", "tactic", "tactic", "tactic", "tactic",
    "complete", "complete", "drop", "achieve", "abandon", "person", "person", "update",
    "remove", "contact", "contact", "value",
)  # fmt: skip
operation = st.tuples(
    st.integers(min_value=0, max_value=1),  # which account
    st.sampled_from(OPERATIONS),
    st.integers(min_value=0, max_value=4),  # which item
    st.integers(min_value=-1, max_value=12),  # days after the previous step (may go back)
)


def command(
    service: AccountService,
    account: UUID,
    kind: str,
    pick: int,
    moment: datetime,
    known: dict[str, list[UUID]],
) -> Any:
    """The service command of one step (a made-up id when there is nothing to pick from)."""

    def chosen(what: str) -> UUID:
        ids = known.get(what) or [UUID(int=pick + 1)]
        return ids[pick % len(ids)]

    options: dict[str, Any] = {"actor": "amy", "effective_at": moment}
    due = (moment + timedelta(days=pick - 2)).date() if pick else None
    if kind == "goal":
        target = (moment + timedelta(days=pick)).date()
        return service.set_goal(account, title=f"G{pick}", target_date=target, **options)
    if kind == "strategy":
        return service.add_strategy(account, goal_id=chosen("goal"), description="S", **options)
    if kind == "tactic":
        return service.add_tactic(
            account, strategy_id=chosen("strategy"), description=f"T{pick}", owner="amy",
            due_on=due, **options,
        )  # fmt: skip
    if kind in ("complete", "drop"):
        close = service.complete_tactic if kind == "complete" else service.drop_tactic
        return close(account, tactic_id=chosen("tactic"), **options)
    if kind in ("achieve", "abandon"):
        decide = service.achieve_goal if kind == "achieve" else service.abandon_goal
        return decide(account, goal_id=chosen("goal"), **options)
    if kind == "person":
        role, sentiment = ("champion", "economic_buyer", "user")[pick % 3], "positive"
        return service.add_stakeholder(
            account, name=f"P{pick}", role=role, sentiment=sentiment, **options
        )
    if kind == "update":
        sentiment = ("neutral", "negative", "positive")[pick % 3]
        return service.update_stakeholder(
            account, stakeholder_id=chosen("person"), sentiment=sentiment, **options
        )
    if kind == "remove":
        return service.remove_stakeholder(account, stakeholder_id=chosen("person"), **options)
    if kind == "contact":
        present = known.get("person", [])[pick % 3 :]
        return service.log_contact(
            account, channel="phone", direction="outbound", stakeholder_ids=present, **options
        )
    return service.record_value_delivered(
        account, amount=Money(pick + 1, "EUR"), description=f"V{pick}", **options
    )


def run(service: AccountService, clock: FakeClock, steps: list[Any], catch_up: bool) -> None:
    """Apply ``steps`` to two of three accounts; a step the service refuses changes nothing."""
    accounts = [open_account(service, name) for name in ("A", "B", "C")]  # C stays empty
    known: list[dict[str, list[UUID]]] = [{}, {}]
    moment = at(1, 2)
    for index, kind, pick, days in steps:
        moment = max(at(1, 1), moment + timedelta(days=days))
        clock.now = max(clock.now, moment)
        try:
            result = command(service, accounts[index], kind, pick, moment, known[index])
        except CommandRejected:
            continue
        if result.entity_id is not None:
            known[index].setdefault(kind, []).append(result.entity_id)
        if catch_up:
            service.catch_up()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, max_size=60), st.booleans())
def test_workday_read_models_caught_up_bit_by_bit_equal_a_rebuild(
    steps: list[Any], every_step: bool
) -> None:
    clock = FakeClock(at(1, 1))
    service = AccountService("memory:", clock=clock, plugins=PluginHost(entry_points=False))
    projections = [AccountPlansProjection(), StakeholdersProjection(), ValueRealisedProjection()]
    try:
        run(service, clock, steps, catch_up=every_step)
        service.catch_up()
        incremental = {
            p.name: {t: list(service.read_model(p.name).scan(t)) for t in p.tables}
            for p in projections
        }
        with ProjectionRunner(service, projections) as runner:
            runner.rebuild()
            assert dump(runner) == incremental
    finally:
        service.close()
