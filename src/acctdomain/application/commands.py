"""What every command takes besides its own arguments, and what it returns."""

from __future__ import annotations

from datetime import datetime
from typing import Required, TypedDict
from uuid import UUID

import attrs

__all__ = [
    "OPTION_NAMES",
    "CommandOptions",
    "CommandResult",
]


class CommandOptions(TypedDict, total=False):
    """Keyword options shared by every command.

    ``actor`` (required): who records the command; it is written into every event.
    ``effective_at``: when it happened in the business (timezone-aware); default: now.
    ``idempotency_key``: repeating a command with the same key appends nothing and returns the
    first result, across restarts and processes; reusing it for another command is an error.
    ``correlation_id`` / ``causation_id``: tracing ids written into every event; by default a
    fresh correlation id per command and no causation id.
    ``expected_version``: refuse with ConcurrencyConflict unless the account is at this version
    (optimistic locking for a user who edited what they saw).
    """

    actor: Required[str]
    effective_at: datetime
    idempotency_key: str
    correlation_id: UUID
    causation_id: UUID
    expected_version: int


OPTION_NAMES = frozenset(CommandOptions.__annotations__)


@attrs.frozen
class CommandResult:
    """The outcome of a command that was applied (or replayed by its idempotency key).

    ``version`` is the account's version after the command; ``entity_id`` the id of the item
    the command created (issue, request, stakeholder, opportunity, goal, strategy, tactic),
    else None.
    """

    account_id: UUID
    version: int
    entity_id: UUID | None = None
