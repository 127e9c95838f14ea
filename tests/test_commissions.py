"""The first-party plugin ``acctdomain-commissions``, reached only through entry-point discovery.

The plugin is installed into the project's environment (``make setup``); these tests find it
the way a user's installation does: a :class:`PluginHost` loads the entry point ``commissions``
of group ``acctdomain``, and the functions used here are attributes of the plugin object the
host loaded (never an ``import acctdomain_commissions``).

Every figure below is computed by hand in the comments: ARR is chosen so that one day is a
round amount (36,500 a year is 100 a day), and the period is Q1 2026 (90 days).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from typer.testing import CliRunner

from acctdomain import AccountService, Money, ProductLine
from acctdomain.cli import build_app
from acctdomain.errors import InvalidValue
from acctdomain.plugins import ALLOW_ENV_VAR, BLOCK_ENV_VAR, PluginHost
from tests.conftest import FakeClock
from tests.pg import drop_schema, new_schema_url

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "commissions"
PLAN_ENV_VAR = "ACCTDOMAIN_COMMISSIONS_PLAN"
Q1 = (date(2026, 1, 1), date(2026, 3, 31))
Q2 = (date(2026, 4, 1), date(2026, 6, 30))

runner = CliRunner()


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No allow- or block-list and the default plan, whatever the developer's shell says."""
    for name in (ALLOW_ENV_VAR, BLOCK_ENV_VAR, PLAN_ENV_VAR):
        monkeypatch.delenv(name, raising=False)


def discovering(store_url: str, clock: FakeClock) -> AccountService:
    """A service whose plugin host discovers installed entry points, as a user's does."""
    return AccountService(store_url, clock=clock, plugins=PluginHost(entry_points=True))


@pytest.fixture
def service(store_url: str, clock: FakeClock) -> Iterator[AccountService]:
    """Overrides the suite's service, which loads built-ins only: here discovery is the point."""
    app = discovering(store_url, clock)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def memory_service(clock: FakeClock) -> Iterator[AccountService]:
    app = discovering("memory:", clock)
    try:
        yield app
    finally:
        app.close()


def at(year: int, month: int, day: int, hour: int = 9) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def eur(amount: int | str) -> Money:
    return Money(amount, "EUR")


def plugin_of(service_or_host: AccountService | PluginHost) -> Any:
    """The plugin module the host loaded from the entry point."""
    host = (
        service_or_host.plugins if isinstance(service_or_host, AccountService) else service_or_host
    )
    plugin = host.pm.get_plugin(PLUGIN)
    assert plugin is not None, f"{PLUGIN!r} was not loaded: {host.status()}"
    return plugin


def open_with_contract(
    service: AccountService,
    name: str,
    manager: str,
    when: datetime,
    lines: dict[str, Money],
    term_end: date,
) -> UUID:
    currency = next(iter(lines.values())).currency
    account_id = service.open_account(
        name=name,
        segment="mid_market",
        industry="software",
        currency=currency,
        manager=manager,
        manager_type="sales",
        actor="test",
        effective_at=when,
    ).account_id
    service.start_contract(
        account_id,
        term_end=term_end,
        lines=[ProductLine(product, arr) for product, arr in lines.items()],
        actor="test",
        effective_at=when,
    )
    return account_id


