"""The Account aggregate's decisions and invariants, without any store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from acctdomain import (
    AccountStatus,
    CesScore,
    ChurnReason,
    CsatScore,
    Money,
    NpsScore,
    OpportunityKind,
    ProductLine,
)
from acctdomain.domain import Account, EventContext
from acctdomain.domain import events as ev
from acctdomain.domain.records import GoalStatus, OpportunityStatus, TacticStatus
from acctdomain.errors import (
    AccountNotActive,
    CommandRejected,
    CurrencyMismatch,
    InvalidTransition,
    InvalidValue,
    RuleViolation,
    UnknownReference,
)

OPENED = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def ctx(days: float = 0, actor: str = "amy") -> EventContext:
    moment = OPENED + timedelta(days=days)
    return EventContext(
        actor=actor, effective_at=moment, recorded_at=moment, correlation_id=uuid4()
    )


def eur(amount: int | str) -> Money:
    return Money(amount, "EUR")


def opened() -> Account:
    account = Account.open(
        account_id=uuid4(),
        name="Acme",
        segment="mid_market",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        external_key=None,
        ctx=ctx(),
    )
    account.collect_events()
    return account


def active(arr: int = 10_000) -> Account:
    account = opened()
    account.start_contract(
        term_end=date(2026, 1, 6), lines=[ProductLine("core", eur(arr))], ctx=ctx(1)
    )
    account.collect_events()
    return account


def refused(
    account: Account, command: Callable[[], None], error: type[CommandRejected], field: str
) -> CommandRejected:
    """Run a command that must be refused; nothing may change."""
    before, pending = account.state(), list(account.pending_events)
    with pytest.raises(error) as caught:
        command()
    assert caught.value.field == field
    assert account.pending_events == pending
    assert account.state() == before
    return caught.value


def test_opening_records_who_when_and_the_account_facts() -> None:
    context = ctx()
    account = Account.open(
        account_id=uuid4(),
        name="Acme",
        segment="smb",
        industry="retail",
        currency="USD",
        manager="amy",
        manager_type="technical",
        external_key="crm:1",
        ctx=context,
    )
    [event] = account.collect_events()
    assert isinstance(event, ev.AccountOpened)
    assert (event.actor, event.effective_at, event.correlation_id) == (
        "amy",
        context.effective_at,
        context.correlation_id,
    )
    state = account.state()
    assert state.status is AccountStatus.ONBOARDING
    assert state.arr == Money(0, "USD")
    assert state.external_key == "crm:1"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", " "),
        ("segment", "huge"),
        ("industry", ""),
        ("currency", "EURO"),
        ("manager", ""),
        ("manager_type", "junior"),
        ("external_key", ""),
    ],
)
def test_opening_with_bad_input_is_refused_naming_the_field(field: str, value: str) -> None:
    arguments: dict[str, object] = dict(
        account_id=uuid4(),
        name="Acme",
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        external_key=None,
        ctx=ctx(),
    )
    arguments[field] = value
    with pytest.raises(InvalidValue) as caught:
        Account.open(**arguments)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(InvalidValue, match="effective_at: datetime must be timezone-aware"):
        EventContext(
            actor="amy",
            effective_at=datetime(2025, 1, 1),
            recorded_at=OPENED,
            correlation_id=uuid4(),
        )


def test_blank_actor_is_refused() -> None:
    with pytest.raises(InvalidValue, match="actor"):
        EventContext(actor=" ", effective_at=OPENED, recorded_at=OPENED, correlation_id=uuid4())


def test_events_cannot_be_effective_before_the_account_opened() -> None:
    account = opened()
    refused(
        account,
        lambda: account.log_contact(
            channel="email",
            direction="inbound",
            summary="",
            stakeholder_ids=(),
            duration_minutes=None,
            ctx=ctx(-1),
        ),
        InvalidValue,
        "effective_at",
    )


def test_contract_start_makes_the_account_active_with_its_lines() -> None:
    account = active(12_000)
    state = account.state()
    assert state.status is AccountStatus.ACTIVE
    assert state.arr == eur(12_000)
    assert state.term_end == date(2026, 1, 6)


def test_a_second_contract_start_is_refused() -> None:
    account = active()
    refused(
        account,
        lambda: account.start_contract(
            term_end=date(2027, 1, 1), lines=[ProductLine("x", eur(1))], ctx=ctx(2)
        ),
        RuleViolation,
        "status",
    )


def test_contract_lines_must_use_the_contract_currency() -> None:
    account = opened()
    refused(
        account,
        lambda: account.start_contract(
            term_end=date(2026, 1, 1), lines=[ProductLine("core", Money(5, "USD"))], ctx=ctx(1)
        ),
        CurrencyMismatch,
        "lines",
    )


def test_contract_lines_must_not_repeat_a_product_or_be_empty() -> None:
    account = opened()
    line = ProductLine("core", eur(5))
    refused(
        account,
        lambda: account.start_contract(term_end=date(2026, 1, 1), lines=[line, line], ctx=ctx(1)),
        InvalidValue,
        "lines",
    )
    refused(
        account,
        lambda: account.start_contract(term_end=date(2026, 1, 1), lines=[], ctx=ctx(1)),
        InvalidValue,
        "lines",
    )


def test_term_end_must_be_after_the_effective_date() -> None:
    account = opened()
    refused(
        account,
        lambda: account.start_contract(
            term_end=OPENED.date(), lines=[ProductLine("core", eur(5))], ctx=ctx()
        ),
        InvalidValue,
        "term_end",
    )


def test_renewal_replaces_the_lines_and_records_the_arr_before() -> None:
    account = active(10_000)
    account.renew(term_end=date(2027, 1, 6), lines=[ProductLine("core", eur(8_000))], ctx=ctx(360))
    [event] = account.collect_events()
    assert isinstance(event, ev.Renewed)
    assert event.arr_before == eur(10_000)
    assert account.state().arr == eur(8_000)
    assert account.state().term_end == date(2027, 1, 6)


def test_renewal_must_extend_the_term() -> None:
    account = active()
    refused(
        account,
        lambda: account.renew(
            term_end=date(2025, 12, 1), lines=[ProductLine("core", eur(1))], ctx=ctx(300)
        ),
        InvalidValue,
        "term_end",
    )


def test_renewal_value_must_not_be_negative() -> None:
    with pytest.raises(InvalidValue, match="arr: must not be negative"):
        ProductLine("core", eur(-1))


def test_churn_zeroes_arr_and_records_what_was_lost() -> None:
    account = active(10_000)
    account.churn(reason=ChurnReason.COMPETITOR, detail="went to X", ctx=ctx(200))
    [event] = account.collect_events()
    assert isinstance(event, ev.Churned)
    assert event.arr_lost == eur(10_000)
    state = account.state()
    assert state.status is AccountStatus.CHURNED
    assert state.arr == eur(0)
    assert state.churn_reason is ChurnReason.COMPETITOR


@pytest.mark.parametrize(
    "command",
    [
        "renew",
        "upsell",
        "cross_sell",
        "downgrade",
        "churn",
        "mark_renewal_due",
        "offer_opportunity",
    ],
)
def test_revenue_commands_on_a_churned_account_are_refused(command: str) -> None:
    account = active()
    account.churn(reason="price", detail="", ctx=ctx(100))
    account.collect_events()
    calls: dict[str, Callable[[], None]] = {
        "renew": lambda: account.renew(
            term_end=date(2027, 1, 1), lines=[ProductLine("core", eur(1))], ctx=ctx(101)
        ),
        "upsell": lambda: account.upsell(product="core", added_arr=eur(1), ctx=ctx(101)),
        "cross_sell": lambda: account.cross_sell(product="new", arr=eur(1), ctx=ctx(101)),
        "downgrade": lambda: account.downgrade(
            product="core", reduced_by=eur(1), reason="", ctx=ctx(101)
        ),
        "churn": lambda: account.churn(reason="price", detail="", ctx=ctx(101)),
        "mark_renewal_due": lambda: account.mark_renewal_due(due_on=date(2026, 1, 1), ctx=ctx(101)),
        "offer_opportunity": lambda: account.offer_opportunity(
            opportunity_id=uuid4(),
            kind="cross_sell",
            product="new",
            estimated_arr=eur(1),
            ctx=ctx(101),
        ),
    }
    error = refused(account, calls[command], AccountNotActive, "status")
    assert "churned" in error.reason


def test_revenue_commands_before_a_contract_are_refused() -> None:
    account = opened()
    refused(
        account,
        lambda: account.upsell(product="core", added_arr=eur(1), ctx=ctx(1)),
        AccountNotActive,
        "status",
    )


def test_reactivation_restores_revenue_after_churn_only() -> None:
    account = active()
    refused(
        account,
        lambda: account.reactivate(
            term_end=date(2027, 1, 1), lines=[ProductLine("core", eur(1))], ctx=ctx(2)
        ),
        InvalidTransition,
        "status",
    )
    account.churn(reason="budget_cut", detail="", ctx=ctx(100))
    refused(
        account,
        lambda: account.reactivate(
            term_end=date(2027, 1, 1), lines=[ProductLine("core", eur(1))], ctx=ctx(99)
        ),
        InvalidValue,
        "effective_at",
    )
    account.reactivate(term_end=date(2027, 1, 1), lines=[ProductLine("core", eur(7))], ctx=ctx(150))
    state = account.state()
    assert state.status is AccountStatus.ACTIVE
    assert state.arr == eur(7)
    assert state.churned_at is None


def test_upsell_adds_to_an_existing_line_and_cross_sell_adds_a_line() -> None:
    account = active(1_000)
    account.upsell(product="core", added_arr=eur(500), ctx=ctx(10))
    account.cross_sell(product="analytics", arr=eur(300), ctx=ctx(11))
    assert account.state().arr == eur(1_800)
    assert {line.product for line in account.state().lines} == {"core", "analytics"}


def test_upsell_of_a_product_not_owned_and_cross_sell_of_an_owned_one_are_refused() -> None:
    account = active()
    refused(
        account,
        lambda: account.upsell(product="nope", added_arr=eur(1), ctx=ctx(5)),
        UnknownReference,
        "product",
    )
    refused(
        account,
        lambda: account.cross_sell(product="core", arr=eur(1), ctx=ctx(5)),
        RuleViolation,
        "product",
    )


@pytest.mark.parametrize("amount", [Money(0, "EUR"), Money(-5, "EUR"), Money(5, "USD")])
def test_expansion_amounts_must_be_positive_and_in_contract_currency(amount: Money) -> None:
    account = active()
    refused(
        account,
        lambda: account.upsell(product="core", added_arr=amount, ctx=ctx(5)),
        InvalidValue,
        "added_arr",
    )


def test_downgrade_reduces_and_removes_an_emptied_line() -> None:
    account = active(1_000)
    account.cross_sell(product="extra", arr=eur(200), ctx=ctx(3))
    account.downgrade(product="core", reduced_by=eur(400), reason="fewer seats", ctx=ctx(4))
    assert account.state().arr == eur(800)
    account.downgrade(product="extra", reduced_by=eur(200), reason="", ctx=ctx(5))
    assert [line.product for line in account.state().lines] == ["core"]


def test_downgrade_beyond_the_line_or_of_the_last_line_is_refused() -> None:
    account = active(1_000)
    refused(
        account,
        lambda: account.downgrade(product="core", reduced_by=eur(1_001), reason="", ctx=ctx(5)),
        InvalidValue,
        "reduced_by",
    )
    refused(
        account,
        lambda: account.downgrade(product="core", reduced_by=eur(1_000), reason="", ctx=ctx(5)),
        RuleViolation,
        "reduced_by",
    )


def test_winning_an_upsell_opportunity_records_the_win_and_the_upsell() -> None:
    account = active(1_000)
    opportunity_id = uuid4()
    account.offer_opportunity(
        opportunity_id=opportunity_id,
        kind=OpportunityKind.UPSELL,
        product="core",
        estimated_arr=eur(300),
        ctx=ctx(5),
    )
    account.win_opportunity(opportunity_id=opportunity_id, arr=eur(250), ctx=ctx(20))
    kinds = [type(e) for e in account.collect_events()]
    assert kinds == [ev.OpportunityOffered, ev.OpportunityWon, ev.Upsold]
    [opportunity] = account.state().opportunities
    assert opportunity.status is OpportunityStatus.WON
    assert opportunity.won_arr == eur(250)
    assert account.state().arr == eur(1_250)


def test_winning_a_cross_sell_adds_the_product() -> None:
    account = active(1_000)
    opportunity_id = uuid4()
    account.offer_opportunity(
        opportunity_id=opportunity_id,
        kind="cross_sell",
        product="analytics",
        estimated_arr=eur(300),
        ctx=ctx(5),
    )
    account.win_opportunity(opportunity_id=opportunity_id, arr=eur(300), ctx=ctx(6))
    assert account.state().arr == eur(1_300)


def test_a_closed_opportunity_cannot_be_won_or_lost_again() -> None:
    account = active()
    opportunity_id = uuid4()
    account.offer_opportunity(
        opportunity_id=opportunity_id,
        kind="cross_sell",
        product="analytics",
        estimated_arr=eur(300),
        ctx=ctx(5),
    )
    account.lose_opportunity(opportunity_id=opportunity_id, reason="no budget", ctx=ctx(6))
    refused(
        account,
        lambda: account.win_opportunity(opportunity_id=opportunity_id, arr=eur(1), ctx=ctx(7)),
        InvalidTransition,
        "opportunity_id",
    )
    refused(
        account,
        lambda: account.lose_opportunity(opportunity_id=opportunity_id, reason="", ctx=ctx(7)),
        InvalidTransition,
        "opportunity_id",
    )
    refused(
        account,
        lambda: account.win_opportunity(opportunity_id=uuid4(), arr=eur(1), ctx=ctx(7)),
        UnknownReference,
        "opportunity_id",
    )


def test_offers_must_match_what_the_customer_has() -> None:
    account = active()
    refused(
        account,
        lambda: account.offer_opportunity(
            opportunity_id=uuid4(), kind="upsell", product="other", estimated_arr=eur(1), ctx=ctx(5)
        ),
        UnknownReference,
        "product",
    )
    refused(
        account,
        lambda: account.offer_opportunity(
            opportunity_id=uuid4(),
            kind="cross_sell",
            product="core",
            estimated_arr=eur(1),
            ctx=ctx(5),
        ),
        RuleViolation,
        "product",
    )


def issue_raised(account: Account) -> UUID:
    issue_id = uuid4()
    account.raise_issue(
        issue_id=issue_id, title="Sync fails", severity="high", category="integration", ctx=ctx(10)
    )
    return issue_id


def test_issue_lifecycle_records_response_escalation_and_resolution() -> None:
    account = active()
    issue_id = issue_raised(account)
    account.respond_to_issue(issue_id=issue_id, ctx=ctx(10.1))
    account.escalate_issue(issue_id=issue_id, to_team="engineering", reason="bug", ctx=ctx(11))
    account.resolve_issue(issue_id=issue_id, resolution="patched", ctx=ctx(12))
    [issue] = account.state().issues
    assert issue.first_response_at == OPENED + timedelta(days=10.1)
    assert issue.escalated_to == ("engineering",)
    assert issue.resolved_at == OPENED + timedelta(days=12)
    assert account.state().open_issues == ()


def test_an_issue_can_be_resolved_only_while_open() -> None:
    account = active()
    issue_id = issue_raised(account)
    account.resolve_issue(issue_id=issue_id, resolution="", ctx=ctx(12))
    refused(
        account,
        lambda: account.resolve_issue(issue_id=issue_id, resolution="", ctx=ctx(13)),
        InvalidTransition,
        "issue_id",
    )
    refused(
        account,
        lambda: account.escalate_issue(issue_id=issue_id, to_team="x", reason="", ctx=ctx(13)),
        InvalidTransition,
        "issue_id",
    )


def test_issue_steps_cannot_predate_the_issue_or_repeat_the_first_response() -> None:
    account = active()
    issue_id = issue_raised(account)
    refused(
        account,
        lambda: account.resolve_issue(issue_id=issue_id, resolution="", ctx=ctx(9)),
        InvalidValue,
        "effective_at",
    )
    account.respond_to_issue(issue_id=issue_id, ctx=ctx(10.5))
    refused(
        account,
        lambda: account.respond_to_issue(issue_id=issue_id, ctx=ctx(11)),
        InvalidTransition,
        "issue_id",
    )


def test_unknown_issue_and_duplicate_issue_ids_are_refused() -> None:
    account = active()
    issue_id = issue_raised(account)
    refused(
        account,
        lambda: account.resolve_issue(issue_id=uuid4(), resolution="", ctx=ctx(12)),
        UnknownReference,
        "issue_id",
    )
    refused(
        account,
        lambda: account.raise_issue(
            issue_id=issue_id, title="t", severity="low", category="c", ctx=ctx(12)
        ),
        RuleViolation,
        "issue_id",
    )


def test_requests_are_answered_once() -> None:
    account = active()
    request_id = uuid4()
    account.receive_request(request_id=request_id, subject="SSO?", channel="email", ctx=ctx(3))
    account.answer_request(request_id=request_id, response="yes", ctx=ctx(3.2))
    refused(
        account,
        lambda: account.answer_request(request_id=request_id, response="", ctx=ctx(4)),
        InvalidTransition,
        "request_id",
    )
    assert account.state().requests[0].answered_at == OPENED + timedelta(days=3.2)


def test_stakeholders_are_added_updated_and_removed() -> None:
    account = opened()
    person = uuid4()
    account.add_stakeholder(
        stakeholder_id=person,
        name="Kim",
        title="CFO",
        role="economic_buyer",
        sentiment="neutral",
        ctx=ctx(1),
    )
    account.update_stakeholder(
        stakeholder_id=person, title=None, role=None, sentiment="positive", ctx=ctx(2)
    )
    refused(
        account,
        lambda: account.update_stakeholder(
            stakeholder_id=person, title=None, role=None, sentiment="positive", ctx=ctx(3)
        ),
        InvalidValue,
        "title, role, sentiment",
    )
    account.remove_stakeholder(stakeholder_id=person, reason="left", ctx=ctx(4))
    refused(
        account,
        lambda: account.remove_stakeholder(stakeholder_id=person, reason="", ctx=ctx(5)),
        InvalidTransition,
        "stakeholder_id",
    )
    [kim] = account.state().stakeholders
    assert kim.sentiment.value == "positive"
    assert not kim.is_active


def test_contacts_must_name_known_stakeholders_once() -> None:
    account = opened()
    person = uuid4()
    account.add_stakeholder(
        stakeholder_id=person,
        name="Kim",
        title="",
        role="champion",
        sentiment="positive",
        ctx=ctx(1),
    )
    refused(
        account,
        lambda: account.log_contact(
            channel="qbr",
            direction="outbound",
            summary="",
            stakeholder_ids=[uuid4()],
            duration_minutes=60,
            ctx=ctx(2),
        ),
        UnknownReference,
        "stakeholder_ids",
    )
    refused(
        account,
        lambda: account.log_contact(
            channel="qbr",
            direction="outbound",
            summary="",
            stakeholder_ids=[person, person],
            duration_minutes=60,
            ctx=ctx(2),
        ),
        InvalidValue,
        "stakeholder_ids",
    )
    refused(
        account,
        lambda: account.log_contact(
            channel="qbr",
            direction="outbound",
            summary="",
            stakeholder_ids=[person],
            duration_minutes=-5,
            ctx=ctx(2),
        ),
        InvalidValue,
        "duration_minutes",
    )
    account.log_contact(
        channel="qbr",
        direction="outbound",
        summary="Q1 review",
        stakeholder_ids=[person],
        duration_minutes=60,
        ctx=ctx(2),
    )
    assert account.state().contact_count == 1
    assert account.state().last_contact_at == OPENED + timedelta(days=2)


def test_feedback_keeps_the_latest_score_of_each_survey() -> None:
    account = opened()
    for score in (NpsScore(4), NpsScore(9), CsatScore(5), CesScore(6)):
        account.record_feedback(score=score, respondent="", comment="", ctx=ctx(1))
    state = account.state()
    assert (state.latest_nps, state.latest_csat, state.latest_ces) == (
        NpsScore(9),
        CsatScore(5),
        CesScore(6),
    )
    refused(
        account,
        lambda: account.record_feedback(score=9, respondent="", comment="", ctx=ctx(2)),  # type: ignore[arg-type]
        InvalidValue,
        "score",
    )


def test_value_delivered_adds_up_in_contract_currency() -> None:
    account = opened()
    account.record_value_delivered(amount=eur(100), description="saved", ctx=ctx(1))
    account.record_value_delivered(amount=eur(50), description="saved", ctx=ctx(2))
    assert account.state().value_delivered == eur(150)
    refused(
        account,
        lambda: account.record_value_delivered(amount=Money(5, "USD"), description="x", ctx=ctx(3)),
        CurrencyMismatch,
        "amount",
    )


def test_account_plan_items_follow_their_lifecycle() -> None:
    account = opened()
    goal, strategy, tactic, other = uuid4(), uuid4(), uuid4(), uuid4()
    account.set_goal(
        goal_id=goal,
        title="Expand to EMEA",
        measure="ARR +20%",
        target_date=date(2025, 12, 31),
        ctx=ctx(1),
    )
    account.add_strategy(strategy_id=strategy, goal_id=goal, description="Land EMEA BU", ctx=ctx(2))
    account.add_tactic(
        tactic_id=tactic,
        strategy_id=strategy,
        description="Intro call",
        owner="amy",
        due_on=date(2025, 2, 1),
        ctx=ctx(3),
    )
    account.add_tactic(
        tactic_id=other,
        strategy_id=strategy,
        description="Workshop",
        owner="amy",
        due_on=None,
        ctx=ctx(3),
    )
    account.complete_tactic(tactic_id=tactic, ctx=ctx(4))
    refused(
        account,
        lambda: account.complete_tactic(tactic_id=tactic, ctx=ctx(5)),
        InvalidTransition,
        "tactic_id",
    )
    account.drop_tactic(tactic_id=other, reason="not needed", ctx=ctx(5))
    account.achieve_goal(goal_id=goal, ctx=ctx(6))
    refused(
        account,
        lambda: account.abandon_goal(goal_id=goal, reason="", ctx=ctx(7)),
        InvalidTransition,
        "goal_id",
    )
    refused(
        account,
        lambda: account.add_strategy(
            strategy_id=uuid4(), goal_id=goal, description="late", ctx=ctx(7)
        ),
        InvalidTransition,
        "goal_id",
    )
    state = account.state()
    assert [t.status for t in state.tactics] == [TacticStatus.COMPLETED, TacticStatus.DROPPED]
    assert state.goals[0].status is GoalStatus.ACHIEVED


def test_tactics_need_a_known_strategy() -> None:
    account = opened()
    refused(
        account,
        lambda: account.add_tactic(
            tactic_id=uuid4(),
            strategy_id=uuid4(),
            description="x",
            owner="amy",
            due_on=None,
            ctx=ctx(1),
        ),
        UnknownReference,
        "strategy_id",
    )


def test_reassigning_to_the_same_manager_is_refused() -> None:
    account = opened()
    refused(
        account,
        lambda: account.reassign_manager(
            manager="amy", manager_type="sales", reason="", ctx=ctx(1)
        ),
        RuleViolation,
        "manager",
    )
    account.reassign_manager(manager="bo", manager_type="strategic", reason="promotion", ctx=ctx(1))
    assert account.state().manager == "bo"


def test_recorded_time_never_goes_backwards_within_an_account() -> None:
    account = opened()
    late_clock = EventContext(
        actor="amy",
        effective_at=OPENED + timedelta(days=1),
        recorded_at=OPENED - timedelta(hours=1),
        correlation_id=uuid4(),
    )
    account.log_contact(
        channel="email",
        direction="inbound",
        summary="",
        stakeholder_ids=(),
        duration_minutes=None,
        ctx=late_clock,
    )
    [event] = account.collect_events()
    assert event.timestamp == OPENED


def test_effective_time_view_includes_only_events_effective_by_then() -> None:
    account = active(1_000)
    account.downgrade(product="core", reduced_by=eur(200), reason="", ctx=ctx(50))
    account.upsell(product="core", added_arr=eur(500), ctx=ctx(100))
    history = [*_history_of(account)]
    at_60 = Account.as_effective_at(history, OPENED + timedelta(days=60))
    assert at_60 is not None
    assert at_60.state().arr == eur(800)
    assert Account.as_effective_at(history, OPENED - timedelta(days=1)) is None


def _history_of(account: Account) -> list[ev.AccountEvent]:
    # Rebuild the full history from scratch, as the store would return it.
    rebuilt = Account.open(
        account_id=account.id,
        name="Acme",
        segment="mid_market",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        external_key=None,
        ctx=ctx(),
    )
    rebuilt.start_contract(
        term_end=date(2026, 1, 6), lines=[ProductLine("core", eur(1_000))], ctx=ctx(1)
    )
    rebuilt.downgrade(product="core", reduced_by=eur(200), reason="", ctx=ctx(50))
    rebuilt.upsell(product="core", added_arr=eur(500), ctx=ctx(100))
    return list(rebuilt.collect_events())  # type: ignore[arg-type]


@pytest.mark.parametrize("command", ["upsell", "cross_sell", "downgrade", "renew", "churn"])
def test_revenue_changes_cannot_be_backdated_before_the_last_contract_change(
    command: str,
) -> None:
    account = active(1_000)
    account.renew(term_end=date(2027, 1, 6), lines=[ProductLine("core", eur(2_000))], ctx=ctx(360))
    calls: dict[str, Callable[[], None]] = {
        "upsell": lambda: account.upsell(product="core", added_arr=eur(1), ctx=ctx(300)),
        "cross_sell": lambda: account.cross_sell(product="new", arr=eur(1), ctx=ctx(300)),
        "downgrade": lambda: account.downgrade(
            product="core", reduced_by=eur(1), reason="", ctx=ctx(300)
        ),
        "renew": lambda: account.renew(
            term_end=date(2028, 1, 1), lines=[ProductLine("core", eur(1))], ctx=ctx(300)
        ),
        "churn": lambda: account.churn(reason="price", detail="", ctx=ctx(300)),
    }
    error = refused(account, calls[command], InvalidValue, "effective_at")
    assert "last revenue change" in error.reason


def test_contacts_name_only_stakeholders_present_at_the_time() -> None:
    account = opened()
    person = uuid4()
    account.add_stakeholder(
        stakeholder_id=person,
        name="Kim",
        title="",
        role="champion",
        sentiment="positive",
        ctx=ctx(2),
    )
    account.remove_stakeholder(stakeholder_id=person, reason="left", ctx=ctx(10))

    def meet(day: float) -> None:
        account.log_contact(
            channel="meeting",
            direction="outbound",
            summary="",
            stakeholder_ids=[person],
            duration_minutes=None,
            ctx=ctx(day),
        )

    error = refused(account, lambda: meet(1), InvalidValue, "stakeholder_ids")
    assert "was added at" in error.reason
    error = refused(account, lambda: meet(10), InvalidTransition, "stakeholder_ids")
    assert "left at" in error.reason
    meet(5)  # a late entry for a meeting while Kim was still there
    assert account.state().contact_count == 1


def test_single_values_change_in_business_time_order() -> None:
    account = active()
    person = uuid4()
    account.add_stakeholder(
        stakeholder_id=person,
        name="Kim",
        title="CFO",
        role="economic_buyer",
        sentiment="neutral",
        ctx=ctx(2),
    )
    account.update_stakeholder(
        stakeholder_id=person, title=None, role=None, sentiment="positive", ctx=ctx(6)
    )
    account.reassign_manager(manager="bo", manager_type="strategic", reason="", ctx=ctx(6))
    attempts: list[Callable[[], None]] = [
        lambda: account.update_stakeholder(
            stakeholder_id=person, title="CEO", role=None, sentiment=None, ctx=ctx(5)
        ),
        lambda: account.remove_stakeholder(stakeholder_id=person, reason="", ctx=ctx(5)),
        lambda: account.reassign_manager(manager="cy", manager_type="sales", reason="", ctx=ctx(5)),
    ]
    for attempt in attempts:
        error = refused(account, attempt, InvalidValue, "effective_at")
        assert "these changes stand in business-time order" in error.reason
    # Equal times are in order: a same-day correction is accepted.
    account.reassign_manager(manager="cy", manager_type="sales", reason="", ctx=ctx(6))
    assert account.state().manager == "cy"


def test_a_renewal_due_marking_stands_in_order_with_revenue_changes() -> None:
    account = active()
    account.upsell(product="core", added_arr=eur(500), ctx=ctx(8))
    error = refused(
        account,
        lambda: account.mark_renewal_due(due_on=date(2025, 12, 1), ctx=ctx(7)),
        InvalidValue,
        "effective_at",
    )
    assert "last revenue change" in error.reason
    account.mark_renewal_due(due_on=date(2025, 12, 1), ctx=ctx(9))
    # A renewal clears the due date: it may not be backdated before the marking.
    error = refused(
        account,
        lambda: account.renew(
            term_end=date(2027, 1, 6), lines=[ProductLine("core", eur(10_500))], ctx=ctx(8.5)
        ),
        InvalidValue,
        "effective_at",
    )
    assert "last revenue change" in error.reason


def test_a_late_survey_entry_does_not_displace_a_later_score() -> None:
    account = Account.open(
        account_id=uuid4(),
        name="Acme",
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        external_key=None,
        ctx=ctx(),
    )
    account.record_feedback(score=NpsScore(9), respondent="", comment="", ctx=ctx(10))
    account.record_feedback(score=NpsScore(3), respondent="", comment="late", ctx=ctx(4))
    account.record_feedback(score=CsatScore(2), respondent="", comment="", ctx=ctx(4))
    state = account.state()
    assert (state.latest_nps, state.latest_csat) == (NpsScore(9), CsatScore(2))
    history = list(account.collect_events())
    effective = Account.as_effective_at(history, OPENED + timedelta(days=30))
    assert effective is not None
    assert effective.state().latest_nps == NpsScore(9)
    earlier = Account.as_effective_at(history, OPENED + timedelta(days=5))
    assert earlier is not None
    assert earlier.state().latest_nps == NpsScore(3)
