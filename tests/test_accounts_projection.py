"""The built-in ``accounts`` projection (version 2): one summary row per account that does not
grow with its history, only the events that change it decoded, one account's share rebuilt
alone; and the pairing of each account with its revenue facts in ``kpi_facts``."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import pytest

from acctdomain import AccountService, Money, ProductLine
from acctdomain.builtin.accounts import AccountsProjection
from acctdomain.builtin.scorecard_kpis import account_histories
from acctdomain.domain import events as ev
from acctdomain.plugins import Rows
from acctdomain.projections import ProjectionRunner


def eur(amount: int) -> Money:
    return Money(amount, "EUR")


def open_account(service: AccountService, key: str) -> UUID:
    opened = service.open_account(
        name=f"Company {key}",
        segment="enterprise",
        industry="logistics",
        currency="EUR",
        manager="amy",
        manager_type="strategic",
        external_key=key,
        actor="amy",
    )
    return opened.account_id


def history(service: AccountService, key: str) -> UUID:
    """An account with revenue events and events that change nothing in its row."""
    account = open_account(service, key)
    service.receive_request(account, subject="Export?", channel="email", actor="amy")
    service.start_contract(
        account, term_end=date(2027, 1, 6), lines=[ProductLine("core", eur(1000))], actor="amy"
    )
    service.log_contact(account, channel="phone", direction="outbound", actor="amy")
    service.upsell(account, product="core", added_arr=eur(500), actor="amy")
    service.cross_sell(account, product="mobile", arr=eur(200), actor="amy")
    service.churn(account, reason="price", actor="amy")
    return account


def tables(runner: ProjectionRunner) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    reader = runner.read_model("accounts")
    return {table: list(reader.scan(table)) for table in AccountsProjection.tables}


def test_the_row_is_the_account_now_and_does_not_grow_with_its_history(
    memory_service: AccountService,
) -> None:
    account = history(memory_service, "a")
    memory_service.catch_up()
    row = memory_service.read_model("accounts").get("accounts", account.hex)
    assert row is not None
    assert "revenue" not in row
    assert "version" not in row
    assert row["status"] == "churned"
    assert row["contact_count"] == 1


def test_revenue_facts_are_kept_in_order_in_a_row_per_account_and_year(
    memory_service: AccountService,
) -> None:
    account = history(memory_service, "a")
    memory_service.catch_up()
    facts = memory_service.read_model("kpi_facts")
    account_row = facts.get("accounts", account.hex)
    assert account_row is not None
    assert account_row["lines"] == {}
    assert "revenue" not in account_row  # the account row does not grow with its history
    [(key, year)] = list(facts.scan("revenue", account.hex))
    assert key == f"{account.hex}:{memory_service.clock().year}"
    assert [(fact[2], fact[3]) for fact in year["revenue"]] == [
        ("started", {"core": "1000"}),
        ("upsold", {"core": "1500"}),
        ("cross_sold", {"core": "1500", "mobile": "200"}),
        ("churned", {}),
    ]


def test_facts_of_another_year_go_to_another_row(memory_service: AccountService) -> None:
    from datetime import UTC, datetime

    account = open_account(memory_service, "y")
    memory_service.start_contract(
        account, term_end=date(2030, 1, 1), lines=[ProductLine("core", eur(100))], actor="amy",
        effective_at=datetime(2026, 12, 31, 23, tzinfo=UTC),
    )  # fmt: skip
    memory_service.upsell(
        account, product="core", added_arr=eur(50), actor="amy",
        effective_at=datetime(2027, 1, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    memory_service.catch_up()
    facts = memory_service.read_model("kpi_facts")
    keys = [key for key, _ in facts.scan("revenue", account.hex)]
    assert keys == [f"{account.hex}:2026", f"{account.hex}:2027"]
    [(_, history)] = [item for item in account_histories(facts) if item[0] == account.hex]
    assert [fact[2] for fact in history["revenue"]] == ["started", "upsold"]


def test_events_that_change_no_row_are_not_decoded(
    memory_service: AccountService, monkeypatch: pytest.MonkeyPatch
) -> None:
    history(memory_service, "a")
    transcoder = memory_service.mapper.transcoder
    decode = transcoder.decode
    decoded: list[bytes] = []

    def counting(data: bytes) -> Any:
        decoded.append(data)
        return decode(data)

    monkeypatch.setattr(transcoder, "decode", counting)
    with ProjectionRunner(memory_service, [AccountsProjection()]) as runner:
        assert runner.rebuild() == 7
    assert len(decoded) == 6  # all but RequestReceived
    assert not issubclass(ev.RequestReceived, AccountsProjection.event_types)


def test_one_accounts_share_rebuilt_equals_a_whole_rebuild(
    service: AccountService, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = history(service, "a"), history(service, "b")
    service.log_contact(first, channel="email", direction="inbound", actor="amy")
    with ProjectionRunner(service, [AccountsProjection()]) as runner:
        runner.rebuild()
        whole = tables(runner)
        assert AccountsProjection().account_share(first) == {"accounts": first.hex}

        # Tables left wrong by a faulty version of the projection (it lost every contact
        # and every upsell), then each account's share rebuilt by the right one.
        apply = AccountsProjection.apply

        def faulty(self: AccountsProjection, event: Any, rows: Rows) -> None:
            if not isinstance(event, ev.ContactLogged | ev.Upsold):
                apply(self, event, rows)

        monkeypatch.setattr(AccountsProjection, "apply", faulty)
        runner.rebuild()
        broken = tables(runner)
        assert broken != whole
        monkeypatch.setattr(AccountsProjection, "apply", apply)

        runner.rebuild("accounts", account_id=first)
        partly = tables(runner)
        for table, rows in partly.items():
            assert [r for r in rows if r[0].startswith(first.hex)] == [
                r for r in whole[table] if r[0].startswith(first.hex)
            ]
            assert [r for r in rows if r[0].startswith(second.hex)] == [
                r for r in broken[table] if r[0].startswith(second.hex)
            ]
        runner.rebuild("accounts", account_id=second)
        assert tables(runner) == whole


def test_each_account_is_paired_with_its_own_revenue_facts(
    memory_service: AccountService,
) -> None:
    first, second = history(memory_service, "a"), open_account(memory_service, "b")
    third = history(memory_service, "c")
    fourth = open_account(memory_service, "d")
    memory_service.start_contract(
        fourth, term_end=date(2027, 1, 6), lines=[ProductLine("core", eur(300))], actor="amy"
    )
    memory_service.mark_renewal_due(fourth, due_on=date(2027, 1, 6), actor="amy")
    memory_service.catch_up()
    paired = dict(account_histories(memory_service.read_model("kpi_facts")))
    assert set(paired) == {first.hex, second.hex, third.hex, fourth.hex}
    assert [f[2] for f in paired[first.hex]["revenue"]] == [
        "started",
        "upsold",
        "cross_sold",
        "churned",
    ]
    assert paired[second.hex]["revenue"] == []
    assert (
        [f[2:] for f in paired[third.hex]["revenue"]]
        == [  # its own facts, alike
            f[2:] for f in paired[first.hex]["revenue"]
        ]
    )
    [(marked, recorded, due, at_stake)] = paired[fourth.hex]["renewals"]
    assert at_stake == "300"
    assert marked <= recorded
    assert due > marked
    assert [f[2] for f in paired[fourth.hex]["revenue"]] == ["started"]
