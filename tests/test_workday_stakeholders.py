"""The ``stakeholders`` read model and the ``stakeholder_map`` view (plugin ``builtin.workday``):
who is on the map with role, sentiment and last contact, and the gaps an AM should see."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import pytest

from acctdomain import AccountService
from acctdomain.builtin.stakeholders import Gap, StakeholderMap, stakeholder_map
from acctdomain.domain.values import Sentiment, StakeholderRole
from acctdomain.errors import AccountNotFound, InvalidValue


def at(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def open_account(service: AccountService, name: str = "Acme") -> UUID:
    return service.open_account(
        name=name, segment="smb", industry="retail", currency="EUR", manager="amy",
        manager_type="sales", actor="amy", effective_at=at(1, 1),
    ).account_id  # fmt: skip


def person(
    service: AccountService, account: UUID, name: str, role: str, sentiment: str = "neutral"
) -> UUID:
    result = service.add_stakeholder(
        account, name=name, role=role, sentiment=sentiment, title="", actor="amy",
        effective_at=at(1, 2),
    )  # fmt: skip
    assert result.entity_id is not None
    return result.entity_id


def meet(service: AccountService, account: UUID, when: datetime, *people: UUID) -> None:
    service.log_contact(
        account, channel="meeting", direction="outbound", stakeholder_ids=list(people),
        actor="amy", effective_at=when,
    )  # fmt: skip


def map_of(service: AccountService, account: UUID, today: date, **options: Any) -> StakeholderMap:
    service.catch_up()
    return stakeholder_map(service.read_model("stakeholders"), account, today=today, **options)


def test_people_last_contacts_and_gaps_on_every_backend(service: AccountService) -> None:
    acme = open_account(service)
    cfo = person(service, acme, "Carol CFO", "economic_buyer", "negative")
    cto = person(service, acme, "Tom CTO", "decision_maker", "positive")
    vp = person(service, acme, "Vera VP", "decision_maker")
    user = person(service, acme, "Uma User", "user")
    meet(service, acme, at(1, 10), cfo, user)
    meet(service, acme, at(3, 1), cto)
    meet(service, acme, at(2, 1), cto)  # backdated: the latest contact stays 1 March
    meet(service, acme, at(1, 20))  # nobody listed: changes nothing

    view = map_of(service, acme, date(2026, 4, 20))
    assert (view.account_id, view.today, view.not_met_days) == (acme, date(2026, 4, 20), 90)
    assert [p.name for p in view.people] == ["Carol CFO", "Tom CTO", "Uma User", "Vera VP"]
    people = {p.stakeholder_id: p for p in view.people}
    assert people[cfo].role is StakeholderRole.ECONOMIC_BUYER
    assert people[cfo].sentiment is Sentiment.NEGATIVE
    assert (people[cfo].last_contact_at, people[cfo].days_since_contact) == (at(1, 10), 100)
    assert (people[cto].last_contact_at, people[cto].days_since_contact) == (at(3, 1), 50)
    assert (people[vp].last_contact_at, people[vp].days_since_contact) == (None, None)
    assert people[user].last_contact_at == at(1, 10)
    assert view.former == ()
    assert view.gaps == (
        Gap("no_champion", "no champion on the stakeholder map"),
        Gap("not_met", "Vera VP (decision maker) was never met", vp),
        Gap("not_met", "Carol CFO (economic buyer) was last met 100 days ago (more than 90)", cfo),
        Gap("detractor", "Carol CFO (economic buyer) is negative about us", cfo),
    )

    # A threshold of 100 days: Carol was met exactly 100 days ago, which is in time.
    relaxed = map_of(service, acme, date(2026, 4, 20), not_met_days=100)
    assert [g.stakeholder_id for g in relaxed.gaps if g.kind == "not_met"] == [vp]


def test_updates_and_removals_change_the_map(memory_service: AccountService) -> None:
    service = memory_service
    acme = open_account(service)
    champ = person(service, acme, "Chris Champion", "champion", "positive")
    buyer = person(service, acme, "Bea Buyer", "economic_buyer", "negative")
    meet(service, acme, at(1, 5), champ, buyer)
    assert [g.kind for g in map_of(service, acme, date(2026, 1, 6)).gaps] == ["detractor"]

    service.update_stakeholder(
        acme, stakeholder_id=buyer, sentiment="positive", title="CFO", actor="amy",
        effective_at=at(1, 7),
    )  # fmt: skip
    service.update_stakeholder(
        acme, stakeholder_id=champ, sentiment="negative", actor="amy", effective_at=at(1, 7)
    )
    view = map_of(service, acme, date(2026, 1, 8))
    updated = {p.stakeholder_id: p for p in view.people}[buyer]
    assert (updated.title, updated.sentiment, updated.updated_at) == (
        "CFO", Sentiment.POSITIVE, at(1, 7),
    )  # fmt: skip
    assert view.gaps == (
        Gap("no_champion", "no champion: every champion is negative (Chris Champion)"),
    )

    service.remove_stakeholder(
        acme, stakeholder_id=buyer, reason="left", actor="amy", effective_at=at(1, 9)
    )
    view = map_of(service, acme, date(2026, 1, 10))
    assert [p.stakeholder_id for p in view.people] == [champ]
    [former] = view.former
    assert (former.stakeholder_id, former.removed_at) == (buyer, at(1, 9))
    assert [g.kind for g in view.gaps] == ["no_champion", "no_economic_buyer"]
    assert view.gaps[1].reason == "no economic buyer or decision maker on the stakeholder map"


def test_ties_come_by_name_and_never_met_comes_first(memory_service: AccountService) -> None:
    service = memory_service
    acme = open_account(service)
    person(service, acme, "Chris Champion", "champion", "positive")
    zed = person(service, acme, "Zed", "decision_maker", "negative")
    amy = person(service, acme, "Ann", "decision_maker", "negative")
    bob = person(service, acme, "Bob", "economic_buyer")
    never = person(service, acme, "Nora", "economic_buyer")
    meet(service, acme, at(1, 3), zed, amy, bob)
    view = map_of(service, acme, date(2026, 6, 1), not_met_days=30)
    assert [(g.kind, g.stakeholder_id) for g in view.gaps] == [
        ("not_met", never),
        ("not_met", amy),  # 149 days each: by name
        ("not_met", bob),
        ("not_met", zed),
        ("detractor", amy),
        ("detractor", zed),
    ]
    # Threshold 0: met today is in time; a contact dated after the day asked about counts too.
    meet(service, acme, at(6, 1), zed, amy, bob, never)
    assert [g.kind for g in map_of(service, acme, date(2026, 6, 1), not_met_days=0).gaps] == [
        "detractor", "detractor",
    ]  # fmt: skip
    early = map_of(service, acme, date(2026, 5, 1), not_met_days=0)
    assert {p.name: p.days_since_contact for p in early.people}["Zed"] == -31
    assert [g.kind for g in early.gaps] == ["detractor", "detractor"]


def test_an_empty_account_lacks_a_champion_and_a_buyer(service: AccountService) -> None:
    empty = open_account(service, "Empty")
    view = map_of(service, empty, date(2026, 1, 2))
    assert (view.people, view.former) == ((), ())
    assert [g.kind for g in view.gaps] == ["no_champion", "no_economic_buyer"]
    assert all(g.stakeholder_id is None for g in view.gaps)


def test_bad_arguments_and_unknown_accounts_are_refused(memory_service: AccountService) -> None:
    service = memory_service
    acme = open_account(service)
    service.catch_up()
    people = service.read_model("stakeholders")
    day = date(2026, 2, 1)
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: stakeholder_map(None, acme, today=day), "read_model"),  # type: ignore[arg-type]
        (lambda: stakeholder_map(people, str(acme), today=day), "account_id"),  # type: ignore[arg-type]
        (lambda: stakeholder_map(people, acme, today=at(2, 1)), "today"),
        (lambda: stakeholder_map(people, acme, today=day, not_met_days=-1), "not_met_days"),
        (lambda: stakeholder_map(people, acme, today=day, not_met_days=True), "not_met_days"),
        (lambda: stakeholder_map(people, acme, today=day, not_met_days=30.0), "not_met_days"),  # type: ignore[arg-type]
    ]
    for call, field in cases:
        with pytest.raises(InvalidValue) as error:
            call()
        assert error.value.field == field
    with pytest.raises(AccountNotFound, match="stakeholders"):
        stakeholder_map(people, UUID(int=3), today=day)
