"""A projection under test: commands on a real service, then its rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Self
from uuid import UUID

from acctdomain.application.service import AccountService
from acctdomain.application.stores import StoreSpec
from acctdomain.plugins.hookspecs import hookimpl
from acctdomain.plugins.types import Projection, ReadModel
from acctdomain.testing.services import ServiceFactory, open_account

__all__ = ["ProjectionPlugin", "ProjectionScenario", "ProjectionScenarioFactory"]

PROJECTIONS_HOOK = "acctdomain_register_projections"
MAX_ROUNDS = 100  # policies reacting to their own reactions: stop rather than loop forever


class ProjectionPlugin:
    """A plugin that registers one projection (what a test gives instead of a plugin)."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection

    @hookimpl
    def acctdomain_register_projections(self, register: Callable[[Projection], None]) -> None:
        """Register the projection."""
        register(self.projection)


class ProjectionScenario:
    """Run commands on :attr:`service`, call :meth:`project`, then look at the rows.

    ``names`` are the projections under test (those the plugin registered); the row methods
    read the first unless given ``projection=``. Row keys given as a UUID mean its ``.hex``
    (the convention of the built-in read models).
    """

    def __init__(
        self, service: AccountService, names: Sequence[str], factory: ServiceFactory
    ) -> None:
        self.service = service
        """The service to run commands on (its plugins: the built-ins and those given)."""
        self.names = tuple(names)
        self._factory = factory

    @property
    def name(self) -> str:
        """The projection under test."""
        __tracebackhide__ = True
        if not self.names:
            self._factory.check(self.service)
            raise AssertionError("the plugin under test registered no projection")
        return self.names[0]

    def open_account(self, **fields: Any) -> UUID:
        """Open an account with test defaults updated by ``fields``; returns its id."""
        return open_account(self.service, **fields)

    def project(self, *, policies: bool = False) -> Self:
        """Bring every read model up to date (with ``policies``, also run the policies and
        project their reactions, until nothing new happens). A plugin failure, a failed
        projection or policy fails the test here, unless the service allows failures."""
        __tracebackhide__ = True
        for _ in range(MAX_ROUNDS):
            read = self.service.catch_up()
            if policies:
                read += self.service.policies.run()
            if not read:
                break
        else:
            raise AssertionError(f"project(): still not settled after {MAX_ROUNDS} rounds")
        self._factory.check(self.service)
        return self

    def read_model(self, projection: str | None = None) -> ReadModel:
        """Read access to a projection's tables (default: the one under test)."""
        return self.service.read_model(projection or self.name)

    def rows(self, table: str, *, projection: str | None = None) -> dict[str, dict[str, Any]]:
        """Every row of ``table``, by key."""
        return dict(self.read_model(projection).scan(table))

    def row(self, table: str, key: str | UUID, *, projection: str | None = None) -> dict[str, Any]:
        """The row under ``key``; fails the test, listing the keys there are, if missing."""
        __tracebackhide__ = True
        text = key.hex if isinstance(key, UUID) else key
        row = self.read_model(projection).get(table, text)
        if row is None:
            keys = sorted(self.rows(table, projection=projection))
            shown = ", ".join(repr(k) for k in keys[:10]) + (", ..." if len(keys) > 10 else "")
            raise AssertionError(
                f"row(): no row {text!r} in table {table!r} of projection "
                f"{projection or self.name!r} (it has {len(keys)} row(s): {shown or 'none'}); "
                "did you call project()?"
            )
        return row


class ProjectionScenarioFactory:
    """What the ``projection_scenario`` fixture is: call it with a projection or a plugin."""

    def __init__(self, services: ServiceFactory) -> None:
        self._services = services

    def __call__(
        self,
        subject: Projection | type[Projection] | object | tuple[str, object],
        *plugins: object | tuple[str, object],
        store: str | StoreSpec = "memory:",
        clock: Callable[[], datetime] | None = None,
        builtins: bool = True,
        allow_failures: bool = False,
    ) -> ProjectionScenario:
        """A scenario for ``subject``: a :class:`~acctdomain.plugins.Projection` (instance or
        class, registered by a plugin named ``projection:<name>``) or a plugin (object,
        module or ``(name, plugin)``; its projections are those under test). ``plugins`` are
        loaded beside it; the other options are those of ``acctdomain_service``."""
        if isinstance(subject, type) and issubclass(subject, Projection):
            subject = subject()
        if isinstance(subject, Projection):
            plugin_name = f"projection:{subject.name}"
            entry: object | tuple[str, object] = (plugin_name, ProjectionPlugin(subject))
        elif isinstance(subject, tuple):
            plugin_name, entry = str(subject[0]), subject
        else:
            plugin = subject
            plugin_name = getattr(plugin, "__name__", None) or type(plugin).__name__
            entry = (plugin_name, plugin)
        service = self._services(
            entry,
            *plugins,
            store=store,
            clock=clock,
            builtins=builtins,
            allow_failures=allow_failures,
        )
        host = service.plugins
        names = [
            name for name in host.projections() if host.owner(PROJECTIONS_HOOK, name) == plugin_name
        ]
        return ProjectionScenario(service, names, self._services)
