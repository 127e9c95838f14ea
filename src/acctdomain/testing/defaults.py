"""The values the testing kit fills in when a test does not care: one account, one moment."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

__all__ = ["ACCOUNT_DEFAULTS", "ACTOR", "START"]

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
"""Where scenario clocks start (a Monday morning, UTC)."""

ACTOR = "amy"
"""Who records the commands of a scenario unless the test says otherwise."""

ACCOUNT_DEFAULTS: MappingProxyType[str, Any] = MappingProxyType(
    {
        "name": "Acme",
        "segment": "smb",
        "industry": "software",
        "currency": "EUR",
        "manager": "amy",
        "manager_type": "sales",
        "external_key": None,
    }
)
"""The account a scenario opens when the test does not open one itself."""
