"""Finding, loading and calling plugins, with one plugin's failure contained to itself.

:class:`PluginHost` wraps a ``pluggy.PluginManager``. It loads the built-in plugins (the
modules in :data:`DEFAULT_PLUGINS`), the entry points of group ``acctdomain`` and plugins given
in code, honouring an allow-list and a block-list. A plugin that fails to import, implements a
hook that does not exist (a misspelling) or whose implementation does not match the hook's
specification is reported and left out. Hooks are called one implementation at a time: an
exception is recorded against its plugin and the other plugins still run.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import logging
import os
import traceback
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs
import pluggy
from eventsourcing.persistence import Transcoding

from acctdomain.errors import DuplicateRegistration, PluginError
from acctdomain.plugins import hookspecs
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
    check_event_types,
    check_failure_policy,
)

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = [
    "ALLOW_ENV_VAR",
    "BLOCK_ENV_VAR",
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginFailure",
    "PluginHost",
    "PluginInfo",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "acctdomain"
ALLOW_ENV_VAR = "ACCTDOMAIN_PLUGINS"
"""Comma-separated names: when set, only these entry-point plugins load."""
BLOCK_ENV_VAR = "ACCTDOMAIN_PLUGINS_BLOCK"
"""Comma-separated names of plugins (built-in, entry point or explicit) never to load."""

DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("builtin.accounts", "acctdomain.builtin.accounts"),
    ("builtin.kpis", "acctdomain.builtin.kpis"),
    ("builtin.health", "acctdomain.builtin.health"),
    ("builtin.workday", "acctdomain.builtin.workday"),
    ("builtin.forecast", "acctdomain.builtin.forecast"),
    ("builtin.policies", "acctdomain.builtin.policies"),
)
"""The built-in features, as (plugin name, module): registered through the same hooks as any
other plugin, so they can be blocked or replaced like one."""

Source = Literal["builtin", "entry_point", "explicit"]
Status = Literal["loaded", "failed", "blocked"]
T = TypeVar("T")


@attrs.frozen
class PluginFailure:
    """Something a plugin did wrong: where (``hook``: a hook name, or ``load``) and what."""

    plugin: str
    hook: str
    error: str
    traceback: str = ""
    at: datetime = attrs.field(factory=lambda: datetime.now(UTC))


@attrs.define
class PluginInfo:
    """What the host knows of one plugin, for ``acctdomain plugins``."""

    name: str
    source: Source
    version: str | None = None
    hooks: tuple[str, ...] = ()
    status: Status = "loaded"
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain data (the JSON of ``acctdomain plugins --json``)."""
        return attrs.asdict(self)


def _names(value: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (value or "").split(",") if part.strip())


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _version() -> str | None:
    try:
        return metadata.version("acctdomain")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return None


