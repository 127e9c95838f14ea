"""The pytest plugin of acctdomain (entry point ``pytest11: acctdomain``): fixtures for
testing plugins and the domain.

Installed with acctdomain, so any test can use:

- ``acctdomain_service(*plugins, store="memory:", clock=None, builtins=True,
  allow_failures=False)``: a service whose plugin host has exactly these plugins (see
  :class:`~acctdomain.testing.ServiceFactory`); closed after the test. A plugin failure during
  the test fails it, with the plugin's traceback, unless ``allow_failures=True``.
- ``account_scenario``: an :class:`~acctdomain.testing.AccountScenario` (given / when / then
  on the Account aggregate, no store).
- ``projection_scenario(projection_or_plugin, *plugins, **options)``: a
  :class:`~acctdomain.testing.ProjectionScenario` (commands on ``.service``, then
  ``.project()`` and ``.rows(table)`` / ``.row(table, key)``).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from acctdomain.testing.projection import ProjectionScenarioFactory
from acctdomain.testing.scenario import AccountScenario
from acctdomain.testing.services import ServiceFactory

__all__ = [
    "account_scenario",
    "acctdomain_service",
    "projection_scenario",
    "pytest_runtest_call",
]

FACTORY = pytest.StashKey[ServiceFactory]()
"""Where a test keeps its service factory, for the check after the test body."""


@pytest.fixture
def acctdomain_service(request: pytest.FixtureRequest) -> Iterator[ServiceFactory]:
    """Build services with exactly the plugins given; closed, and checked for plugin
    failures, after the test: ``acctdomain_service(MyPlugin(), store="memory:")``."""
    factory = ServiceFactory()
    request.node.stash[FACTORY] = factory
    yield factory
    try:
        # Failures the check after the test body could not report (the test failed first,
        # or they happened during teardown).
        report = factory.report()
    finally:
        factory.close()
    if report:
        pytest.fail(report, pytrace=False)


@pytest.fixture
def account_scenario() -> AccountScenario:
    """A fresh given / when / then scenario for one Account aggregate."""
    return AccountScenario()


@pytest.fixture
def projection_scenario(acctdomain_service: ServiceFactory) -> ProjectionScenarioFactory:
    """Build a projection scenario: ``projection_scenario(MyProjection())`` or
    ``projection_scenario(my_plugin)``; its service is one of ``acctdomain_service``'s."""
    return ProjectionScenarioFactory(acctdomain_service)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """After the test body, report its services' plugin failures: a test that passed fails
    with them; a test that failed shows them beside its own error."""
    factory = item.stash.get(FACTORY, None)
    try:
        yield
    except BaseException as error:
        skipped = isinstance(error, pytest.skip.Exception)
        report = factory.report() if factory is not None and not skipped else ""
        if report:
            error.add_note(report)
        raise
    report = factory.report() if factory is not None else ""
    if report:
        pytest.fail(report, pytrace=False)
