"""The plugin host: discovery, allow- and block-lists, validation, isolation, duplicates.

Plugins here are small classes registered explicitly, or real distributions written to a
temporary directory on ``sys.path`` so that entry-point discovery finds them.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import acctdomain
from acctdomain import AccountService
from acctdomain.domain import events as ev
from acctdomain.errors import DuplicateRegistration, InvalidValue, NotAuthorized, PluginError
from acctdomain.plugins import (
    BLOCK_ENV_VAR,
    DEFAULT_PLUGINS,
    Denial,
    Kpi,
    KpiValue,
    PluginHost,
    Policy,
    hookimpl,
)
from acctdomain.plugins.types import AuthorizationRequest, Projection

SRC = Path(acctdomain.__file__).parent


def answer_kpi(name: str = "answer", value: int = 42) -> Kpi:
    return Kpi(name=name, title="The answer", unit="count", compute=lambda _: KpiValue(value))


class AnswerPlugin:
    @hookimpl
    def acctdomain_register_kpis(self, register: Callable[[Kpi], None]) -> None:
        register(answer_kpi())


class RaisesEverywhere:
    """Implements every hook and raises in each."""

    @hookimpl
    def acctdomain_register_projections(self, register: Any) -> None:
        raise RuntimeError("projections broke")

    @hookimpl
    def acctdomain_register_kpis(self, register: Any) -> None:
        raise RuntimeError("kpis broke")

    @hookimpl
    def acctdomain_register_health_signals(self, register: Any) -> None:
        raise RuntimeError("signals broke")

    @hookimpl
    def acctdomain_register_policies(self, register: Any) -> None:
        raise RuntimeError("policies broke")

    @hookimpl
    def acctdomain_register_cli_commands(self, register: Any) -> None:
        raise RuntimeError("cli broke")

    @hookimpl
    def acctdomain_register_transcodings(self, register: Any) -> None:
        raise RuntimeError("transcodings broke")

    @hookimpl
    def acctdomain_register_upcasters(self, register: Any) -> None:
        raise RuntimeError("upcasters broke")

    @hookimpl
    def acctdomain_authorize(self, request: AuthorizationRequest) -> Denial | None:
        raise RuntimeError("authorize broke")

    @hookimpl
    def acctdomain_startup(self, service: AccountService) -> None:
        raise RuntimeError("startup broke")


def write_distribution(
    root: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]
) -> None:
    """A minimal installed distribution (dist-info + modules) under ``root``."""
    info = root / f"{name}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[acctdomain]\n{lines}")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)


GOOD_MODULE = """
from acctdomain.plugins import Kpi, KpiValue, hookimpl

__version__ = "1.2.3"

@hookimpl
def acctdomain_register_kpis(register):
    register(Kpi(name="from_entry_point", title="EP", unit="count",
                 compute=lambda context: KpiValue(7)))
"""

MISSPELLED_MODULE = """
from acctdomain.plugins import hookimpl

@hookimpl
def acctdomain_register_kpi(register):
    pass
"""

BAD_SIGNATURE_MODULE = """
from acctdomain.plugins import hookimpl

