"""Rows as text: the event store's transcoder, so read-model values round-trip exactly."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Transcoder

__all__ = ["RowCodec"]


class RowCodec:
    """Encodes a row (a dict) to JSON text and back with the application's transcoder, which
    keeps Money, Decimal, dates, UUIDs, enums and tuples as they were."""

    def __init__(self, transcoder: Transcoder) -> None:
        self._transcoder = transcoder

    def dumps(self, value: dict[str, Any]) -> str:
        """The row as JSON text."""
        return self._transcoder.encode(value).decode("utf8")

    def loads(self, text: str) -> dict[str, Any]:
        """The row from JSON text."""
        value = self._transcoder.decode(text.encode("utf8"))
        if not isinstance(value, dict):
            raise TypeError(f"a stored row decoded to {type(value).__name__}, expected dict")
        return value
