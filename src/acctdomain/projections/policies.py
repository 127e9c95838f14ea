"""Runs policies: reactions to new events, issued as ordinary commands, each exactly once.

A policy's position is tracked like a projection's (key ``policy:<name>``, version 0). Every
reaction carries an idempotency key made of the policy, the event and the reaction's index,
so a runner that crashed after issuing and before advancing, or a reset position, replays
the command's first result instead of appending again.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from uuid import UUID

from acctdomain.errors import AccountNotFound, CommandRejected, InvalidValue
from acctdomain.plugins.types import Policy, Reaction
from acctdomain.projections.eventids import event_id
from acctdomain.projections.factory import read_model_store_for
from acctdomain.projections.feed import Decoded, Decoder, fetch_after, lowest
from acctdomain.projections.keys import ReadModelKey
from acctdomain.projections.status import Failure, PolicyRefusal
from acctdomain.projections.store import PositionConflict, ReadModelStore

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = ["PolicyRunner"]

log = logging.getLogger(__name__)


class PolicyRunner:
    """Feeds new events to ``policies`` and issues their reactions through ``service``.

    A refused reaction (CommandRejected, AccountNotFound) is recorded in :attr:`refusals` and
    the policy goes on. Any other error stops that policy at the event (see :meth:`failures`)
    until :meth:`resume`; the others go on.
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
    def refusals(self) -> tuple[PolicyRefusal, ...]:
        """Reactions the service refused, oldest first (in this process)."""
        return tuple(self._refusals)

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

    def run(self) -> int:
        """Handle every event after each policy's position; returns the notifications read."""
        positions = {
            name: self.position(name) for name in self._policies if name not in self._failures
        }
        read = 0
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
                reached = self._handle(policy, start, end, decoded)
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

    def _handle(self, policy: Policy, start: int, end: int, decoded: list[Decoded]) -> int | None:
        """React to one batch; the new position, or None if the policy stopped."""
        done = start
        for entry in decoded:
            if entry.unknown or entry.cls is None or not _wants(policy, entry.cls):
                continue
            try:
                if entry.error is not None:
                    raise entry.error
                for index, reaction in enumerate(policy.react(entry.event)):
                    self._issue(policy, entry, index, reaction)
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

    def _issue(self, policy: Policy, entry: Decoded, index: int, reaction: Reaction) -> None:
        event = entry.event
        cause = event_id(event)
        options: dict[str, Any] = {
            "actor": f"policy:{policy.name}",
            "causation_id": cause,
            "idempotency_key": f"policy:{policy.name}:{cause}:{index}",
        }
        correlation_id = getattr(event, "correlation_id", None)
        if isinstance(correlation_id, UUID):
            options["correlation_id"] = correlation_id
        command = _command(self._service, reaction.command)
        try:
            command(account_id=reaction.account_id, **reaction.arguments, **options)
        except (CommandRejected, AccountNotFound) as refusal:
            log.warning("policy %s: %s refused: %s", policy.name, reaction.command, refusal)
            self._refusals.append(
                PolicyRefusal(
                    policy=policy.name,
                    event_id=cause,
                    position=entry.position,
                    command=reaction.command,
                    account_id=reaction.account_id,
                    error=repr(refusal),
                )
            )

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
