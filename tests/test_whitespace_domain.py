"""Business units, product adoption, eligibility and opportunity targets: the commands behind
the white-space view, each refusal, authorization, idempotency and snapshots older than units."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from acctdomain import AccountService, Money, ProductLine
from acctdomain.domain import Account, BusinessUnit, Ineligibility
from acctdomain.domain import events as ev
from acctdomain.errors import (
    CommandRejected,
    IdempotencyKeyReused,
    InvalidTransition,
    InvalidValue,
    NotAuthorized,
    RuleViolation,
    UnknownReference,
)
from acctdomain.plugins import AuthorizationRequest, Denial, PluginHost, hookimpl
from tests.conftest import FakeClock

AMY: dict[str, Any] = {"actor": "amy"}


def at(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def active_account(service: AccountService, name: str = "Acme") -> UUID:
    """An account with the lines ``crm`` (900 EUR) and ``bi`` (300 EUR) since 2 January."""
    account = service.open_account(
        name=name, segment="smb", industry="retail", currency="EUR", manager="amy",
        manager_type="sales", effective_at=at(1, 1), **AMY,
    ).account_id  # fmt: skip
    lines = [ProductLine("crm", Money(900, "EUR")), ProductLine("bi", Money(300, "EUR"))]
    service.start_contract(
        account, term_end=date(2027, 1, 1), lines=lines, effective_at=at(1, 2), **AMY
    )
    return account


def add_unit(
    service: AccountService, account: UUID, name: str, when: datetime | None = None
) -> UUID:
    unit_id = service.add_business_unit(
        account, name=name, effective_at=when or at(1, 3), **AMY
    ).entity_id
    assert unit_id is not None
    return unit_id


def offer(service: AccountService, account: UUID, product: str, kind: str = "cross_sell") -> UUID:
    opportunity = service.offer_opportunity(
        account, kind=kind, product=product, estimated_arr=Money(100, "EUR"),
        effective_at=at(1, 4), **AMY,
    ).entity_id  # fmt: skip
    assert opportunity is not None
    return opportunity


def units_of(service: AccountService, account: UUID) -> dict[UUID, BusinessUnit]:
    return {unit.unit_id: unit for unit in service.get_account(account).business_units}


def refused(
    service: AccountService,
    account: UUID,
    error: type[CommandRejected],
    field: str,
    command: Callable[..., Any],
    **arguments: Any,
) -> str:
    """Run ``command``, expect exactly ``error`` on ``field``, and that nothing was appended;
    return the reason."""
    version = service.get_account(account).version
    with pytest.raises(CommandRejected) as caught:
        command(account, **{**AMY, **arguments})
    assert type(caught.value) is error, caught.value
    assert caught.value.field == field
    assert service.get_account(account).version == version
    return caught.value.reason


# --- business units ---------------------------------------------------------------------------


def test_units_are_added_renamed_and_removed(service: AccountService) -> None:
    account = active_account(service)
    logistics = add_unit(service, account, "Logistics")
    retail = add_unit(service, account, "Retail", at(1, 4))
    service.rename_business_unit(
        account, unit_id=logistics, name="Supply chain", effective_at=at(2, 1), **AMY
    )
    service.remove_business_unit(
        account, unit_id=retail, reason="sold to Globex", effective_at=at(3, 1), **AMY
    )
    units = units_of(service, account)
    assert units[logistics] == BusinessUnit(
        logistics, "Supply chain", at(1, 3), renamed_at=at(2, 1)
    )
    assert units[retail] == BusinessUnit(retail, "Retail", at(1, 4), removed_at=at(3, 1))
    assert not units[retail].is_active
    *_, removed = service.history(account)
    assert isinstance(removed, ev.BusinessUnitRemoved)
    assert (removed.unit_id, removed.reason) == (retail, "sold to Globex")
    # The name of a removed unit is free again.
    again = add_unit(service, account, "retail", at(3, 2))
    assert units_of(service, account)[again].name == "retail"


def test_unit_commands_are_refused_on_bad_input(memory_service: AccountService) -> None:
    service = memory_service
    account = active_account(service)
    logistics = add_unit(service, account, "Logistics")
    add_unit(service, account, "Retail")
    add, rename, remove = (
        service.add_business_unit,
        service.rename_business_unit,
        service.remove_business_unit,
    )
    refused(service, account, InvalidValue, "name", add, name="  ")
    refused(service, account, InvalidValue, "unit_id", add, name="HR", unit_id="u1")
    refused(service, account, RuleViolation, "unit_id", add, name="HR", unit_id=logistics)
    reason = refused(service, account, RuleViolation, "name", add, name=" logistics ")
    assert "'Logistics'" in reason
    refused(
        service, account, InvalidValue, "effective_at", add, name="HR", effective_at=at(1, 1, 8)
    )

    refused(service, account, UnknownReference, "unit_id", rename, unit_id=uuid4(), name="X")
    refused(service, account, InvalidValue, "unit_id", rename, unit_id=str(logistics), name="X")
    refused(service, account, InvalidValue, "name", rename, unit_id=logistics, name="Logistics")
    refused(service, account, RuleViolation, "name", rename, unit_id=logistics, name="RETAIL")
    refused(service, account, InvalidValue, "name", rename, unit_id=logistics, name=3)
    refused(
        service,
        account,
        InvalidValue,
        "effective_at",
        rename,
        unit_id=logistics,
        name="X",
        effective_at=at(1, 2),
    )  # fmt: skip  (before the unit was added)
    # A change of case only is a rename.
    rename(account, unit_id=logistics, name="LOGISTICS", effective_at=at(2, 1), **AMY)
    refused(
        service,
        account,
        InvalidValue,
        "effective_at",
        rename,
        unit_id=logistics,
        name="X",
        effective_at=at(1, 20),
    )  # fmt: skip  (before the last rename)
    refused(
        service, account, InvalidValue, "effective_at", remove, unit_id=logistics,
        effective_at=at(1, 20),
    )  # fmt: skip
    refused(
        service, account, InvalidValue, "reason", remove, unit_id=logistics, reason=None,
        effective_at=at(2, 2),
    )  # fmt: skip
    remove(account, unit_id=logistics, effective_at=at(2, 2), **AMY)
    refused(service, account, InvalidTransition, "unit_id", remove, unit_id=logistics)
    refused(service, account, InvalidTransition, "unit_id", rename, unit_id=logistics, name="Y")


# --- adoption and eligibility -----------------------------------------------------------------


def test_adoption_and_eligibility_are_recorded_per_unit(service: AccountService) -> None:
    account = active_account(service)
    logistics = add_unit(service, account, "Logistics")
    service.adopt_product(account, unit_id=logistics, product="crm", **AMY)
    service.adopt_product(account, unit_id=logistics, product="bi", **AMY)
    service.mark_product_ineligible(
        account, unit_id=logistics, product="erp", reason="runs SAP", effective_at=at(1, 4), **AMY
    )
    unit = units_of(service, account)[logistics]
    assert unit.products == ("crm", "bi")
    assert unit.ineligible == (Ineligibility("erp", "runs SAP", at(1, 4)),)
    assert unit.ineligibility("erp") == Ineligibility("erp", "runs SAP", at(1, 4))
    assert unit.ineligibility("crm") is None

    service.end_product_adoption(
        account, unit_id=logistics, product="crm", reason="moved to Salesforce", **AMY
    )
    service.restore_product_eligibility(account, unit_id=logistics, product="erp", **AMY)
    unit = units_of(service, account)[logistics]
    assert (unit.products, unit.ineligible) == (("bi",), ())
    ended, restored = service.history(account)[-2:]
    assert isinstance(ended, ev.ProductAdoptionEnded)
    assert (ended.product, ended.reason) == ("crm", "moved to Salesforce")
    assert isinstance(restored, ev.ProductEligibilityRestored)
    assert (restored.unit_id, restored.product) == (logistics, "erp")


def test_adoption_and_eligibility_refusals(memory_service: AccountService) -> None:
    service = memory_service
    account = active_account(service)
    unit = add_unit(service, account, "Logistics")
    adopt, end = service.adopt_product, service.end_product_adoption
    mark, restore = service.mark_product_ineligible, service.restore_product_eligibility

    refused(service, account, UnknownReference, "unit_id", adopt, unit_id=uuid4(), product="crm")
    refused(service, account, InvalidValue, "product", adopt, unit_id=unit, product="")
    reason = refused(
        service, account, UnknownReference, "product", adopt, unit_id=unit, product="erp"
    )
    assert reason == "the account has no line of 'erp'"
    refused(
        service, account, InvalidValue, "effective_at", adopt, unit_id=unit, product="crm",
        effective_at=at(1, 2),
    )  # fmt: skip
    adopt(account, unit_id=unit, product="crm", **AMY)
    refused(service, account, RuleViolation, "product", adopt, unit_id=unit, product="crm")
    refused(service, account, UnknownReference, "product", end, unit_id=unit, product="bi")
    refused(service, account, InvalidValue, "reason", end, unit_id=unit, product="crm", reason=1)

    refused(service, account, InvalidValue, "reason", mark, unit_id=unit, product="erp", reason="")
    reason = refused(
        service, account, RuleViolation, "product", mark, unit_id=unit, product="crm", reason="no"
    )
    assert "end the adoption first" in reason
    mark(account, unit_id=unit, product="bi", reason="no budget", effective_at=at(2, 1), **AMY)
    refused(
        service, account, RuleViolation, "product", mark, unit_id=unit, product="bi", reason="x"
    )
    reason = refused(service, account, RuleViolation, "product", adopt, unit_id=unit, product="bi")
    assert "restore its eligibility first" in reason
    refused(service, account, InvalidTransition, "product", restore, unit_id=unit, product="crm")
    refused(
        service,
        account,
        InvalidValue,
        "effective_at",
        restore,
        unit_id=unit,
        product="bi",
        effective_at=at(1, 20),
    )  # fmt: skip  (before it was marked)

    # Nothing happens to a removed unit.
    service.remove_business_unit(account, unit_id=unit, effective_at=at(3, 1), **AMY)
    refused(service, account, InvalidTransition, "unit_id", adopt, unit_id=unit, product="crm")
    refused(service, account, InvalidTransition, "unit_id", end, unit_id=unit, product="crm")
    refused(
        service, account, InvalidTransition, "unit_id", mark, unit_id=unit, product="x", reason="y"
    )
    refused(service, account, InvalidTransition, "unit_id", restore, unit_id=unit, product="bi")


def test_a_product_is_adopted_only_while_the_account_has_its_line(
    memory_service: AccountService,
) -> None:
    service = memory_service
    account = active_account(service)
    unit = add_unit(service, account, "Logistics")
    service.churn(account, reason="price", detail="", effective_at=at(2, 1), **AMY)
    adopt = service.adopt_product
    refused(service, account, UnknownReference, "product", adopt, unit_id=unit, product="crm")


# --- opportunity targets ----------------------------------------------------------------------


def test_opportunities_are_targeted_and_retargeted(service: AccountService) -> None:
    account = active_account(service)
    logistics = add_unit(service, account, "Logistics")
    retail = add_unit(service, account, "Retail")
    opportunity = offer(service, account, "erp")
    service.target_opportunity(account, opportunity_id=opportunity, unit_id=logistics, **AMY)
    [record] = service.get_account(account).opportunities
    assert record.unit_id == logistics
    service.target_opportunity(account, opportunity_id=opportunity, unit_id=retail, **AMY)
    [record] = service.get_account(account).opportunities
    assert record.unit_id == retail
    targeted = service.history(account)[-1]
    assert isinstance(targeted, ev.OpportunityTargeted)
    assert (targeted.opportunity_id, targeted.unit_id) == (opportunity, retail)


def test_targeting_refusals(memory_service: AccountService) -> None:
    service = memory_service
    account = active_account(service)
    unit = add_unit(service, account, "Logistics")
    other = add_unit(service, account, "Retail")
    opportunity = offer(service, account, "erp")
    target, mark = service.target_opportunity, service.mark_product_ineligible

    refused(
        service, account, UnknownReference, "opportunity_id", target, opportunity_id=uuid4(),
        unit_id=unit,
    )  # fmt: skip
    refused(
        service, account, UnknownReference, "unit_id", target, opportunity_id=opportunity,
        unit_id=uuid4(),
    )  # fmt: skip
    refused(
        service,
        account,
        InvalidValue,
        "effective_at",
        target,
        opportunity_id=opportunity,
        unit_id=unit,
        effective_at=at(1, 3, 12),
    )  # fmt: skip  (before the offer)
    mark(account, unit_id=other, product="erp", reason="runs SAP", **AMY)
    reason = refused(
        service, account, RuleViolation, "unit_id", target, opportunity_id=opportunity,
        unit_id=other,
    )  # fmt: skip
    assert "runs SAP" in reason
    target(account, opportunity_id=opportunity, unit_id=unit, **AMY)
    refused(
        service, account, RuleViolation, "unit_id", target, opportunity_id=opportunity,
        unit_id=unit,
    )  # fmt: skip
    # An open opportunity aimed at the unit blocks marking its product ineligible there.
    reason = refused(
        service, account, RuleViolation, "product", mark, unit_id=unit, product="erp", reason="x"
    )
    assert str(opportunity) in reason
    service.lose_opportunity(account, opportunity_id=opportunity, **AMY)
    refused(
        service, account, InvalidTransition, "opportunity_id", target,
        opportunity_id=opportunity, unit_id=unit,
    )  # fmt: skip
    mark(account, unit_id=unit, product="erp", reason="lost to SAP", **AMY)  # closed: allowed now


# --- through the service: authorization, idempotency, snapshots -------------------------------


class NoUnitChanges:
    @hookimpl
    def acctdomain_authorize(self, request: AuthorizationRequest) -> Denial | None:
        if request.actor == "intern" and "unit_id" in request.arguments:
            return Denial(f"interns may not {request.command}")
        return None


def test_unit_commands_go_through_authorization(clock: FakeClock) -> None:
    host = PluginHost(entry_points=False, plugins=[("guard", NoUnitChanges())])
    service = AccountService("memory:", clock=clock, plugins=host)
    try:
        account = active_account(service)
        unit = add_unit(service, account, "Logistics")
        opportunity = offer(service, account, "erp")
        commands: list[tuple[Callable[..., Any], dict[str, Any]]] = [
            (service.add_business_unit, {"name": "HR", "unit_id": uuid4()}),
            (service.rename_business_unit, {"unit_id": unit, "name": "X"}),
            (service.remove_business_unit, {"unit_id": unit}),
            (service.adopt_product, {"unit_id": unit, "product": "crm"}),
            (service.end_product_adoption, {"unit_id": unit, "product": "crm"}),
            (service.mark_product_ineligible, {"unit_id": unit, "product": "x", "reason": "y"}),
            (service.restore_product_eligibility, {"unit_id": unit, "product": "x"}),
            (service.target_opportunity, {"opportunity_id": opportunity, "unit_id": unit}),
        ]
        version = service.get_account(account).version
        for command, arguments in commands:
            with pytest.raises(NotAuthorized, match=f"interns may not {command.__name__}"):
                command(account, actor="intern", **arguments)
        assert service.get_account(account).version == version
    finally:
        service.close()


def test_unit_commands_are_idempotent(memory_service: AccountService) -> None:
    service = memory_service
    account = active_account(service)
    first = service.add_business_unit(account, name="Logistics", idempotency_key="bu-1", **AMY)
    again = service.add_business_unit(account, name="Logistics", idempotency_key="bu-1", **AMY)
    assert again == first
    assert first.entity_id is not None
    assert list(units_of(service, account)) == [first.entity_id]
    service.adopt_product(
        account, unit_id=first.entity_id, product="crm", idempotency_key="ad-1", **AMY
    )
    version = service.get_account(account).version
    service.adopt_product(
        account, unit_id=first.entity_id, product="crm", idempotency_key="ad-1", **AMY
    )
    assert service.get_account(account).version == version
    with pytest.raises(IdempotencyKeyReused):
        service.adopt_product(
            account, unit_id=first.entity_id, product="bi", idempotency_key="ad-1", **AMY
        )


def latest_snapshot_state(service: AccountService, account: UUID) -> dict[str, Any]:
    assert service.snapshots is not None
    [stored] = service.snapshots.recorder.select_events(account, desc=True, limit=1)
    snapshot = service.mapper.to_domain_event(stored)
    state: dict[str, Any] = snapshot.state  # type: ignore[attr-defined]
    return state


def replayed(service: AccountService, account: UUID) -> Any:
    aggregate: Account | None = None
    for event in service.history(account):
        aggregate = event.mutate(aggregate)
    assert aggregate is not None
    return aggregate.state()


def test_a_snapshot_taken_before_units_existed_still_loads(service: AccountService) -> None:
    account = active_account(service)
    for day in range(3, 22):  # versions 3 to 21: a snapshot at version 20
        service.log_contact(
            account, channel="email", direction="outbound", effective_at=at(1, day), **AMY
        )
    assert "_units" not in latest_snapshot_state(service, account)  # as before units existed
    unit = add_unit(service, account, "Logistics", at(2, 1))
    service.adopt_product(account, unit_id=unit, product="crm", effective_at=at(2, 1), **AMY)
    assert service.get_account(account) == replayed(service, account)
    assert units_of(service, account)[unit].products == ("crm",)
    for day in range(2, 21):  # up to version 42: a snapshot at version 40, with the unit
        service.log_contact(
            account, channel="email", direction="outbound", effective_at=at(2, day), **AMY
        )
    assert set(latest_snapshot_state(service, account)["_units"]) == {unit}
    service.mark_product_ineligible(
        account, unit_id=unit, product="erp", reason="SAP", effective_at=at(3, 1), **AMY
    )
    state = service.get_account(account)
    assert state == replayed(service, account)
    assert state.business_units[0].ineligible[0].reason == "SAP"


def test_effective_time_replay_keeps_units_and_targets(memory_service: AccountService) -> None:
    service = memory_service
    account = active_account(service)
    unit = add_unit(service, account, "Logistics", at(1, 3))
    opportunity = offer(service, account, "erp")
    service.target_opportunity(
        account, opportunity_id=opportunity, unit_id=unit, effective_at=at(1, 12), **AMY
    )
    service.rename_business_unit(
        account, unit_id=unit, name="Supply", effective_at=at(1, 20), **AMY
    )
    before = service.get_account_as_effective_at(account, date(2026, 1, 11))
    assert [u.name for u in before.business_units] == ["Logistics"]
    assert before.opportunities[0].unit_id is None
    after = service.get_account_as_effective_at(account, date(2026, 1, 31))
    assert [u.name for u in after.business_units] == ["Supply"]
    assert after.opportunities[0].unit_id == unit
