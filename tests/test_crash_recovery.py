"""Exactly-once across crashes: after a crash at any point, resuming gives the read models a
clean rebuild gives, table for table, on SQLite and PostgreSQL.

Two kinds of crash: an exception that is not an ``Exception`` (as ``KeyboardInterrupt`` or a
``SystemExit`` from a signal handler) escaping from a projection at a random event, which the
runner must not swallow and whose batch must vanish; and a process killed with SIGKILL in the
middle of catching up, which runs no clean-up at all.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acctdomain import AccountService, Money, ProductLine
from acctdomain.domain import events as ev
from acctdomain.plugins import PluginHost
from acctdomain.plugins.types import Projection, Rows
from acctdomain.projections import ProjectionRunner
from tests.pg import drop_schema, new_schema_url

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).with_name("crash_worker.py")


class PowerCut(BaseException):
    """Not an Exception: escapes the runner's failure handling, as a crash does."""


class ContactsPerAccount(Projection):
    """Counts contacts and keeps the order they came in, per account."""

    name = "crash_contacts"
    tables = ("per_account",)
    event_types = (ev.ContactLogged,)
    cut_at: ClassVar[int | None] = None
    seen: ClassVar[int] = 0

    def apply(self, event: Any, rows: Rows) -> None:
        type(self).seen += 1
        if type(self).seen == type(self).cut_at:
            raise PowerCut(f"power cut at event {self.seen}")
        key = event.originator_id.hex
        row = rows.get("per_account", key) or {"count": 0, "versions": []}
        rows.put(
            "per_account",
            key,
            {"count": row["count"] + 1, "versions": [*row["versions"], event.originator_version]},
        )


class RevenueLog(Projection):
    """Every revenue event, one row each, keyed by account and version."""

    name = "crash_revenue"
    tables = ("events",)
    event_types = (ev.ContractStarted, ev.Upsold)

    def apply(self, event: Any, rows: Rows) -> None:
        key = f"{event.originator_id.hex}:{event.originator_version:06d}"
        rows.put("events", key, {"type": type(event).__name__})


def projections() -> list[Projection]:
    return [ContactsPerAccount(), RevenueLog()]


def dump(runner: ProjectionRunner) -> dict[str, dict[str, list[tuple[str, Any]]]]:
    return {
        name: {
            table: sorted(runner.read_model(name).scan(table))
            for table in runner.projection(name).tables
        }
        for name in runner.names
    }


@pytest.fixture(params=["sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A maker of fresh, empty stores of one kind (hypothesis needs one per example)."""
    schemas: list[str] = []

    def make() -> str:
        if request.param == "sqlite":
            return str(tmp_path_factory.mktemp("crash") / "events.db")
        url, schema = new_schema_url()
        schemas.append(schema)
        return url

    yield make
    for schema in schemas:
        drop_schema(schema)


def service_on(url: str) -> AccountService:
    return AccountService(url, plugins=PluginHost(entry_points=False))


def write_history(service: AccountService, steps: list[tuple[int, str]], accounts: int) -> None:
    ids: list[UUID] = []
    for number in range(accounts):
        opened = service.open_account(
            name=f"Company {number}",
            segment="smb",
            industry="retail",
            currency="EUR",
            manager="amy",
            manager_type="sales",
            external_key=f"crash:{number}",
            actor="amy",
        )
        service.start_contract(
            opened.account_id,
            term_end=date(2027, 1, 6),
            lines=[ProductLine("core", Money(1000, "EUR"))],
            actor="amy",
        )
        ids.append(opened.account_id)
    for account, kind in steps:
        account_id = ids[account % accounts]
        if kind == "contact":
            service.log_contact(account_id, channel="email", direction="outbound", actor="amy")
        else:
            service.upsell(account_id, product="core", added_arr=Money(10, "EUR"), actor="amy")


histories = st.tuples(
    st.integers(min_value=1, max_value=4),
    st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from(["contact", "contact", "upsell"])),
        min_size=1,
        max_size=25,
    ),
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories, cut=st.integers(min_value=1, max_value=30), batch=st.integers(1, 7))
def test_a_crash_at_any_event_then_resuming_equals_a_clean_rebuild(
    store: Any, history: tuple[int, list[tuple[int, str]]], cut: int, batch: int
) -> None:
    accounts, steps = history
    service = service_on(store())
    try:
        write_history(service, steps, accounts)
        ContactsPerAccount.seen, ContactsPerAccount.cut_at = 0, cut
        # The process "dies" in catch_up: nothing of the open batch may remain.
        with (
            ProjectionRunner(service, projections(), batch_size=batch) as crashing,
            contextlib.suppress(PowerCut),
        ):
            crashing.catch_up()
        ContactsPerAccount.cut_at = None
        with ProjectionRunner(service, projections(), batch_size=batch) as resumed:
            resumed.catch_up()
            after_resume = dump(resumed)
            resumed.rebuild()
            assert dump(resumed) == after_resume
        contacts = sum(kind == "contact" for _, kind in steps)
        counted = sum(row["count"] for _, row in after_resume["crash_contacts"]["per_account"])
        assert counted == contacts
    finally:
        ContactsPerAccount.cut_at = None
        service.close()


def test_a_killed_process_leaves_a_state_the_next_one_resumes_from(store: Any) -> None:
    url = store()
    service = service_on(url)
    try:
        write_history(service, [(n % 5, "contact") for n in range(600)], accounts=5)
        environment = {**os.environ, "PYTHONPATH": str(ROOT)}
        worker = subprocess.Popen(
            [sys.executable, str(WORKER), url],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Wait until the worker has committed some batches but not all, then kill it.
            assert worker.stdout is not None
            line = worker.stdout.readline()
            assert line.startswith("committed"), worker.stderr.read() if worker.stderr else ""
            os.kill(worker.pid, signal.SIGKILL)
        finally:
            worker.wait(timeout=30)
        assert worker.returncode == -signal.SIGKILL
        with ProjectionRunner(service, projections(), batch_size=7) as resumed:
            before = {status.name: status.position for status in resumed.status()}
            assert 0 < before["crash_contacts"] < (service.recorder.max_notification_id() or 0)
            resumed.catch_up()
            after_resume = dump(resumed)
            resumed.rebuild()
            assert dump(resumed) == after_resume
        rows = dict(after_resume["crash_contacts"]["per_account"])
        assert sum(row["count"] for row in rows.values()) == 600
        for row in rows.values():  # each account's contacts once, in order
            assert row["versions"] == sorted(set(row["versions"]))
    finally:
        service.close()


def test_the_worker_refuses_to_run_without_a_store() -> None:
    result = subprocess.run(
        [sys.executable, str(WORKER)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "usage" in result.stderr
