"""Every error acctdomain raises on purpose, under one base class.

A command that fails with one of these errors appended nothing to the store. Errors about a
command's input or about the account's state carry ``field`` (what was wrong) and ``reason``
(why), and their message reads ``"<field>: <reason>"``.

This module imports only the standard library, so that the domain may use it.
"""

from __future__ import annotations

from uuid import UUID

__all__ = [
    "AccountAlreadyExists",
    "AccountNotActive",
    "AccountNotFound",
    "AcctDomainError",
    "CommandRejected",
    "ConcurrencyConflict",
    "CurrencyMismatch",
    "DuplicateRegistration",
    "IdempotencyKeyReused",
    "InvalidTransition",
    "InvalidValue",
    "NotAuthorized",
    "PluginError",
    "RuleViolation",
    "StoreConfigurationError",
    "UnknownReference",
]


class AcctDomainError(Exception):
    """Base class of every error raised by acctdomain."""


class CommandRejected(AcctDomainError):
    """A command was refused before anything was appended.

    ``field`` names the offending argument (or piece of account state), ``reason`` says why.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[type[Exception], tuple[object, ...]]:
        # Errors cross process boundaries (worker pools, job queues): rebuild from the fields.
        return type(self), (self.field, self.reason)


class InvalidValue(CommandRejected, ValueError):
    """A value is malformed or out of range: a score of 11, a naive datetime, a float amount."""


class CurrencyMismatch(InvalidValue):
    """Amounts in different currencies were combined, or an amount is not in the account's
    contract currency. Converting between currencies is always explicit."""


class RuleViolation(CommandRejected):
    """The input is well formed but the account's current state does not allow the command."""


class AccountNotActive(RuleViolation):
    """The account is not active: it has churned (renewals, upsells, cross-sells, downgrades,
    opportunities and churn wait for a reactivation) or no contract has started yet."""


class UnknownReference(RuleViolation, LookupError):
    """The command names an issue, request, stakeholder, opportunity or plan item that the
    account does not have."""


class InvalidTransition(RuleViolation):
    """The referenced item is not in a state that allows this step (resolving a resolved issue,
    completing a tactic twice)."""


class AccountAlreadyExists(RuleViolation):
    """An account with this id (or derived from this external key) was opened before."""


class NotAuthorized(CommandRejected, PermissionError):
    """A plugin's ``acctdomain_authorize`` hook vetoed the command; ``plugin`` names it. The
    ``field`` is ``actor``, the ``reason`` the plugin's."""

    def __init__(self, field: str, reason: str, plugin: str = "") -> None:
        super().__init__(field, f"{reason} (denied by plugin {plugin!r})" if plugin else reason)
        self.reason = reason
        self.plugin = plugin

    def __reduce__(self) -> tuple[type[Exception], tuple[object, ...]]:
        return type(self), (self.field, self.reason, self.plugin)


class AccountNotFound(AcctDomainError, LookupError):
    """No account with this id exists (or it did not exist yet at the requested moment)."""

    def __init__(self, account_id: UUID, detail: str = "") -> None:
        message = f"account {account_id} not found"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.account_id = account_id
        self.detail = detail

    def __reduce__(self) -> tuple[type[Exception], tuple[object, ...]]:
        return type(self), (self.account_id, self.detail)


class ConcurrencyConflict(AcctDomainError):
    """Another writer changed the account first and the command could not be applied on top of
    that change: the expected version did not match, the command became invalid after a reload
    (the refusal is the ``__cause__``), or the retries ran out."""

    def __init__(self, account_id: UUID, reason: str) -> None:
        super().__init__(f"account {account_id}: {reason}")
        self.account_id = account_id
        self.reason = reason

    def __reduce__(self) -> tuple[type[Exception], tuple[object, ...]]:
        return type(self), (self.account_id, self.reason)


class IdempotencyKeyReused(AcctDomainError):
    """An idempotency key was used again for a different command or different arguments."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"idempotency key {key!r}: {reason}")
        self.key = key
        self.reason = reason

    def __reduce__(self) -> tuple[type[Exception], tuple[object, ...]]:
        return type(self), (self.key, self.reason)


class StoreConfigurationError(AcctDomainError, ValueError):
    """The event store location is malformed, names an unsupported backend, or cannot be
    opened."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[type[Exception], tuple[object, ...]]:
        return type(self), (self.field, self.reason)


class PluginError(AcctDomainError):
    """A plugin could not be loaded or registered something invalid; ``plugin`` names it."""

    def __init__(self, plugin: str, reason: str) -> None:
        super().__init__(f"plugin {plugin!r}: {reason}")
        self.plugin = plugin
        self.reason = reason

    def __reduce__(self) -> tuple[type[Exception], tuple[object, ...]]:
        return type(self), (self.plugin, self.reason)


class DuplicateRegistration(PluginError):
    """Two plugins registered a projection, KPI, signal, policy or command under one name. The
    first registration stays; the second is refused and recorded as the second plugin's
    failure."""

    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        super().__init__(second, f"{kind} {name!r} is registered already by plugin {first!r}")
        self.kind = kind
        self.name = name
        self.first = first
        self.second = second

    def __reduce__(self) -> tuple[type[Exception], tuple[object, ...]]:
        return type(self), (self.kind, self.name, self.first, self.second)
