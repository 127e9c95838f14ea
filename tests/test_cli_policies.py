"""`acctdomain policies run`: every policy once against a store, as text and as JSON, exactly
once across invocations, with its exit codes and every refusal of the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from acctdomain.builtin.policies import POLICY_NAMES, PolicySettings
from acctdomain.cli import build_app
from acctdomain.plugins import PluginHost, Policy, Reaction, hookimpl
from tests.conftest import FakeClock
from tests.pg import drop_schema, new_schema_url
from tests.test_policies_builtin import START, policy_host, policy_service
from tests.test_policies_crash import scenario

runner = CliRunner()
KEYS = {
    "db",
    "now",
    "policies",
    "notifications_read",
    "issued",
    "done_before",
    "refused",
    "reactions",
    "refusals",
    "failures",
}
REACTION_KEYS = {"policy", "command", "account_id", "causation_id", "idempotency_key", "outcome"}


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store with one scenario account: a reaction of each built-in policy waits."""
    if request.param == "sqlite":
        url = str(tmp_path / "book.db")
        schema = None
    else:
        url, schema = new_schema_url()
    service = policy_service(url, FakeClock(START))
    try:
        scenario(service)
    finally:
        service.close()
    try:
        yield url
    finally:
        if schema is not None:
            drop_schema(schema)


def invoke(arguments: list[str], host: PluginHost | None = None) -> Result:
    return runner.invoke(build_app(host or policy_host()), ["policies", "run", *arguments])


def as_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    assert set(report) == KEYS
    return report


def test_run_issues_each_reaction_once_across_invocations(db: str) -> None:
    first = as_json(invoke(["--db", db, "--now", "2026-01-07T09:00:00+00:00", "--json"]))
    assert first["policies"] == list(POLICY_NAMES)
    assert first["now"] == "2026-01-07T09:00:00+00:00"
    assert first["notifications_read"] > 0
    assert (first["issued"], first["done_before"], first["refused"]) == (7, 0, 0)
    assert all(set(reaction) == REACTION_KEYS for reaction in first["reactions"])
    assert [r["command"] for r in first["reactions"]] == [
        "set_goal", "add_strategy", "add_tactic", "escalate_issue",
        "set_goal", "add_strategy", "add_tactic",
    ]  # fmt: skip
    assert (first["refusals"], first["failures"]) == ([], {})

    again = as_json(invoke(["--db", db, "--now", "2026-01-07", "--json"]))
    assert again["now"] == "2026-01-07T00:00:00+00:00"
    assert (again["issued"], again["reactions"]) == (0, [])


def test_run_prints_a_summary_and_the_reactions(tmp_path: Path) -> None:
    path = str(tmp_path / "book.db")
    service = policy_service(path, FakeClock(START))
    try:
        scenario(service)
    finally:
        service.close()
    result = invoke(["--db", path, "--now", "2026-01-07T09:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "7 reactions issued, 0 done before, 0 refused" in result.stdout
    assert "escalate_issue" in result.stdout
    assert result.stderr == ""


def test_without_enabled_policies_run_says_so(tmp_path: Path) -> None:
    path = str(tmp_path / "book.db")
    service = policy_service(path, FakeClock(START), PolicySettings())
    try:
        scenario(service)
    finally:
        service.close()
    result = invoke(["--db", path], policy_host(PolicySettings()))
    assert result.exit_code == 0, result.output
    assert "0 reactions issued" in result.stdout
    assert "no policy is registered" in result.stderr


def test_a_stopped_policy_ends_with_exit_code_1(tmp_path: Path) -> None:
    class Broken:
        @hookimpl
        def acctdomain_register_policies(self, register: Any) -> None:
            register(Policy("broken", (), None, due=lambda context: [Reaction("x", START)]))  # type: ignore[arg-type]

    path = str(tmp_path / "book.db")
    policy_service(path, FakeClock(START)).close()
    host = PluginHost(entry_points=False, plugins=[("broken", Broken())])
    result = runner.invoke(build_app(host), ["policies", "run", "--db", path, "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert "needs a key and a cause" in report["failures"]["broken"]["error"]


@pytest.mark.parametrize(
    ("arguments", "starts"),
    [
        (["--now", "tomorrow"], "--now: expected a date"),
        (["--now", "2026-01-07T09:00:00"], "--now: '2026-01-07T09:00:00' has no offset"),
        (["--db", "memory:"], "--db: an in-memory store is empty"),
        (["--db", "/nonexistent/book.db"], "--db: there is no SQLite store"),
    ],
)
def test_mistakes_end_with_one_line_and_exit_code_2(
    tmp_path: Path, arguments: list[str], starts: str
) -> None:
    if "--db" not in arguments:
        arguments = ["--db", str(tmp_path / "missing.db"), *arguments]
    result = invoke(arguments)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {starts}"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_now_defaults_to_the_current_time(tmp_path: Path) -> None:
    path = str(tmp_path / "book.db")
    policy_service(path, FakeClock(START)).close()
    before = datetime.now(UTC)
    report = as_json(invoke(["--db", path, "--json"]))
    assert before <= datetime.fromisoformat(report["now"]) <= datetime.now(UTC)
