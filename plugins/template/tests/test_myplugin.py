"""The plugin as a user's installation sees it: found through its entry point."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import UUID

import pytest
from typer.testing import CliRunner

from acctdomain import AccountService, Money, ProductLine
from acctdomain.application.scorecard import KpiResult
from acctdomain.cli import build_app
from acctdomain.errors import NotAuthorized
from acctdomain.plugins import PluginHost

PLUGIN = "myplugin"
WHEN = datetime(2026, 2, 2, 10, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_plugin_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACCTDOMAIN_PLUGINS", raising=False)
    monkeypatch.delenv("ACCTDOMAIN_PLUGINS_BLOCK", raising=False)


def open_account(service: AccountService, manager: str = "amy") -> UUID:
    account_id = service.open_account(
        name=f"Account of {manager}",
        segment="smb",
        industry="retail",
        currency="EUR",
        manager=manager,
        manager_type="sales",
        actor="test",
        effective_at=WHEN,
    ).account_id
    service.start_contract(
        account_id,
        term_end=date(2027, 2, 1),
        lines=[ProductLine("core", Money(12000, "EUR"))],
        actor="test",
        effective_at=WHEN,
    )
    return account_id


def test_the_plugin_is_found_through_its_entry_point() -> None:
    host = PluginHost()
    info = {i.name: i for i in host.status()}[PLUGIN]
    assert (info.source, info.status) == ("entry_point", "loaded")
    assert "myplugin_contacts" in host.projections()
    assert "myplugin_contacts" in host.kpis()
    assert "myplugin_champion" in host.health_signals()
    assert PLUGIN in host.cli_commands()
    assert not host.failures


def contacts(lines: list[KpiResult]) -> object:
    (line,) = [line for line in lines if line.name == "myplugin_contacts"]
    assert line.value is not None
    return line.value.value


def test_the_kpi_counts_contacts_of_the_period_from_the_read_model() -> None:
    service = AccountService("memory:", plugins=PluginHost())
    amy, bob = open_account(service, "amy"), open_account(service, "bob")
    for account_id, day in ((amy, 3), (amy, 20), (bob, 4), (amy, 28)):
        service.log_contact(
            account_id,
            channel="phone",
            direction="outbound",
            actor="test",
            effective_at=datetime(2026, 2 if day != 28 else 3, day, tzinfo=UTC),
        )

    february = (date(2026, 2, 1), date(2026, 2, 28))
    assert contacts(service.scorecard(*february)) == 3
    assert contacts(service.scorecard(*february, manager="amy")) == 2
    # Not broken down by segment: undefined (None, with the reason), never a misleading 0.
    assert contacts(service.scorecard(*february, segment="smb")) is None


def test_the_health_signal_rewards_a_positive_champion() -> None:
    service = AccountService("memory:", plugins=PluginHost())
    account_id = open_account(service)
    silent = {s.name: s.score for s in service.health(account_id).signals}
    assert silent["myplugin_champion"] is None  # no stakeholder yet: says nothing
    service.add_stakeholder(
        account_id, name="Ada", role="champion", sentiment="positive", actor="test"
    )
    scores = {s.name: s.score for s in service.health(account_id).signals}
    assert scores["myplugin_champion"] == 1.0


def test_automated_actors_may_not_churn_an_account() -> None:
    service = AccountService("memory:", plugins=PluginHost())
    account_id = open_account(service)
    with pytest.raises(NotAuthorized) as refused:
        service.churn(account_id, reason="price", actor="bot:cleanup")
    assert refused.value.plugin == PLUGIN
    service.churn(account_id, reason="price", actor="amy")  # a person may


def test_the_command_prints_the_read_model(tmp_path: Path) -> None:
    db = str(tmp_path / "book.db")
    service = AccountService(db, plugins=PluginHost())
    account_id = open_account(service)
    service.log_contact(account_id, channel="email", direction="inbound", actor="test")
    service.close()
    result = CliRunner().invoke(build_app(PluginHost()), [PLUGIN, "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {"name": "Account of amy", "manager": "amy", "contacts": 1}
    ]