def write_book(service: AccountService, clock: FakeClock) -> dict[str, UUID]:
    """Three managers in Q1 2026.

    - Acme (amy): 36,500 until its renewal on Feb 10 at 43,800 (an add-on of 7,300); the
      renewal was due Feb 15 with 36,500 at stake.
    - Beta (amy, then bob from Feb 1): 73,000 (200 a day); bob upsells 18,250 on Mar 2.
    - Gamma (bob): 18,250 (50 a day), renewal due Mar 10, churned on Mar 10.
    - Delta (cleo): new on Feb 1 at 36,500; nothing due, not in anyone's starting book.
    """
    clock.now = at(2026, 6, 1)  # everything below is recorded after it took effect
    acme = open_with_contract(
        service, "Acme", "amy", at(2025, 6, 1), {"core": eur(36500)}, date(2026, 2, 15)
    )
    service.mark_renewal_due(
        acme, due_on=date(2026, 2, 15), actor="test", effective_at=at(2026, 1, 10)
    )
    service.renew(
        acme,
        term_end=date(2027, 2, 15),
        lines=[ProductLine("core", eur(36500)), ProductLine("addon", eur(7300))],
        actor="test",
        effective_at=at(2026, 2, 10, 10),
    )
    beta = open_with_contract(
        service, "Beta", "amy", at(2025, 3, 1), {"core": eur(73000)}, date(2026, 12, 31)
    )
    service.reassign_manager(
        beta, manager="bob", manager_type="sales", actor="test", effective_at=at(2026, 2, 1)
    )
    service.upsell(
        beta, product="core", added_arr=eur(18250), actor="test", effective_at=at(2026, 3, 2)
    )
    gamma = open_with_contract(
        service, "Gamma", "bob", at(2025, 1, 1), {"core": eur(18250)}, date(2026, 3, 10)
    )
    service.mark_renewal_due(
        gamma, due_on=date(2026, 3, 10), actor="test", effective_at=at(2026, 2, 1)
    )
    service.churn(gamma, reason="price", actor="test", effective_at=at(2026, 3, 10))
    delta = open_with_contract(
        service, "Delta", "cleo", at(2026, 2, 1), {"core": eur(36500)}, date(2027, 1, 31)
    )
    return {"acme": acme, "beta": beta, "gamma": gamma, "delta": delta}


def write_plan(directory: Path, text: str) -> Path:
    plan_file = directory / "plan.toml"
    plan_file.write_text(text)
    return plan_file


def by_manager(statements: list[Any]) -> dict[str, Any]:
    return {statement.manager: statement for statement in statements}


def target(statement: Any, kpi: str) -> Any:
    (found,) = [t for t in statement.targets if t.kpi == kpi]
    return found


# --- discovery ----------------------------------------------------------------------------------


def test_commissions_is_discovered_through_its_entry_point(service: AccountService) -> None:
    info = {i.name: i for i in service.plugins.status()}[PLUGIN]
    assert (info.source, info.status, info.error) == ("entry_point", "loaded", "")
    assert info.version == "0.1.0"
    assert set(info.hooks) == {
        "acctdomain_register_projections",
        "acctdomain_register_kpis",
        "acctdomain_register_cli_commands",
    }
    assert plugin_of(service).__name__ == "acctdomain_commissions"
    host = service.plugins
    assert "commission_ledger" in host.projections()
    assert host.owner("acctdomain_register_projections", "commission_ledger") == PLUGIN
    assert host.kpis()["commission_payout"].unit == "money"
    assert "commissions" in host.cli_commands()
    assert not host.failures


def test_blocking_the_plugin_leaves_the_core_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BLOCK_ENV_VAR, PLUGIN)
    host = PluginHost()
    assert {i.name: i.status for i in host.status()}[PLUGIN] == "blocked"
    assert "commission_ledger" not in host.projections()
    assert "commission_payout" not in host.kpis()


# --- statements -----------------------------------------------------------------------------------


