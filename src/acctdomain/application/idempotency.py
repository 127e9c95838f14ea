"""Idempotency records: one small aggregate per key, saved atomically with the command's events.

Because the record is written in the same transaction as the account's events, a command with a
key is applied exactly once even when two processes race: the loser's transaction fails on the
record's version and it then finds the winner's record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Self
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

__all__ = ["IdempotencyRecord", "derived_id", "fingerprint", "record_id_for"]

_KEY_NAMESPACE = UUID("0d3f4c8e-2b7a-4f57-8a0c-3e6f1b9d2c44")


def record_id_for(key: str) -> UUID:
    """The id of the idempotency record of ``key``."""
    return uuid5(_KEY_NAMESPACE, f"idempotency:{key}")


def derived_id(key: str, purpose: str) -> UUID:
    """A stable id for an item created by the command with ``key`` (same on every repeat)."""
    return uuid5(_KEY_NAMESPACE, f"{purpose}:{key}")


def fingerprint(command: str, encoded_arguments: bytes) -> str:
    """A digest of a command and its caller-given arguments."""
    digest = hashlib.sha256(command.encode() + b"\0" + encoded_arguments)
    return digest.hexdigest()


class IdempotencyRecord(Aggregate):
    """The first result of the command that used a key."""

    @dataclass(frozen=True)
    class Recorded(Aggregate.Created):
        key: str
        command: str
        fingerprint: str
        account_id: UUID
        account_version: int
        entity_id: UUID | None

        def apply(self, aggregate: Any) -> None:
            aggregate.key = self.key
            aggregate.command = self.command
            aggregate.fingerprint = self.fingerprint
            aggregate.account_id = self.account_id
            aggregate.account_version = self.account_version
            aggregate.entity_id = self.entity_id

    def __init__(self) -> None:
        self.key = ""
        self.command = ""
        self.fingerprint = ""
        self.account_id: UUID | None = None
        self.account_version = 0
        self.entity_id: UUID | None = None

    @classmethod
    def record(
        cls,
        *,
        key: str,
        command: str,
        fingerprint: str,
        account_id: UUID,
        account_version: int,
        entity_id: UUID | None,
    ) -> Self:
        """A new record for the first use of ``key``."""
        return cls._create(
            cls.Recorded,
            id=record_id_for(key),
            key=key,
            command=command,
            fingerprint=fingerprint,
            account_id=account_id,
            account_version=account_version,
            entity_id=entity_id,
        )
