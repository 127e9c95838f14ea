"""Old stored events load as the current version through their upcasters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from acctdomain import AccountService, Channel, Direction
from acctdomain.domain import events as ev

OPENED = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def test_a_stored_version_1_contact_loads_as_version_2(service: AccountService) -> None:
    opened = service.open_account(
        name="Legacy Ltd",
        segment="smb",
        industry="retail",
        currency="EUR",
        manager="amy",
        manager_type="sales",
        actor="migration",
        effective_at=OPENED,
    )
    # Exactly what version 1 of ContactLogged wrote: no class_version, no duration_minutes.
    v1_state = {
        "timestamp": {"_type_": "datetime_iso", "_data_": "2024-03-02T09:00:00+00:00"},
        "effective_at": {"_type_": "datetime_iso", "_data_": "2024-03-02T08:30:00+00:00"},
        "actor": "amy",
        "correlation_id": {"_type_": "uuid_hex", "_data_": uuid4().hex},
        "causation_id": None,
        "channel": {"_type_": "enum:acctdomain.domain.values.Channel", "_data_": "phone"},
        "direction": {"_type_": "enum:acctdomain.domain.values.Direction", "_data_": "inbound"},
        "summary": "Asked about renewal pricing",
        "stakeholder_ids": {"_type_": "tuple", "_data_": []},
    }
    service.recorder.insert_events(
        [
            StoredEvent(
                originator_id=opened.account_id,
                originator_version=2,
                topic=get_topic(ev.ContactLogged),
                state=json.dumps(v1_state).encode(),
            )
        ]
    )

    contact = service.history(opened.account_id)[-1]

    assert isinstance(contact, ev.ContactLogged)
    assert contact.duration_minutes is None
    assert contact.channel is Channel.PHONE
    assert contact.direction is Direction.INBOUND
    assert contact.stakeholder_ids == ()
    assert service.get_account(opened.account_id).contact_count == 1
    # New writes carry the current version.
    service.log_contact(
        opened.account_id, channel="email", direction="outbound", duration_minutes=15, actor="amy"
    )
    [_, _, stored] = service.recorder.select_events(opened.account_id)
    assert json.loads(stored.state)["class_version"] == 2
