"""The application service on every backend: commands, refusals, idempotency, time travel."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from acctdomain import (
    AccountService,
    AccountStatus,
    Channel,
    CommandResult,
    Direction,
    Money,
    NpsScore,
    ProductLine,
    account_id_for,
)
from acctdomain.domain import events as ev
from acctdomain.errors import (
    AccountAlreadyExists,
    AccountNotActive,
    AccountNotFound,
    ConcurrencyConflict,
    IdempotencyKeyReused,
    InvalidValue,
)
from tests.conftest import FakeClock

BUSINESS_START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def eur(amount: int | str) -> Money:
    return Money(amount, "EUR")


def open_active(service: AccountService, key: str = "crm:1", arr: int = 10_000) -> UUID:
    opened = service.open_account(
        name="Acme",
        segment="enterprise",
        industry="logistics",
        currency="EUR",
        manager="amy",
        manager_type="strategic",
        external_key=key,
        actor="amy",
        effective_at=BUSINESS_START,
    )
    service.start_contract(
        opened.account_id,
        term_end=date(2026, 1, 6),
        lines=[ProductLine("core", eur(arr))],
        actor="amy",
        effective_at=BUSINESS_START,
    )
    return opened.account_id


def event_count(service: AccountService) -> int:
    return service.recorder.max_notification_id() or 0


def test_open_account_derives_the_id_from_the_external_key(service: AccountService) -> None:
    account_id = open_active(service, key="crm:0017Q00000AbCdE")
    assert account_id == account_id_for("crm:0017Q00000AbCdE")
    state = service.get_account(account_id)
    assert state.name == "Acme"
    assert state.status is AccountStatus.ACTIVE
    assert state.arr == eur(10_000)
    assert state.version == 2


def test_opening_the_same_external_key_twice_is_refused(service: AccountService) -> None:
    open_active(service, key="crm:7")
    before = event_count(service)
    with pytest.raises(AccountAlreadyExists, match="exists already"):
        service.open_account(
            name="Acme again",
            segment="smb",
            industry="x",
            currency="EUR",
            manager="bo",
            manager_type="sales",
            external_key="crm:7",
            actor="bo",
        )
    assert event_count(service) == before


def test_a_refused_command_appends_nothing(service: AccountService) -> None:
    account_id = open_active(service)
    service.churn(account_id, reason="price", actor="amy")
    before = event_count(service)
    with pytest.raises(AccountNotActive):
        service.upsell(account_id, product="core", added_arr=eur(5), actor="amy")
    with pytest.raises(InvalidValue, match="severity"):
        service.raise_issue(account_id, title="t", severity="urgent", category="c", actor="amy")
    assert event_count(service) == before
    assert service.get_account(account_id).version == 3


def test_unknown_account_is_a_typed_error(service: AccountService) -> None:
    missing = uuid4()
    with pytest.raises(AccountNotFound) as caught:
        service.log_contact(missing, channel="email", direction="inbound", actor="amy")
    assert caught.value.account_id == missing
    with pytest.raises(AccountNotFound):
        service.get_account(missing)
    with pytest.raises(AccountNotFound):
        service.history(missing)


def test_account_id_must_be_a_uuid(service: AccountService) -> None:
    with pytest.raises(InvalidValue, match="account_id"):
        service.get_account("not-a-uuid")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({}, "actor"),
        ({"actor": " "}, "actor"),
        ({"actor": "amy", "effective_at": datetime(2025, 1, 1)}, "effective_at"),
        ({"actor": "amy", "efective_at": BUSINESS_START}, "options"),
        ({"actor": "amy", "correlation_id": "abc"}, "correlation_id"),
        ({"actor": "amy", "expected_version": "3"}, "expected_version"),
        ({"actor": "amy", "idempotency_key": ""}, "idempotency_key"),
    ],
)
def test_bad_command_options_are_refused_naming_the_option(
    memory_service: AccountService, options: dict[str, object], field: str
) -> None:
    account_id = open_active(memory_service)
    before = event_count(memory_service)
    with pytest.raises(InvalidValue) as caught:
        memory_service.log_contact(account_id, channel="email", direction="inbound", **options)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert event_count(memory_service) == before


def test_every_event_carries_actor_times_and_tracing_ids(
    service: AccountService, clock: FakeClock
) -> None:
    account_id = open_active(service)
    correlation, cause = uuid4(), uuid4()
    clock.advance(hours=2)
    offered = service.offer_opportunity(
        account_id,
        kind="upsell",
        product="core",
        estimated_arr=eur(100),
        actor="amy",
        effective_at=BUSINESS_START + timedelta(days=3),
    )
    service.win_opportunity(
        account_id,
        opportunity_id=offered.entity_id,
        arr=eur(100),
        actor="bo",  # type: ignore[arg-type]
        effective_at=BUSINESS_START + timedelta(days=4),
        correlation_id=correlation,
        causation_id=cause,
    )
    # Winning appends two events; both carry the command's context.
    won, upsold = service.history(account_id)[-2:]
    assert isinstance(won, ev.OpportunityWon)
    assert isinstance(upsold, ev.Upsold)
    for event in (won, upsold):
        assert event.actor == "bo"
        assert event.effective_at == BUSINESS_START + timedelta(days=4)
        assert event.recorded_at == clock.now
        assert event.correlation_id == correlation
        assert event.causation_id == cause


def test_idempotency_key_applies_a_command_once(service: AccountService) -> None:
    account_id = open_active(service)
    first = service.raise_issue(
        account_id,
        title="Sync fails",
        severity="high",
        category="integration",
        actor="amy",
        idempotency_key="ticket-991",
    )
    again = service.raise_issue(
        account_id,
        title="Sync fails",
        severity="high",
        category="integration",
        actor="amy",
        idempotency_key="ticket-991",
    )
    assert again == first
    assert isinstance(first.entity_id, UUID)
    assert len(service.get_account(account_id).issues) == 1


def test_idempotency_survives_a_restart(store_url: str, clock: FakeClock) -> None:
    first_service = AccountService(store_url, clock=clock)
    account_id = open_active(first_service)
    first = first_service.log_contact(
        account_id, channel="phone", direction="outbound", actor="amy", idempotency_key="call-1"
    )
    first_service.close()
    if store_url == "memory:":
        return  # nothing survives a restart in memory, by design
    restarted = AccountService(store_url, clock=clock)
    try:
        again = restarted.log_contact(
            account_id, channel="phone", direction="outbound", actor="amy", idempotency_key="call-1"
        )
        assert again == first
        assert restarted.get_account(account_id).contact_count == 1
    finally:
        restarted.close()


def test_reusing_an_idempotency_key_for_something_else_is_refused(
    service: AccountService,
) -> None:
    account_id = open_active(service)
    service.log_contact(
        account_id, channel="phone", direction="outbound", actor="amy", idempotency_key="k"
    )
    before = event_count(service)
    with pytest.raises(IdempotencyKeyReused, match="log_contact"):
        service.log_contact(
            account_id, channel="email", direction="outbound", actor="amy", idempotency_key="k"
        )
    with pytest.raises(IdempotencyKeyReused):
        service.record_feedback(account_id, score=NpsScore(3), actor="amy", idempotency_key="k")
    assert event_count(service) == before


def test_a_refused_command_with_a_key_can_be_retried_after_fixing_the_input(
    memory_service: AccountService,
) -> None:
    account_id = open_active(memory_service)
    with pytest.raises(InvalidValue):
        memory_service.upsell(
            account_id, product="core", added_arr=Money(5, "USD"), actor="amy", idempotency_key="u1"
        )
    done = memory_service.upsell(
        account_id, product="core", added_arr=eur(5), actor="amy", idempotency_key="u1"
    )
    assert done.version == 3


def test_expected_version_guards_against_editing_a_stale_view(
    service: AccountService,
) -> None:
    account_id = open_active(service)
    service.log_contact(
        account_id, channel="email", direction="inbound", actor="amy", expected_version=2
    )
    before = event_count(service)
    with pytest.raises(ConcurrencyConflict, match="expected version 2, the account is at 3"):
        service.log_contact(
            account_id, channel="email", direction="inbound", actor="bo", expected_version=2
        )
    assert event_count(service) == before


def test_state_at_a_version(service: AccountService) -> None:
    account_id = open_active(service)
    service.upsell(account_id, product="core", added_arr=eur(1_000), actor="amy")
    assert service.get_account_at_version(account_id, 1).status is AccountStatus.ONBOARDING
    assert service.get_account_at_version(account_id, 2).arr == eur(10_000)
    assert service.get_account_at_version(account_id, 3).arr == eur(11_000)
    with pytest.raises(InvalidValue, match="has only 3 versions"):
        service.get_account_at_version(account_id, 4)
    with pytest.raises(InvalidValue, match="version"):
        service.get_account_at_version(account_id, 0)


def test_state_as_known_at_a_recorded_time_ignores_later_entries(
    service: AccountService, clock: FakeClock
) -> None:
    account_id = open_active(service)
    report_time = clock.advance(days=1)
    clock.advance(days=1)
    # Recorded later, but effective (backdated) before the report was run.
    service.downgrade(
        account_id,
        product="core",
        reduced_by=eur(2_000),
        actor="amy",
        effective_at=BUSINESS_START + timedelta(hours=1),
    )
    assert service.get_account_as_known_at(account_id, report_time).arr == eur(10_000)
    assert service.get_account(account_id).arr == eur(8_000)
    with pytest.raises(AccountNotFound, match="not recorded yet"):
        service.get_account_as_known_at(account_id, BUSINESS_START - timedelta(days=400))


def test_state_as_effective_at_a_business_date_includes_late_entries(
    service: AccountService,
) -> None:
    account_id = open_active(service)
    service.upsell(
        account_id,
        product="core",
        added_arr=eur(1_000),
        actor="amy",
        effective_at=BUSINESS_START + timedelta(days=90),
    )
    # Recorded after the upsell, but it happened in the business before it.
    service.record_value_delivered(
        account_id,
        amount=eur(3_000),
        description="automated invoicing",
        actor="amy",
        effective_at=BUSINESS_START + timedelta(days=30),
    )
    on = service.get_account_as_effective_at
    assert on(account_id, date(2025, 1, 6)).value_delivered == eur(0)
    assert on(account_id, date(2025, 2, 10)).value_delivered == eur(3_000)
    assert on(account_id, date(2025, 2, 10)).arr == eur(10_000)
    assert on(account_id, date(2025, 6, 1)).arr == eur(11_000)
    with pytest.raises(AccountNotFound, match="not opened yet"):
        on(account_id, date(2024, 12, 31))
    with pytest.raises(InvalidValue, match="when"):
        on(account_id, datetime(2025, 2, 1))


def test_history_returns_the_events_in_order(service: AccountService) -> None:
    account_id = open_active(service)
    history = service.history(account_id)
    assert [type(e) for e in history] == [ev.AccountOpened, ev.ContractStarted]
    assert [e.originator_version for e in history] == [1, 2]


def test_snapshots_keep_loading_correct_state(service: AccountService) -> None:
    account_id = open_active(service)
    interval = AccountService.snapshotting_intervals[
        next(iter(AccountService.snapshotting_intervals))
    ]
    for number in range(interval * 2 + 3):
        service.log_contact(
            account_id, channel="email", direction="outbound", summary=f"note {number}", actor="amy"
        )
    assert service.snapshots is not None
    snapshots = list(service.snapshots.get(account_id))
    assert [s.originator_version for s in snapshots] == [interval, interval * 2]
    state = service.get_account(account_id)
    assert state.contact_count == interval * 2 + 3
    assert state == _replayed_without_snapshots(service, account_id)


def test_snapshot_is_taken_when_a_multi_event_command_crosses_the_boundary(
    memory_service: AccountService,
) -> None:
    account_id = open_active(memory_service)
    interval = 20
    for _ in range(interval - 4):  # versions 3..18
        memory_service.log_contact(account_id, channel="email", direction="outbound", actor="amy")
    offer = memory_service.offer_opportunity(
        account_id, kind="upsell", product="core", estimated_arr=eur(5), actor="amy"
    )
    assert offer.version == interval - 1
    won = memory_service.win_opportunity(
        account_id,
        opportunity_id=offer.entity_id,  # type: ignore[arg-type]
        arr=eur(5),
        actor="amy",
    )
    assert won.version == interval + 1  # the win and the upsell: 20 and 21
    assert memory_service.snapshots is not None
    versions = [s.originator_version for s in memory_service.snapshots.get(account_id)]
    # Taken from the aggregate in hand at the end of the command, not reloaded at 20.
    assert versions == [interval + 1]
    assert memory_service.get_account(account_id).arr == eur(10_005)


def _replayed_without_snapshots(service: AccountService, account_id: UUID) -> object:
    account = None
    for event in service.history(account_id):
        account = event.mutate(account)
    assert account is not None
    return account.state()  # type: ignore[attr-defined]


def test_command_results_report_the_new_version(service: AccountService) -> None:
    account_id = open_active(service)
    result = service.log_contact(account_id, channel="qbr", direction="outbound", actor="amy")
    assert result == CommandResult(account_id, 3, None)


def test_an_idempotent_repeat_may_spell_enums_and_sequences_differently(
    memory_service: AccountService,
) -> None:
    account_id = open_active(memory_service)
    person = memory_service.add_stakeholder(
        account_id, name="Kim", role="champion", actor="amy"
    ).entity_id
    assert person is not None
    first = memory_service.log_contact(
        account_id,
        channel="qbr",
        direction="outbound",
        stakeholder_ids=[person],
        actor="amy",
        idempotency_key="qbr-q1",
    )
    again = memory_service.log_contact(
        account_id,
        channel=Channel.QBR,
        direction=Direction.OUTBOUND,
        stakeholder_ids=(person,),
        actor="amy",
        idempotency_key="qbr-q1",
    )
    assert again == first


def test_generators_are_accepted_for_sequences(memory_service: AccountService) -> None:
    account_id = open_active(memory_service)
    person = memory_service.add_stakeholder(account_id, name="Kim", role="champion", actor="a")
    assert person.entity_id is not None
    memory_service.log_contact(
        account_id,
        channel="qbr",
        direction="outbound",
        actor="a",
        stakeholder_ids=(p for p in [person.entity_id]),
    )
    [*_, contact] = memory_service.history(account_id)
    assert isinstance(contact, ev.ContactLogged)
    assert contact.stakeholder_ids == (person.entity_id,)
    memory_service.renew(
        account_id,
        term_end=date(2027, 1, 6),
        actor="a",
        lines=(line for line in [ProductLine("core", eur(9_000))]),
    )
    assert memory_service.get_account(account_id).arr == eur(9_000)


def test_a_non_sequence_is_refused_as_invalid_value(memory_service: AccountService) -> None:
    account_id = open_active(memory_service)
    with pytest.raises(InvalidValue, match="stakeholder_ids"):
        memory_service.log_contact(
            account_id,
            channel="qbr",
            direction="outbound",
            actor="a",
            stakeholder_ids=42,  # type: ignore[arg-type]
        )


def test_an_account_id_that_disagrees_with_the_external_key_is_refused(
    service: AccountService,
) -> None:
    arguments: dict[str, object] = dict(
        name="Acme",
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        external_key="crm:9",
        actor="amy",
    )
    with pytest.raises(
        InvalidValue, match="not the id derived from external key 'crm:9'"
    ) as caught:
        service.open_account(account_id=uuid4(), **arguments)  # type: ignore[arg-type]
    assert caught.value.field == "account_id"
    assert event_count(service) == 0
    agreed = service.open_account(account_id=account_id_for("crm:9"), **arguments)  # type: ignore[arg-type]
    assert agreed.account_id == account_id_for("crm:9")
