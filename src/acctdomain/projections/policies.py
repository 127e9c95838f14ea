"""Runs policies: reactions to new events and to time passing, issued as ordinary commands,
each exactly once.

A policy's position in the event store is tracked like a projection's (key
``policy:<name>``, version 0). Every reaction carries an idempotency key,
``policy:<name>:<key>``: the reaction's own key, else (for a reaction to an event)
``<event id>:<index>``. A key already used means the reaction happened: the runner skips it.
So a runner that crashed after issuing and before advancing, a reset position, a second
runner or a clock-driven check asked again on the next run issues nothing twice.

The clock-driven part (``Policy.due``) has no position: it is asked on every run with the
runner's ``now``, after the read models it reads were caught up, and its reactions' keys name
the obligation (the policy, the account, the issue or the renewal date), which is what makes a
repeat a no-op. Rebuilding or replaying read models never calls this runner.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self
from uuid import UUID

import attrs
from eventsourcing.application import AggregateNotFoundError

from acctdomain.application.idempotency import record_id_for
from acctdomain.errors import AccountNotFound, CommandRejected, IdempotencyKeyReused, InvalidValue
from acctdomain.plugins.types import Policy, PolicyContext, Reaction
from acctdomain.projections.eventids import event_id
from acctdomain.projections.factory import read_model_store_for
from acctdomain.projections.feed import Decoded, Decoder, fetch_after, lowest
from acctdomain.projections.keys import ReadModelKey
from acctdomain.projections.status import Failure, PolicyRefusal
from acctdomain.projections.store import PositionConflict, ReadModelStore

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = ["IssuedReaction", "PolicyRunner"]

log = logging.getLogger(__name__)

Outcome = Literal["issued", "done_before", "refused"]


@attrs.frozen
class IssuedReaction:
    """What became of one reaction: ``issued`` (its events were appended now),
    ``done_before`` (its key was used already: nothing appended) or ``refused`` (the service
    refused it; see :attr:`PolicyRunner.refusals`)."""

    policy: str
    command: str
    account_id: UUID
    causation_id: UUID
    idempotency_key: str
    outcome: Outcome

    def as_dict(self) -> dict[str, str]:
        """Plain data (the JSON of ``acctdomain policies run --json``)."""
        return {
            "policy": self.policy,
            "command": self.command,
            "account_id": str(self.account_id),
            "causation_id": str(self.causation_id),
            "idempotency_key": self.idempotency_key,
            "outcome": self.outcome,
        }


class PolicyRunner:
    """Feeds new events to ``policies``, asks the clock-driven ones what is due, and issues
    their reactions through ``service``.

    A refused reaction (CommandRejected, AccountNotFound) is recorded in :attr:`refusals` and
    the policy goes on. Any other error stops that policy (see :meth:`failures`) until
    :meth:`resume`; the others go on.
    """

    def __init__(
        self,
        service: AccountService,
        policies: Iterable[Policy],
        *,
        store: ReadModelStore | None = None,
        batch_size: int = 500,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidValue("batch_size", f"expected an integer >= 1, got {batch_size!r}")
        self._policies: dict[str, Policy] = {}
        for policy in policies:
            if policy.name in self._policies:
                raise InvalidValue("policy.name", f"two policies are named {policy.name!r}")
            self._policies[policy.name] = policy
        self._service = service
        self._owns_store = store is None
        self.store = store if store is not None else read_model_store_for(service)
        self._batch_size = batch_size
        self._decoder = Decoder(service)
        self._failures: dict[str, Failure] = {}
        self._refusals: list[PolicyRefusal] = []
        self._reactions: list[IssuedReaction] = []
        self._with_context = {
            name: policy.react is not None and _names_context(policy.react)
            for name, policy in self._policies.items()
        }

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the store if this runner opened it."""
        if self._owns_store:
            self.store.close()

    @property
    def names(self) -> list[str]:
        """The policies' names, in the order they run."""
        return list(self._policies)

    @property
    def refusals(self) -> tuple[PolicyRefusal, ...]:
        """Reactions the service refused, oldest first (in this process). A clock-driven
        reaction has ``position`` 0 and its cause as ``event_id``."""
        return tuple(self._refusals)

    @property
    def reactions(self) -> tuple[IssuedReaction, ...]:
        """Every reaction this runner handled, oldest first (in this process)."""
        return tuple(self._reactions)

    def failures(self) -> dict[str, Failure]:
        """The stopped policies and why."""
        return dict(self._failures)

    def position(self, name: str) -> int:
        """The last notification id ``name`` handled."""
        return self.store.position(ReadModelKey.for_policy(self._get(name).name))

    def reset(self, name: str | None = None) -> None:
        """Forget the position of one policy (or all): the next run sees every event again,
        and issues nothing twice."""
        for policy in self._policies.values() if name is None else [self._get(name)]:
            self.store.reset(ReadModelKey.for_policy(policy.name))

    def resume(self, name: str) -> None:
        """Run a stopped policy again."""
        self._failures.pop(self._get(name).name, None)

    def run(self, now: datetime | None = None) -> int:
        """Handle every event after each policy's position, then ask the clock-driven
        policies what is due at ``now`` (default: the service's clock); returns the
        notifications read."""
        moment = self._moment(now)
        read = self._follow(moment)
        self.tick(moment)
        return read

    def tick(self, now: datetime | None = None, *, catch_up: bool = True) -> int:
        """Ask every policy with a ``due`` check what time passing requires at ``now``
        (default: the service's clock) and issue it; returns the reactions issued (not
        counting those done before). With ``catch_up`` the read models are brought up to date
        first (nothing is asked, and nothing caught up, when no policy has a ``due`` check)."""
        moment = self._moment(now)
        if not isinstance(catch_up, bool):
            raise InvalidValue("catch_up", f"expected True or False, got {catch_up!r}")
        due = [
            policy
            for policy in self._policies.values()
            if policy.due is not None and policy.name not in self._failures
        ]
        if not due:
            return 0
        if catch_up:
            self._service.catch_up()
        context = self._context(moment)
        issued = 0
        for policy in due:
            assert policy.due is not None
            try:
                for reaction in policy.due(context):
                    if reaction.key is None or reaction.cause is None:
                        raise InvalidValue(
                            "reaction", "a reaction from due() needs a key and a cause"
                        )
                    issued += self._issue(policy, reaction, reaction.key, reaction.cause, None, 0)
            except Exception as error:
                log.error("policy %s failed in due(): %r", policy.name, error, exc_info=error)
                self._failures[policy.name] = Failure(
                    policy.name, self.position(policy.name), repr(error)
                )
        return issued

    def _moment(self, now: datetime | None) -> datetime:
        moment = self._service.clock() if now is None else now
        if not isinstance(moment, datetime) or moment.utcoffset() is None:
            raise InvalidValue("now", f"expected a timezone-aware datetime, got {moment!r}")
        return moment

    def _context(self, now: datetime) -> PolicyContext:
        return PolicyContext(
            now=now, read_model=self._service.read_model, account=self._service.get_account
        )

    def _follow(self, now: datetime) -> int:
        positions = {
            name: self.position(name)
            for name, policy in self._policies.items()
            if policy.react is not None and name not in self._failures
        }
        read = 0
        context = self._context(now)
        while positions:
            start, names = lowest(positions)
            notifications = fetch_after(self._service, start, self._batch_size)
            if not notifications:
                for name in names:
                    del positions[name]
                continue
            read += len(notifications)
            group = [self._policies[name] for name in names]
            decoded = self._decoder.decode(notifications, _wanted_by(group))
            end = notifications[-1].id
            for policy in group:
                reached = self._handle(policy, start, end, decoded, context)
                if reached is None:
                    del positions[policy.name]
                else:
                    positions[policy.name] = reached
        return read

    def _get(self, name: str) -> Policy:
        try:
            return self._policies[name]
        except KeyError:
            raise InvalidValue("policy", f"no policy named {name!r}") from None

    def _handle(
        self,
        policy: Policy,
        start: int,
        end: int,
        decoded: list[Decoded],
        context: PolicyContext,
    ) -> int | None:
        """React to one batch; the new position, or None if the policy stopped."""
        assert policy.react is not None
        done = start
        for entry in decoded:
            if entry.unknown or entry.cls is None or not _wants(policy, entry.cls):
                continue
            try:
                if entry.error is not None:
                    raise entry.error
                event = entry.event
                if self._with_context[policy.name]:
                    reactions = policy.react(event, context=context)
                else:
                    reactions = policy.react(event)
                cause = event_id(event)
                correlation_id = getattr(event, "correlation_id", None)
                for index, reaction in enumerate(reactions):
                    self._issue(
                        policy,
                        reaction,
                        f"{cause}:{index}",
                        cause,
                        correlation_id if isinstance(correlation_id, UUID) else None,
                        entry.position,
                    )
            except Exception as error:
                log.error(
                    "policy %s failed at notification %s: %r",
                    policy.name,
                    entry.position,
                    error,
                    exc_info=error,
                )
                self._failures[policy.name] = Failure(policy.name, entry.position, repr(error))
                self._advance(policy, start, done)
                return None
            done = entry.position
        return self._advance(policy, start, end)

    def _issue(
        self,
        policy: Policy,
        reaction: Reaction,
        default_key: str,
        default_cause: UUID,
        correlation_id: UUID | None,
        position: int,
    ) -> int:
        """Issue one reaction (unless its key was used); 1 if it appended events, else 0."""
        if not isinstance(reaction, Reaction):
            raise InvalidValue("reaction", f"expected a Reaction, got {type(reaction).__name__}")
        key = f"policy:{policy.name}:{reaction.key if reaction.key is not None else default_key}"
        cause = reaction.cause if reaction.cause is not None else default_cause
        options: dict[str, Any] = {
            "actor": f"policy:{policy.name}",
            "causation_id": cause,
            "idempotency_key": key,
        }
        correlation = reaction.correlation_id or correlation_id
        if correlation is not None:
            options["correlation_id"] = correlation
        command = _command(self._service, reaction.command)

        def record(outcome: Outcome) -> None:
            self._reactions.append(
                IssuedReaction(
                    policy.name, reaction.command, reaction.account_id, cause, key, outcome
                )
            )

        if self._used(key):
            record("done_before")
            return 0
        try:
            command(account_id=reaction.account_id, **reaction.arguments, **options)
        except (CommandRejected, AccountNotFound) as refusal:
            log.warning("policy %s: %s refused: %s", policy.name, reaction.command, refusal)
            self._refusals.append(
                PolicyRefusal(
                    policy=policy.name,
                    event_id=cause,
                    position=position,
                    command=reaction.command,
                    account_id=reaction.account_id,
                    error=repr(refusal),
                )
            )
            record("refused")
            return 0
        except IdempotencyKeyReused:
            # Another runner used the key between our check and our command, with other
            # arguments (an account's manager changed in between): the reaction happened.
            log.warning("policy %s: %s was issued already", policy.name, key)
            record("done_before")
            return 0
        record("issued")
        return 1

    def _used(self, key: str) -> bool:
        """Whether a command was recorded under the idempotency key ``key``."""
        try:
            self._service.repository.get(record_id_for(key))
        except AggregateNotFoundError:
            return False
        return True

    def _advance(self, policy: Policy, start: int, end: int) -> int:
        key = ReadModelKey.for_policy(policy.name)
        try:
            with self.store.batch(key) as batch:
                if batch.start != start:
                    raise PositionConflict(f"{key.name} is at {batch.start}, not {start}")
                batch.advance(end)
        except PositionConflict:
            # Another runner got there first; its reactions and ours were the same commands.
            return self.store.position(key)
        return end


def _names_context(react: Callable[..., Any]) -> bool:
    """Whether ``react`` takes a ``context`` parameter (then it is given one)."""
    try:
        parameters = inspect.signature(react).parameters
    except (TypeError, ValueError):
        return False
    return "context" in parameters


def _wanted_by(group: list[Policy]) -> Callable[[type], bool]:
    return lambda cls: any(_wants(policy, cls) for policy in group)


def _wants(policy: Policy, cls: type) -> bool:
    return not policy.event_types or issubclass(cls, policy.event_types)


def _command(service: AccountService, name: str) -> Callable[..., Any]:
    """The service command ``name``: a public method taking ``account_id`` and the command
    options (so a reaction cannot call ``save`` or a query)."""
    method = None if name.startswith("_") else getattr(service, name, None)
    if callable(method):
        parameters = inspect.signature(method).parameters.values()
        if any(p.name == "account_id" for p in parameters) and any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
        ):
            return method  # type: ignore[no-any-return]
    raise AttributeError(f"{name!r} is not a command of {type(service).__name__}")
