"""The hooks a plugin can implement, namespace ``acctdomain``.

A plugin is a module or object with functions marked ``@hookimpl`` and named after these
specifications. Registration hooks receive a ``register`` callback: call it once per thing
registered. Each hook is documented, with an example, in ``docs/plugins.md``.

Hooks are called one implementation at a time by :class:`~acctdomain.plugins.PluginHost`, so a
plugin that raises is recorded as failed and the other plugins still run (plain pluggy would
stop the whole call at the first exception).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy
from eventsourcing.persistence import Transcoding

from acctdomain.plugins.types import (
    AuthorizationRequest,
    CliCommand,
    Denial,
    ExchangeRates,
    HealthSignal,
    Kpi,
    Policy,
    Projection,
    Upcaster,
)

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "acctdomain"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a plugin's function as the implementation of the hook of the same name."""


@hookspec
def acctdomain_register_projections(register: Callable[[Projection], None]) -> None:
    """Register read models: call ``register(projection)`` with a :class:`Projection` instance
    for each. Called once, when the service builds its projection runner."""


@hookspec
def acctdomain_register_kpis(register: Callable[[Kpi], None]) -> None:
    """Register scorecard figures: call ``register(kpi)`` with a :class:`Kpi` for each. Called
    once, when the scorecard is first computed."""


@hookspec
def acctdomain_register_exchange_rates(register: Callable[[ExchangeRates], None]) -> None:
    """Provide exchange rates to the scorecard: call ``register(rates)`` with an
    :class:`ExchangeRates` source for each. Called once, when the scorecard first converts
    money to the reporting currency; sources are asked in load order, before the fixed rates
    of the configuration."""


@hookspec
def acctdomain_register_health_signals(register: Callable[[HealthSignal], None]) -> None:
    """Register inputs to the account health score: call ``register(signal)`` with a
    :class:`HealthSignal` for each. Called once, when health is first computed."""


@hookspec
def acctdomain_register_policies(register: Callable[[Policy], None]) -> None:
    """Register reactions to events and to time passing (``Policy.due``): call
    ``register(policy)`` with a :class:`Policy` for each. Called once, when the policy runner is
    built; policies never run during a rebuild."""


@hookspec
def acctdomain_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """Add commands to the ``acctdomain`` command line: call ``register(command)`` with a
    :class:`CliCommand` for each. Called once, when the CLI starts."""


@hookspec
def acctdomain_register_transcodings(register: Callable[[Transcoding], None]) -> None:
    """Teach the event store a plugin's value types: call ``register(transcoding)`` with an
    ``eventsourcing.persistence.Transcoding`` for each type (its ``name`` must be unique).
    Called once per service, before the store is opened."""


@hookspec
def acctdomain_register_upcasters(register: Callable[[Upcaster], None]) -> None:
    """Bring stored events of a plugin's event classes up to their ``class_version``: call
    ``register(upcaster)`` with an :class:`Upcaster` for each (topic, from_version). Called
    once per service, before the store is opened."""


@hookspec
def acctdomain_authorize(request: AuthorizationRequest) -> Denial | None:
    """Veto a command: return a :class:`Denial` to refuse it (the service raises
    :class:`~acctdomain.errors.NotAuthorized` naming the plugin and appends nothing), or
    ``None`` to let it pass. Called before every command, after its options are checked."""


@hookspec
def acctdomain_startup(service: AccountService) -> None:
    """Do start-up work with the service (create tables, warm caches, check configuration).
    Called once, at the end of ``AccountService.__init__``."""
