"""Account identifiers, random or derived from an external key."""

from __future__ import annotations

from uuid import UUID, uuid5

from acctdomain.domain.values import require_text

__all__ = ["ACCOUNT_NAMESPACE", "EVENT_NAMESPACE", "account_id_for", "event_id_for"]

ACCOUNT_NAMESPACE = UUID("5b0f7f3e-6c52-4a43-9d0e-8f1c1d2a7a11")
"""Fixed namespace of the name-based (UUID5) account ids; never change it, ids depend on it."""

EVENT_NAMESPACE = UUID("8c4b1f0e-5a7d-4e21-9b3c-6d2f0a1e7c55")
"""Fixed namespace of event ids; never change it, stored causation ids depend on it."""


def account_id_for(external_key: str) -> UUID:
    """The account id derived from an external key such as ``"crm:0017Q00000AbCdE"``.

    The same key always gives the same id, so importing a record twice addresses the same
    account. Keys are case-sensitive and used as given.

    >>> account_id_for("crm:42") == account_id_for("crm:42")
    True
    """
    return uuid5(ACCOUNT_NAMESPACE, require_text("external_key", external_key))


def event_id_for(originator_id: UUID, originator_version: int) -> UUID:
    """The id of the event at ``originator_version`` in the history of ``originator_id``.

    eventsourcing's events have no id of their own; this one is derived, so every process
    gives the same event the same id (used as the ``causation_id`` of reactions).

    >>> event_id_for(account_id_for("crm:42"), 1) == event_id_for(account_id_for("crm:42"), 1)
    True
    """
    return uuid5(EVENT_NAMESPACE, f"{originator_id}/{originator_version}")
