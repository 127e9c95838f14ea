"""The Account aggregate: decides which events a command produces, and evolves from events.

Command methods validate everything first and trigger events only when the whole command is
valid, so a refused command leaves the aggregate (and the store) untouched. ``when`` handlers
never raise: they only record what the events say, which lets queries replay events in
effective-time order too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from functools import singledispatchmethod
from types import MappingProxyType
from typing import Any, Self, TypeVar, cast
from uuid import UUID

import attrs
from eventsourcing.domain import Aggregate

from acctdomain.domain import events as ev
from acctdomain.domain.records import (
    BusinessUnit,
    CustomerRequest,
    Goal,
    GoalStatus,
    Ineligibility,
    Issue,
    Opportunity,
    OpportunityStatus,
    Stakeholder,
    Strategy,
    Tactic,
    TacticStatus,
)
from acctdomain.domain.state import AccountState
from acctdomain.domain.values import (
    AccountStatus,
    CesScore,
    Channel,
    ChurnReason,
    CsatScore,
    Direction,
    IssueSeverity,
    ManagerType,
    Money,
    NpsScore,
    OpportunityKind,
    ProductLine,
    Segment,
    Sentiment,
    StakeholderRole,
    SurveyScore,
    require_aware,
    require_date,
    require_enum,
    require_text,
)
from acctdomain.errors import (
    AccountNotActive,
    CurrencyMismatch,
    InvalidTransition,
    InvalidValue,
    RuleViolation,
    UnknownReference,
)

__all__ = ["Account", "EventContext"]

T = TypeVar("T")


def _check_actor(_: object, __: attrs.Attribute[str], value: str) -> None:
    require_text("actor", value)


def _check_effective_at(_: object, __: attrs.Attribute[datetime], value: datetime) -> None:
    require_aware("effective_at", value)


def _check_recorded_at(_: object, __: attrs.Attribute[datetime], value: datetime) -> None:
    require_aware("recorded_at", value)


def _check_optional_uuid(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, UUID):
        raise InvalidValue(attribute.name, f"expected a UUID, got {type(value).__name__}")


def _check_uuid(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, UUID):
        raise InvalidValue(attribute.name, f"expected a UUID, got {type(value).__name__}")


@attrs.frozen(kw_only=True)
class EventContext:
    """What every event of one command shares: who, when (both clocks) and why."""

    actor: str = attrs.field(validator=_check_actor)
    effective_at: datetime = attrs.field(validator=_check_effective_at)
    recorded_at: datetime = attrs.field(validator=_check_recorded_at)
    correlation_id: UUID = attrs.field(validator=_check_uuid)
    causation_id: UUID | None = attrs.field(default=None, validator=_check_optional_uuid)


def _require_id(field: str, value: object) -> UUID:
    if not isinstance(value, UUID):
        raise InvalidValue(field, f"expected a UUID, got {type(value).__name__}")
    return value


def _optional_date(field: str, value: object) -> date | None:
    return None if value is None else require_date(field, value)


def _no_units() -> Mapping[UUID, BusinessUnit]:
    return MappingProxyType({})


class Account(Aggregate):
    """One customer company and everything that happens to it."""

    # State is set by the ``when`` handlers; declared here for readers and type checkers.
    # (No class annotations: eventsourcing would turn annotated aggregates into dataclasses.)
    # Data subjects erased (SubjectErased): on the class too, for snapshots older than erasure.
    _erased_subjects = cast("tuple[UUID, ...]", ())

    # Business units: replaced whole by each change (never mutated in place), so that this
    # read-only default on the class serves the snapshots taken before units existed.
    _units = _no_units()

    def __init__(self) -> None:
        self._name = ""
        self._segment = Segment.SMB
        self._industry = ""
        self._currency = "EUR"
        self._manager = ""
        self._manager_type = ManagerType.SALES
        # Effective times of the last change of values that one event replaces whole: a later
        # change may not be backdated before it (manager), or a backdated one does not displace
        # a later one (survey scores).
        self._manager_changed_at: datetime | None = None
        self._score_at: dict[str, datetime] = {}
        self._external_key: str | None = None
        self._status = AccountStatus.ONBOARDING
        self._opened_at: datetime | None = None
        self._lines: dict[str, Money] = {}
        self._term_end: date | None = None
        self._renewal_due_on: date | None = None
        self._churned_at: datetime | None = None
        self._churn_reason: ChurnReason | None = None
        # Effective time of the last revenue event (contract start, renewal, reactivation,
        # churn, upsell, cross-sell, downgrade, renewal-due marking): revenue changes may not
        # be backdated before it, so that replaying in effective-time order gives the same
        # lines as recording order.
        self._revenue_changed_at: datetime | None = None
        self._stakeholders: dict[UUID, Stakeholder] = {}
        self._requests: dict[UUID, CustomerRequest] = {}
        self._issues: dict[UUID, Issue] = {}
        self._opportunities: dict[UUID, Opportunity] = {}
        self._goals: dict[UUID, Goal] = {}
        self._strategies: dict[UUID, Strategy] = {}
        self._tactics: dict[UUID, Tactic] = {}
        self._contact_count = 0
        self._last_contact_at: datetime | None = None
        self._latest_nps: NpsScore | None = None
        self._latest_csat: CsatScore | None = None
        self._latest_ces: CesScore | None = None
        self._value_delivered = Money.zero("EUR")

    # --- creation -----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        *,
        account_id: UUID,
        name: str,
        segment: Segment | str,
        industry: str,
        currency: str,
        manager: str,
        manager_type: ManagerType | str,
        external_key: str | None,
        ctx: EventContext,
    ) -> Self:
        """Open an account (the ``AccountOpened`` event)."""
        _require_id("account_id", account_id)
        Money.zero(currency)  # validates the ISO 4217 code
        if external_key is not None:
            require_text("external_key", external_key)
        return cls._create(
            ev.AccountOpened,
            id=account_id,
            timestamp=ctx.recorded_at,
            effective_at=ctx.effective_at,
            actor=ctx.actor,
            correlation_id=ctx.correlation_id,
            causation_id=ctx.causation_id,
            name=require_text("name", name),
            segment=require_enum("segment", Segment, segment),
            industry=require_text("industry", industry),
            currency=currency,
            manager=require_text("manager", manager),
            manager_type=require_enum("manager_type", ManagerType, manager_type),
            external_key=external_key,
        )

    # --- shared checks ------------------------------------------------------------------------

    def _trigger(
        self, event_class: type[ev.AccountEvent], ctx: EventContext, **fields: Any
    ) -> None:
        # Recorded time never goes backwards within one account, even if clocks disagree, so
        # "as known at T" is always a prefix of the account's history.
        recorded_at = max(ctx.recorded_at, self.modified_on)
        self.trigger_event(
            event_class,
            timestamp=recorded_at,
            effective_at=ctx.effective_at,
            actor=ctx.actor,
            correlation_id=ctx.correlation_id,
            causation_id=ctx.causation_id,
            **fields,
        )

    def _check_effective(self, ctx: EventContext, not_before: datetime | None = None) -> None:
        assert self._opened_at is not None
        if ctx.effective_at < self._opened_at:
            raise InvalidValue(
                "effective_at",
                f"{ctx.effective_at.isoformat()} is before the account was opened "
                f"({self._opened_at.isoformat()})",
            )
        if not_before is not None and ctx.effective_at < not_before:
            raise InvalidValue(
                "effective_at",
                f"{ctx.effective_at.isoformat()} is before {not_before.isoformat()}, "
                "when the item it refers to began",
            )

    def _check_in_order(self, ctx: EventContext, last: datetime | None, what: str) -> None:
        if last is not None and ctx.effective_at < last:
            raise InvalidValue(
                "effective_at",
                f"{ctx.effective_at.isoformat()} is before the last {what} "
                f"({last.isoformat()}); these changes stand in business-time order",
            )

    def _check_revenue_effective(self, ctx: EventContext) -> None:
        self._check_effective(ctx)
        if self._revenue_changed_at is not None and ctx.effective_at < self._revenue_changed_at:
            raise InvalidValue(
                "effective_at",
                f"{ctx.effective_at.isoformat()} is before the last revenue change "
                f"({self._revenue_changed_at.isoformat()}); revenue changes cannot predate it",
            )

    def _require_active(self, command: str) -> None:
        if self._status is AccountStatus.CHURNED:
            raise AccountNotActive("status", f"cannot {command}: the account has churned")
        if self._status is not AccountStatus.ACTIVE:
            raise AccountNotActive("status", f"cannot {command}: no contract has started yet")

    def _money(self, field: str, value: object, *, positive: bool = False) -> Money:
        if not isinstance(value, Money):
            raise InvalidValue(field, f"expected Money, got {type(value).__name__}")
        if value.currency != self._currency:
            raise CurrencyMismatch(
                field,
                f"amount is in {value.currency}, the account's contract currency is "
                f"{self._currency}",
            )
        if positive and value.amount <= 0:
            raise InvalidValue(field, f"must be greater than zero, got {value}")
        if value.is_negative:
            raise InvalidValue(field, f"must not be negative, got {value}")
        return value

    def _lines_arg(self, value: object) -> tuple[ProductLine, ...]:
        if not isinstance(value, Iterable) or isinstance(value, str | bytes):
            raise InvalidValue("lines", "expected a sequence of ProductLine")
        lines = tuple(value)
        if not lines:
            raise InvalidValue("lines", "at least one product line is needed")
        seen: set[str] = set()
        for line in lines:
            if not isinstance(line, ProductLine):
                raise InvalidValue("lines", f"expected ProductLine, got {type(line).__name__}")
            self._money("lines", line.arr)
            if line.product in seen:
                raise InvalidValue("lines", f"product {line.product!r} appears twice")
            seen.add(line.product)
        return lines

    def _term_end_arg(self, term_end: object, ctx: EventContext) -> date:
        end = require_date("term_end", term_end)
        if end <= ctx.effective_at.date():
            raise InvalidValue("term_end", f"{end.isoformat()} is not after the effective date")
        return end

    def _get(self, items: dict[UUID, T], field: str, item_id: object, what: str) -> T:
        key = _require_id(field, item_id)
        try:
            return items[key]
        except KeyError:
            raise UnknownReference(field, f"the account has no {what} {key}") from None

    # --- relationship -------------------------------------------------------------------------

    def reassign_manager(
        self, *, manager: str, manager_type: ManagerType | str, reason: str, ctx: EventContext
    ) -> None:
        """Hand the account to another account manager."""
        self._check_effective(ctx)
        self._check_in_order(ctx, self._manager_changed_at, "change of manager")
        manager = require_text("manager", manager)
        manager_type = require_enum("manager_type", ManagerType, manager_type)
        if manager == self._manager and manager_type == self._manager_type:
            raise RuleViolation("manager", f"{manager!r} already manages the account")
        self._trigger(
            ev.ManagerReassigned,
            ctx,
            manager=manager,
            manager_type=manager_type,
            reason=require_text("reason", reason, allow_empty=True),
        )

    def log_contact(
        self,
        *,
        channel: Channel | str,
        direction: Direction | str,
        summary: str,
        stakeholder_ids: Iterable[UUID],
        duration_minutes: int | None,
        ctx: EventContext,
    ) -> None:
        """Record a call, email, meeting or QBR with the customer."""
        self._check_effective(ctx)
        present = tuple(stakeholder_ids)
        for stakeholder_id in present:
            person = self._get(self._stakeholders, "stakeholder_ids", stakeholder_id, "stakeholder")
            if ctx.effective_at < person.added_at:
                raise InvalidValue(
                    "stakeholder_ids",
                    f"stakeholder {stakeholder_id} was added at {person.added_at.isoformat()}, "
                    "after the contact",
                )
            if person.removed_at is not None and ctx.effective_at >= person.removed_at:
                raise InvalidTransition(
                    "stakeholder_ids",
                    f"stakeholder {stakeholder_id} left at {person.removed_at.isoformat()}, "
                    "before the contact",
                )
            if stakeholder_id in self._erased_subjects:
                raise InvalidTransition(
                    "stakeholder_ids", f"stakeholder {stakeholder_id} was erased (forgotten)"
                )
        if len(set(present)) != len(present):
            raise InvalidValue("stakeholder_ids", "a stakeholder is listed twice")
        if duration_minutes is not None and (
            isinstance(duration_minutes, bool)
            or not isinstance(duration_minutes, int)
            or duration_minutes < 0
        ):
            raise InvalidValue("duration_minutes", "expected a whole number of minutes >= 0")
        self._trigger(
            ev.ContactLogged,
            ctx,
            channel=require_enum("channel", Channel, channel),
            direction=require_enum("direction", Direction, direction),
            summary=require_text("summary", summary, allow_empty=True),
            stakeholder_ids=present,
            duration_minutes=duration_minutes,
        )

    def receive_request(
        self, *, request_id: UUID, subject: str, channel: Channel | str, ctx: EventContext
    ) -> None:
        """Record something the customer asked for."""
        self._check_effective(ctx)
        if _require_id("request_id", request_id) in self._requests:
            raise RuleViolation("request_id", f"request {request_id} was already received")
        self._trigger(
            ev.RequestReceived,
            ctx,
            request_id=request_id,
            subject=require_text("subject", subject),
            channel=require_enum("channel", Channel, channel),
        )

    def answer_request(self, *, request_id: UUID, response: str, ctx: EventContext) -> None:
        """Record the answer to a customer request (once)."""
        request = self._get(self._requests, "request_id", request_id, "request")
        self._check_effective(ctx, not_before=request.received_at)
        if request.answered_at is not None:
            raise InvalidTransition("request_id", f"request {request_id} was already answered")
        self._trigger(
            ev.RequestAnswered,
            ctx,
            request_id=request_id,
            response=require_text("response", response, allow_empty=True),
        )

    def add_stakeholder(
        self,
        *,
        stakeholder_id: UUID,
        name: str,
        title: str,
        role: StakeholderRole | str,
        sentiment: Sentiment | str,
        ctx: EventContext,
    ) -> None:
        """Add a customer-side person to the stakeholder map."""
        self._check_effective(ctx)
        if _require_id("stakeholder_id", stakeholder_id) in self._stakeholders:
            raise RuleViolation("stakeholder_id", f"stakeholder {stakeholder_id} exists already")
        self._trigger(
            ev.StakeholderAdded,
            ctx,
            stakeholder_id=stakeholder_id,
            name=require_text("name", name),
            title=require_text("title", title, allow_empty=True),
            role=require_enum("role", StakeholderRole, role),
            sentiment=require_enum("sentiment", Sentiment, sentiment),
        )

    def update_stakeholder(
        self,
        *,
        stakeholder_id: UUID,
        title: str | None,
        role: StakeholderRole | str | None,
        sentiment: Sentiment | str | None,
        ctx: EventContext,
    ) -> None:
        """Change a stakeholder's title, role or sentiment (None keeps the current value)."""
        current = self._get(self._stakeholders, "stakeholder_id", stakeholder_id, "stakeholder")
        self._check_effective(ctx, not_before=current.added_at)
        self._check_in_order(ctx, current.updated_at, "update of this stakeholder")
        if not current.is_active:
            raise InvalidTransition("stakeholder_id", f"stakeholder {stakeholder_id} has left")
        if stakeholder_id in self._erased_subjects:
            raise InvalidTransition("stakeholder_id", f"stakeholder {stakeholder_id} was erased")
        new_title = (
            current.title if title is None else require_text("title", title, allow_empty=True)
        )
        new_role = current.role if role is None else require_enum("role", StakeholderRole, role)
        new_sentiment = (
            current.sentiment
            if sentiment is None
            else require_enum("sentiment", Sentiment, sentiment)
        )
        if (new_title, new_role, new_sentiment) == (current.title, current.role, current.sentiment):
            raise InvalidValue("title, role, sentiment", "nothing would change")
        self._trigger(
            ev.StakeholderUpdated,
            ctx,
            stakeholder_id=stakeholder_id,
            title=new_title,
            role=new_role,
            sentiment=new_sentiment,
        )

    def remove_stakeholder(self, *, stakeholder_id: UUID, reason: str, ctx: EventContext) -> None:
        """Record that a stakeholder left the company or the buying group."""
        current = self._get(self._stakeholders, "stakeholder_id", stakeholder_id, "stakeholder")
        self._check_effective(ctx, not_before=current.added_at)
        self._check_in_order(ctx, current.updated_at, "update of this stakeholder")
        if not current.is_active:
            raise InvalidTransition("stakeholder_id", f"stakeholder {stakeholder_id} has left")
        self._trigger(
            ev.StakeholderRemoved,
            ctx,
            stakeholder_id=stakeholder_id,
            reason=require_text("reason", reason, allow_empty=True),
        )

    def erase_subject(self, *, subject_id: UUID, reason: str, ctx: EventContext) -> None:
        """Record that the personal data of data subject ``subject_id`` was erased (its key is
        destroyed by the application; this event holds no personal data)."""
        self._check_effective(ctx)
        if _require_id("subject_id", subject_id) in self._erased_subjects:
            raise InvalidTransition("subject_id", f"subject {subject_id} was erased already")
        self._trigger(
            ev.SubjectErased,
            ctx,
            subject_id=subject_id,
            reason=require_text("reason", reason, allow_empty=True),
        )

    def is_erased(self, subject_id: UUID) -> bool:
        """Whether the account recorded the erasure of data subject ``subject_id``."""
        return subject_id in self._erased_subjects

    def record_feedback(
        self, *, score: SurveyScore, respondent: str, comment: str, ctx: EventContext
    ) -> None:
        """Record a survey answer (NPS, CSAT or CES)."""
        self._check_effective(ctx)
        if not isinstance(score, NpsScore | CsatScore | CesScore):
            raise InvalidValue("score", f"expected NpsScore, CsatScore or CesScore, got {score!r}")
        self._trigger(
            ev.FeedbackRecorded,
            ctx,
            score=score,
            respondent=require_text("respondent", respondent, allow_empty=True),
            comment=require_text("comment", comment, allow_empty=True),
        )

    def record_value_delivered(self, *, amount: Money, description: str, ctx: EventContext) -> None:
        """Record value the customer got (money saved), in the contract currency."""
        self._check_effective(ctx)
        self._trigger(
            ev.ValueDelivered,
            ctx,
            amount=self._money("amount", amount, positive=True),
            description=require_text("description", description),
        )

    # --- revenue ------------------------------------------------------------------------------

    def start_contract(
        self, *, term_end: date, lines: Iterable[ProductLine], ctx: EventContext
    ) -> None:
        """Start the first contract with its product lines."""
        self._check_effective(ctx)
        if self._status is not AccountStatus.ONBOARDING:
            raise RuleViolation(
                "status",
                f"a contract has already started (status {self._status.value}); "
                "use renew, upsell, cross_sell or reactivate",
            )
        self._trigger(
            ev.ContractStarted,
            ctx,
            term_end=self._term_end_arg(term_end, ctx),
            lines=self._lines_arg(lines),
        )

    def mark_renewal_due(self, *, due_on: date, ctx: EventContext) -> None:
        """Put the renewal into the pipeline."""
        self._check_revenue_effective(ctx)
        self._require_active("mark a renewal due")
        due = require_date("due_on", due_on)
        if due == self._renewal_due_on:
            raise RuleViolation("due_on", f"a renewal is already due on {due.isoformat()}")
        self._trigger(ev.RenewalDue, ctx, due_on=due, arr_at_stake=self.arr)

    def renew(self, *, term_end: date, lines: Iterable[ProductLine], ctx: EventContext) -> None:
        """Renew the contract with the complete new set of lines (a smaller set is a
        downgrade at renewal, a larger one an expansion)."""
        self._check_revenue_effective(ctx)
        self._require_active("renew")
        end = self._term_end_arg(term_end, ctx)
        if self._term_end is not None and end <= self._term_end:
            raise InvalidValue(
                "term_end",
                f"{end.isoformat()} does not extend the current term "
                f"(ending {self._term_end.isoformat()})",
            )
        self._trigger(
            ev.Renewed, ctx, term_end=end, lines=self._lines_arg(lines), arr_before=self.arr
        )

    def churn(self, *, reason: ChurnReason | str, detail: str, ctx: EventContext) -> None:
        """The customer left (renewal lost or contract cancelled)."""
        self._check_revenue_effective(ctx)
        self._require_active("churn")
        self._trigger(
            ev.Churned,
            ctx,
            reason=require_enum("reason", ChurnReason, reason),
            detail=require_text("detail", detail, allow_empty=True),
            arr_lost=self.arr,
        )

    def reactivate(
        self, *, term_end: date, lines: Iterable[ProductLine], ctx: EventContext
    ) -> None:
        """Win back a churned customer with a new contract."""
        self._check_effective(ctx, not_before=self._churned_at)
        if self._status is not AccountStatus.CHURNED:
            raise InvalidTransition("status", "only a churned account can be reactivated")
        self._trigger(
            ev.Reactivated,
            ctx,
            term_end=self._term_end_arg(term_end, ctx),
            lines=self._lines_arg(lines),
        )

    def upsell(
        self,
        *,
        product: str,
        added_arr: Money,
        ctx: EventContext,
    ) -> None:
        """More of a product the customer has."""
        self._check_revenue_effective(ctx)
        self._require_active("upsell")
        product = require_text("product", product)
        if product not in self._lines:
            raise UnknownReference(
                "product", f"the customer does not have {product!r}; that is a cross-sell"
            )
        self._trigger(
            ev.Upsold,
            ctx,
            product=product,
            added_arr=self._money("added_arr", added_arr, positive=True),
            opportunity_id=None,
        )

    def cross_sell(self, *, product: str, arr: Money, ctx: EventContext) -> None:
        """A product the customer does not have yet."""
        self._check_revenue_effective(ctx)
        self._require_active("cross-sell")
        product = require_text("product", product)
        if product in self._lines:
            raise RuleViolation(
                "product", f"the customer already has {product!r}; that is an upsell"
            )
        self._trigger(
            ev.CrossSold,
            ctx,
            product=product,
            arr=self._money("arr", arr, positive=True),
            opportunity_id=None,
        )

    def downgrade(self, *, product: str, reduced_by: Money, reason: str, ctx: EventContext) -> None:
        """Contraction: less of a product during the term."""
        self._check_revenue_effective(ctx)
        self._require_active("downgrade")
        product = require_text("product", product)
        if product not in self._lines:
            raise UnknownReference("product", f"the customer does not have {product!r}")
        reduction = self._money("reduced_by", reduced_by, positive=True)
        if reduction > self._lines[product]:
            raise InvalidValue(
                "reduced_by",
                f"{reduction} is more than the {self._lines[product]} of {product!r}",
            )
        if reduction == self._lines[product] and len(self._lines) == 1:
            raise RuleViolation(
                "reduced_by", "removing the last product line is a churn; use churn"
            )
        self._trigger(
            ev.Downgraded,
            ctx,
            product=product,
            reduced_by=reduction,
            reason=require_text("reason", reason, allow_empty=True),
        )

    def offer_opportunity(
        self,
        *,
        opportunity_id: UUID,
        kind: OpportunityKind | str,
        product: str,
        estimated_arr: Money,
        ctx: EventContext,
    ) -> None:
        """Offer an upsell or cross-sell."""
        self._check_effective(ctx)
        self._require_active("offer an opportunity")
        if _require_id("opportunity_id", opportunity_id) in self._opportunities:
            raise RuleViolation("opportunity_id", f"opportunity {opportunity_id} exists already")
        kind = require_enum("kind", OpportunityKind, kind)
        product = require_text("product", product)
        if kind is OpportunityKind.UPSELL and product not in self._lines:
            raise UnknownReference("product", f"the customer does not have {product!r} to upsell")
        if kind is OpportunityKind.CROSS_SELL and product in self._lines:
            raise RuleViolation("product", f"the customer already has {product!r}")
        self._trigger(
            ev.OpportunityOffered,
            ctx,
            opportunity_id=opportunity_id,
            kind=kind,
            product=product,
            estimated_arr=self._money("estimated_arr", estimated_arr, positive=True),
        )

    def _open_opportunity(self, opportunity_id: UUID) -> Opportunity:
        opportunity = self._get(
            self._opportunities, "opportunity_id", opportunity_id, "opportunity"
        )
        if opportunity.status is not OpportunityStatus.OPEN:
            raise InvalidTransition(
                "opportunity_id",
                f"opportunity {opportunity_id} is already {opportunity.status.value}",
            )
        return opportunity

    def win_opportunity(self, *, opportunity_id: UUID, arr: Money, ctx: EventContext) -> None:
        """The customer accepted an offer: records the win and the upsell or cross-sell."""
        opportunity = self._open_opportunity(opportunity_id)
        self._check_effective(ctx, not_before=opportunity.offered_at)
        self._check_revenue_effective(ctx)
        self._require_active("win an opportunity")
        won = self._money("arr", arr, positive=True)
        expands_line = opportunity.product in self._lines
        if opportunity.kind is OpportunityKind.UPSELL and not expands_line:
            raise UnknownReference(
                "product", f"the customer no longer has {opportunity.product!r} to upsell"
            )
        if opportunity.kind is OpportunityKind.CROSS_SELL and expands_line:
            raise RuleViolation("product", f"the customer already has {opportunity.product!r}")
        self._trigger(ev.OpportunityWon, ctx, opportunity_id=opportunity_id, arr=won)
        if opportunity.kind is OpportunityKind.UPSELL:
            self._trigger(
                ev.Upsold,
                ctx,
                product=opportunity.product,
                added_arr=won,
                opportunity_id=opportunity_id,
            )
        else:
            self._trigger(
                ev.CrossSold,
                ctx,
                product=opportunity.product,
                arr=won,
                opportunity_id=opportunity_id,
            )

    def lose_opportunity(self, *, opportunity_id: UUID, reason: str, ctx: EventContext) -> None:
        """The customer declined an offer."""
        opportunity = self._open_opportunity(opportunity_id)
        self._check_effective(ctx, not_before=opportunity.offered_at)
        self._trigger(
            ev.OpportunityLost,
            ctx,
            opportunity_id=opportunity_id,
            reason=require_text("reason", reason, allow_empty=True),
        )

    # --- issues -------------------------------------------------------------------------------

    def raise_issue(
        self,
        *,
        issue_id: UUID,
        title: str,
        severity: IssueSeverity | str,
        category: str,
        ctx: EventContext,
    ) -> None:
        """Record a problem the customer has."""
        self._check_effective(ctx)
        if _require_id("issue_id", issue_id) in self._issues:
            raise RuleViolation("issue_id", f"issue {issue_id} exists already")
        self._trigger(
            ev.IssueRaised,
            ctx,
            issue_id=issue_id,
            title=require_text("title", title),
            severity=require_enum("severity", IssueSeverity, severity),
            category=require_text("category", category),
        )

    def _open_issue(self, issue_id: UUID, ctx: EventContext) -> Issue:
        issue = self._get(self._issues, "issue_id", issue_id, "issue")
        self._check_effective(ctx, not_before=issue.raised_at)
        if not issue.is_open:
            raise InvalidTransition("issue_id", f"issue {issue_id} is already resolved")
        return issue

    def respond_to_issue(self, *, issue_id: UUID, ctx: EventContext) -> None:
        """Record the first response to an issue."""
        issue = self._open_issue(issue_id, ctx)
        if issue.first_response_at is not None:
            raise InvalidTransition("issue_id", f"issue {issue_id} already had its first response")
        self._trigger(ev.IssueResponded, ctx, issue_id=issue_id)

    def escalate_issue(
        self, *, issue_id: UUID, to_team: str, reason: str, ctx: EventContext
    ) -> None:
        """Escalate an open issue to an internal team."""
        self._open_issue(issue_id, ctx)
        self._trigger(
            ev.IssueEscalated,
            ctx,
            issue_id=issue_id,
            to_team=require_text("to_team", to_team),
            reason=require_text("reason", reason, allow_empty=True),
        )

    def resolve_issue(self, *, issue_id: UUID, resolution: str, ctx: EventContext) -> None:
        """Resolve an open issue."""
        self._open_issue(issue_id, ctx)
        self._trigger(
            ev.IssueResolved,
            ctx,
            issue_id=issue_id,
            resolution=require_text("resolution", resolution, allow_empty=True),
        )

    # --- account plan -------------------------------------------------------------------------

    def set_goal(
        self,
        *,
        goal_id: UUID,
        title: str,
        measure: str,
        target_date: date | None,
        ctx: EventContext,
    ) -> None:
        """Set an account-plan goal."""
        self._check_effective(ctx)
        if _require_id("goal_id", goal_id) in self._goals:
            raise RuleViolation("goal_id", f"goal {goal_id} exists already")
        self._trigger(
            ev.GoalSet,
            ctx,
            goal_id=goal_id,
            title=require_text("title", title),
            measure=require_text("measure", measure, allow_empty=True),
            target_date=_optional_date("target_date", target_date),
        )

    def _open_goal(self, goal_id: UUID, ctx: EventContext) -> Goal:
        goal = self._get(self._goals, "goal_id", goal_id, "goal")
        self._check_effective(ctx, not_before=goal.set_at)
        if goal.status is not GoalStatus.OPEN:
            raise InvalidTransition("goal_id", f"goal {goal_id} is already {goal.status.value}")
        return goal

    def add_strategy(
        self, *, strategy_id: UUID, goal_id: UUID, description: str, ctx: EventContext
    ) -> None:
        """Add a strategy towards an open goal."""
        self._open_goal(goal_id, ctx)
        if _require_id("strategy_id", strategy_id) in self._strategies:
            raise RuleViolation("strategy_id", f"strategy {strategy_id} exists already")
        self._trigger(
            ev.StrategyAdded,
            ctx,
            strategy_id=strategy_id,
            goal_id=goal_id,
            description=require_text("description", description),
        )

    def add_tactic(
        self,
        *,
        tactic_id: UUID,
        strategy_id: UUID,
        description: str,
        owner: str,
        due_on: date | None,
        ctx: EventContext,
    ) -> None:
        """Add a tactic (owner, due date) to a strategy whose goal is open."""
        strategy = self._get(self._strategies, "strategy_id", strategy_id, "strategy")
        self._open_goal(strategy.goal_id, ctx)
        self._check_effective(ctx, not_before=strategy.added_at)
        if _require_id("tactic_id", tactic_id) in self._tactics:
            raise RuleViolation("tactic_id", f"tactic {tactic_id} exists already")
        self._trigger(
            ev.TacticAdded,
            ctx,
            tactic_id=tactic_id,
            strategy_id=strategy_id,
            description=require_text("description", description),
            owner=require_text("owner", owner),
            due_on=_optional_date("due_on", due_on),
        )

    def _open_tactic(self, tactic_id: UUID, ctx: EventContext) -> Tactic:
        tactic = self._get(self._tactics, "tactic_id", tactic_id, "tactic")
        self._check_effective(ctx, not_before=tactic.added_at)
        if tactic.status is not TacticStatus.OPEN:
            raise InvalidTransition(
                "tactic_id", f"tactic {tactic_id} is already {tactic.status.value}"
            )
        return tactic

    def complete_tactic(self, *, tactic_id: UUID, ctx: EventContext) -> None:
        """Mark a tactic done (once)."""
        self._open_tactic(tactic_id, ctx)
        self._trigger(ev.TacticCompleted, ctx, tactic_id=tactic_id)

    def drop_tactic(self, *, tactic_id: UUID, reason: str, ctx: EventContext) -> None:
        """Give a tactic up."""
        self._open_tactic(tactic_id, ctx)
        self._trigger(
            ev.TacticDropped,
            ctx,
            tactic_id=tactic_id,
            reason=require_text("reason", reason, allow_empty=True),
        )

    def achieve_goal(self, *, goal_id: UUID, ctx: EventContext) -> None:
        """Mark a goal reached."""
        self._open_goal(goal_id, ctx)
        self._trigger(ev.GoalAchieved, ctx, goal_id=goal_id)

    def abandon_goal(self, *, goal_id: UUID, reason: str, ctx: EventContext) -> None:
        """Give a goal up."""
        self._open_goal(goal_id, ctx)
        self._trigger(
            ev.GoalAbandoned,
            ctx,
            goal_id=goal_id,
            reason=require_text("reason", reason, allow_empty=True),
        )

    # --- business units and white space ---------------------------------------------------

    def _check_unit_name(self, name: str, unit_id: UUID | None) -> str:
        name = require_text("name", name)
        wanted = name.strip().casefold()
        for unit in self._units.values():
            same = unit.name.strip().casefold() == wanted
            if same and unit.is_active and unit.unit_id != unit_id:
                raise RuleViolation("name", f"business unit {unit.unit_id} is named {unit.name!r}")
        return name

    def _active_unit(self, unit_id: UUID, ctx: EventContext) -> BusinessUnit:
        unit = self._get(dict(self._units), "unit_id", unit_id, "business unit")
        self._check_effective(ctx, not_before=unit.added_at)
        if not unit.is_active:
            raise InvalidTransition("unit_id", f"business unit {unit_id} was removed")
        return unit

    def add_business_unit(self, *, unit_id: UUID, name: str, ctx: EventContext) -> None:
        """Record a business unit of the customer (its name unique among the units)."""
        self._check_effective(ctx)
        if _require_id("unit_id", unit_id) in self._units:
            raise RuleViolation("unit_id", f"business unit {unit_id} exists already")
        self._trigger(
            ev.BusinessUnitAdded, ctx, unit_id=unit_id, name=self._check_unit_name(name, None)
        )

    def rename_business_unit(self, *, unit_id: UUID, name: str, ctx: EventContext) -> None:
        """Give a business unit a new name."""
        unit = self._active_unit(unit_id, ctx)
        self._check_in_order(ctx, unit.renamed_at, "rename of this business unit")
        new_name = self._check_unit_name(name, unit.unit_id)
        if new_name == unit.name:
            raise InvalidValue("name", "nothing would change")
        self._trigger(ev.BusinessUnitRenamed, ctx, unit_id=unit_id, name=new_name)

    def remove_business_unit(self, *, unit_id: UUID, reason: str, ctx: EventContext) -> None:
        """Record that a business unit was closed, sold or merged."""
        unit = self._active_unit(unit_id, ctx)
        self._check_in_order(ctx, unit.renamed_at, "rename of this business unit")
        self._trigger(
            ev.BusinessUnitRemoved,
            ctx,
            unit_id=unit_id,
            reason=require_text("reason", reason, allow_empty=True),
        )

    def adopt_product(self, *, unit_id: UUID, product: str, ctx: EventContext) -> None:
        """Record that a business unit uses one of the account's product lines."""
        unit = self._active_unit(unit_id, ctx)
        product = require_text("product", product)
        if product not in self._lines:
            raise UnknownReference("product", f"the account has no line of {product!r}")
        if product in unit.products:
            raise RuleViolation("product", f"{unit.name!r} uses {product!r} already")
        if (ineligible := unit.ineligibility(product)) is not None:
            raise RuleViolation(
                "product",
                f"{product!r} is marked ineligible for {unit.name!r} ({ineligible.reason}); "
                "restore its eligibility first",
            )
        self._trigger(ev.ProductAdopted, ctx, unit_id=unit_id, product=product)

    def end_product_adoption(
        self, *, unit_id: UUID, product: str, reason: str, ctx: EventContext
    ) -> None:
        """Record that a business unit stopped using a product."""
        unit = self._active_unit(unit_id, ctx)
        product = require_text("product", product)
        if product not in unit.products:
            raise UnknownReference("product", f"{unit.name!r} does not use {product!r}")
        self._trigger(
            ev.ProductAdoptionEnded,
            ctx,
            unit_id=unit_id,
            product=product,
            reason=require_text("reason", reason, allow_empty=True),
        )

    def mark_product_ineligible(
        self, *, unit_id: UUID, product: str, reason: str, ctx: EventContext
    ) -> None:
        """Record that a business unit cannot use a product, and why."""
        unit = self._active_unit(unit_id, ctx)
        product = require_text("product", product)
        reason = require_text("reason", reason)
        if unit.ineligibility(product) is not None:
            raise RuleViolation("product", f"{product!r} is marked ineligible for {unit.name!r}")
        if product in unit.products:
            raise RuleViolation(
                "product", f"{unit.name!r} uses {product!r}; end the adoption first"
            )
        for opportunity in self._opportunities.values():
            if (
                opportunity.unit_id == unit_id
                and opportunity.product == product
                and opportunity.status is OpportunityStatus.OPEN
            ):
                raise RuleViolation(
                    "product",
                    f"open opportunity {opportunity.opportunity_id} offers {product!r} to "
                    f"{unit.name!r}; win or lose it first",
                )
        self._trigger(
            ev.ProductMarkedIneligible, ctx, unit_id=unit_id, product=product, reason=reason
        )

    def restore_product_eligibility(
        self, *, unit_id: UUID, product: str, ctx: EventContext
    ) -> None:
        """Make a product marked ineligible for a business unit possible again."""
        unit = self._active_unit(unit_id, ctx)
        product = require_text("product", product)
        ineligible = unit.ineligibility(product)
        if ineligible is None:
            raise InvalidTransition(
                "product", f"{product!r} is not marked ineligible for {unit.name!r}"
            )
        self._check_effective(ctx, not_before=ineligible.marked_at)
        self._trigger(ev.ProductEligibilityRestored, ctx, unit_id=unit_id, product=product)

    def target_opportunity(self, *, opportunity_id: UUID, unit_id: UUID, ctx: EventContext) -> None:
        """Aim an open opportunity at a business unit (replacing any earlier target)."""
        opportunity = self._open_opportunity(opportunity_id)
        self._check_effective(ctx, not_before=opportunity.offered_at)
        unit = self._active_unit(unit_id, ctx)
        if opportunity.unit_id == unit_id:
            raise RuleViolation(
                "unit_id", f"opportunity {opportunity_id} targets {unit.name!r} already"
            )
        if (ineligible := unit.ineligibility(opportunity.product)) is not None:
            raise RuleViolation(
                "unit_id",
                f"{opportunity.product!r} is marked ineligible for {unit.name!r} "
                f"({ineligible.reason})",
            )
        self._trigger(ev.OpportunityTargeted, ctx, opportunity_id=opportunity_id, unit_id=unit_id)

    @classmethod
    def as_effective_at(cls, events: Iterable[ev.AccountEvent], cutoff: datetime) -> Self | None:
        """The account as it was in the business at ``cutoff``: the events effective by then,
        applied in effective-time order (recording order among equals). None if it was not
        opened yet. Version and modified time are those of the latest event applied."""
        effective = sorted(
            (e for e in events if e.effective_at <= cutoff), key=lambda e: e.effective_at
        )
        if not effective or not isinstance(effective[0], ev.AccountOpened):
            return None
        account: Self | None = effective[0].mutate(None)
        assert account is not None
        for event in effective[1:]:
            event.apply(account)
        account.version = max(e.originator_version for e in effective)
        account.modified_on = max(e.timestamp for e in effective)
        return account

    # --- reading ------------------------------------------------------------------------------

    @property
    def arr(self) -> Money:
        """Current annual recurring revenue."""
        total = Money.zero(self._currency)
        for amount in self._lines.values():
            total += amount
        return total

    @property
    def status(self) -> AccountStatus:
        """Onboarding, active or churned."""
        return self._status

    def state(self) -> AccountState:
        """This account as plain data."""
        assert self._opened_at is not None
        return AccountState(
            account_id=self.id,
            version=self.version,
            name=self._name,
            segment=self._segment,
            industry=self._industry,
            currency=self._currency,
            manager=self._manager,
            manager_type=self._manager_type,
            external_key=self._external_key,
            status=self._status,
            opened_at=self._opened_at,
            lines=tuple(ProductLine(p, a) for p, a in self._lines.items()),
            term_end=self._term_end,
            renewal_due_on=self._renewal_due_on,
            churned_at=self._churned_at,
            churn_reason=self._churn_reason,
            stakeholders=tuple(self._stakeholders.values()),
            requests=tuple(self._requests.values()),
            issues=tuple(self._issues.values()),
            opportunities=tuple(self._opportunities.values()),
            goals=tuple(self._goals.values()),
            strategies=tuple(self._strategies.values()),
            tactics=tuple(self._tactics.values()),
            business_units=tuple(self._units.values()),
            contact_count=self._contact_count,
            last_contact_at=self._last_contact_at,
            latest_nps=self._latest_nps,
            latest_csat=self._latest_csat,
            latest_ces=self._latest_ces,
            value_delivered=self._value_delivered,
            created_on=self.created_on,
            modified_on=self.modified_on,
        )

    # --- evolving state: never raises ---------------------------------------------------------

    @singledispatchmethod
    def when(self, event: ev.AccountEvent) -> None:
        """Events this version does not know change nothing."""

    @when.register
    def _(self, event: ev.AccountOpened) -> None:
        self._name = event.name
        self._segment = event.segment
        self._industry = event.industry
        self._currency = event.currency
        self._manager = event.manager
        self._manager_type = event.manager_type
        self._manager_changed_at = event.effective_at
        self._external_key = event.external_key
        self._opened_at = event.effective_at
        self._value_delivered = Money.zero(event.currency)

    @when.register
    def _(self, event: ev.ManagerReassigned) -> None:
        self._manager = event.manager
        self._manager_type = event.manager_type
        self._manager_changed_at = event.effective_at

    def _set_lines(self, lines: tuple[ProductLine, ...], term_end: date, at: datetime) -> None:
        self._lines = {line.product: line.arr for line in lines}
        self._term_end = term_end
        self._renewal_due_on = None
        self._status = AccountStatus.ACTIVE
        self._revenue_changed_at = at

    @when.register
    def _(self, event: ev.ContractStarted) -> None:
        self._set_lines(event.lines, event.term_end, event.effective_at)

    @when.register
    def _(self, event: ev.Renewed) -> None:
        self._set_lines(event.lines, event.term_end, event.effective_at)

    @when.register
    def _(self, event: ev.Reactivated) -> None:
        self._set_lines(event.lines, event.term_end, event.effective_at)
        self._churned_at = None
        self._churn_reason = None

    @when.register
    def _(self, event: ev.RenewalDue) -> None:
        self._renewal_due_on = event.due_on
        # Renewals, churn and reactivations clear the due date and the marking records the ARR
        # at stake: it stands in business-time order with them.
        self._revenue_changed_at = event.effective_at

    @when.register
    def _(self, event: ev.Churned) -> None:
        self._lines = {}
        self._renewal_due_on = None
        self._status = AccountStatus.CHURNED
        self._churned_at = event.effective_at
        self._revenue_changed_at = event.effective_at
        self._churn_reason = event.reason

    @when.register
    def _(self, event: ev.Upsold) -> None:
        self._revenue_changed_at = event.effective_at
        current = self._lines.get(event.product, Money.zero(self._currency))
        self._lines[event.product] = current + event.added_arr

    @when.register
    def _(self, event: ev.CrossSold) -> None:
        self._revenue_changed_at = event.effective_at
        self._lines[event.product] = event.arr

    @when.register
    def _(self, event: ev.Downgraded) -> None:
        self._revenue_changed_at = event.effective_at
        current = self._lines.get(event.product, Money.zero(self._currency))
        remaining = current - event.reduced_by
        if remaining.amount > 0:
            self._lines[event.product] = remaining
        else:
            self._lines.pop(event.product, None)

    @when.register
    def _(self, event: ev.ContactLogged) -> None:
        self._contact_count += 1
        if self._last_contact_at is None or event.effective_at > self._last_contact_at:
            self._last_contact_at = event.effective_at

    @when.register
    def _(self, event: ev.RequestReceived) -> None:
        self._requests[event.request_id] = CustomerRequest(
            event.request_id, event.subject, event.channel, event.effective_at
        )

    @when.register
    def _(self, event: ev.RequestAnswered) -> None:
        if (request := self._requests.get(event.request_id)) is not None:
            self._requests[event.request_id] = attrs.evolve(request, answered_at=event.effective_at)

    @when.register
    def _(self, event: ev.StakeholderAdded) -> None:
        self._stakeholders[event.stakeholder_id] = Stakeholder(
            event.stakeholder_id,
            event.name,
            event.title,
            event.role,
            event.sentiment,
            event.effective_at,
        )

    @when.register
    def _(self, event: ev.StakeholderUpdated) -> None:
        if (person := self._stakeholders.get(event.stakeholder_id)) is not None:
            self._stakeholders[event.stakeholder_id] = attrs.evolve(
                person,
                title=event.title,
                role=event.role,
                sentiment=event.sentiment,
                updated_at=event.effective_at,
            )

    @when.register
    def _(self, event: ev.SubjectErased) -> None:
        self._erased_subjects = (*self._erased_subjects, event.subject_id)
        if (person := self._stakeholders.get(event.subject_id)) is not None:
            self._stakeholders[event.subject_id] = attrs.evolve(
                person, name=ev.ERASED, title=ev.ERASED
            )

    @when.register
    def _(self, event: ev.StakeholderRemoved) -> None:
        if (person := self._stakeholders.get(event.stakeholder_id)) is not None:
            self._stakeholders[event.stakeholder_id] = attrs.evolve(
                person, removed_at=event.effective_at
            )

    @when.register
    def _(self, event: ev.OpportunityOffered) -> None:
        self._opportunities[event.opportunity_id] = Opportunity(
            event.opportunity_id,
            event.kind,
            event.product,
            event.estimated_arr,
            event.effective_at,
        )

    @when.register
    def _(self, event: ev.OpportunityWon) -> None:
        if (opportunity := self._opportunities.get(event.opportunity_id)) is not None:
            self._opportunities[event.opportunity_id] = attrs.evolve(
                opportunity,
                status=OpportunityStatus.WON,
                closed_at=event.effective_at,
                won_arr=event.arr,
            )

    @when.register
    def _(self, event: ev.OpportunityLost) -> None:
        if (opportunity := self._opportunities.get(event.opportunity_id)) is not None:
            self._opportunities[event.opportunity_id] = attrs.evolve(
                opportunity, status=OpportunityStatus.LOST, closed_at=event.effective_at
            )

    @when.register
    def _(self, event: ev.IssueRaised) -> None:
        self._issues[event.issue_id] = Issue(
            event.issue_id, event.title, event.severity, event.category, event.effective_at
        )

    @when.register
    def _(self, event: ev.IssueResponded) -> None:
        if (issue := self._issues.get(event.issue_id)) is not None:
            self._issues[event.issue_id] = attrs.evolve(issue, first_response_at=event.effective_at)

    @when.register
    def _(self, event: ev.IssueEscalated) -> None:
        if (issue := self._issues.get(event.issue_id)) is not None:
            self._issues[event.issue_id] = attrs.evolve(
                issue, escalated_to=(*issue.escalated_to, event.to_team)
            )

    @when.register
    def _(self, event: ev.IssueResolved) -> None:
        if (issue := self._issues.get(event.issue_id)) is not None:
            self._issues[event.issue_id] = attrs.evolve(
                issue, resolved_at=event.effective_at, resolution=event.resolution
            )

    @when.register
    def _(self, event: ev.FeedbackRecorded) -> None:
        # The latest score is the one latest in business time, whatever the recording order
        # (survey exports arrive late and out of order).
        kind = type(event.score).__name__
        if event.effective_at < self._score_at.get(kind, event.effective_at):
            return
        self._score_at[kind] = event.effective_at
        if isinstance(event.score, NpsScore):
            self._latest_nps = event.score
        elif isinstance(event.score, CsatScore):
            self._latest_csat = event.score
        else:
            self._latest_ces = event.score

    @when.register
    def _(self, event: ev.ValueDelivered) -> None:
        self._value_delivered = self._value_delivered + event.amount

    @when.register
    def _(self, event: ev.GoalSet) -> None:
        self._goals[event.goal_id] = Goal(
            event.goal_id, event.title, event.measure, event.target_date, event.effective_at
        )

    @when.register
    def _(self, event: ev.StrategyAdded) -> None:
        self._strategies[event.strategy_id] = Strategy(
            event.strategy_id, event.goal_id, event.description, event.effective_at
        )

    @when.register
    def _(self, event: ev.TacticAdded) -> None:
        self._tactics[event.tactic_id] = Tactic(
            event.tactic_id,
            event.strategy_id,
            event.description,
            event.owner,
            event.due_on,
            event.effective_at,
        )

    def _close_tactic(self, tactic_id: UUID, status: TacticStatus, at: datetime, why: str) -> None:
        if (tactic := self._tactics.get(tactic_id)) is not None:
            self._tactics[tactic_id] = attrs.evolve(
                tactic, status=status, closed_at=at, close_reason=why
            )

    @when.register
    def _(self, event: ev.TacticCompleted) -> None:
        self._close_tactic(event.tactic_id, TacticStatus.COMPLETED, event.effective_at, "")

    @when.register
    def _(self, event: ev.TacticDropped) -> None:
        self._close_tactic(event.tactic_id, TacticStatus.DROPPED, event.effective_at, event.reason)

    def _close_goal(self, goal_id: UUID, status: GoalStatus, at: datetime, why: str) -> None:
        if (goal := self._goals.get(goal_id)) is not None:
            self._goals[goal_id] = attrs.evolve(goal, status=status, closed_at=at, close_reason=why)

    @when.register
    def _(self, event: ev.GoalAchieved) -> None:
        self._close_goal(event.goal_id, GoalStatus.ACHIEVED, event.effective_at, "")

    @when.register
    def _(self, event: ev.GoalAbandoned) -> None:
        self._close_goal(event.goal_id, GoalStatus.ABANDONED, event.effective_at, event.reason)

    # --- evolving state: business units ------------------------------------------------------

    def _change_unit(self, unit_id: UUID, **changes: Any) -> None:
        if (unit := self._units.get(unit_id)) is not None:
            self._units = {**self._units, unit_id: attrs.evolve(unit, **changes)}

    @when.register
    def _(self, event: ev.BusinessUnitAdded) -> None:
        unit = BusinessUnit(event.unit_id, event.name, event.effective_at)
        self._units = {**self._units, event.unit_id: unit}

    @when.register
    def _(self, event: ev.BusinessUnitRenamed) -> None:
        self._change_unit(event.unit_id, name=event.name, renamed_at=event.effective_at)

    @when.register
    def _(self, event: ev.BusinessUnitRemoved) -> None:
        self._change_unit(event.unit_id, removed_at=event.effective_at)

    @when.register
    def _(self, event: ev.ProductAdopted) -> None:
        if (unit := self._units.get(event.unit_id)) is not None:
            self._change_unit(event.unit_id, products=(*unit.products, event.product))

    @when.register
    def _(self, event: ev.ProductAdoptionEnded) -> None:
        if (unit := self._units.get(event.unit_id)) is not None:
            kept = tuple(p for p in unit.products if p != event.product)
            self._change_unit(event.unit_id, products=kept)

    @when.register
    def _(self, event: ev.ProductMarkedIneligible) -> None:
        if (unit := self._units.get(event.unit_id)) is not None:
            marked = Ineligibility(event.product, event.reason, event.effective_at)
            self._change_unit(event.unit_id, ineligible=(*unit.ineligible, marked))

    @when.register
    def _(self, event: ev.ProductEligibilityRestored) -> None:
        if (unit := self._units.get(event.unit_id)) is not None:
            kept = tuple(i for i in unit.ineligible if i.product != event.product)
            self._change_unit(event.unit_id, ineligible=kept)

    @when.register
    def _(self, event: ev.OpportunityTargeted) -> None:
        if (opportunity := self._opportunities.get(event.opportunity_id)) is not None:
            self._opportunities[event.opportunity_id] = attrs.evolve(
                opportunity, unit_id=event.unit_id
            )