class PluginHost:
    """The plugins of one application: built-ins, entry points and explicit ones.

    ``allow`` (default: ``ACCTDOMAIN_PLUGINS``) limits which entry-point plugins load;
    ``block`` (default: ``ACCTDOMAIN_PLUGINS_BLOCK``) names plugins never to load.
    ``entry_points=False`` ignores installed plugins (tests), ``builtins=False`` leaves out the
    built-in features.

    >>> host = PluginHost(entry_points=False)
    >>> [info.name for info in host.infos][:1]
    ['builtin.accounts']
    """

    def __init__(
        self,
        *,
        builtins: bool = True,
        entry_points: bool = True,
        plugins: Iterable[object | tuple[str, object]] = (),
        allow: Iterable[str] | None = None,
        block: Iterable[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.allow = frozenset(allow) if allow is not None else _names(env.get(ALLOW_ENV_VAR))
        self.allow_all = allow is None and not env.get(ALLOW_ENV_VAR)
        self.block = frozenset(block) if block is not None else _names(env.get(BLOCK_ENV_VAR))
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        self.failures: list[PluginFailure] = []
        self._collected: dict[str, dict[str, Any]] = {}
        self._owners: dict[str, dict[str, str]] = {}
        if builtins:
            for name, module in DEFAULT_PLUGINS:
                self._load(name, "builtin", functools.partial(importlib.import_module, module))
        if entry_points:
            self._load_entry_points()
        for item in plugins:
            if isinstance(item, tuple):
                name, plugin = item
                self.register(plugin, name)
            else:
                self.register(item)

    # --- loading ----------------------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None) -> PluginInfo:
        """Register a plugin object or module given in code; returns what was recorded."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        version = getattr(plugin, "__version__", None)
        return self._load(name, "explicit", lambda: plugin, version)

    def _load_entry_points(self) -> None:
        for entry_point in sorted(
            metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
        ):
            version = entry_point.dist.version if entry_point.dist is not None else None
            if not self.allow_all and entry_point.name not in self.allow:
                self._record(
                    PluginInfo(
                        entry_point.name,
                        "entry_point",
                        version,
                        status="blocked",
                        error=f"not in the allow-list {ALLOW_ENV_VAR}",
                    )
                )
                continue
            self._load(entry_point.name, "entry_point", entry_point.load, version)

    def _load(
        self,
        name: str,
        source: Source,
        load: Callable[[], object],
        version: str | None = None,
    ) -> PluginInfo:
        if source == "builtin":
            version = _version()
        if name in self.block:
            return self._record(
                PluginInfo(name, source, version, status="blocked", error=f"in {BLOCK_ENV_VAR}")
            )
        if any(info.name == name and info.status == "loaded" for info in self.infos):
            return self._refuse(name, source, version, "load", "a plugin of this name is loaded")
        try:
            plugin = load()
        except Exception as error:
            return self._refuse(name, source, version, "load", _describe(error), error)
        try:
            self.pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as error:
            return self._refuse(name, source, version, "load", str(error).strip(), error)
        hooks = tuple(sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or ()))
        problem = self._check_hooks(plugin, hooks)
        if problem:
            self.pm.unregister(plugin)
            return self._refuse(name, source, version, "load", problem)
        return self._record(PluginInfo(name, source, version, hooks))

    def _check_hooks(self, plugin: object, hooks: tuple[str, ...]) -> str:
        """Why the plugin's hook implementations cannot be used, or ''."""
        known = [
            name
            for name, caller in vars(self.pm.hook).items()
            if isinstance(caller, pluggy.HookCaller) and caller.has_spec()
        ]
        for hook in hooks:
            caller = getattr(self.pm.hook, hook)
            if not caller.has_spec():
                close = difflib.get_close_matches(hook, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                return f"implements unknown hook {hook!r}{hint}"
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper):
                    return f"hook {hook!r}: wrappers are not supported (each plugin runs alone)"
        return ""

    def _refuse(
        self,
        name: str,
        source: Source,
        version: str | None,
        hook: str,
        reason: str,
        error: BaseException | None = None,
    ) -> PluginInfo:
        self._fail(name, hook, reason, error)
        return self._record(PluginInfo(name, source, version, status="failed", error=reason))

    def _record(self, info: PluginInfo) -> PluginInfo:
        self.infos.append(info)
        self._collected.clear()
        self._owners.clear()
        return info

    def _fail(self, plugin: str, hook: str, reason: str, error: BaseException | None) -> None:
        trace = "".join(traceback.format_exception(error)) if error is not None else ""
        self.failures.append(PluginFailure(plugin, hook, reason, trace))
        log.warning("plugin %r failed in %s: %s", plugin, hook, reason)

    # --- calling ----------------------------------------------------------------------------

    def call(
        self,
        hook: str,
        arguments: Callable[[str], Mapping[str, object]],
        *,
        in_load_order: bool = False,
    ) -> list[tuple[str, object]]:
        """Call every implementation of ``hook``, each alone, in pluggy's order (or in the
        order the plugins were loaded: built-ins, entry points, explicit).

        ``arguments(plugin_name)`` gives the keyword arguments for one plugin. Returns
        (plugin name, result) for each implementation that returned; one that raised is
        recorded in :attr:`failures` and skipped.
        """
        results: list[tuple[str, object]] = []
        impls = getattr(self.pm.hook, hook).get_hookimpls()
        if in_load_order:
            order = {name: index for index, name in enumerate(self.loaded())}
            impls = sorted(impls, key=lambda impl: order.get(impl.plugin_name, len(order)))
        else:
            # pluggy's order: the last registered first, tryfirst/trylast respected.
            impls = list(reversed(impls))
        for impl in impls:
            given = arguments(impl.plugin_name)
            try:
                result = impl.function(*(given[name] for name in impl.argnames))
            except Exception as error:
                self._fail(impl.plugin_name, hook, _describe(error), error)
                continue
            results.append((impl.plugin_name, result))
        return results

    def _collect(
        self, hook: str, kind: str, expected: type[T] | tuple[type, ...], key: Callable[[T], str]
    ) -> dict[str, T]:
        if hook in self._collected:
            return self._collected[hook]
        staged: dict[str, list[tuple[str, T]]] = {}

        def registrar(plugin: str) -> Mapping[str, object]:
            mine = staged.setdefault(plugin, [])

            def register(item: T) -> None:
                if not isinstance(item, expected):
                    raise PluginError(plugin, f"expected a {kind}, got {type(item).__name__}")
                mine.append((key(item), item))

            return {"register": register}

        # In load order, so that of two registrations of one name the first loaded stays.
        failed_before = len(self.failures)
        self.call(hook, registrar, in_load_order=True)
        failed = {f.plugin for f in self.failures[failed_before:] if f.hook == hook}
        found: dict[str, T] = {}
        owners: dict[str, str] = {}
        for plugin, items in staged.items():
            # A plugin whose hook failed part-way registers nothing: what it registered before
            # the failure might depend on what came after.
            if plugin in failed:
                continue
            clash = next(((n, owners[n]) for n, _ in items if n in found), None)
            if clash is not None:
                error = DuplicateRegistration(kind, clash[0], clash[1], plugin)
                self._fail(plugin, hook, _describe(error), error)
                continue
            for name, item in items:
                found[name], owners[name] = item, plugin
        self._collected[hook], self._owners[hook] = found, owners
        return found

    def owner(self, hook: str, name: str) -> str:
        """The plugin that registered ``name`` through ``hook`` ('' if none did)."""
        return self._owners.get(hook, {}).get(name, "")

    def guarded(self, hook: str, name: str, function: Callable[..., T], *args: Any) -> T | None:
        """``function(*args)``, or None if it raised: the error is recorded against the plugin
        that registered ``name`` through ``hook`` (a KPI's compute, a signal's score)."""
        try:
            return function(*args)
        except Exception as error:
            self._fail(self.owner(hook, name) or name, hook, f"{name}: {_describe(error)}", error)
            return None

    def projections(self) -> dict[str, Projection]:
        """Every registered projection, by name."""

        def name(projection: Projection) -> str:
            # Checked here, at registration, so that a malformed projection fails its own
            # plugin rather than the runner of every projection.
            from acctdomain.projections.keys import ReadModelKey

            check_failure_policy("projection.on_failure", projection.on_failure)
            check_event_types("projection.event_types", projection.event_types)
            return ReadModelKey.of(projection).name

        return self._collect("acctdomain_register_projections", "projection", Projection, name)

    def kpis(self) -> dict[str, Kpi]:
        """Every registered KPI, by name."""
        return self._collect("acctdomain_register_kpis", "kpi", Kpi, lambda kpi: kpi.name)

    def exchange_rates(self) -> dict[str, ExchangeRates]:
        """Every registered source of exchange rates, by name, in load order."""
        return self._collect(
            "acctdomain_register_exchange_rates",
            "exchange rate source",
            ExchangeRates,
            lambda source: source.name,
        )

    def health_signals(self) -> dict[str, HealthSignal]:
        """Every registered health signal, by name."""
        return self._collect(
            "acctdomain_register_health_signals", "health signal", HealthSignal, lambda s: s.name
        )

    def policies(self) -> dict[str, Policy]:
        """Every registered policy, by name."""
        return self._collect("acctdomain_register_policies", "policy", Policy, lambda p: p.name)

    def cli_commands(self) -> dict[str, CliCommand]:
        """Every command plugins add to the command line, by name."""
        return self._collect(
            "acctdomain_register_cli_commands", "CLI command", CliCommand, lambda c: c.name
        )

    def transcodings(self) -> dict[str, Transcoding]:
        """Every transcoding plugins registered, by the name it writes into stored JSON."""
        return self._collect(
            "acctdomain_register_transcodings", "transcoding", Transcoding, lambda t: t.name
        )

    def upcasters(self) -> dict[str, Upcaster]:
        """Every registered upcaster, by ``topic@vN``."""
        return self._collect(
            "acctdomain_register_upcasters", "upcaster", Upcaster, lambda u: u.name
        )

    def authorize(self, request: AuthorizationRequest) -> tuple[str, Denial] | None:
        """The first denial of ``request`` (plugin name, denial), or None if all allow.

        A plugin whose authorize hook raises is recorded as failed and does not decide: one
        broken plugin must not stop every command (a plugin that must fail closed catches its
        own errors and returns a Denial).
        """
        for plugin, result in self.call("acctdomain_authorize", lambda _: {"request": request}):
            if isinstance(result, Denial):
                return plugin, result
            if result is not None:
                self._fail(
                    plugin,
                    "acctdomain_authorize",
                    f"returned {type(result).__name__}, expected Denial or None",
                    None,
                )
        return None

    def startup(self, service: AccountService) -> None:
        """Run every plugin's start-up hook."""
        self.call("acctdomain_startup", lambda _: {"service": service})

    # --- reporting --------------------------------------------------------------------------

    def loaded(self) -> list[str]:
        """Names of the plugins that loaded."""
        return [info.name for info in self.infos if info.status == "loaded"]

    def status(self) -> list[PluginInfo]:
        """One entry per plugin, with failures while running folded into its status."""
        failed_later = {failure.plugin: failure for failure in self.failures}
        report = []
        for info in self.infos:
            failure = failed_later.get(info.name)
            if info.status == "loaded" and failure is not None:
                info = attrs.evolve(info, status="failed", error=f"{failure.hook}: {failure.error}")
            report.append(info)
        return report

    def check(self) -> None:
        """Raise PluginError for the first failure recorded (for tests and strict start-ups)."""
        if self.failures:
            first = self.failures[0]
            raise PluginError(first.plugin, f"{first.hook}: {first.error}")
