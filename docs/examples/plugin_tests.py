"""Tests of a small plugin with the acctdomain pytest kit (docs/plugins.md, "Testing plugins").

The fixtures come with acctdomain (entry point ``pytest11: acctdomain``): nothing to import
or configure. tests/test_pytest_kit.py runs this file.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from acctdomain import Money, ProductLine
from acctdomain.domain import Account, EventContext
from acctdomain.domain import events as ev
from acctdomain.errors import AccountNotActive
from acctdomain.plugins import Kpi, KpiContext, KpiValue, Projection, Rows, hookimpl
from acctdomain.testing import (
    AccountScenario,
    ManualClock,
    ProjectionScenarioFactory,
    ServiceFactory,
)

# --- the plugin under test --------------------------------------------------------------------


class Touchpoints(Projection):
    """Table ``touchpoints``: key = account id (hex), value = how many contacts were logged."""

    name = "touchpoints"
    tables = ("touchpoints",)
    event_types = (ev.ContactLogged,)

    def apply(self, event: Any, rows: Rows) -> None:
        key = event.originator_id.hex
        row = rows.get("touchpoints", key) or {"count": 0}
        rows.put("touchpoints", key, {"count": row["count"] + 1, "last": event.effective_at})


def contacts(context: KpiContext) -> KpiValue:
    """Contacts logged, over the whole book."""
    rows = context.read_model("touchpoints").scan("touchpoints")
    return KpiValue(sum(row["count"] for _, row in rows))


class TouchpointsPlugin:
    @hookimpl
    def acctdomain_register_projections(self, register: Callable[[Projection], None]) -> None:
        register(Touchpoints())

    @hookimpl
    def acctdomain_register_kpis(self, register: Callable[[Kpi], None]) -> None:
        register(
            Kpi(
                name="contacts",
                title="Contacts logged",
                unit="count",
                compute=contacts,
                projections=("touchpoints",),
            )
        )


# --- the aggregate: given / when / then --------------------------------------------------------


def start_contract(account: Account, ctx: EventContext) -> None:
    lines = [ProductLine("core", Money(12_000, "EUR"))]
    account.start_contract(term_end=date(2027, 1, 31), lines=lines, ctx=ctx)


def log_call(account: Account, ctx: EventContext) -> None:
    account.log_contact(
        channel="phone",
        direction="outbound",
        summary="check-in",
        stakeholder_ids=(),
        duration_minutes=15,
        ctx=ctx,
    )


def test_a_call_is_logged(account_scenario: AccountScenario) -> None:
    [logged] = account_scenario.when(log_call).then((ev.ContactLogged, {"summary": "check-in"}))
    assert logged.actor == "amy"
    account_scenario.then_state(contact_count=1)


def test_a_churned_account_cannot_renew(account_scenario: AccountScenario) -> None:
    account_scenario.given(
        start_contract,
        lambda account, ctx: account.churn(reason="price", detail="", ctx=ctx),
    )
    account_scenario.when(
        lambda account, ctx: account.renew(
            term_end=date(2028, 1, 31), lines=[ProductLine("core", Money(1, "EUR"))], ctx=ctx
        )
    ).then_refused(AccountNotActive, field="status", match="churned")


def test_history_can_be_given_as_events(account_scenario: AccountScenario) -> None:
    earlier = AccountScenario().given(start_contract)
    account_scenario.given(*earlier.history).when(log_call).then(ev.ContactLogged)
    assert account_scenario.state.account_id == earlier.account_id


# --- the projection ------------------------------------------------------------------------------


def test_touchpoints_count_the_contacts_of_each_account(
    projection_scenario: ProjectionScenarioFactory,
) -> None:
    scenario = projection_scenario(TouchpointsPlugin())
    account_id = scenario.open_account()
    for _ in range(2):
        scenario.service.log_contact(account_id, channel="email", direction="inbound", actor="amy")
    scenario.project()
    assert scenario.row("touchpoints", account_id)["count"] == 2
    assert list(scenario.rows("touchpoints")) == [account_id.hex]


# --- the whole plugin in a service ---------------------------------------------------------------


def test_the_kpi_counts_contacts_in_the_scorecard(acctdomain_service: ServiceFactory) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    service = acctdomain_service(TouchpointsPlugin(), clock=clock)
    opened = service.open_account(
        name="Acme",
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        actor="amy",
    )
    service.log_contact(opened.account_id, channel="phone", direction="outbound", actor="amy")
    lines = {line.name: line for line in service.scorecard(date(2026, 3, 1), date(2026, 3, 31))}
    assert lines["contacts"].value == KpiValue(1)
