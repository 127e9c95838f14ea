"""What checkpoints and exports say about the chain they vouch for, and what they read from an
event's stored state.

:data:`CHAIN_SCHEME` names the hash chain of :mod:`acctdomain.audit.chain` (its genesis, its
encoding and SHA-256). A checkpoint or export file carries it, so a file made for another
scheme (or a later version of this one) is refused instead of failing as a rewrite.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

__all__ = ["CHAIN_SCHEME", "b64decode", "b64encode", "decode_state", "state_times"]

CHAIN_SCHEME = "acctdomain-audit-chain-v1"


def b64encode(data: bytes) -> str:
    """Standard base64 (with padding), as text."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: object) -> bytes | None:
    """The bytes of a strict standard base64 text; None if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


def _iso(value: Any) -> str | None:
    # eventsourcing's JSON transcoder tags a datetime as {"_type_": "datetime_iso", "_data_": ...}
    if isinstance(value, dict) and value.get("_type_") == "datetime_iso":
        data = value.get("_data_")
        return data if isinstance(data, str) else None
    return None


def state_times(state: Any) -> tuple[str | None, str | None]:
    """The recorded time (eventsourcing's ``timestamp``) and effective time (``effective_at``)
    of a decoded event state, as the ISO texts stored; None where a state has none (it is not
    JSON, or is compressed or encrypted)."""
    if not isinstance(state, dict):
        return None, None
    return _iso(state.get("timestamp")), _iso(state.get("effective_at"))


def decode_state(state: bytes) -> Any:
    """The JSON value of stored state bytes, or None if they are not UTF-8 JSON."""
    try:
        return json.loads(state)
    except (UnicodeDecodeError, ValueError):
        return None
