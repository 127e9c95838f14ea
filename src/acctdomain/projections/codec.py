"""Rows as text: the event store's transcoder, so read-model values round-trip exactly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventsourcing.persistence import Transcoder

__all__ = ["RowCodec"]


class RowCodec:
    """Encodes a row (a dict) to JSON text and back with the application's transcoder, which
    keeps Money, Decimal, dates, UUIDs, enums and tuples as they were.

    A transcoder with ``encode_text`` and ``decode_text`` (the application's
    ``ExactJSONTranscoder``) is used on text directly; any other through bytes.
    """

    def __init__(self, transcoder: Transcoder) -> None:
        self._transcoder = transcoder
        encode_text: Callable[[Any], str] | None = getattr(transcoder, "encode_text", None)
        decode_text: Callable[[str], Any] | None = getattr(transcoder, "decode_text", None)
        if encode_text is not None and decode_text is not None:
            self._encode: Callable[[Any], str] = encode_text
            self._decode: Callable[[str], Any] = decode_text
        else:
            self._encode = lambda value: transcoder.encode(value).decode("utf8")
            self._decode = lambda text: transcoder.decode(text.encode("utf8"))

    def dumps(self, value: dict[str, Any]) -> str:
        """The row as JSON text."""
        return self._encode(value)

    def loads(self, text: str) -> dict[str, Any]:
        """The row from JSON text."""
        value = self._decode(text)
        if type(value) is not dict and not isinstance(value, dict):
            raise TypeError(f"a stored row decoded to {type(value).__name__}, expected dict")
        return value
