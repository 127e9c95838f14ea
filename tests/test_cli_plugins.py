"""`acctdomain plugins` and the commands plugins add to the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

import typer
from typer.testing import CliRunner

from acctdomain.cli import build_app
from acctdomain.plugins import DEFAULT_PLUGINS, CliCommand, PluginHost, hookimpl

runner = CliRunner()


def greet(name: Annotated[str, typer.Option(help="Who to greet.")] = "world") -> None:
    """Say hello."""
    typer.echo(f"hello {name}")


def explode() -> None:
    """Always fails."""
    raise RuntimeError("the flux capacitor is empty")


class Commands:
    @hookimpl
    def acctdomain_register_cli_commands(self, register: Callable[[CliCommand], None]) -> None:
        register(CliCommand(name="greet", callback=greet, help="Say hello."))
        register(CliCommand(name="explode", callback=explode))
        group = typer.Typer()
        group.command("ping")(lambda: typer.echo("pong"))
        register(CliCommand(name="tools", callback=group))
        register(CliCommand(name="demo", callback=greet))  # taken by a core command


def host() -> PluginHost:
    return PluginHost(entry_points=False, plugins=[("greeter", Commands())])


def test_plugins_json_lists_every_plugin_with_source_and_status() -> None:
    result = runner.invoke(build_app(host()), ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    names = [plugin["name"] for plugin in report["plugins"]]
    assert names == [*(name for name, _ in DEFAULT_PLUGINS), "greeter"]
    for plugin in report["plugins"]:
        assert set(plugin) == {"name", "version", "source", "hooks", "status", "error"}
    builtin = report["plugins"][0]
    assert (builtin["source"], builtin["status"]) == ("builtin", "loaded")
    greeter = report["plugins"][-1]
    assert greeter["source"] == "explicit"
    assert greeter["hooks"] == ["acctdomain_register_cli_commands"]
    # The clash with `demo` is the greeter's recorded failure.
    assert greeter["status"] == "failed"
    assert "belongs to a core command" in greeter["error"]
    assert report["failures"] == [
        {
            "plugin": "greeter",
            "hook": "acctdomain_register_cli_commands",
            "error": "demo: PluginError: plugin 'greeter': the command name 'demo' belongs to a "
            "core command",
        }
    ]


def test_plugins_table() -> None:
    result = runner.invoke(build_app(host()), ["plugins"])
    assert result.exit_code == 0, result.output
    assert "builtin.accounts" in result.output
    assert "greeter" in result.output


def test_a_plugin_command_runs_with_its_options() -> None:
    app = build_app(host())
    result = runner.invoke(app, ["greet", "--name", "Ada"])
    assert (result.exit_code, result.output) == (0, "hello Ada\n")
    assert runner.invoke(app, ["tools", "ping"]).output == "pong\n"


def test_a_failing_plugin_command_ends_with_one_line_and_exit_code_1() -> None:
    result = runner.invoke(build_app(host()), ["explode"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        "error: plugin 'greeter': RuntimeError: the flux capacitor is empty"
    )


def test_a_plugin_cannot_replace_a_core_command() -> None:
    result = runner.invoke(build_app(host()), ["demo", "--help"])
    assert "Write a realistic, seeded demo book" in result.output