def test_statements_of_a_quarter_with_a_reassignment_a_renewal_a_churn_and_an_upsell(
    service: AccountService, clock: FakeClock
) -> None:
    write_book(service, clock)
    statements = plugin_of(service).statements(service, *Q1)
    assert [s.manager for s in statements] == ["amy", "bob", "cleo"]
    amy, bob, cleo = statements

    # amy: Acme Jan 1 - Feb 9 (40 days x 100) + Feb 10 - Mar 31 (50 days x 120) = 10,000;
    # Beta Jan 1 - Jan 31 (31 days x 200) = 6,200 (its later days are bob's).
    assert amy.accounts == 2
    assert amy.revenue_base == {"EUR": eur("16200.00")}
    assert amy.commission == {"EUR": eur("810.00")}  # 5 % (the default plan)
    # Acme was due Feb 15 and renewed: 1 of 1, and 36,500 of 36,500 (the add-on is expansion).
    assert (amy.renewals.due, amy.renewals.renewed, amy.renewals.churned) == (1, 1, 0)
    assert amy.renewals.value_due == {"EUR": eur(36500)}
    assert amy.renewals.value_renewed == {"EUR": eur(36500)}
    assert amy.renewals.by_count.value == amy.renewals.by_value.value == Decimal("1.0000")
    # Cohort on Jan 1: Acme 36,500 + Beta 73,000 = 109,500. While amy was in charge: +7,300
    # (the renewal). Bob's upsell of Beta is not amy's: 116,800 / 109,500 = 1.0667.
    assert amy.retention.cohort == 2
    assert amy.retention.starting_arr == {"EUR": eur(109500)}
    assert amy.retention.ending_arr == {"EUR": eur(116800)}
    assert amy.retention.nrr.value == Decimal("1.0667")
    assert target(amy, "renewal_rate").met
    assert target(amy, "nrr").met
    assert amy.bonuses == eur(5000)  # 2,000 + 3,000
    assert amy.total == {"EUR": eur("5810.00")}

    # bob: Beta Feb 1 - Mar 1 (29 days x 200) + Mar 2 - Mar 31 (30 days x 250) = 13,300;
    # Gamma Jan 1 - Mar 9 (68 days x 50) = 3,400, nothing from its churn day on.
    assert bob.accounts == 2
    assert bob.revenue_base == {"EUR": eur("16700.00")}
    assert bob.commission == {"EUR": eur("835.00")}
    assert (bob.renewals.due, bob.renewals.renewed, bob.renewals.churned) == (1, 0, 1)
    assert bob.renewals.by_value.value == bob.renewals.by_count.value == Decimal(0)
    # Cohort on Jan 1: Gamma alone (Beta came to bob later); it churned: 0 / 18,250.
    assert bob.retention.cohort == 1
    assert bob.retention.nrr.value == Decimal(0)
    for missed in bob.targets:
        assert (missed.met, missed.bonus, missed.reason) == (False, eur(0), "")
    assert bob.total == {"EUR": eur("835.00")}

    # cleo: Delta Feb 1 - Mar 31 (59 days x 100) = 5,900. Nothing was due and she had no book
    # on Jan 1: both figures are undefined, with the reason, and the targets are not met.
    assert cleo.revenue_base == {"EUR": eur("5900.00")}
    assert cleo.commission == {"EUR": eur("295.00")}
    renewal, nrr = target(cleo, "renewal_rate"), target(cleo, "nrr")
    assert (renewal.achieved, renewal.met) == (None, False)
    assert renewal.reason == "no renewal was due in the period"
    assert (nrr.achieved, nrr.met) == (None, False)
    assert "no active account" in nrr.reason
    assert cleo.bonuses == eur(0)
    assert cleo.total == {"EUR": eur("295.00")}

    # One manager's statement reads only that manager's accounts, with the same figures.
    (only_bob,) = plugin_of(service).statements(service, *Q1, manager="bob")
    assert only_bob == bob
    # A rebuild from zero gives the same statements as the incremental catch-up.
    service.projections.rebuild()
    assert plugin_of(service).statements(service, *Q1) == statements


def test_the_payout_is_on_the_scorecard_and_honours_the_manager_filter(
    service: AccountService, clock: FakeClock
) -> None:
    write_book(service, clock)
    lines = {line.name: line for line in service.scorecard(*Q1)}
    payout = lines["commission_payout"]
    assert (payout.unit, payout.error) == ("money", "")
    assert payout.value is not None
    assert payout.value.value == eur("6940.00")  # 5,810 + 835 + 295
    # The quarter before (Oct 1 - Dec 31, 2025, 92 days): amy earns 92 x (100 + 200) = 27,600
    # and bob 92 x 50 = 4,600; nothing was due and nothing changed (NRR 1.0 misses 1.05): 5 %.
    assert payout.previous is not None
    assert payout.previous.value == eur("1610.00")

    (amy,) = [
        line for line in service.scorecard(*Q1, manager="amy") if line.name == "commission_payout"
    ]
    assert amy.value is not None
    assert amy.value.value == eur("5810.00")

    (nobody,) = [
        line for line in service.scorecard(*Q1, manager="zoe") if line.name == "commission_payout"
    ]
    assert nobody.value is not None
    assert nobody.value.value is None
    assert nobody.value.reason == "'zoe' managed no account in the period"

    (by_segment,) = [
        line for line in service.scorecard(*Q1, segment="smb") if line.name == "commission_payout"
    ]
    assert by_segment.value is not None
    assert by_segment.value.value is None
    assert "do not apply" in by_segment.value.reason
    assert not service.plugins.failures


