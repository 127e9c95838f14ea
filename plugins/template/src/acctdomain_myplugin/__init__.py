"""acctdomain-myplugin: one example of each kind of thing a plugin adds to acctdomain.

acctdomain loads this module through the entry point ``myplugin`` (group ``acctdomain``, see
pyproject.toml) and calls the functions marked ``@hookimpl`` below. Keep what you need,
delete the rest; ``docs/plugins.md`` of acctdomain documents every hook.

- a projection, ``myplugin_contacts``: contacts logged per account and day;
- a KPI reading it, ``myplugin_contacts``: contacts logged in the period;
- a health signal, ``myplugin_champion``: does the account have a happy champion?
- an authorize hook: automated actors (``bot:...``) may not churn an account;
- a CLI command, ``acctdomain myplugin``: the read model as a table or JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

import typer
from rich.console import Console
from rich.table import Table

from acctdomain import AccountService, Sentiment, StakeholderRole
from acctdomain.builtin.facts import AccountFacts
from acctdomain.domain import events as ev
from acctdomain.plugins import (
    AuthorizationRequest,
    CliCommand,
    Denial,
    HealthSignal,
    Kpi,
    KpiContext,
    KpiValue,
    Projection,
    Rows,
    hookimpl,
)

__version__ = "0.1.0"

__all__ = [
    "CONTACTS",
    "ContactsProjection",
    "acctdomain_authorize",
    "acctdomain_register_cli_commands",
    "acctdomain_register_health_signals",
    "acctdomain_register_kpis",
    "acctdomain_register_projections",
    "champion",
    "contacts_in_period",
    "show",
]

CONTACTS = "myplugin_contacts"
"""The projection's name (unique among all plugins: prefix yours with the plugin's name)."""
TABLE = "contacts"


# --- a projection --------------------------------------------------------------------------------


class ContactsProjection(Projection):
    """Table ``contacts``: key = account id (hex), value = its manager and the number of
    contacts logged per day (effective date, ISO text, as JSON object keys are text).

    ``apply`` must be deterministic: a rebuild replays every event through it.
    """

    name = CONTACTS
    tables = (TABLE,)
    version = 1  # bump when the rows change meaning: the read model is rebuilt beside the old
    event_types: ClassVar[tuple[type, ...]] = (
        ev.AccountOpened,
        ev.ManagerReassigned,
        ev.ContactLogged,
    )
    description = "Contacts logged per account and day, with the account's manager."

    def apply(self, event: Any, rows: Rows) -> None:
        key = event.originator_id.hex
        if isinstance(event, ev.AccountOpened):
            rows.put(TABLE, key, {"name": event.name, "manager": event.manager, "days": {}})
            return
        row = rows.get(TABLE, key)
        if row is None:  # an account opened before this read model saw events
            return
        if isinstance(event, ev.ManagerReassigned):
            row["manager"] = event.manager
        else:
            day = event.effective_at.astimezone(UTC).date().isoformat()
            row["days"] = {**row["days"], day: row["days"].get(day, 0) + 1}
        rows.put(TABLE, key, row)


@hookimpl
def acctdomain_register_projections(register: Callable[[Projection], None]) -> None:
    """Register the read model."""
    register(ContactsProjection())


# --- a KPI reading it ----------------------------------------------------------------------------


def contacts_in_period(context: KpiContext) -> KpiValue:
    """Contacts logged from ``context.start`` to ``context.end`` (effective dates, both
    included), for the accounts of the ``manager`` filter if given."""
    unsupported = sorted(set(context.filters) - {"manager"})
    if unsupported:
        # Undefined is None with the reason, never a misleading 0.
        return KpiValue(None, f"not broken down by {', '.join(unsupported)}")
    start, end = context.start.isoformat(), context.end.isoformat()
    manager = context.filters.get("manager")
    total = 0
    for _, row in context.read_model(CONTACTS).scan(TABLE):
        if manager is None or row["manager"] == manager:
            total += sum(count for day, count in row["days"].items() if start <= day <= end)
    return KpiValue(total)


@hookimpl
def acctdomain_register_kpis(register: Callable[[Kpi], None]) -> None:
    """Register the KPI (computed from the read model, never by replaying events)."""
    register(
        Kpi(
            name="myplugin_contacts",
            title="Contacts logged",
            unit="count",
            compute=contacts_in_period,
            projections=(CONTACTS,),
            description="Calls, emails, meetings and QBRs logged in the period.",
        )
    )


# --- a health signal -----------------------------------------------------------------------------


def champion(facts: AccountFacts, now: datetime) -> float | None:
    """1 with a positive champion, 0.5 with a champion of another mood, 0 without one; None
    (says nothing) while the account has no stakeholder at all."""
    active = facts.stakeholders.people  # the stakeholder map now: people not removed
    if not active:
        return None
    champions = [s for s in active if s.role is StakeholderRole.CHAMPION]
    if any(s.sentiment is Sentiment.POSITIVE for s in champions):
        return 1.0
    return 0.5 if champions else 0.0


@hookimpl
def acctdomain_register_health_signals(register: Callable[[HealthSignal], None]) -> None:
    """Register the signal with its weight in the health score."""
    register(HealthSignal("myplugin_champion", 0.2, champion, "A positive champion."))


# --- an authorize hook ---------------------------------------------------------------------------


@hookimpl
def acctdomain_authorize(request: AuthorizationRequest) -> Denial | None:
    """Automated actors (``bot:...``) may not churn an account; everything else passes."""
    if request.command == "churn" and request.actor.startswith("bot:"):
        return Denial("automated actors may not churn an account")
    return None


# --- a CLI command -------------------------------------------------------------------------------


def show(
    db: Annotated[
        str | None,
        typer.Option("--db", help="Store URL or SQLite file (default: $ACCTDOMAIN_STORE)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Contacts logged per account, from the plugin's read model."""
    service = AccountService(db)
    try:
        service.catch_up()
        rows = [
            {"name": row["name"], "manager": row["manager"], "contacts": sum(row["days"].values())}
            for _, row in service.read_model(CONTACTS).scan(TABLE)
        ]
    finally:
        service.close()
    rows.sort(key=lambda row: (-row["contacts"], row["name"]))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Contacts logged", title_justify="left")
    for column in ("account", "manager", "contacts"):
        table.add_column(column, justify="right" if column == "contacts" else "left")
    for row in rows:
        table.add_row(row["name"], row["manager"], str(row["contacts"]))
    Console().print(table)


@hookimpl
def acctdomain_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """Add ``acctdomain myplugin``."""
    register(CliCommand(name="myplugin", callback=show, help="Contacts logged per account."))
