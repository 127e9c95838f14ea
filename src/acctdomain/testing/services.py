"""Services for plugin tests: exactly the plugins a test names, closed after it, and every
plugin failure reported instead of silently contained."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs

from acctdomain.application.service import AccountService
from acctdomain.application.stores import StoreSpec
from acctdomain.plugins.host import PluginHost
from acctdomain.testing.defaults import ACCOUNT_DEFAULTS, ACTOR

if TYPE_CHECKING:
    from acctdomain.projections import PolicyRunner, ProjectionRunner

__all__ = ["ServiceFactory", "open_account"]

OPT_OUT = "pass allow_failures=True to acctdomain_service() if the test expects them"


def open_account(service: AccountService, **fields: Any) -> UUID:
    """Open an account with :data:`~acctdomain.testing.defaults.ACCOUNT_DEFAULTS` updated by
    ``fields`` (command options too: ``actor`` defaults to ``"amy"``, ``effective_at`` to
    the service's clock); returns its id."""
    arguments = {**ACCOUNT_DEFAULTS, "actor": ACTOR, **fields}
    return service.open_account(**arguments).account_id


@attrs.define
class _Built:
    service: AccountService
    allow_failures: bool


def _runner(service: AccountService, name: str) -> Any:
    """The projection or policy runner if the service built it (they are built on first
    use; asking for one here would build it)."""
    return vars(service).get(name)


class ServiceFactory:
    """Builds :class:`~acctdomain.AccountService` objects for a test and cleans up after it.

    Each service gets a :class:`~acctdomain.plugins.PluginHost` with the built-ins (unless
    ``builtins=False``) and exactly the plugins given: no entry points, and the
    ``ACCTDOMAIN_PLUGINS*`` environment variables are ignored. :meth:`check` turns the plugin
    failures the host contained (load errors, hooks that raised, failed projections and
    policies) into one AssertionError; the pytest fixture ``acctdomain_service`` calls it
    after the test.
    """

    def __init__(self) -> None:
        self._built: list[_Built] = []
        self._reported: set[tuple[int, str]] = set()

    def __call__(
        self,
        *plugins: object | tuple[str, object],
        store: str | StoreSpec = "memory:",
        clock: Callable[[], datetime] | None = None,
        builtins: bool = True,
        allow_failures: bool = False,
        block: Iterable[str] = (),
    ) -> AccountService:
        """A new service with these plugins (objects or modules, or ``(name, plugin)``).

        ``store`` is any store location (``"memory:"``, a SQLite path, a PostgreSQL URL);
        ``clock`` the service's clock (default: the real time); ``block`` names plugins
        (built-ins included) to leave out; ``allow_failures`` lets plugin failures of this
        service pass (inspect ``service.plugins.failures`` yourself).
        """
        host = PluginHost(
            builtins=builtins, entry_points=False, plugins=plugins, block=tuple(block), env={}
        )
        if clock is None:
            service = AccountService(store, plugins=host)
        else:
            service = AccountService(store, clock=clock, plugins=host)
        self._built.append(_Built(service, allow_failures))
        return service

    @property
    def services(self) -> tuple[AccountService, ...]:
        """Every service built, oldest first."""
        return tuple(built.service for built in self._built)

    def allows_failures(self, service: AccountService) -> bool:
        """Whether ``service`` was built with ``allow_failures=True``."""
        return any(b.service is service and b.allow_failures for b in self._built)

    def problems(self, service: AccountService | None = None) -> list[str]:
        """Plugin failures not reported yet (of one service, or all), one text each; those of
        services that allow failures are left out. Each is returned once."""
        found: list[str] = []
        for built in self._built:
            if built.allow_failures or (service is not None and built.service is not service):
                continue
            for key, text in _failures_of(built.service):
                if (id(built.service), key) not in self._reported:
                    self._reported.add((id(built.service), key))
                    found.append(text)
        return found

    def check(self, service: AccountService | None = None) -> None:
        """Raise AssertionError listing the plugin failures :meth:`problems` finds."""
        __tracebackhide__ = True
        report = self.report(service)
        if report:
            raise AssertionError(report)

    def report(self, service: AccountService | None = None) -> str:
        """The failures :meth:`problems` finds, as one message ('' if there are none)."""
        problems = self.problems(service)
        if not problems:
            return ""
        items = "\n".join(f"- {problem}" for problem in problems)
        return f"{len(problems)} plugin failure(s) during the test ({OPT_OUT}):\n{items}"

    def close(self) -> None:
        """Close every service and the read-model runners it built."""
        errors: list[Exception] = []
        for built in self._built:
            for name in ("policies", "projections"):
                runner: ProjectionRunner | PolicyRunner | None = _runner(built.service, name)
                if runner is not None:
                    try:
                        runner.close()
                    except Exception as error:  # pragma: no cover - closing is best effort
                        errors.append(error)
            try:
                built.service.close()
            except Exception as error:  # pragma: no cover - closing is best effort
                errors.append(error)
        self._built.clear()
        if errors:  # pragma: no cover
            raise errors[0]


def _failures_of(service: AccountService) -> list[tuple[str, str]]:
    """(identity, text) of every failure recorded for the service's plugins."""
    found: list[tuple[str, str]] = []
    for index, failure in enumerate(service.plugins.failures):
        text = f"plugin {failure.plugin!r} in {failure.hook}: {failure.error}"
        if failure.traceback:
            text += "\n" + textwrap.indent(failure.traceback.rstrip(), "    ")
        found.append((f"host:{index}", text))
    projections: ProjectionRunner | None = _runner(service, "projections")
    if projections is not None:
        for status in projections.status():
            stopped = status.last_error
            if status.state == "failed" and stopped is not None:
                key = f"projection:{stopped.name}:{stopped.position}:{stopped.error}"
                text = (
                    f"projection {stopped.name!r} failed at notification {stopped.position}: "
                    f"{stopped.error} (its traceback is in the captured log)"
                )
                found.append((key, text))
    policies: PolicyRunner | None = _runner(service, "policies")
    if policies is not None:
        for name, halted in policies.failures().items():
            key = f"policy:{name}:{halted.position}:{halted.error}"
            text = (
                f"policy {name!r} stopped at notification {halted.position}: {halted.error} "
                "(its traceback is in the captured log)"
            )
            found.append((key, text))
    return found