@hookimpl
def acctdomain_register_kpis(register, colour):
    pass
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three installed plugins: one good, one that fails to import, one misspelled, one with
    a bad hook signature."""
    write_distribution(
        tmp_path,
        "demo_plugins",
        {
            "good": "adgood",
            "broken": "adbroken_does_not_exist",
            "misspelled": "admisspelled",
            "badsignature": "adbadsig",
        },
        {
            "adgood": GOOD_MODULE,
            "admisspelled": MISSPELLED_MODULE,
            "adbadsig": BAD_SIGNATURE_MODULE,
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("ACCTDOMAIN_PLUGINS", raising=False)
    monkeypatch.delenv(BLOCK_ENV_VAR, raising=False)
    return tmp_path


def by_name(host: PluginHost) -> dict[str, dict[str, Any]]:
    return {i.name: i.as_dict() for i in host.status()}


def test_built_ins_load_as_plugins_with_their_hooks() -> None:
    host = PluginHost(entry_points=False)
    plugins = by_name(host)
    assert [name for name, _ in DEFAULT_PLUGINS] == list(plugins)
    accounts = plugins["builtin.accounts"]
    assert (accounts["source"], accounts["status"]) == ("builtin", "loaded")
    assert accounts["hooks"] == ("acctdomain_register_projections",)
    assert accounts["version"] == acctdomain.__version__
    assert "accounts" in host.projections()
    assert {"active_accounts", "arr"} <= set(host.kpis())
    assert not host.failures


def test_entry_points_are_discovered_and_bad_ones_reported(installed: Path) -> None:
    host = PluginHost()
    plugins = by_name(host)
    assert plugins["good"]["source"] == "entry_point"
    assert plugins["good"]["status"] == "loaded"
    assert plugins["good"]["version"] == "1.2.3"
    assert host.kpis()["from_entry_point"].compute(None).value == 7  # type: ignore[arg-type]
    assert plugins["broken"]["status"] == "failed"
    assert "ModuleNotFoundError" in plugins["broken"]["error"]
    assert plugins["misspelled"]["status"] == "failed"
    assert "unknown hook 'acctdomain_register_kpi'" in plugins["misspelled"]["error"]
    assert "did you mean 'acctdomain_register_kpis'" in plugins["misspelled"]["error"]
    assert plugins["badsignature"]["status"] == "failed"
    assert "colour" in plugins["badsignature"]["error"]
    # The misspelled and mis-signed plugins are left out entirely; the rest still works.
    # Commands and projections still work beside the broken plugins.
    service = AccountService("memory:", plugins=host)
    try:
        opened = service.open_account(
            name="Acme",
            segment="smb",
            industry="retail",
            currency="EUR",
            manager="amy",
            manager_type="sales",
            actor="amy",
        )
        assert service.catch_up() == 1
        assert service.read_model("accounts").get("accounts", opened.account_id.hex) is not None
    finally:
        service.close()
    loaded = host.loaded()
    assert loaded[: len(DEFAULT_PLUGINS)] == [name for name, _ in DEFAULT_PLUGINS]
    assert "good" in loaded
    assert not {"broken", "misspelled", "badsignature"} & set(loaded)
    failed = {failure.plugin for failure in host.failures}
    assert failed == {"broken", "misspelled", "badsignature"}


def test_allow_list_limits_entry_points(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCTDOMAIN_PLUGINS", "good")
    plugins = by_name(PluginHost())
    assert plugins["good"]["status"] == "loaded"
    assert plugins["broken"]["status"] == "blocked"
    assert "allow-list" in plugins["broken"]["error"]
    # Built-ins are not subject to the allow-list.
    assert plugins["builtin.kpis"]["status"] == "loaded"


def test_block_list_removes_any_plugin_including_built_ins(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BLOCK_ENV_VAR, "good, builtin.kpis")
    host = PluginHost()
    plugins = by_name(host)
    assert plugins["good"]["status"] == plugins["builtin.kpis"]["status"] == "blocked"
    assert "from_entry_point" not in host.kpis()
    assert "arr" not in host.kpis()
    assert "accounts" in host.projections()


def test_explicit_arguments_override_the_environment(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BLOCK_ENV_VAR, "good")
    host = PluginHost(block=(), allow=["good"])
    assert by_name(host)["good"]["status"] == "loaded"


def test_explicit_plugins_register_with_a_name() -> None:
    host = PluginHost(entry_points=False, plugins=[("answers", AnswerPlugin())])
    plugins = by_name(host)
    assert plugins["answers"]["source"] == "explicit"
    assert plugins["answers"]["hooks"] == ("acctdomain_register_kpis",)
    assert "answer" in host.kpis()


def test_a_second_plugin_of_the_same_name_is_refused() -> None:
    host = PluginHost(entry_points=False, plugins=[("answers", AnswerPlugin())])
    again = host.register(AnswerPlugin(), "answers")
    assert again.status == "failed"
    assert host.kpis()["answer"].compute(None).value == 42  # type: ignore[arg-type]


def test_duplicate_names_are_an_error_naming_both_plugins() -> None:
    host = PluginHost(
        entry_points=False, plugins=[("first", AnswerPlugin()), ("second", AnswerPlugin())]
    )
    kpis = host.kpis()
    assert list(kpis).count("answer") == 1
    [failure] = host.failures
    assert failure.plugin == "second"
    assert failure.hook == "acctdomain_register_kpis"
    assert "kpi 'answer' is registered already by plugin 'first'" in failure.error
    assert "DuplicateRegistration" in failure.error
    with pytest.raises(DuplicateRegistration):
        raise DuplicateRegistration("kpi", "answer", "first", "second")
    with pytest.raises(PluginError, match="second"):
        host.check()


def test_registering_the_wrong_type_is_a_failure_of_that_plugin() -> None:
    class WrongType:
        @hookimpl
        def acctdomain_register_kpis(self, register: Any) -> None:
            register("not a kpi")

    host = PluginHost(entry_points=False, builtins=False, plugins=[("wrong", WrongType())])
    assert host.kpis() == {}
    [failure] = host.failures
    assert failure.plugin == "wrong"
    assert failure.error == "PluginError: plugin 'wrong': expected a kpi, got str"


class BadProjection(Projection):
    name = "bad_version"
    version = -1
    tables = ("rows",)

    def apply(self, event: object, rows: object) -> None:
        """Never called: the projection is refused at registration."""


@pytest.mark.parametrize(
    ("attribute", "value", "field"),
    [
        ("version", -1, "projection.version"),
        ("version", "2", "projection.version"),
        ("name", "Bad Name", "projection"),
        ("tables", "rows", "projection.tables"),
        ("tables", ("no spaces allowed",), "projection.table"),
        ("event_types", [ev.ContactLogged], "projection.event_types"),
        ("event_types", ("ContactLogged",), "projection.event_types"),
        ("on_failure", "stop", "projection.on_failure"),
    ],
)
def test_a_malformed_projection_fails_its_plugin_at_registration(
    attribute: str, value: object, field: str
) -> None:
    bad = BadProjection()
    bad.version = 1
    setattr(bad, attribute, value)

    class Registers:
        @hookimpl
        def acctdomain_register_projections(self, register: Any) -> None:
            register(bad)

    host = PluginHost(entry_points=False, plugins=[("malformed", Registers())])
    assert set(host.projections()) == {
        "accounts", "kpi_facts", "account_plans", "stakeholders", "value_realised", "white_space",
        "attention",
    }  # fmt: skip
    [failure] = host.failures
    assert failure.plugin == "malformed"
    assert f"InvalidValue: {field}" in failure.error
    # The other projections still run.
    service = AccountService("memory:", plugins=host)
    try:
        service.catch_up()
        assert service.read_model("accounts") is not None
    finally:
        service.close()


def test_one_plugin_raising_in_every_hook_stops_nothing_else(store_url: str) -> None:
    host = PluginHost(
        entry_points=False, plugins=[("answers", AnswerPlugin()), ("raiser", RaisesEverywhere())]
    )
    service = AccountService(store_url, plugins=host)
    try:
        opened = service.open_account(
            name="Acme",
            segment="smb",
            industry="retail",
            currency="EUR",
            manager="amy",
            manager_type="sales",
            actor="amy",
        )
        assert service.get_account(opened.account_id).name == "Acme"
        # The other projections run and the scorecard is computed.
        assert service.catch_up() == 1
        assert service.read_model("accounts").get("accounts", opened.account_id.hex) is not None
        assert "answer" in {
            line.name for line in service.scorecard(date(2026, 1, 1), date(2026, 1, 31))
        }
        assert {"answer", "arr"} <= set(host.kpis())
        assert "accounts" in host.projections()
        assert {"engagement", "nps"} <= set(host.health_signals())
        host.policies(), host.cli_commands(), host.upcasters()
        hooks = {failure.hook for failure in host.failures if failure.plugin == "raiser"}
        assert hooks == {
            "acctdomain_startup",
            "acctdomain_register_transcodings",
            "acctdomain_register_upcasters",
            "acctdomain_authorize",
            "acctdomain_register_kpis",
            "acctdomain_register_projections",
            "acctdomain_register_health_signals",
            "acctdomain_register_policies",
            "acctdomain_register_cli_commands",
        }
        assert by_name(host)["raiser"]["status"] == "failed"
        assert by_name(host)["answers"]["status"] == "loaded"
    finally:
        service.close()


def test_a_denial_refuses_the_command_naming_the_plugin_and_appends_nothing() -> None:
    class InternsMayNotChurn:
        @hookimpl
        def acctdomain_authorize(self, request: AuthorizationRequest) -> Denial | None:
            if request.actor.startswith("intern") and request.command == "open_account":
                return Denial("interns may not open accounts")
            return None

    host = PluginHost(entry_points=False, plugins=[("acl", InternsMayNotChurn())])
    service = AccountService("memory:", plugins=host)
    arguments: dict[str, Any] = dict(
        name="Acme",
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
    )
    with pytest.raises(NotAuthorized) as caught:
        service.open_account(**arguments, actor="intern-joe")
    assert (caught.value.field, caught.value.plugin) == ("actor", "acl")
    assert caught.value.reason == "interns may not open accounts"
    assert service.recorder.max_notification_id() is None
    service.open_account(**arguments, actor="amy")
    assert service.recorder.max_notification_id() == 1


# Core modules that may reach a built-in, and why. Imports for type checking only are allowed
# everywhere (they do not run).
CORE_USES_OF_BUILT_INS = {
    # service.health and service.facts read the facts of builtin.workday's read models; with
    # that plugin blocked they raise (tested in test_workday_health.py).
    ("application/read_side.py", "acctdomain.builtin.facts"),
    # The demo shows the day's priorities of builtin.workday (and skips them when blocked).
    ("cli.py", "acctdomain.builtin.day"),
    ("cli.py", "acctdomain.builtin.workday_cli"),
    # ... and one account's plan, by builtin.workday's plan view (None when blocked).
    ("demo/showcase.py", "acctdomain.builtin.day"),
    ("demo/showcase.py", "acctdomain.builtin.plans"),
    # Forecasts read the KPI facts (the read model of builtin.kpis) as the scorecard does.
    ("forecasting/retention.py", "acctdomain.builtin.scorecard_kpis"),
    ("forecasting/risk.py", "acctdomain.builtin.scorecard_kpis"),
    # The report shows today's priorities of builtin.workday, as `acctdomain today --json`
    # gives them, and skips the section when that plugin's read models are missing (blocked).
    ("report/sections.py", "acctdomain.builtin.day"),
    ("report/sections.py", "acctdomain.builtin.facts"),
    ("report/sections.py", "acctdomain.builtin.workday_cli"),
}


def _type_checking_imports(tree: ast.AST) -> set[ast.AST]:
    """The import nodes under ``if TYPE_CHECKING:``."""
    found: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            found.update(n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom))
    return found


def test_no_core_module_imports_a_built_in() -> None:
    for path in SRC.rglob("*.py"):
        if (SRC / "builtin") in path.parents:
            continue
        tree = ast.parse(path.read_text())
        typing_only = _type_checking_imports(tree)
        where = path.relative_to(SRC).as_posix()
        for node in ast.walk(tree):
            if node in typing_only:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if (where, name) in CORE_USES_OF_BUILT_INS:
                    continue
                assert not name.startswith("acctdomain.builtin"), f"{path} imports {name}"


def test_a_hook_that_fails_part_way_registers_nothing() -> None:
    class HalfDone:
        @hookimpl
        def acctdomain_register_kpis(self, register: Any) -> None:
            register(answer_kpi("first_half"))
            raise RuntimeError("the second half failed")

    host = PluginHost(entry_points=False, plugins=[("half", HalfDone())])
    assert "first_half" not in host.kpis()
    assert "arr" in host.kpis()
    assert [f.plugin for f in host.failures] == ["half"]


def test_a_plugin_with_one_duplicate_registers_none_of_its_items() -> None:
    class Clashing:
        @hookimpl
        def acctdomain_register_kpis(self, register: Any) -> None:
            register(answer_kpi("own_figure"))
            register(answer_kpi("arr"))  # a built-in's name

    host = PluginHost(entry_points=False, plugins=[("clashing", Clashing())])
    kpis = host.kpis()
    assert "own_figure" not in kpis
    assert host.owner("acctdomain_register_kpis", "arr") == "builtin.kpis"
    [failure] = host.failures
    assert "kpi 'arr' is registered already by plugin 'builtin.kpis'" in failure.error


def test_a_policy_needs_a_tuple_of_event_classes() -> None:
    with pytest.raises(InvalidValue, match="event_types"):
        Policy(name="bad", event_types=[ev.ContactLogged], react=lambda event: ())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["contact__counts", "counts_", "_counts", "Counts", "1counts", "a" * 49, ""]
)
def test_names_that_could_make_two_tables_one_are_refused(name: str) -> None:
    with pytest.raises(InvalidValue, match="single underscores"):
        answer_kpi(name)


def test_two_projections_never_share_a_table() -> None:
    from acctdomain.projections import ReadModelKey, table_name

    first = table_name(ReadModelKey("a", 1, ("b_v1_c",)), "b_v1_c")
    second = table_name(ReadModelKey("a_v1_b", 1, ("c",)), "c")
    assert first != second
