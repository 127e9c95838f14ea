"""Testing kit for plugin authors and domain tests (a pytest plugin, entry point
``pytest11: acctdomain``, so installing acctdomain is enough).

Fixtures (see :mod:`acctdomain.testing.pytest_plugin`): ``acctdomain_service``,
``account_scenario`` and ``projection_scenario``. The classes behind them work without
pytest too; a failed check raises AssertionError with a message that says what differs.
"""

from acctdomain.testing.clock import ManualClock
from acctdomain.testing.defaults import ACCOUNT_DEFAULTS, ACTOR, START
from acctdomain.testing.projection import (
    ProjectionPlugin,
    ProjectionScenario,
    ProjectionScenarioFactory,
)
from acctdomain.testing.scenario import AccountScenario, Command, Expected, describe_event
from acctdomain.testing.services import ServiceFactory, open_account

__all__ = [
    "ACCOUNT_DEFAULTS",
    "ACTOR",
    "START",
    "AccountScenario",
    "Command",
    "Expected",
    "ManualClock",
    "ProjectionPlugin",
    "ProjectionScenario",
    "ProjectionScenarioFactory",
    "ServiceFactory",
    "describe_event",
    "open_account",
]