def test_a_backdated_reassignment_takes_the_revenue_changes_it_precedes(
    memory_service: AccountService, clock: FakeClock
) -> None:
    service = memory_service
    clock.now = at(2026, 6, 1)
    echo = open_with_contract(
        service, "Echo", "amy", at(2025, 12, 1), {"core": eur(36500)}, date(2026, 11, 30)
    )
    service.upsell(
        echo, product="core", added_arr=eur(36500), actor="test", effective_at=at(2026, 3, 1)
    )
    # Recorded after the upsell, effective before it: bob was in charge when it happened.
    service.reassign_manager(
        echo, manager="bob", manager_type="sales", actor="test", effective_at=at(2026, 2, 1)
    )
    amy, bob = plugin_of(service).statements(service, *Q1)
    assert amy.revenue_base == {"EUR": eur("3100.00")}  # Jan: 31 x 100
    assert bob.revenue_base == {"EUR": eur("9000.00")}  # Feb: 28 x 100, Mar: 31 x 200
    assert amy.retention.nrr.value == Decimal(1)  # the upsell was not hers
    assert bob.retention.nrr.value is None  # Echo was not in bob's book on Jan 1


def test_renewals_not_marked_due_cancellations_and_rescheduled_renewals(
    memory_service: AccountService, clock: FakeClock
) -> None:
    service = memory_service
    clock.now = at(2026, 6, 1)
    opened = at(2025, 4, 1)
    # Renewed at term end without a RenewalDue, smaller: an opportunity of 10,000, 8,000 kept.
    fox = open_with_contract(service, "Fox", "amy", opened, {"core": eur(10000)}, date(2026, 1, 31))
    service.renew(
        fox,
        term_end=date(2027, 1, 31),
        lines=[ProductLine("core", eur(8000))],
        actor="test",
        effective_at=at(2026, 1, 31),
    )
    # Cancelled during its term: not a renewal opportunity, but it counts in NRR.
    golf = open_with_contract(
        service, "Golf", "amy", opened, {"core": eur(10000)}, date(2026, 12, 31)
    )
    service.churn(golf, reason="budget_cut", actor="test", effective_at=at(2026, 2, 15))
    # Due Mar 15, then rescheduled to Apr 15: due in Q2, not in Q1, and still open.
    hotel = open_with_contract(
        service, "Hotel", "amy", opened, {"core": eur(20000)}, date(2026, 3, 15)
    )
    service.mark_renewal_due(
        hotel, due_on=date(2026, 3, 15), actor="test", effective_at=at(2026, 2, 1)
    )
    service.mark_renewal_due(
        hotel, due_on=date(2026, 4, 15), actor="test", effective_at=at(2026, 2, 20)
    )
    # Lost after its term ended without being marked due: a renewal lost, 5,000 at stake.
    india = open_with_contract(
        service, "India", "amy", opened, {"core": eur(5000)}, date(2026, 3, 20)
    )
    service.churn(india, reason="competitor", actor="test", effective_at=at(2026, 3, 25))

    plugin = plugin_of(service)
    (amy,) = plugin.statements(service, *Q1)
    assert (amy.renewals.due, amy.renewals.renewed, amy.renewals.churned) == (2, 1, 1)
    assert amy.renewals.by_count.value == Decimal("0.5000")  # Fox of Fox and India
    assert amy.renewals.by_value.value == Decimal("0.5333")  # 8,000 / (10,000 + 5,000)
    # Cohort on Jan 1: 10,000 + 10,000 + 20,000 + 5,000 = 45,000; in Q1 Fox -2,000, Golf
    # -10,000, India -5,000: 28,000 / 45,000.
    assert amy.retention.nrr.value == Decimal("0.6222")

    (amy_q2,) = plugin.statements(service, *Q2)
    assert (amy_q2.renewals.due, amy_q2.renewals.open) == (1, 1)
    assert amy_q2.renewals.by_count.value == Decimal(0)  # open: due and not renewed (yet)

    # The plan picks the basis of a renewal_rate target: 0.5333 by value meets 0.52, 0.5 by
    # count does not.
    by_value = plugin.plan_from_mapping(
        {
            "rate": "0.05",
            "currency": "EUR",
            "targets": [{"kpi": "renewal_rate", "threshold": "0.52", "bonus": 1000}],
        }
    )
    by_count = plugin.plan_from_mapping(
        {
            "rate": "0.05",
            "currency": "EUR",
            "renewal_basis": "count",
            "targets": [{"kpi": "renewal_rate", "threshold": "0.52", "bonus": 1000}],
        }
    )
    (valued,) = plugin.statements(service, *Q1, by_value)
    (counted,) = plugin.statements(service, *Q1, by_count)
    assert (target(valued, "renewal_rate").met, valued.bonuses) == (True, eur(1000))
    assert (target(counted, "renewal_rate").met, counted.bonuses) == (False, eur(0))


