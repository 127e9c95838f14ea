"""The timeline of an account: descriptions, fields, filters, ordering and causation chains,
on every backend."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from acctdomain import AccountService, Money, ProductLine
from acctdomain.audit.timeline import DESCRIPTIONS, Cause, TimelineEntry, describe, timeline
from acctdomain.domain import events as ev
from acctdomain.domain.events import ACCOUNT_EVENT_TYPES, AccountEvent
from acctdomain.domain.identifiers import event_id_for
from acctdomain.domain.values import CesScore, CsatScore, NpsScore
from acctdomain.errors import AccountNotFound, InvalidValue
from acctdomain.plugins import Policy, Reaction, hookimpl
from tests.conftest import FakeClock

OPENED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def eur(amount: str) -> Money:
    return Money(amount, "EUR")


def open_account(service: AccountService, name: str = "Acme", actor: str = "amy") -> UUID:
    return service.open_account(
        name=name,
        segment="enterprise",
        industry="logistics",
        currency="EUR",
        manager="amy",
        manager_type="strategic",
        actor=actor,
    ).account_id


def write_every_event(service: AccountService, clock: FakeClock) -> UUID:
    """An account whose history holds every event class, one day of recorded time apart."""
    account = open_account(service)

    def step(command: Callable[..., Any], **arguments: Any) -> UUID | None:
        clock.advance(days=1)
        entity: UUID | None = command(
            account, actor=arguments.pop("actor", "amy"), **arguments
        ).entity_id
        return entity

    step(service.reassign_manager, manager="bob", manager_type="sales", reason="territory")
    step(
        service.start_contract,
        term_end=date(2027, 3, 1),
        lines=[ProductLine("analytics", eur("8000")), ProductLine("support", eur("2000"))],
    )
    emea = step(service.add_business_unit, name="EMEA")
    apac = step(service.add_business_unit, name="APAC")
    step(service.rename_business_unit, unit_id=apac, name="Asia Pacific")
    step(service.adopt_product, unit_id=emea, product="analytics")
    step(service.end_product_adoption, unit_id=emea, product="analytics", reason="moved")
    step(service.mark_product_ineligible, unit_id=apac, product="support", reason="in-house")
    step(service.restore_product_eligibility, unit_id=apac, product="support")
    aimed = step(
        service.offer_opportunity, kind="cross_sell", product="audit", estimated_arr=eur("700")
    )
    step(service.target_opportunity, opportunity_id=aimed, unit_id=emea)
    step(service.remove_business_unit, unit_id=apac, reason="sold")
    jane = step(service.add_stakeholder, name="Jane Roe", role="champion", title="CFO")
    step(
        service.log_contact,
        channel="meeting",
        direction="outbound",
        summary="Quarterly\nreview",
        stakeholder_ids=[jane],
        duration_minutes=45,
    )
    request = step(service.receive_request, subject="Invoice copy", channel="email")
    step(service.answer_request, request_id=request, response="Sent")
    step(service.update_stakeholder, stakeholder_id=jane, sentiment="positive")
    step(service.record_feedback, score=NpsScore(9), respondent="Jane Roe", comment="Great")
    step(service.record_feedback, score=CsatScore(4))
    step(service.record_feedback, score=CesScore(6))
    step(service.record_value_delivered, amount=eur("4000"), description="Fewer returns")
    issue = step(service.raise_issue, title="Login fails", severity="high", category="auth")
    step(service.respond_to_issue, issue_id=issue)
    step(service.escalate_issue, issue_id=issue, to_team="engineering", reason="SSO bug")
    step(service.resolve_issue, issue_id=issue, resolution="Patched")
    upsell = step(
        service.offer_opportunity, kind="upsell", product="analytics", estimated_arr=eur("1500")
    )
    step(service.win_opportunity, opportunity_id=upsell, arr=eur("1500"))
    cross = step(
        service.offer_opportunity, kind="cross_sell", product="training", estimated_arr=eur("900")
    )
    step(service.lose_opportunity, opportunity_id=cross, reason="no budget")
    step(service.upsell, product="support", added_arr=eur("500"))
    step(service.cross_sell, product="hosting", arr=eur("3000"))
    step(service.downgrade, product="hosting", reduced_by=eur("1000"), reason="fewer sites")
    goal = step(service.set_goal, title="Expand", measure="ARR", target_date=date(2026, 12, 31))
    strategy = step(service.add_strategy, goal_id=goal, description="Land Europe")
    tactic = step(service.add_tactic, strategy_id=strategy, description="Call Paris", owner="bob")
    other = step(service.add_tactic, strategy_id=strategy, description="Call Rome", owner="bob")
    step(service.complete_tactic, tactic_id=tactic)
    step(service.drop_tactic, tactic_id=other, reason="office closed")
    step(service.achieve_goal, goal_id=goal)
    spare = step(service.set_goal, title="Spare goal")
    step(service.abandon_goal, goal_id=spare, reason="merged")
    step(service.remove_stakeholder, stakeholder_id=jane, reason="left")
    step(service.mark_renewal_due, due_on=date(2027, 3, 1))
    lines = [ProductLine("analytics", eur("12000"))]
    step(service.renew, term_end=date(2028, 3, 1), lines=lines, actor="carol")
    step(service.churn, reason="price", detail="went cheaper")
    step(service.reactivate, term_end=date(2029, 1, 1), lines=lines)
    return account


# --- descriptions -------------------------------------------------------------------------------


def test_every_event_class_has_a_description() -> None:
    defined = [
        cls
        for cls in vars(ev).values()
        if inspect.isclass(cls) and issubclass(cls, AccountEvent) and cls is not AccountEvent
    ]
    assert set(ACCOUNT_EVENT_TYPES) <= set(defined)
    missing = [cls.__name__ for cls in defined if cls not in DESCRIPTIONS]
    assert not missing, f"event classes without a timeline description: {missing}"


def test_every_event_is_described_on_one_line(service: AccountService, clock: FakeClock) -> None:
    account = write_every_event(service, clock)
    entries = timeline(service, account)
    assert {entry.type for entry in entries} == {cls.__name__ for cls in ACCOUNT_EVENT_TYPES}
    for entry in entries:
        assert entry.description.strip()
        assert "\n" not in entry.description
        assert entry.description != entry.type
    said = {entry.type: entry.description for entry in entries}
    assert said["Renewed"] == "Renewed: term to 2028-03-01, ARR 12,000.00 EUR (was 14,000.00)"
    assert said["IssueRaised"] == "Issue raised: 'Login fails' (high, auth)"
    # Items are named by what introduced them, even in later events.
    assert said["IssueResolved"] == "Issue resolved: 'Login fails' (Patched)"
    assert said["StakeholderRemoved"] == "Stakeholder removed: 'Jane Roe' (left)"
    assert said["ContactLogged"] == (
        "Contact logged: meeting, outbound, with 'Jane Roe', 45 min: 'Quarterly review'"
    )
    assert said["OpportunityWon"] == "Opportunity won: 'upsell of analytics', ARR 1,500.00 EUR"
    assert said["TacticDropped"] == "Tactic dropped: 'Call Rome' (office closed)"
    assert said["Churned"] == "Churned: price, ARR lost 12,000.00 EUR: 'went cheaper'"


def test_a_description_without_context_shows_ids_and_long_text_is_cut() -> None:
    issue_id = uuid4()
    resolved = ev.IssueResolved(
        originator_id=uuid4(),
        originator_version=2,
        timestamp=OPENED,
        effective_at=OPENED,
        actor="amy",
        correlation_id=uuid4(),
        causation_id=None,
        issue_id=issue_id,
        resolution="x" * 200,
    )
    text = describe(resolved)
    assert text.startswith(f"Issue resolved: #{str(issue_id)[:8]} (")
    assert text.endswith("...)")
    assert len(text) < 120


def test_an_event_class_without_a_description_is_named_by_its_class() -> None:
    class QuotaAgreed(ev.AccountEvent):  # a plugin's own event, say
        pass

    event = object.__new__(QuotaAgreed)
    assert describe(event) == "Quota agreed"


def test_amounts_keep_their_precision() -> None:
    due = ev.RenewalDue(
        originator_id=uuid4(),
        originator_version=3,
        timestamp=OPENED,
        effective_at=OPENED,
        actor="amy",
        correlation_id=uuid4(),
        causation_id=None,
        due_on=date(2027, 1, 1),
        arr_at_stake=Money("1234567.125", "BHD"),
    )
    assert describe(due) == "Renewal due: on 2027-01-01, ARR at stake 1,234,567.125 BHD"


# --- the entries --------------------------------------------------------------------------------


def test_an_entry_says_who_what_when_and_which_version(
    service: AccountService, clock: FakeClock
) -> None:
    account = open_account(service)
    clock.advance(days=2)
    correlation = uuid4()
    backdated = OPENED + timedelta(hours=3)
    service.raise_issue(
        account,
        title="Login fails",
        severity="high",
        category="auth",
        actor="bob",
        effective_at=backdated,
        correlation_id=correlation,
    )
    opened, raised = timeline(service, account)
    assert isinstance(raised, TimelineEntry)
    assert (raised.account_id, raised.version, raised.type) == (account, 2, "IssueRaised")
    assert raised.event_id == event_id_for(account, 2) == raised.event.id
    assert raised.actor == "bob"
    assert raised.effective_at == backdated
    assert raised.recorded_at == OPENED + timedelta(days=2)
    assert raised.correlation_id == correlation
    assert (raised.causation_id, raised.causes, raised.external_cause) == (None, (), None)
    assert str(raised) == (
        "v2 2026-01-07 09:00 bob: Issue raised: 'Login fails' (high, auth) [effective 2026-01-05]"
    )
    assert str(opened).startswith("v1 2026-01-05 09:00 amy: Account opened: 'Acme'")


def test_an_unknown_account_or_a_bad_id_is_refused(service: AccountService) -> None:
    with pytest.raises(AccountNotFound):
        timeline(service, uuid4())
    with pytest.raises(InvalidValue) as raised:
        timeline(service, "not a uuid")  # type: ignore[arg-type]
    assert raised.value.field == "account_id"


# --- filters and order --------------------------------------------------------------------------


@pytest.fixture
def book(service: AccountService, clock: FakeClock) -> UUID:
    """Recorded a day apart: v1 opened (amy), v2 contract (amy), v3 issue (bob, backdated to
    an hour after the opening), v4 NPS (survey), v5 resolution (bob)."""
    account = open_account(service)
    clock.advance(days=1)
    service.start_contract(
        account, term_end=date(2027, 1, 1), lines=[ProductLine("a", eur("100"))], actor="amy"
    )
    clock.advance(days=1)
    issue = service.raise_issue(
        account,
        title="Slow",
        severity="low",
        category="perf",
        actor="bob",
        effective_at=OPENED + timedelta(hours=1),  # backdated: before the contract
    ).entity_id
    assert issue is not None
    clock.advance(days=1)
    service.record_feedback(account, score=NpsScore(8), actor="survey")
    clock.advance(days=1)
    service.resolve_issue(account, issue_id=issue, actor="bob")
    return account


def versions(entries: list[TimelineEntry]) -> list[int]:
    return [entry.version for entry in entries]


def test_by_default_every_event_in_recorded_order(service: AccountService, book: UUID) -> None:
    assert versions(timeline(service, book)) == [1, 2, 3, 4, 5]


def test_effective_order_on_request(service: AccountService, book: UUID) -> None:
    assert versions(timeline(service, book, order="effective")) == [1, 3, 2, 4, 5]


def test_filter_by_type_class_name_several_or_a_base(service: AccountService, book: UUID) -> None:
    assert versions(timeline(service, book, types=ev.IssueRaised)) == [3]
    assert versions(timeline(service, book, types="FeedbackRecorded")) == [4]
    chosen = timeline(service, book, types=[ev.IssueRaised, "IssueResolved"])
    assert versions(chosen) == [3, 5]
    assert versions(timeline(service, book, types=(AccountEvent,))) == [1, 2, 3, 4, 5]


def test_filter_by_effective_time(service: AccountService, book: UUID) -> None:
    day = OPENED.date()
    assert versions(timeline(service, book, effective_to=day)) == [1, 3]
    assert versions(timeline(service, book, effective_from=day + timedelta(days=1))) == [2, 4, 5]
    exact = OPENED + timedelta(hours=1)
    assert versions(timeline(service, book, effective_from=exact, effective_to=exact)) == [3]


def test_filter_by_recorded_time(service: AccountService, book: UUID) -> None:
    day = OPENED.date()
    assert versions(timeline(service, book, recorded_to=day)) == [1]
    two = timeline(
        service, book, recorded_from=day + timedelta(days=2), recorded_to=OPENED + timedelta(days=3)
    )
    assert versions(two) == [3, 4]


def test_filter_by_actor_and_filters_combine(service: AccountService, book: UUID) -> None:
    assert versions(timeline(service, book, actor="bob")) == [3, 5]
    assert versions(timeline(service, book, actor="nobody")) == []
    combined = timeline(
        service, book, actor="bob", types="IssueResolved", recorded_from=OPENED.date()
    )
    assert versions(combined) == [5]
    backdated_first = timeline(service, book, actor="bob", order="effective")
    assert versions(backdated_first) == [3, 5]


NAIVE = datetime(2026, 1, 1)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"types": "Nope"}, "types"),
        ({"types": [ev.IssueRaised, int]}, "types"),
        ({"types": []}, "types"),
        ({"types": 3}, "types"),
        ({"effective_from": NAIVE}, "effective_from"),
        ({"effective_to": NAIVE}, "effective_to"),
        ({"recorded_from": NAIVE}, "recorded_from"),
        ({"recorded_to": NAIVE}, "recorded_to"),
        ({"effective_from": "2026-01-01"}, "effective_from"),
        ({"recorded_to": 20260101}, "recorded_to"),
        ({"effective_from": date(2026, 2, 1), "effective_to": date(2026, 1, 1)}, "effective_to"),
        ({"recorded_from": OPENED, "recorded_to": OPENED - timedelta(seconds=1)}, "recorded_to"),
        ({"actor": ""}, "actor"),
        ({"actor": 7}, "actor"),
        ({"order": "alphabetical"}, "order"),
    ],
)
def test_a_bad_filter_is_refused_naming_it(
    service: AccountService, book: UUID, arguments: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidValue) as raised:
        timeline(service, book, **arguments)
    assert raised.value.field == field


def test_a_bad_filter_is_refused_before_the_account_is_looked_up(service: AccountService) -> None:
    with pytest.raises(InvalidValue):
        timeline(service, uuid4(), order="sideways")  # type: ignore[arg-type]


# --- causation ----------------------------------------------------------------------------------


def follow_up_detractors(event: ev.FeedbackRecorded) -> list[Reaction]:
    if isinstance(event.score, NpsScore) and event.score.value <= 6:
        arguments = {"title": "Detractor follow-up", "severity": "high", "category": "feedback"}
        return [Reaction("raise_issue", event.originator_id, arguments)]
    return []


class DetractorPolicy:
    @hookimpl
    def acctdomain_register_policies(self, register: Callable[[Policy], None]) -> None:
        register(Policy("detractor_follow_up", (ev.FeedbackRecorded,), follow_up_detractors))


class EscalationDesk:
    """Every high issue raised on an account is logged as a contact on the escalation desk's
    own account (another account): a chain that crosses accounts."""

    def __init__(self) -> None:
        self.desk: UUID | None = None

    def react(self, event: ev.IssueRaised) -> list[Reaction]:
        assert self.desk is not None
        if event.originator_id == self.desk or event.severity != "high":
            return []
        arguments = {"channel": "chat", "direction": "inbound", "summary": f"about {event.title}"}
        return [Reaction("log_contact", self.desk, arguments)]

    @hookimpl
    def acctdomain_register_policies(self, register: Callable[[Policy], None]) -> None:
        register(Policy("escalation_desk", (ev.IssueRaised,), self.react))


def test_a_policy_reaction_shows_its_cause(service: AccountService) -> None:
    service.plugins.register(DetractorPolicy(), "detractors")
    account = open_account(service)
    service.record_feedback(account, score=NpsScore(3), actor="survey")
    service.policies.run()
    *_, feedback, raised = timeline(service, account)
    assert raised.type == "IssueRaised"
    assert raised.actor == "policy:detractor_follow_up"
    assert raised.causation_id == feedback.event_id
    assert raised.correlation_id == feedback.correlation_id
    [cause] = raised.causes
    assert cause == Cause(
        event_id=feedback.event_id,
        account_id=account,
        version=2,
        type="FeedbackRecorded",
        description="Feedback recorded: NPS 3",
        actor="survey",
        effective_at=feedback.effective_at,
        recorded_at=feedback.recorded_at,
    )
    assert raised.external_cause is None
    assert str(raised).endswith("<- FeedbackRecorded v2")


def test_a_causation_chain_is_followed_across_accounts_to_an_outside_cause(
    service: AccountService,
) -> None:
    desk = EscalationDesk()
    service.plugins.register(DetractorPolicy(), "detractors")
    service.plugins.register(desk, "desk")
    desk.desk = open_account(service, "Escalation desk", actor="ops")
    for index in range(3):  # accounts in between, which the chain does not touch
        open_account(service, f"Bystander {index}")
    customer = open_account(service, "Globex")
    ticket = uuid4()  # the id of a message outside the store that prompted the survey entry
    service.record_feedback(customer, score=NpsScore(2), actor="survey", causation_id=ticket)
    service.policies.run()  # the detractor issue on Globex
    service.policies.run()  # the desk's contact about it
    [contact] = timeline(service, desk.desk, types="ContactLogged")
    assert contact.actor == "policy:escalation_desk"
    assert [(c.account_id, c.version, c.type) for c in contact.causes] == [
        (customer, 3, "IssueRaised"),
        (customer, 2, "FeedbackRecorded"),
    ]
    assert contact.causes[0].description == "Issue raised: 'Detractor follow-up' (high, feedback)"
    assert contact.external_cause == ticket
    assert str(contact).endswith(f"<- IssueRaised v3 of {customer}")
    feedback = timeline(service, customer, types="FeedbackRecorded")[0]
    assert (feedback.causes, feedback.external_cause) == ((), ticket)
    assert str(feedback).endswith(f"<- {ticket}")


def test_a_cause_that_names_a_later_event_does_not_loop(service: AccountService) -> None:
    account = open_account(service)
    own = event_id_for(account, 2)  # the id the next event will have
    service.record_feedback(account, score=NpsScore(7), actor="amy", causation_id=own)
    entry = timeline(service, account)[-1]
    assert [cause.version for cause in entry.causes] == [2]
    assert entry.external_cause is None


def test_a_cause_in_another_kind_of_aggregate_is_outside(service: AccountService) -> None:
    account = open_account(service)
    # An idempotency record is an aggregate of the store that is no account.
    service.record_feedback(account, score=NpsScore(7), actor="amy", idempotency_key="k1")
    records = [
        n
        for n in service.recorder.select_notifications(start=None, limit=100)
        if n.originator_id != account
    ]
    assert records, "expected the idempotency record's event in the store"
    record_event = event_id_for(UUID(str(records[0].originator_id)), 1)
    service.record_feedback(account, score=NpsScore(8), actor="amy", causation_id=record_event)
    entry = timeline(service, account)[-1]
    assert (entry.causes, entry.external_cause) == ((), record_event)
