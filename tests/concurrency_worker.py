"""Worker functions for tests/test_concurrency.py, run in processes started with "spawn".

Everything here is a top-level function or class, importable by a freshly spawned interpreter.
A worker builds its own AccountService on the shared store, waits at the shared barrier so
that all workers start at the same moment, issues its commands and returns plain, picklable
outcomes. ``ConcurrencyConflict`` is an expected outcome and is recorded; any other exception
fails the test (it reaches the parent as ``WorkerFailed``, with the worker's traceback).
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any
from uuid import UUID

import attrs
from eventsourcing.persistence import IntegrityError

from acctdomain import AccountService, CommandResult
from acctdomain.errors import ConcurrencyConflict

BARRIER_TIMEOUT = 60.0

_barrier: threading.Barrier | None = None


def init_worker(barrier: threading.Barrier) -> None:
    """Pool initializer: keep what all workers share (it cannot travel with a task)."""
    global _barrier
    _barrier = barrier


def _wait_for_everyone() -> None:
    assert _barrier is not None, "init_worker was not run"
    _barrier.wait(BARRIER_TIMEOUT)


class CountingService(AccountService):
    """An AccountService that counts how often a save lost the race to another writer.

    The database is real; this only observes the ``IntegrityError`` that ``_execute`` catches
    (and then retries or reports), so a test can tell a first-time success from a retried one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.collisions = 0

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        try:
            return super().save(*objs, **kwargs)
        except IntegrityError:
            self.collisions += 1
            raise


class WorkerFailed(Exception):
    """An unexpected exception in a worker, with the worker's traceback as text."""


@attrs.frozen
class Outcome:
    """What happened to one command in a worker."""

    worker: int
    seq: int
    account_id: UUID
    summary: str
    actor: str
    key: str | None
    result: CommandResult | None  # None: the command was reported as a ConcurrencyConflict.
    collisions: int  # IntegrityErrors the service caught (and retried or reported) meanwhile.
    conflict: str = ""  # The ConcurrencyConflict's reason, when reported.


def _log_contact(
    service: CountingService,
    worker: int,
    seq: int,
    account_id: UUID,
    summary: str,
    *,
    key: str | None = None,
    expected_version: int | None = None,
    actor: str = "",
) -> Outcome:
    actor = actor or f"worker-{worker}"
    options: dict[str, Any] = {"actor": actor}
    if key is not None:
        options["idempotency_key"] = key
    if expected_version is not None:
        options["expected_version"] = expected_version
    before = service.collisions
    result: CommandResult | None = None
    reason = ""
    try:
        result = service.log_contact(
            account_id, channel="email", direction="outbound", summary=summary, **options
        )
    except ConcurrencyConflict as conflict:
        reason = conflict.reason
    collisions = service.collisions - before
    return Outcome(worker, seq, account_id, summary, actor, key, result, collisions, reason)


def _run(
    store_url: str, max_attempts: int, body: Callable[[CountingService], list[Outcome]]
) -> list[Outcome]:
    """Open a service, run ``body(service)`` (it waits for everyone), always close."""
    assert _barrier is not None, "init_worker was not run"
    service: CountingService | None = None
    try:
        # Services start together too: AccountService serialises its own PostgreSQL start-up.
        service = CountingService(store_url, max_attempts=max_attempts)
        return body(service)
    except BaseException as error:
        # Do not leave the other workers waiting at the barrier for a worker that died.
        _barrier.abort()
        if isinstance(error, threading.BrokenBarrierError):
            raise
        raise WorkerFailed(traceback.format_exc()) from None
    finally:
        if service is not None:
            service.close()


def hammer(
    store_url: str,
    worker: int,
    account_ids: list[UUID],
    commands: int,
    max_attempts: int,
) -> list[Outcome]:
    """Log ``commands`` contacts, round-robin over the shared accounts, each with its own key."""

    def body(service: CountingService) -> list[Outcome]:
        _wait_for_everyone()
        outcomes = []
        for seq in range(commands):
            account_id = account_ids[(worker + seq) % len(account_ids)]
            summary = f"hammer w{worker} c{seq}"
            key = f"hammer-w{worker}-c{seq}"
            outcomes.append(_log_contact(service, worker, seq, account_id, summary, key=key))
        return outcomes

    return _run(store_url, max_attempts, body)


def repeat_same_key(
    store_url: str,
    worker: int,
    account_id: UUID,
    rounds: int,
) -> list[Outcome]:
    """In each round every worker issues the very same command with the very same key."""

    def body(service: CountingService) -> list[Outcome]:
        outcomes = []
        for seq in range(rounds):
            _wait_for_everyone()
            summary = f"same key r{seq}"
            key = f"same-key-r{seq}"
            # The very same command (same arguments, same actor), only from another process.
            outcomes.append(
                _log_contact(
                    service, worker, seq, account_id, summary, key=key, actor="same-caller"
                )
            )
        return outcomes

    return _run(store_url, 8, body)


def race_expected_version(
    store_url: str,
    worker: int,
    account_id: UUID,
    first_version: int,
    rounds: int,
) -> list[Outcome]:
    """In round r every worker expects the account at ``first_version + r``: one may win."""

    def body(service: CountingService) -> list[Outcome]:
        outcomes = []
        for seq in range(rounds):
            _wait_for_everyone()
            summary = f"expected w{worker} r{seq}"
            outcomes.append(
                _log_contact(
                    service,
                    worker,
                    seq,
                    account_id,
                    summary,
                    expected_version=first_version + seq,
                )
            )
        return outcomes

    return _run(store_url, 8, body)


def start_together(store_url: str, worker: int) -> list[Outcome]:
    """Start a service at the same moment as the other workers, on a store nobody set up yet,
    then open one account: the start-up DDL races, not the commands."""
    assert _barrier is not None, "init_worker was not run"
    try:
        _wait_for_everyone()
        service = CountingService(store_url)
    except BaseException as error:
        _barrier.abort()
        if isinstance(error, threading.BrokenBarrierError):
            raise
        raise WorkerFailed(traceback.format_exc()) from None
    try:
        opened = service.open_account(
            name=f"Started {worker}",
            segment="smb",
            industry="retail",
            currency="EUR",
            manager="amy",
            manager_type="sales",
            external_key=f"crm:started-{worker}",
            actor=f"worker-{worker}",
        )
        return [Outcome(worker, 0, opened.account_id, "", f"worker-{worker}", None, opened, 0)]
    finally:
        service.close()
