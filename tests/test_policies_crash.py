"""The built-in policies after a crash: each reaction appears once after resuming, whether the
runner died by an exception that escapes it right after a command (before its position or
the next command) or by SIGKILL in the middle of a run, on every backend.

Run as a script (``python -m tests.test_policies_crash STORE_URL NOW``) this module is the
worker the SIGKILL test kills: it runs the policies slowly, printing ``issued`` after each
command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from acctdomain import AccountService, NpsScore
from acctdomain.builtin.policies import POLICY_NAMES
from acctdomain.projections import PolicyRunner
from tests.conftest import FakeClock
from tests.pg import drop_schema, new_schema_url
from tests.test_policies_builtin import START, open_account, policy_service

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ("set_goal", "add_strategy", "add_tactic", "escalate_issue")
LATER = START + timedelta(days=2)
PER_ACCOUNT = Counter({POLICY_NAMES[0]: 3, POLICY_NAMES[1]: 1, POLICY_NAMES[2]: 3})
"""The reactions one scenario account gets: goal, strategy and tactic of the detractor
follow-up, one escalation, goal, strategy and tactic of the renewal preparation."""


class PowerCut(BaseException):
    """Not an Exception: escapes the runner's error handling, as a crash does."""


def scenario(service: AccountService, name: str = "Acme") -> UUID:
    account = open_account(service, name, term_end=date(2026, 3, 1))
    service.record_feedback(account, score=NpsScore(2), actor="survey")
    service.raise_issue(account, title="Down", severity="critical", category="outage", actor="amy")
    return account


def reactions(service: AccountService, accounts: list[UUID]) -> Counter[str]:
    found: Counter[str] = Counter()
    for account in accounts:
        for event in service.history(account):
            if event.actor.startswith("policy:"):
                found[event.actor.removeprefix("policy:")] += 1
    return found


def runner_of(service: AccountService) -> PolicyRunner:
    return PolicyRunner(service, service.plugins.policies().values())


def crash_after(service: AccountService, runner: PolicyRunner, commands: int) -> None:
    """Make ``runner`` die right after its ``commands``-th command has been stored."""
    done = [0]

    def wrap(name: str) -> Any:
        original = getattr(service, name)

        def command(account_id: UUID, **options: Any) -> Any:
            result = original(account_id, **options)
            done[0] += 1
            if done[0] == commands:
                raise PowerCut(f"power cut after command {commands} ({name})")
            return result

        return command

    runner._service = _Wrapped(service, {name: wrap(name) for name in COMMANDS})  # type: ignore[assignment]


class _Wrapped:
    """The service, with some commands replaced."""

    def __init__(self, service: AccountService, commands: dict[str, Any]) -> None:
        self._inner, self._commands = service, commands

    def __getattr__(self, name: str) -> Any:
        return self._commands.get(name) or getattr(self._inner, name)


@pytest.fixture
def service(store_url: str, clock: FakeClock) -> Iterator[AccountService]:
    app = policy_service(store_url, clock)
    try:
        yield app
    finally:
        app.close()


@pytest.mark.parametrize("commands", [1, 2, 3, 4, 5, 7])
def test_a_crash_right_after_a_command_then_resuming_gives_each_reaction_once(
    service: AccountService, commands: int
) -> None:
    accounts = [scenario(service)]
    crashing = runner_of(service)
    crash_after(service, crashing, commands)
    with pytest.raises(PowerCut):
        crashing.run(now=LATER)
    crashing.close()
    assert sum(reactions(service, accounts).values()) == commands

    with runner_of(service) as resumed:
        resumed.run(now=LATER)
        resumed.run(now=LATER)
        assert (resumed.failures(), resumed.refusals) == ({}, ())
    assert reactions(service, accounts) == PER_ACCOUNT


# --- a process killed with SIGKILL ------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "events.db")
        return
    url, schema = new_schema_url()
    try:
        yield url
    finally:
        drop_schema(schema)


def test_a_killed_runner_resumes_and_issues_each_reaction_once(
    store: str, clock: FakeClock
) -> None:
    service = policy_service(store, clock)
    try:
        accounts = [scenario(service, f"Company {n}") for n in range(4)]
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.test_policies_crash", store, LATER.isoformat()],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert worker.stdout is not None
            issued = 0
            while issued < 9:
                line = worker.stdout.readline()
                assert line, f"the worker ended early: {worker.stderr and worker.stderr.read()}"
                issued += line.startswith("issued")
            worker.kill()  # SIGKILL: no clean-up at all
        finally:
            worker.wait(timeout=30)
        assert worker.returncode == -9
        partial = reactions(service, accounts)
        assert 9 <= sum(partial.values()) < 4 * sum(PER_ACCOUNT.values())

        with runner_of(service) as resumed:
            resumed.run(now=LATER)
            resumed.run(now=LATER)
            assert (resumed.failures(), resumed.refusals) == ({}, ())
        expected = Counter({name: 4 * count for name, count in PER_ACCOUNT.items()})
        assert reactions(service, accounts) == expected
    finally:
        service.close()


def work(url: str, now: str) -> int:
    """The worker: run every policy, slowly, saying ``issued`` after each command."""
    service = policy_service(url, FakeClock(START))
    runner = runner_of(service)

    def slow(name: str) -> Any:
        original = getattr(service, name)

        def command(account_id: UUID, **options: Any) -> Any:
            result = original(account_id, **options)
            print("issued", name, flush=True)
            time.sleep(0.2)  # between the command and the next step: killed here
            return result

        return command

    runner._service = _Wrapped(service, {name: slow(name) for name in COMMANDS})  # type: ignore[assignment]
    runner.run(now=datetime.fromisoformat(now))
    print("finished: not killed in time", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(work(*sys.argv[1:3]))
