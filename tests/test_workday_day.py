"""The prioritised day (``acctdomain.builtin.day``), the ``attention`` read model it reads and
the account facts: every rank explained, and the loudest customer not winning by volume."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from acctdomain import AccountService, CsatScore, Money, NpsScore, ProductLine
from acctdomain.builtin.attention import AttentionProjection
from acctdomain.builtin.day import Day, DaySettings, DayWeights, prioritise, today
from acctdomain.builtin.facts import account_facts
from acctdomain.builtin.targets import ServiceTargets
from acctdomain.cli import build_app
from acctdomain.errors import AccountNotFound, CommandRejected, InvalidValue
from acctdomain.plugins import PluginHost
from acctdomain.projections import ProjectionRunner
from tests.conftest import FakeClock
from tests.projection_fixtures import dump

TODAY = date(2026, 3, 2)


def at(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def open_active(
    service: AccountService, name: str, segment: str = "mid_market", term_end: date | None = None
) -> UUID:
    account = service.open_account(
        name=name, segment=segment, industry="retail", currency="EUR", manager="amy",
        manager_type="sales", actor="amy", effective_at=at(1, 1),
    ).account_id  # fmt: skip
    service.start_contract(
        account, term_end=term_end or date(2027, 1, 1),
        lines=[ProductLine("tracking", Money(12_000, "EUR"))], actor="amy", effective_at=at(1, 1),
    )  # fmt: skip
    return account


def contact(service: AccountService, account: UUID, when: datetime) -> None:
    service.log_contact(
        account, channel="phone", direction="outbound", actor="amy", effective_at=when
    )


def day_of(service: AccountService, **options: Any) -> Day:
    return today(service, "amy", on=TODAY, **options)


def test_ten_angry_emails_do_not_outrank_a_breaching_sev1_and_a_silent_renewal(
    service: AccountService,
) -> None:
    loud = open_active(service, "Loud Ltd", segment="enterprise")  # the biggest segment, even
    for n in range(10):
        service.receive_request(
            loud, subject=f"Angry email {n}", channel="email", actor="amy",
            effective_at=at(3, 2, 8) + timedelta(minutes=n),
        )  # fmt: skip
    contact(service, loud, at(3, 1))
    broken = open_active(service, "Broken Inc", segment="smb")
    service.raise_issue(
        broken, title="Outage", severity="critical", category="platform", actor="amy",
        effective_at=at(2, 28),
    )  # fmt: skip
    contact(service, broken, at(3, 1))
    renewing = open_active(service, "Renewing AG", segment="smb", term_end=date(2026, 3, 9))
    contact(service, renewing, at(1, 20))

    day = day_of(service)
    ranked = [(item.account_name, item.kind) for item in day.items]
    assert ranked[:3] == [
        ("Renewing AG", "renewal"),
        ("Broken Inc", "issue_breach"),
        ("Loud Ltd", "unanswered_requests"),
    ]
    loud_item = day.items[2]
    assert loud_item.title == "answer 10 customer request(s)"
    factors = {f.name: f.value for f in loud_item.factors}
    assert factors["volume"] == pytest.approx(1 + 3.321928 / 4)  # log2(10) / 4: not x10
    assert "volume x1.83 for 10 (diminishing: at most x2)" in loud_item.reasons
    # Every rank is explained: the score is the product of its factors, each with reasons.
    for item in day.items:
        product = 1.0
        for factor in item.factors:
            product *= factor.value
        assert item.score == round(product, 2)
        assert item.reasons
    issue = day.items[1]
    assert issue.reasons[:3] == (
        "critical issue raised 63 h ago, no first response yet",
        "past its resolution target of 24 h by 39 h",
        "not escalated",
    )


def test_each_rule_with_its_reasons(memory_service: AccountService) -> None:
    service = memory_service
    acme = open_active(service, "Acme", term_end=date(2026, 4, 15))
    contact(service, acme, at(1, 5))  # 56 days before the day: silent, and renewal uncontacted
    service.record_feedback(acme, score=NpsScore(3), actor="amy", effective_at=at(2, 20))
    goal = service.set_goal(acme, title="Grow", measure="", actor="amy", effective_at=at(1, 2))
    strategy = service.add_strategy(
        acme, goal_id=goal.entity_id, description="S", actor="amy", effective_at=at(1, 2)
    )
    service.add_tactic(
        acme, strategy_id=strategy.entity_id, description="Send the ROI deck", owner="bob",
        due_on=date(2026, 2, 20), actor="amy", effective_at=at(1, 2),
    )  # fmt: skip
    service.add_stakeholder(
        acme, name="Carol", title="CFO", role="economic_buyer", sentiment="neutral", actor="amy",
        effective_at=at(1, 2),
    )  # fmt: skip
    service.receive_request(
        acme, subject="Invoice copy", channel="chat", actor="amy", effective_at=at(2, 25)
    )

    items = {item.kind: item for item in day_of(service).items}
    assert set(items) == {
        "renewal", "detractor", "overdue_tactic", "unanswered_requests", "silent_account",
        "stakeholder_not_met",
    }  # fmt: skip
    assert items["renewal"].reasons[:2] == (
        "renewal due on 2026-04-15 (in 44 days), ARR at stake 12000 EUR",
        "last contact 56 days ago (more than 14)",
    )
    assert items["detractor"].reasons[:2] == (
        "1 unhappy answer(s) without a contact since: NPS 3",
        "the oldest waits for 10 days",
    )
    assert items["overdue_tactic"].title == "overdue tactic: Send the ROI deck"
    assert items["overdue_tactic"].reasons[:2] == ("due 2026-02-20, 10 days overdue", "owner bob")
    assert items["unanswered_requests"].reasons[0] == (
        "1 request(s) unanswered (chat); the oldest for 6 days (target 48 h)"
    )
    assert items["silent_account"].reasons[0] == "last contact 56 days ago (more than 45)"
    assert items["stakeholder_not_met"].reasons[
        0
    ] == "Carol (economic_buyer) was never met".replace("economic_buyer", "economic buyer")
    assert all(item.reasons[-1] == "mid-market account (x1)" for item in items.values())
    assert [item.rank for item in day_of(service).items] == [1, 2, 3, 4, 5, 6]

    # A contact after the answer follows it up; a recent contact clears silence and renewal.
    contact(service, acme, at(3, 1))
    kinds = {item.kind for item in day_of(service).items}
    assert kinds == {"overdue_tactic", "unanswered_requests", "stakeholder_not_met"}


def test_weights_and_windows_are_configurable(memory_service: AccountService) -> None:
    service = memory_service
    acme = open_active(service, "Acme")
    service.receive_request(acme, subject="?", channel="email", actor="amy", effective_at=at(3, 2))
    # Never contacted (25 x silence 2) outranks one request within its target (20 x 1).
    assert [i.kind for i in day_of(service).items] == ["silent_account", "unanswered_requests"]
    quiet = DaySettings(weights=DayWeights(silent_account=0), silent_after=90)
    assert [i.kind for i in day_of(service, settings=quiet).items] == ["unanswered_requests"]
    louder = DaySettings(weights=DayWeights(unanswered_requests=500))
    assert day_of(service, settings=louder).items[0].score == 500.0
    strict = DaySettings(targets=ServiceTargets.from_mapping({"request_answer": 1}))
    [late_item] = [
        i for i in day_of(service, settings=strict).items if i.kind == "unanswered_requests"
    ]
    late = {f.name: f.value for f in late_item.factors}
    assert late["lateness"] > 1  # received at 09:00, the day ends at midnight: 14 h late
    assert len(day_of(service, limit=1).items) == 1


def test_ties_come_by_kind_then_account_name(memory_service: AccountService) -> None:
    service = memory_service
    for name in ("Zeta", "Alpha", "Mid"):
        open_active(service, name)  # opened 1 January, never contacted: equally silent
    day = day_of(service)
    assert [(i.account_name, i.kind) for i in day.items] == [
        ("Alpha", "silent_account"), ("Mid", "silent_account"), ("Zeta", "silent_account"),
    ]  # fmt: skip
    assert {i.score for i in day.items} == {33.33}  # 25 x (1 + 15 / 45) x mid-market 1
    assert day.items[0].reasons[0] == (
        "never contacted since it was opened 60 days ago (more than 45)"
    )


def test_scores_tie_as_shown(memory_service: AccountService) -> None:
    """An overdue tactic at 59.99999... and a silent account at 60.0 both show 60.0: the
    graver kind (the tactic) comes first, as documented."""
    service = memory_service
    late = open_active(service, "Late", segment="enterprise")
    contact(service, late, at(3, 1))
    goal = service.set_goal(late, title="G", measure="", actor="amy", effective_at=at(1, 2))
    strategy = service.add_strategy(
        late, goal_id=goal.entity_id, description="S", actor="amy", effective_at=at(1, 2)
    )
    service.add_tactic(
        late, strategy_id=strategy.entity_id, description="T", owner="amy",
        due_on=date(2026, 2, 10), actor="amy", effective_at=at(1, 2),
    )  # fmt: skip
    quiet = open_active(service, "Quiet", segment="enterprise")
    contact(service, quiet, at(1, 1))  # 60 days: silence 1 + 15/45
    weights = DayWeights(silent_account=37.5)  # 37.5 x 4/3 x 1.2 = 60
    day = day_of(service, settings=DaySettings(weights=weights))
    assert [(i.account_name, i.kind, i.score) for i in day.items] == [
        ("Late", "overdue_tactic", 60.0), ("Quiet", "silent_account", 60.0),
    ]  # fmt: skip


def test_a_new_account_is_not_silent_and_a_past_day_leaves_out_later_facts(
    memory_service: AccountService,
) -> None:
    service = memory_service
    fresh = service.open_account(
        name="Fresh", segment="smb", industry="retail", currency="EUR", manager="amy",
        manager_type="sales", actor="amy", effective_at=at(3, 1),
    ).account_id  # fmt: skip
    assert day_of(service).items == ()
    service.record_feedback(fresh, score=NpsScore(2), actor="amy", effective_at=at(3, 20))
    service.raise_issue(
        fresh, title="Later", severity="critical", category="c", actor="amy",
        effective_at=at(3, 25),
    )  # fmt: skip
    assert day_of(service).items == ()  # both are after 2 March
    facts = account_facts(service.read_model, fresh, today=TODAY)
    assert (facts.awaiting_follow_up, facts.open_issues, facts.surveys["nps"]) == ((), (), ())


def test_the_oldest_unhappy_answer_comes_first_even_when_backdated(
    memory_service: AccountService,
) -> None:
    service = memory_service
    acme = open_active(service, "Acme")
    contact(service, acme, at(1, 2))
    service.record_feedback(acme, score=NpsScore(3), actor="amy", effective_at=at(3, 1))
    service.record_feedback(acme, score=NpsScore(2), actor="amy", effective_at=at(1, 20))
    [item] = [i for i in day_of(service).items if i.kind == "detractor"]
    assert item.reasons[:2] == (
        "2 unhappy answer(s) without a contact since: NPS 2, NPS 3",
        "the oldest waits for 41 days",
    )


def test_user_text_is_printed_as_is(tmp_path: Path) -> None:
    db = str(tmp_path / "book.db")
    with AccountService(db, plugins=PluginHost(entry_points=False)) as service:
        open_active(service, "Acme [/] [bold]")
    app = build_app(PluginHost(entry_points=False))
    for command in ("today", "portfolio"):
        result = CliRunner().invoke(app, [command, "--db", db, "--on", "2026-03-02"])
        assert result.exit_code == 0, result.output
        assert "Acme [/] [bold]" in result.stdout


def test_empty_and_churned_accounts_need_nothing(memory_service: AccountService) -> None:
    service = memory_service
    gone = open_active(service, "Gone")
    service.churn(gone, reason="price", detail="", actor="amy", effective_at=at(2, 1))
    day = day_of(service)
    assert (day.accounts, day.items) == (1, ())
    assert today(service, "nobody", on=TODAY).accounts == 0


def test_bad_settings_and_arguments_are_refused(memory_service: AccountService) -> None:
    service = memory_service
    with pytest.raises(InvalidValue, match=r"weights\.renewal"):
        DayWeights(renewal=-1)
    with pytest.raises(InvalidValue, match=r"weights\.renewal"):
        DayWeights(renewal=float("inf"))
    with pytest.raises(InvalidValue, match=r"weights\.severity"):
        DayWeights(severity={"critical": 1.0})
    with pytest.raises(InvalidValue, match="renewal_window"):
        DaySettings(renewal_window=0)
    with pytest.raises(InvalidValue, match="targets"):
        DaySettings(targets="fast")  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="request_answer"):
        ServiceTargets.from_mapping({"request_answer": 0})
    with pytest.raises(InvalidValue, match=r"response\.urgent"):
        ServiceTargets.from_mapping({"response": {"urgent": 2}})
    with pytest.raises(InvalidValue, match="unknown key"):
        ServiceTargets.from_mapping({"resolve": {}})
    with pytest.raises(InvalidValue, match=r"^on"):
        today(service, "amy", on=datetime(2026, 3, 2, tzinfo=UTC))
    with pytest.raises(InvalidValue, match="manager"):
        today(service, " ", on=TODAY)
    with pytest.raises(InvalidValue, match="limit"):
        prioritise([], today=TODAY, limit=0)
    with pytest.raises(InvalidValue, match="settings"):
        prioritise([], today=TODAY, settings={})  # type: ignore[arg-type]
    with pytest.raises(AccountNotFound):
        account_facts(service.read_model, UUID(int=7), today=TODAY)


def test_facts_hold_surveys_issues_and_the_revenue_a_year_ago(
    memory_service: AccountService,
) -> None:
    service = memory_service
    acme = open_active(service, "Acme")
    for month, score in ((1, 9), (2, 7), (2, 5)):
        service.record_feedback(acme, score=NpsScore(score), actor="amy", effective_at=at(month, 3))
    service.record_feedback(acme, score=CsatScore(2), actor="amy", effective_at=at(1, 4))
    contact(service, acme, at(1, 10))  # follows up the CSAT 2, not the later NPS 5
    raised = service.raise_issue(
        acme, title="Slow", severity="high", category="perf", actor="amy", effective_at=at(2, 1)
    )
    service.respond_to_issue(acme, issue_id=raised.entity_id, actor="amy", effective_at=at(2, 2))
    service.escalate_issue(
        acme, issue_id=raised.entity_id, to_team="engineering", actor="amy", effective_at=at(2, 3)
    )
    service.catch_up()
    facts = account_facts(service.read_model, acme, today=date(2027, 2, 1))
    assert [a.score for a in facts.surveys["nps"]] == [9, 7, 5]
    assert facts.latest("nps") == facts.surveys["nps"][-1]
    assert facts.latest("ces") is None
    assert [(a.kind, a.score) for a in facts.awaiting_follow_up] == [("nps", 5)]
    [issue] = facts.open_issues
    assert (issue.first_response_at, issue.escalated_to) == (at(2, 2), ("engineering",))
    assert facts.arr == facts.arr_year_ago == Money(12_000, "EUR")
    assert account_facts(service.read_model, acme, today=date(2025, 6, 1)).arr_year_ago is None


# --- the attention read model: caught up bit by bit equals a rebuild ----------------------------

OPERATIONS = ("issue", "respond", "escalate", "resolve", "request", "answer", "nps", "csat", "talk")
operation = st.tuples(
    st.integers(min_value=0, max_value=1),
    st.sampled_from(OPERATIONS),
    st.integers(min_value=0, max_value=10),
    st.integers(min_value=-2, max_value=5),  # days after the previous step (may go back)
)


def step(service: AccountService, account: UUID, kind: str, pick: int, when: datetime,
         known: dict[str, list[UUID]]) -> Any:  # fmt: skip
    options: dict[str, Any] = {"actor": "amy", "effective_at": when}

    def chosen(what: str) -> UUID:
        ids = known.get(what) or [UUID(int=pick + 1)]
        return ids[pick % len(ids)]

    if kind == "issue":
        severity = ("low", "medium", "high", "critical")[pick % 4]
        return service.raise_issue(account, title="I", severity=severity, category="c", **options)
    if kind == "respond":
        return service.respond_to_issue(account, issue_id=chosen("issue"), **options)
    if kind == "escalate":
        return service.escalate_issue(account, issue_id=chosen("issue"), to_team="eng", **options)
    if kind == "resolve":
        return service.resolve_issue(account, issue_id=chosen("issue"), resolution="", **options)
    if kind == "request":
        return service.receive_request(account, subject="R", channel="email", **options)
    if kind == "answer":
        return service.answer_request(account, request_id=chosen("request"), **options)
    if kind == "nps":
        return service.record_feedback(account, score=NpsScore(pick), **options)
    if kind == "csat":
        return service.record_feedback(account, score=CsatScore(pick % 5 + 1), **options)
    return service.log_contact(account, channel="email", direction="inbound", **options)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, max_size=50), st.booleans())
def test_attention_caught_up_bit_by_bit_equals_a_rebuild(steps: list[Any], every: bool) -> None:
    clock = FakeClock(at(1, 1))
    service = AccountService("memory:", clock=clock, plugins=PluginHost(entry_points=False))
    try:
        accounts = [open_active(service, name) for name in ("A", "B", "Empty")]
        known: list[dict[str, list[UUID]]] = [{}, {}]
        moment = at(1, 2)
        for index, kind, pick, days in steps:
            moment = max(at(1, 1), moment + timedelta(days=days))
            clock.now = max(clock.now, moment)
            try:
                result = step(service, accounts[index], kind, pick, moment, known[index])
            except CommandRejected:
                continue
            if result.entity_id is not None:
                known[index].setdefault(kind, []).append(result.entity_id)
            if every:
                service.catch_up()
        service.catch_up()
        projection = AttentionProjection()
        incremental = list(service.read_model("attention").scan("attention"))
        with ProjectionRunner(service, [projection]) as runner:
            runner.rebuild()
            assert dump(runner)["attention"] == {"attention": incremental}
    finally:
        service.close()
