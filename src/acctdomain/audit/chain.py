"""The hash chain: how one stored event is linked to the one before it.

Every event of an application's store has one chain row, keyed by its notification id, holding

    hash(n) = SHA-256( hash(n-1) || header || originator id || topic || state )

where ``hash(n-1)`` is the hash of the previous event in notification order (:data:`GENESIS`
for the first one) and ``header`` packs, big-endian, the notification id and the originator
version (8 bytes each, signed) and the byte lengths of the three variable fields that follow
(4 bytes each). The lengths make the encoding canonical: no two different events give the same
bytes. A UUID originator id is encoded as its 32 lowercase hexadecimal digits (the form SQLite
stores, so verification reads it without converting; PostgreSQL's ``uuid`` column gives the same
bytes), a text id and the topic as UTF-8.

The hash of the last event (the *head*) therefore commits to the whole history up to it: a
signed (head hash, position) pair proves later that the store still extends what was signed.
"""

from __future__ import annotations

import hashlib
import struct
from uuid import UUID

__all__ = [
    "ALGORITHM",
    "DIGEST_SIZE",
    "GENESIS",
    "HEADER",
    "chain_table_name",
    "encode_originator_id",
    "link",
]

ALGORITHM = "sha256"
DIGEST_SIZE = 32

# The "previous hash" of the first event: a constant that names the scheme and its version, so
# a chain of another scheme (or a later version of this one) can never verify as this one.
GENESIS = hashlib.sha256(b"acctdomain audit chain v1").digest()

HEADER = struct.Struct(">qqIII")
"""notification id, originator version, then the lengths of originator id, topic and state."""
_pack = HEADER.pack
_sha256 = hashlib.sha256


def chain_table_name(events_table_name: str) -> str:
    """The chain table that goes with an events table (``stored_events_chain``...)."""
    return f"{events_table_name}_chain"


def encode_originator_id(originator_id: UUID | str) -> bytes:
    """The canonical bytes of an originator id: a UUID's 32 lowercase hex digits, a text id's
    UTF-8."""
    if isinstance(originator_id, UUID):
        return originator_id.hex.encode("ascii")
    return originator_id.encode("utf-8")


def link(
    previous: bytes,
    notification_id: int,
    originator_id: bytes,
    originator_version: int,
    topic: bytes,
    state: bytes,
) -> bytes:
    """The hash of one event given the hash before it. ``originator_id`` is already encoded
    (:func:`encode_originator_id`) and ``topic`` is UTF-8."""
    return _sha256(
        b"".join(
            (
                previous,
                _pack(
                    notification_id,
                    originator_version,
                    len(originator_id),
                    len(topic),
                    len(state),
                ),
                originator_id,
                topic,
                state,
            )
        )
    ).digest()
