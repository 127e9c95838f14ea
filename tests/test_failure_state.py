"""A projection that stopped on a failure is stopped for every process: the failure is kept in
the store beside its position, until a resume or a rebuild (from any process) clears it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from acctdomain import AccountService
from acctdomain.projections import Partition, ProjectionRunner
from tests.projection_fixtures import AccountLedger, Boom, Exploding, contact, open_active


class ExplodingLedger(Exploding):
    """The exploding ledger, splittable by account."""

    name = "exploding_ledger"

    def account_share(self, account_id: UUID) -> dict[str, str]:
        return {"events": f"{account_id.hex}/"}


@pytest.fixture
def runners(service: AccountService) -> Iterator[list[ProjectionRunner]]:
    made: list[ProjectionRunner] = []
    yield made
    for runner in made:
        runner.close()


def runner_of(
    service: AccountService, made: list[ProjectionRunner], *projections: Any, **options: Any
) -> ProjectionRunner:
    # Each runner opens a store of its own (a connection of its own on SQLite and
    # PostgreSQL), as a runner in another process would.
    runner = ProjectionRunner(service, projections, **options)
    made.append(runner)
    return runner


def test_another_runner_sees_the_failure_and_its_resume_holds_everywhere(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    account = open_active(service, "crm:1")
    contact(service, account)
    exploding = ExplodingLedger()
    exploding.arm(2)
    worker = runner_of(service, runners, exploding)
    worker.catch_up()
    observer = runner_of(service, runners, ExplodingLedger())
    [seen] = observer.status()
    assert seen.state == "failed"
    assert seen.last_error is not None
    assert seen.last_error.position == 2
    assert "Boom" in seen.last_error.error
    assert worker.catch_up() == 0  # stopped: it does not try again by itself
    observer.resume("exploding_ledger")
    worker.catch_up()
    [after] = worker.status()
    assert (after.state, after.position) == ("running", service.recorder.max_notification_id())
    assert observer.status()[0].state == "running"


def test_a_rebuild_clears_the_failure(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    open_active(service, "crm:1")
    exploding = ExplodingLedger()
    exploding.arm(1, Boom)
    worker = runner_of(service, runners, exploding)
    worker.catch_up()
    assert worker.status()[0].state == "failed"
    runner_of(service, runners, ExplodingLedger()).rebuild("exploding_ledger")
    [status] = worker.status()
    assert (status.state, status.position) == ("running", service.recorder.max_notification_id())


def test_a_failed_partition_stops_only_its_own_accounts(
    service: AccountService, runners: list[ProjectionRunner]
) -> None:
    accounts = [open_active(service, f"crm:{index}") for index in range(8)]
    halves = (Partition(0, 2), Partition(1, 2))
    exploding = ExplodingLedger()
    exploding.arm(1)
    workers = [
        runner_of(service, runners, exploding, partition=halves[0]),
        runner_of(service, runners, ExplodingLedger(), partition=halves[1]),
    ]
    for worker in workers:
        worker.catch_up()
    for account in accounts:
        contact(service, account)
    for worker in workers:
        worker.catch_up()
    head = service.recorder.max_notification_id()
    assert [(s.state, s.position == head) for w in workers for s in w.status()] == [
        ("failed", False),
        ("running", True),
    ]
    observer = runner_of(service, runners, AccountLedger(), ExplodingLedger())
    assert [s.state for s in observer.status()] == ["running", "failed"]
    observer.resume("exploding_ledger")
    workers[0].catch_up()
    assert [s.state for s in workers[0].status()] == ["running"]
    assert observer.status()[1].position == head
    rows = dict(observer.read_model("exploding_ledger").scan("events"))
    assert len(rows) == head
    assert all(row["times"] == 1 for row in rows.values())