def test_amounts_in_several_currencies_meet_only_at_the_plans_rates(
    memory_service: AccountService,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = memory_service
    clock.now = at(2026, 6, 1)
    open_with_contract(
        service, "Juliet", "amy", at(2025, 6, 1), {"core": eur(36500)}, date(2026, 12, 1)
    )
    open_with_contract(
        service, "Kilo", "amy", at(2025, 6, 1), {"core": Money(73000, "USD")}, date(2026, 12, 1)
    )
    (amy,) = plugin_of(service).statements(service, *Q1)
    assert amy.revenue_base == {"EUR": eur("9000.00"), "USD": Money("18000.00", "USD")}
    assert amy.commission == {"EUR": eur("450.00"), "USD": Money("900.00", "USD")}
    assert amy.retention.nrr.value is None
    assert "several currencies" in amy.retention.nrr.reason
    assert amy.total == amy.commission  # no bonus earned: no EUR 0 line added
    (payout,) = [line for line in service.scorecard(*Q1) if line.name == "commission_payout"]
    assert payout.value is not None
    assert payout.value.value is None
    assert "several currencies" in payout.value.reason
    assert payout.value.detail["by_currency"]["USD"] == Money("900.00", "USD")

    # With the plan's own exchange rate, the figures meet in the plan's currency, explicitly.
    plugin = plugin_of(service)
    with_rates = plugin.plan_from_mapping(
        {"rate": "0.05", "currency": "EUR", "rates": {"USD": Decimal("0.9")}}
    )
    (converted,) = plugin.statements(service, *Q1, with_rates)
    assert converted.commission == amy.commission  # still paid in each account's currency
    assert converted.retention.nrr.value == Decimal(1)  # (36,500 + 65,700) / the same
    plan_file = write_plan(tmp_path, 'rate = 0.05\ncurrency = "EUR"\n[rates]\nUSD = 0.9\n')
    monkeypatch.setenv(PLAN_ENV_VAR, str(plan_file))
    (converted_payout,) = [
        line for line in service.scorecard(*Q1) if line.name == "commission_payout"
    ]
    assert converted_payout.value is not None
    assert converted_payout.value.value == eur("1260.00")  # 450 EUR + 900 USD x 0.9
    assert converted_payout.value.detail["converted_at"] == {"USD": Decimal("0.9")}


# --- the plan ------------------------------------------------------------------------------------


GOOD_PLAN = """
name = "FY26"
rate = 0.1
currency = "EUR"

[[targets]]
kpi = "nrr"
threshold = 1.0
bonus = 1000

[[targets]]   # a second tier on the same KPI
kpi = "nrr"
threshold = 1.06
bonus = "1500.50"

[[targets]]
kpi = "renewal_rate"
threshold = 1
bonus = 700
"""


def test_a_plan_file_sets_the_rate_and_the_targets(
    memory_service: AccountService,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = memory_service
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text(GOOD_PLAN)
    monkeypatch.setenv(PLAN_ENV_VAR, str(plan_file))
    write_book(service, clock)
    plugin = plugin_of(service)
    plan = plugin.load_plan()
    assert (plan.name, plan.rate, plan.currency) == ("FY26", Decimal("0.1"), "EUR")
    assert [t.bonus for t in plan.targets] == [eur(1000), eur("1500.50"), eur(700)]
    amy = by_manager(plugin.statements(service, *Q1))["amy"]
    assert amy.commission == {"EUR": eur("1620.00")}  # 10 % of 16,200
    # NRR 1.0667 meets both tiers, the renewal rate 1.0 meets its threshold of 1.
    assert [t.met for t in amy.targets] == [True, True, True]
    assert amy.bonuses == eur("3200.50")
    assert amy.total == {"EUR": eur("4820.50")}
    (payout,) = [
        line for line in service.scorecard(*Q1, manager="amy") if line.name == "commission_payout"
    ]
    assert payout.value is not None
    assert payout.value.value == eur("4820.50")


def test_the_default_plan_is_used_without_a_plan_file(memory_service: AccountService) -> None:
    plan = plugin_of(memory_service).load_plan()
    assert plan == plugin_of(memory_service).DEFAULT_PLAN
    assert (plan.rate, plan.currency, plan.renewal_basis) == (Decimal("0.05"), "EUR", "value")
    assert [(t.kpi, t.threshold, t.bonus) for t in plan.targets] == [
        ("renewal_rate", Decimal("0.90"), eur(2000)),
        ("nrr", Decimal("1.05"), eur(3000)),
    ]


def test_the_plan_in_the_readme_is_a_valid_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (ROOT / "plugins" / "acctdomain-commissions" / "README.md").read_text()
    (example,) = re.findall(r"```toml\n(.*?)```", readme, flags=re.DOTALL)
    monkeypatch.setenv(PLAN_ENV_VAR, str(write_plan(tmp_path, example)))
    plan = plugin_of(PluginHost()).load_plan()
    assert (plan.name, plan.rate, plan.renewal_basis) == (
        "FY26 account management",
        Decimal("0.05"),
        "value",
    )
    assert [(t.kpi, t.threshold, t.bonus) for t in plan.targets] == [
        ("renewal_rate", Decimal("0.90"), eur(2000)),
        ("nrr", Decimal("1.05"), eur(3000)),
    ]
    assert plan.rates == {"GBP": Decimal("1.17"), "USD": Decimal("0.92")}


BAD_PLANS = [
    pytest.param(
        'rate = 0.05\ncurrency = "EUR"\n[[targets]\n', PLAN_ENV_VAR, "not valid TOML", id="toml"
    ),
    pytest.param('currency = "EUR"\n', "rate", "is required", id="no-rate"),
    pytest.param('rate = 1.5\ncurrency = "EUR"\n', "rate", "between 0 and 1", id="rate-range"),
    pytest.param('rate = "five"\ncurrency = "EUR"\n', "rate", "not a number", id="rate-text"),
    pytest.param("rate = 0.05\ncurrency = 'EURO'\n", "currency", "ISO 4217", id="currency"),
    pytest.param(
        'rate = 0.05\ncurrency = "EUR"\ncolour = "red"\n', "colour", "unknown setting", id="key"
    ),
    pytest.param(
        'rate = 0.05\ncurrency = "EUR"\n[[targets]]\nkpi = "nps"\nthreshold = 1\nbonus = 1\n',
        "targets[0].kpi",
        "'nps'",
        id="kpi",
    ),
    pytest.param(
        'rate = 0.05\ncurrency = "EUR"\n[[targets]]\nkpi = "nrr"\nthreshold = 1\nbonus = 1\n'
        '[[targets]]\nkpi = "renewal_rate"\nthreshold = 1.2\nbonus = 1\n',
        "targets[1].threshold",
        "at most 1",
        id="renewal-threshold",
    ),
    pytest.param(
        'rate = 0.05\ncurrency = "EUR"\n[[targets]]\nkpi = "nrr"\nthreshold = "high"\nbonus = 1\n',
        "targets[0].threshold",
        "not a number",
        id="threshold-text",
    ),
    pytest.param(
        'rate = 0.05\ncurrency = "EUR"\n[[targets]]\nkpi = "nrr"\nthreshold = 1\nbonus = -5\n',
        "targets[0].bonus",
        "negative",
        id="bonus",
    ),
    pytest.param(
        'rate = 0.05\ncurrency = "EUR"\n[[targets]]\nkpi = "nrr"\nthreshold = 1\n',
        "targets[0].bonus",
        "is required",
        id="no-bonus",
    ),
    pytest.param(
        'rate = 0.05\ncurrency = "EUR"\n[rates]\nUSD = 0\n', "rates.USD", "above 0", id="rate-zero"
    ),
    pytest.param(
        'rate = 0.05\ncurrency = "EUR"\n[rates]\nXYZ = 1.1\n',
        "rates.XYZ",
        "ISO 4217",
        id="rate-code",
    ),
]


@pytest.mark.parametrize(("text", "field", "reason"), BAD_PLANS)
def test_a_bad_plan_file_is_refused_naming_the_field(
    text: str, field: str, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text(text)
    monkeypatch.setenv(PLAN_ENV_VAR, str(plan_file))
    with pytest.raises(InvalidValue) as raised:
        plugin_of(PluginHost()).load_plan()
    assert raised.value.field == field
    assert reason in raised.value.reason
    assert str(plan_file) in str(raised.value)


def test_a_missing_plan_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PLAN_ENV_VAR, str(tmp_path / "nowhere.toml"))
    with pytest.raises(InvalidValue, match="cannot read the plan file") as raised:
        plugin_of(PluginHost()).load_plan()
    assert raised.value.field == PLAN_ENV_VAR


def test_a_bad_plan_empties_the_payout_line_and_is_recorded_against_the_plugin(
    memory_service: AccountService,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_book(memory_service, clock)
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text('rate = 2\ncurrency = "EUR"\n')
    monkeypatch.setenv(PLAN_ENV_VAR, str(plan_file))
    lines = {line.name: line for line in memory_service.scorecard(*Q1)}
    assert lines["commission_payout"].value is None
    assert lines["commission_payout"].error
    assert lines["arr"].value is not None  # the other figures are unaffected
    failure = memory_service.plugins.failures[0]
    assert (failure.plugin, failure.hook) == (PLUGIN, "acctdomain_register_kpis")
    assert "InvalidValue: rate: must be between 0 and 1" in failure.error


# --- the command line -------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def stored_book(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[str]:
    """The book of :func:`write_book` in a store another process can open; its URL."""
    schema = ""
    if request.param == "sqlite":
        url = str(tmp_path / "book.db")
    else:
        url, schema = new_schema_url()
    try:
        service = discovering(url, clock)
        try:
            write_book(service, clock)
        finally:
            service.close()
        yield url
    finally:
        if schema:
            drop_schema(schema)


def test_the_commissions_command_prints_the_statements_as_json(stored_book: str) -> None:
    app = build_app(PluginHost())
    arguments = ["commissions", "--db", stored_book, "--start", "2026-01-01", "--end", "2026-03-31"]
    result = runner.invoke(app, [*arguments, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["plan"]["rate"] == "0.05"
    statements = {s["manager"]: s for s in report["statements"]}
    assert list(statements) == ["amy", "bob", "cleo"]
    assert statements["amy"]["revenue_base"] == {"EUR": "16200.00"}
    assert statements["amy"]["total"] == {"EUR": "5810.00"}
    assert statements["amy"]["retention"]["nrr"] == {"value": "1.0667", "reason": ""}
    assert statements["bob"]["commission"] == {"EUR": "835.00"}
    cleo_renewal = statements["cleo"]["targets"][0]
    assert cleo_renewal["achieved"] is None
    assert cleo_renewal["reason"] == "no renewal was due in the period"

    one = runner.invoke(app, [*arguments, "--manager", "bob", "--json"])
    assert [s["manager"] for s in json.loads(one.output)["statements"]] == ["bob"]

    table = runner.invoke(app, arguments, env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    for text in ("Commission statements", "amy", "5810.00 EUR", "Targets", "no renewal was due"):
        assert text in table.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--start", "2026-13-01", "--end", "2026-03-31"], "--start '2026-13-01' is not a date"),
        (["--start", "2026-03-31", "--end", "2026-01-01"], "is before --start"),
        (["--start", "2026-01-01", "--end", "2026-03-31", "--plan", "nowhere.toml"], "plan file"),
    ],
)
def test_the_command_reports_a_mistake_in_one_line(
    arguments: list[str], message: str, tmp_path: Path
) -> None:
    db = tmp_path / "book.db"
    AccountService(str(db)).close()
    result = runner.invoke(build_app(PluginHost()), ["commissions", "--db", str(db), *arguments])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_the_command_refuses_a_store_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    result = runner.invoke(
        build_app(PluginHost()),
        ["commissions", "--db", str(missing), "--start", "2026-01-01", "--end", "2026-03-31"],
    )
    assert result.exit_code == 2
    assert "there is no SQLite store" in result.output
    assert not missing.exists()


def test_the_installed_command_lists_built_ins_and_commissions() -> None:
    """The console script a user runs, in its own process, with the real installation."""
    script = Path(sys.executable).with_name("acctdomain")
    environment = {k: v for k, v in os.environ.items() if k not in (ALLOW_ENV_VAR, BLOCK_ENV_VAR)}
    result = subprocess.run(
        [str(script), "plugins", "--json"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    plugins = {plugin["name"]: plugin for plugin in report["plugins"]}
    for name in ("builtin.accounts", "builtin.kpis", "builtin.health"):
        assert (plugins[name]["source"], plugins[name]["status"]) == ("builtin", "loaded")
    commissions = plugins[PLUGIN]
    assert (commissions["source"], commissions["status"]) == ("entry_point", "loaded")
    assert commissions["version"] == "0.1.0"
    assert "acctdomain_register_kpis" in commissions["hooks"]
    assert report["failures"] == []
