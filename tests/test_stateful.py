"""Random sequences of valid and invalid commands: invariants hold after every step, and a
refused command leaves the store exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from acctdomain import (
    AccountService,
    AccountStatus,
    CommandResult,
    Money,
    ProductLine,
)
from acctdomain.domain import Account
from acctdomain.domain.records import OpportunityStatus, TacticStatus
from acctdomain.domain.values import (
    Channel,
    ChurnReason,
    IssueSeverity,
    ManagerType,
    NpsScore,
    OpportunityKind,
    Sentiment,
    StakeholderRole,
)
from acctdomain.errors import AcctDomainError
from tests.conftest import FakeClock

START = datetime(2025, 1, 1, tzinfo=UTC)
PRODUCTS = ("core", "analytics", "support", "api")

# Steps move business time forward a little; -3 means "before the account opened" (invalid),
# -2 and -1 backdate a little (valid or not, depending on what the command refers to).
days = st.integers(min_value=-3, max_value=20)
term_days = st.integers(min_value=-10, max_value=800)
any_money = st.builds(
    Money,
    st.integers(min_value=-100, max_value=50_000),
    st.sampled_from(("EUR", "USD")),
)
valid_money = st.builds(Money, st.integers(min_value=1, max_value=50_000), st.just("EUR"))
# Mostly valid input, so that long valid histories happen, with invalid input mixed in.
money = st.one_of(valid_money, valid_money, valid_money, any_money)
products = st.sampled_from(PRODUCTS)
valid_lines = st.lists(
    st.builds(ProductLine, products, valid_money),
    min_size=1,
    max_size=3,
    unique_by=lambda line: line.product,
)
any_lines = st.lists(
    st.builds(ProductLine, products, any_money.filter(lambda m: m.amount >= 0)), max_size=3
)
lines = st.one_of(valid_lines, valid_lines, valid_lines, any_lines)


class AccountMachine(RuleBasedStateMachine):
    accounts = Bundle("accounts")
    issues = Bundle("issues")
    opportunities = Bundle("opportunities")
    tactics = Bundle("tactics")
    stakeholders = Bundle("stakeholders")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(START)
        self.service = AccountService("memory:", clock=self.clock)
        self.account_ids: list[UUID] = []
        self.refusals = 0
        self.day = 0

    def moment(self, offset: int) -> datetime:
        if offset == -3:
            return START - timedelta(days=1)
        self.day += max(offset, 0)
        return START + timedelta(days=self.day + min(offset, 0))

    def teardown(self) -> None:
        self.service.close()

    def attempt(
        self,
        account_id: UUID,
        command: Callable[..., CommandResult],
        offset: int | datetime,
        **arguments: object,
    ) -> CommandResult | None:
        """Run a command; if refused, nothing may have changed."""
        self.clock.advance(minutes=5)
        before_state = self.service.get_account(account_id)
        before_count = self.service.recorder.max_notification_id()
        try:
            when = offset if isinstance(offset, datetime) else self.moment(offset)
            result = command(account_id, actor="prop", effective_at=when, **arguments)
        except AcctDomainError:
            self.refusals += 1
            assert self.service.recorder.max_notification_id() == before_count
            assert self.service.get_account(account_id) == before_state
            return None
        assert result.version > before_state.version
        return result

    @initialize(target=accounts, currency=st.just("EUR"))
    def open_account(self, currency: str) -> UUID:
        result = self.service.open_account(
            name="Acme",
            segment="smb",
            industry="retail",
            currency=currency,
            manager="amy",
            manager_type="sales",
            actor="prop",
            effective_at=START,
        )
        self.service.start_contract(
            result.account_id,
            term_end=START.date() + timedelta(days=365),
            actor="prop",
            lines=[ProductLine("core", Money(10_000, currency))],
            effective_at=START,
        )
        self.account_ids.append(result.account_id)
        return result.account_id

    @rule(account=accounts, offset=days, term=term_days, new_lines=lines)
    def start_contract(
        self, account: UUID, offset: int, term: int, new_lines: list[ProductLine]
    ) -> None:
        when = self.moment(offset)
        self.attempt(
            account,
            self.service.start_contract,
            when,
            term_end=when.date() + timedelta(days=term),
            lines=new_lines,
        )

    @rule(account=accounts, offset=days, term=term_days, new_lines=lines)
    def renew(self, account: UUID, offset: int, term: int, new_lines: list[ProductLine]) -> None:
        when = self.moment(offset)
        self.attempt(
            account,
            self.service.renew,
            when,
            term_end=when.date() + timedelta(days=term),
            lines=new_lines,
        )

    @rule(account=accounts, offset=days, term=term_days, new_lines=lines)
    def reactivate(
        self, account: UUID, offset: int, term: int, new_lines: list[ProductLine]
    ) -> None:
        when = self.moment(offset)
        self.attempt(
            account,
            self.service.reactivate,
            when,
            term_end=when.date() + timedelta(days=term),
            lines=new_lines,
        )

    @rule(account=accounts, offset=days, reason=st.sampled_from(ChurnReason))
    def churn(self, account: UUID, offset: int, reason: ChurnReason) -> None:
        self.attempt(account, self.service.churn, offset, reason=reason)

    @rule(account=accounts, offset=days, product=products, amount=money)
    def upsell(self, account: UUID, offset: int, product: str, amount: Money) -> None:
        self.attempt(account, self.service.upsell, offset, product=product, added_arr=amount)

    @rule(account=accounts, offset=days, product=products, amount=money)
    def cross_sell(self, account: UUID, offset: int, product: str, amount: Money) -> None:
        self.attempt(account, self.service.cross_sell, offset, product=product, arr=amount)

    @rule(account=accounts, offset=days, product=products, amount=money)
    def downgrade(self, account: UUID, offset: int, product: str, amount: Money) -> None:
        self.attempt(account, self.service.downgrade, offset, product=product, reduced_by=amount)

    @rule(
        target=opportunities,
        account=accounts,
        offset=days,
        kind=st.sampled_from(OpportunityKind),
        product=products,
        amount=money,
    )
    def offer(
        self, account: UUID, offset: int, kind: OpportunityKind, product: str, amount: Money
    ) -> tuple[UUID, UUID]:
        result = self.attempt(
            account,
            self.service.offer_opportunity,
            offset,
            kind=kind,
            product=product,
            estimated_arr=amount,
        )
        return account, (result.entity_id if result and result.entity_id else uuid4())

    @rule(opportunity=opportunities, offset=days, amount=money)
    def win(self, opportunity: tuple[UUID, UUID], offset: int, amount: Money) -> None:
        account, opportunity_id = opportunity
        self.attempt(
            account, self.service.win_opportunity, offset, opportunity_id=opportunity_id, arr=amount
        )

    @rule(opportunity=opportunities, offset=days)
    def lose(self, opportunity: tuple[UUID, UUID], offset: int) -> None:
        account, opportunity_id = opportunity
        self.attempt(account, self.service.lose_opportunity, offset, opportunity_id=opportunity_id)

    @rule(target=issues, account=accounts, offset=days, severity=st.sampled_from(IssueSeverity))
    def raise_issue(self, account: UUID, offset: int, severity: IssueSeverity) -> tuple[UUID, UUID]:
        result = self.attempt(
            account, self.service.raise_issue, offset, title="t", severity=severity, category="c"
        )
        return account, (result.entity_id if result and result.entity_id else uuid4())

    @rule(issue=issues, offset=days)
    def respond(self, issue: tuple[UUID, UUID], offset: int) -> None:
        self.attempt(issue[0], self.service.respond_to_issue, offset, issue_id=issue[1])

    @rule(issue=consumes(issues), offset=days)
    def resolve(self, issue: tuple[UUID, UUID], offset: int) -> None:
        self.attempt(issue[0], self.service.resolve_issue, offset, issue_id=issue[1])

    @rule(issue=issues, offset=days)
    def resolve_again(self, issue: tuple[UUID, UUID], offset: int) -> None:
        self.attempt(issue[0], self.service.resolve_issue, offset, issue_id=issue[1])

    @rule(
        account=accounts,
        offset=days,
        channel=st.sampled_from(Channel),
        role=st.sampled_from(StakeholderRole),
    )
    def contact(self, account: UUID, offset: int, channel: Channel, role: StakeholderRole) -> None:
        person = self.attempt(account, self.service.add_stakeholder, offset, name="Kim", role=role)
        present = [person.entity_id] if person and person.entity_id else [uuid4()]
        self.attempt(
            account,
            self.service.log_contact,
            offset,
            channel=channel,
            direction="outbound",
            stakeholder_ids=present,
        )

    @rule(target=stakeholders, account=accounts, offset=days, role=st.sampled_from(StakeholderRole))
    def add_stakeholder(
        self, account: UUID, offset: int, role: StakeholderRole
    ) -> tuple[UUID, UUID]:
        person = self.attempt(account, self.service.add_stakeholder, offset, name="Lee", role=role)
        return account, (person.entity_id if person and person.entity_id else uuid4())

    @rule(
        stakeholder=stakeholders,
        offset=days,
        sentiment=st.sampled_from(Sentiment),
        title=st.sampled_from(("CTO", "CFO", "VP")),
    )
    def update_stakeholder(
        self, stakeholder: tuple[UUID, UUID], offset: int, sentiment: Sentiment, title: str
    ) -> None:
        self.attempt(
            stakeholder[0],
            self.service.update_stakeholder,
            offset,
            stakeholder_id=stakeholder[1],
            sentiment=sentiment,
            title=title,
        )

    @rule(stakeholder=stakeholders, offset=days)
    def remove_stakeholder(self, stakeholder: tuple[UUID, UUID], offset: int) -> None:
        self.attempt(
            stakeholder[0], self.service.remove_stakeholder, offset, stakeholder_id=stakeholder[1]
        )

    @rule(stakeholder=stakeholders, offset=days, channel=st.sampled_from(Channel))
    def meet_stakeholder(
        self, stakeholder: tuple[UUID, UUID], offset: int, channel: Channel
    ) -> None:
        self.attempt(
            stakeholder[0],
            self.service.log_contact,
            offset,
            channel=channel,
            direction="inbound",
            stakeholder_ids=[stakeholder[1]],
        )

    @rule(
        account=accounts,
        offset=days,
        manager=st.sampled_from(("amy", "bo")),
        manager_type=st.sampled_from(ManagerType),
    )
    def reassign(self, account: UUID, offset: int, manager: str, manager_type: ManagerType) -> None:
        self.attempt(
            account,
            self.service.reassign_manager,
            offset,
            manager=manager,
            manager_type=manager_type,
        )

    @rule(account=accounts, offset=days, due_in=st.integers(min_value=0, max_value=400))
    def mark_renewal_due(self, account: UUID, offset: int, due_in: int) -> None:
        self.attempt(
            account,
            self.service.mark_renewal_due,
            offset,
            due_on=START.date() + timedelta(days=self.day + due_in),
        )

    @rule(account=accounts, offset=days, score=st.integers(min_value=-1, max_value=11))
    def feedback(self, account: UUID, offset: int, score: int) -> None:
        try:
            nps = NpsScore(score)
        except AcctDomainError:
            return
        self.attempt(account, self.service.record_feedback, offset, score=nps)

    @rule(target=tactics, account=accounts, offset=days)
    def plan(self, account: UUID, offset: int) -> tuple[UUID, UUID]:
        goal = self.attempt(account, self.service.set_goal, offset, title="Grow")
        goal_id = goal.entity_id if goal and goal.entity_id else uuid4()
        strategy = self.attempt(
            account, self.service.add_strategy, offset + 1, goal_id=goal_id, description="Land"
        )
        strategy_id = strategy.entity_id if strategy and strategy.entity_id else uuid4()
        tactic = self.attempt(
            account,
            self.service.add_tactic,
            offset + 2,
            strategy_id=strategy_id,
            description="Call",
            owner="amy",
        )
        return account, (tactic.entity_id if tactic and tactic.entity_id else uuid4())

    @rule(tactic=tactics, offset=days, complete=st.booleans())
    def close_tactic(self, tactic: tuple[UUID, UUID], offset: int, complete: bool) -> None:
        if complete:
            self.attempt(tactic[0], self.service.complete_tactic, offset, tactic_id=tactic[1])
        else:
            self.attempt(tactic[0], self.service.drop_tactic, offset, tactic_id=tactic[1])

    @invariant()
    def invariants_hold(self) -> None:
        for account_id in self.account_ids:
            state = self.service.get_account(account_id)
            history = self.service.history(account_id)
            assert [e.originator_version for e in history] == list(range(1, state.version + 1))
            assert all(line.arr.currency == state.currency for line in state.lines)
            assert all(not line.arr.is_negative for line in state.lines)
            assert len({line.product for line in state.lines}) == len(state.lines)
            if state.status is not AccountStatus.ACTIVE:
                assert state.lines == ()
            if state.status is AccountStatus.ACTIVE:
                assert state.term_end is not None
            assert all(e.effective_at >= state.opened_at for e in history)
            for issue in state.issues:
                assert issue.resolved_at is None or issue.resolved_at >= issue.raised_at
                if issue.first_response_at is not None:
                    assert issue.first_response_at >= issue.raised_at
            for opportunity in state.opportunities:
                won = opportunity.status is OpportunityStatus.WON
                assert won == (opportunity.won_arr is not None)
                assert (opportunity.status is OpportunityStatus.OPEN) == (
                    opportunity.closed_at is None
                )
            for tactic in state.tactics:
                assert (tactic.status is TacticStatus.OPEN) == (tactic.closed_at is None)
            # A state loaded through snapshots equals a replay of every event.
            replayed = None
            for event in history:
                replayed = event.mutate(replayed)
            assert replayed is not None
            assert replayed.state() == state
            # Business-time replay of everything agrees with recording-order replay on revenue.
            in_business_order = Account.as_effective_at(history, datetime.max.replace(tzinfo=UTC))
            assert in_business_order is not None
            effective = in_business_order.state()
            assert set(effective.lines) == set(state.lines)
            assert effective.status is state.status
            # ... and on every value that one event replaces whole (effective-time rule 4).
            assert (effective.manager, effective.manager_type) == (
                state.manager,
                state.manager_type,
            )
            assert effective.renewal_due_on == state.renewal_due_on
            assert effective.latest_nps == state.latest_nps
            # (Records are listed in the order they were recorded, so compare them as sets.)
            assert set(effective.stakeholders) == set(state.stakeholders)


AccountMachine.TestCase.settings = settings(max_examples=75, stateful_step_count=40, deadline=None)
TestAccountCommands = AccountMachine.TestCase
