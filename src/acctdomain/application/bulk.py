"""Many commands on many accounts, decided in memory and saved many accounts per transaction.

:func:`bulk_write` is what an import uses instead of one ``save`` per command. It keeps what a
single command guarantees:

- every command is decided by the ``Account`` aggregate's own method (the same validation:
  a refused command leaves the aggregate untouched, and the account's later commands go on);
- every command passes the plugins' ``acctdomain_authorize`` hook first;
- exactly once: a command with a ``key`` is entered in the account's :class:`BulkLedger`,
  an aggregate saved in the same transaction as the account's events. A key seen before with
  the same ``digest`` is skipped (appends nothing); with another digest it is refused with
  :class:`~acctdomain.errors.IdempotencyKeyReused`. Two writers racing on an account clash on
  the ledger's or the account's version: the loser's transaction appends nothing, and it
  reloads and decides again;
- the store's hash chain and snapshots, because the events go through
  ``Application.save`` (one recorder transaction per save);
- the read side is told after each committed transaction (``_after_command``).

One ledger per account (not one record per command, as :meth:`AccountService` keys do) keeps
the extra writes at one small event per account and transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self
from uuid import UUID, uuid4, uuid5

import attrs
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from acctdomain.domain import Account, EventContext
from acctdomain.errors import (
    AccountAlreadyExists,
    AccountNotFound,
    AcctDomainError,
    CommandRejected,
    ConcurrencyConflict,
    IdempotencyKeyReused,
    InvalidValue,
)

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = [
    "ACCOUNT_COMMANDS",
    "BulkCommand",
    "BulkLedger",
    "BulkResult",
    "Refusal",
    "bulk_write",
    "ledger_id_for",
]

_LEDGER_NAMESPACE = UUID("6a1e2f7c-94d3-4b8e-a5c1-2d7f0b3e9c61")

ACCOUNT_COMMANDS = frozenset(
    {
        "open_account",
        "reassign_manager",
        "log_contact",
        "receive_request",
        "answer_request",
        "add_stakeholder",
        "update_stakeholder",
        "remove_stakeholder",
        "record_feedback",
        "record_value_delivered",
        "start_contract",
        "mark_renewal_due",
        "renew",
        "churn",
        "reactivate",
        "upsell",
        "cross_sell",
        "downgrade",
        "offer_opportunity",
        "win_opportunity",
        "lose_opportunity",
        "raise_issue",
        "respond_to_issue",
        "escalate_issue",
        "resolve_issue",
        "set_goal",
        "add_strategy",
        "add_tactic",
        "complete_tactic",
        "drop_tactic",
        "achieve_goal",
        "abandon_goal",
    }
)
"""The commands :func:`bulk_write` runs: the service's account commands, each decided by the
``Account`` method of the same name (``open_account`` by ``Account.open``)."""


def ledger_id_for(account_id: UUID) -> UUID:
    """The id of the ledger of the account ``account_id``."""
    return uuid5(_LEDGER_NAMESPACE, f"bulk-ledger:{account_id}")


class BulkLedger(Aggregate):
    """The keys of the bulk commands applied to one account, each with its digest."""

    @dataclass(frozen=True)
    class Started(Aggregate.Created):
        account_id: UUID
        entries: dict[str, str]

        def apply(self, aggregate: Any) -> None:
            aggregate.account_id = self.account_id
            aggregate.entries = dict(self.entries)

    @dataclass(frozen=True)
    class Entered(Aggregate.Event):
        entries: dict[str, str]

        def apply(self, aggregate: Any) -> None:
            aggregate.entries.update(self.entries)

    def __init__(self) -> None:
        self.account_id: UUID | None = None
        self.entries: dict[str, str] = {}

    @classmethod
    def start(cls, account_id: UUID, entries: dict[str, str]) -> Self:
        """A new ledger for ``account_id`` with its first ``entries``."""
        return cls._create(
            cls.Started, id=ledger_id_for(account_id), account_id=account_id, entries=entries
        )

    def enter(self, entries: dict[str, str]) -> None:
        """Add keys (with their digests) applied since."""
        self.trigger_event(self.Entered, entries=entries)


Arguments = Mapping[str, Any] | Callable[[Account], Mapping[str, Any]]


@attrs.define(slots=True)
class BulkCommand:
    """One command for :func:`bulk_write`.

    ``command`` is one of :data:`ACCOUNT_COMMANDS`; ``arguments`` are the keyword arguments of
    the ``Account`` method (ids of new items included), or a function of the account that
    returns them (for arguments that depend on its state: a renewal's lines); it may raise
    ``CommandRejected``. ``key`` (optional) makes the command exactly-once on its account,
    ``digest`` says what it was applied with. ``tag`` is the caller's: after a refusal, the
    account's later commands with the same tag are skipped (steps of one input record).
    """

    command: str
    account_id: UUID
    effective_at: datetime
    arguments: Arguments
    key: str = ""
    digest: str = ""
    tag: Any = None


@attrs.frozen
class Refusal:
    """A command that was not applied, and why (``error.field`` / ``error.reason`` where it
    is a CommandRejected)."""

    command: BulkCommand
    error: AcctDomainError


@attrs.define
class BulkResult:
    """What :func:`bulk_write` did. ``committed`` is False when ``all_or_nothing`` refused
    the whole batch (then nothing was appended)."""

    applied: int = 0
    """Commands applied (their events appended)."""
    events: int = 0
    """Account events appended."""
    replayed: int = 0
    """Commands skipped because their key was applied before with the same digest."""
    skipped: int = 0
    """Commands skipped because an earlier command with their tag was refused."""
    accounts: int = 0
    """Accounts that got events."""
    transactions: int = 0
    refused: list[Refusal] = attrs.field(factory=list)
    committed: bool = True

    def _add(self, other: BulkResult) -> None:
        self.applied += other.applied
        self.events += other.events
        self.replayed += other.replayed
        self.skipped += other.skipped
        self.accounts += other.accounts
        self.refused.extend(other.refused)


Group = tuple[UUID, Sequence[BulkCommand]]


def bulk_write(
    service: AccountService,
    groups: Iterable[Group],
    *,
    actor: str,
    correlation_id: UUID | None = None,
    all_or_nothing: bool = False,
    accounts_per_transaction: int = 200,
    progress: Callable[[int], None] | None = None,
) -> BulkResult:
    """Apply ``groups`` (an account id and its commands, in the order to apply them).

    Commands are decided account by account; ``accounts_per_transaction`` accounts are saved
    per transaction. A refused command is reported in the result's ``refused`` and the
    account's other commands go on. With ``all_or_nothing`` everything is decided first and
    saved in one transaction only if nothing was refused; else nothing is appended and
    ``committed`` is False. Every event carries ``actor`` and ``correlation_id`` (default: a
    new one for the whole batch). ``progress(n)`` is called with the number of commands
    handled since its last call.

    A failure while saving (other than a concurrent write, which is retried) propagates; the
    transactions committed before it stay, the one that failed appended nothing, and because
    keyed commands are exactly-once, running the same batch again completes it.
    """
    service._options({"actor": actor})  # validates the actor like any command's
    if accounts_per_transaction < 1:
        raise InvalidValue("accounts_per_transaction", "expected at least 1")
    correlation = correlation_id or uuid4()
    total = BulkResult()
    pending: list[Group] = []
    for group in groups:
        pending.append(group)
        if not all_or_nothing and len(pending) >= accounts_per_transaction:
            _commit(service, pending, actor, correlation, total, progress, all_or_nothing)
            pending = []
    if pending or (all_or_nothing and not total.transactions):
        _commit(service, pending, actor, correlation, total, progress, all_or_nothing)
    return total


def _commit(
    service: AccountService,
    groups: list[Group],
    actor: str,
    correlation: UUID,
    total: BulkResult,
    progress: Callable[[int], None] | None,
    all_or_nothing: bool,
) -> None:
    """Decide ``groups`` and save them in one transaction; after a concurrent write, again."""
    for _attempt in range(service._max_attempts):
        result = BulkResult()
        to_save: list[Any] = []
        for account_id, commands in groups:
            to_save += _decide(service, account_id, commands, actor, correlation, result)
        if all_or_nothing and result.refused:
            result.committed = False
            result.applied = result.events = result.accounts = 0
            total._add(result)
            total.committed = False
            return
        if to_save:
            # The keys of the personal data about to be sealed, in a few reads (new subjects'
            # keys are then written with the events, in their transaction).
            service.personal_data.prefetch_for(
                event for aggregate in to_save for event in aggregate.pending_events
            )
            try:
                service.save(*to_save)
            except IntegrityError:
                continue  # another writer came first: reload and decide again
            total.transactions += 1
            service._after_command()
        total._add(result)
        if progress is not None:
            progress(sum(len(commands) for _, commands in groups))
        return
    raise ConcurrencyConflict(
        groups[0][0], f"gave up after {service._max_attempts} conflicting attempts"
    )


def _decide(
    service: AccountService,
    account_id: UUID,
    commands: Sequence[BulkCommand],
    actor: str,
    correlation: UUID,
    result: BulkResult,
) -> list[Any]:
    """Apply one account's commands to it in memory; the objects to save."""
    try:
        account: Account | None = service._load(account_id)
    except AccountNotFound:
        account = None
    try:
        ledger: BulkLedger | None = service.repository.get(ledger_id_for(account_id))
    except AggregateNotFoundError:
        ledger = None
    known = ledger.entries if ledger is not None else {}
    entered: dict[str, str] = {}
    refused_tags: set[Any] = set()
    options = {"actor": actor}
    now = service.clock()
    version = 0 if account is None else account.version
    for command in commands:
        if command.tag is not None and command.tag in refused_tags:
            result.skipped += 1
            continue
        if command.key:
            first = known.get(command.key) or entered.get(command.key)
            if first is not None:
                if first == command.digest:
                    result.replayed += 1
                    continue
                error: AcctDomainError = IdempotencyKeyReused(
                    command.key, "it was applied before with other values"
                )
                _refuse(result, refused_tags, command, error)
                continue
        try:
            account = _apply(
                service, account, account_id, command, actor, options, now, correlation
            )
        except (CommandRejected, AccountNotFound) as refusal:
            _refuse(result, refused_tags, command, refusal)
            continue
        result.applied += 1
        if command.key:
            entered[command.key] = command.digest
    if account is None or account.version == version:
        return []
    result.events += account.version - version
    result.accounts += 1
    if not entered:
        return [account]
    if ledger is None:
        ledger = BulkLedger.start(account_id, entered)
    else:
        ledger.enter(entered)
    return [account, ledger]


def _refuse(
    result: BulkResult, refused_tags: set[Any], command: BulkCommand, error: AcctDomainError
) -> None:
    result.refused.append(Refusal(command, error))
    if command.tag is not None:
        refused_tags.add(command.tag)


def _apply(
    service: AccountService,
    account: Account | None,
    account_id: UUID,
    command: BulkCommand,
    actor: str,
    options: Any,
    now: datetime,
    correlation: UUID,
) -> Account:
    name = command.command
    if name not in ACCOUNT_COMMANDS:
        raise InvalidValue("command", f"{name!r} is not an account command")
    if command.account_id != account_id:
        raise InvalidValue("account_id", f"the command is for account {command.account_id}")
    if account is None and name != "open_account":
        raise AccountNotFound(account_id)
    arguments = command.arguments
    if callable(arguments):
        assert account is not None
        arguments = arguments(account)
    service._authorize(name, account_id, options, dict(arguments))
    ctx = EventContext(
        actor=actor,
        effective_at=command.effective_at,
        recorded_at=now,
        correlation_id=correlation,
    )
    if name == "open_account":
        if account is not None:
            raise AccountAlreadyExists("account_id", f"account {account_id} exists already")
        return Account.open(account_id=account_id, ctx=ctx, **arguments)
    assert account is not None
    getattr(account, name)(ctx=ctx, **arguments)
    return account
