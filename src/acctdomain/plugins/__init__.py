"""The plugin system: hook specifications, what plugins register, and the host that loads them.

A plugin author needs only this module::

    from acctdomain.plugins import Kpi, KpiValue, hookimpl

    @hookimpl
    def acctdomain_register_kpis(register):
        register(Kpi(name="answer", title="The answer", unit="count",
                     compute=lambda context: KpiValue(42)))
"""

from acctdomain.plugins.hookspecs import hookimpl
from acctdomain.plugins.host import (
    ALLOW_ENV_VAR,
    BLOCK_ENV_VAR,
    DEFAULT_PLUGINS,
    ENTRY_POINT_GROUP,
    PluginFailure,
    PluginHost,
    PluginInfo,
)
from acctdomain.plugins.types import (
    AuthorizationRequest,
    CliCommand,
    DeadLetter,
    Denial,
    ExchangeRates,
    FailurePolicy,
    HealthSignal,
    Kpi,
    KpiContext,
    KpiValue,
    Policy,
    Projection,
    Reaction,
    ReadModel,
    Retry,
    Rows,
    Stop,
    Upcaster,
)

__all__ = [
    "ALLOW_ENV_VAR",
    "BLOCK_ENV_VAR",
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "AuthorizationRequest",
    "CliCommand",
    "DeadLetter",
    "Denial",
    "ExchangeRates",
    "FailurePolicy",
    "HealthSignal",
    "Kpi",
    "KpiContext",
    "KpiValue",
    "PluginFailure",
    "PluginHost",
    "PluginInfo",
    "Policy",
    "Projection",
    "Reaction",
    "ReadModel",
    "Retry",
    "Rows",
    "Stop",
    "Upcaster",
    "hookimpl",
]
