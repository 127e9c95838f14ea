"""The hash chain's encoding, and the recorders that write it on each backend."""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import InfrastructureFactory, StoredEvent
from eventsourcing.utils import Environment

from acctdomain.application.stores import parse_store
from acctdomain.audit import GENESIS, chain_table_name, encode_originator_id, link
from acctdomain.errors import StoreConfigurationError
from tests.pg import drop_schema, new_schema_url

ACME = UUID("12345678-1234-5678-1234-567812345678")


def test_a_link_hashes_the_previous_hash_and_the_length_prefixed_fields() -> None:
    originator = encode_originator_id(ACME)
    assert originator == b"12345678123456781234567812345678"
    expected = hashlib.sha256(
        GENESIS + struct.pack(">qqIII", 3, 2, 32, 5, 2) + originator + b"topic" + b"{}"
    ).digest()
    assert link(GENESIS, 3, originator, 2, b"topic", b"{}") == expected


def test_moving_bytes_between_fields_changes_the_link() -> None:
    one = link(GENESIS, 1, b"abc", 1, b"topic", b"state")
    assert link(GENESIS, 1, b"abc", 1, b"topi", b"cstate") != one
    assert link(GENESIS, 2, b"abc", 1, b"topic", b"state") != one
    assert link(GENESIS, 1, b"abc", 2, b"topic", b"state") != one
    assert link(bytes(32), 1, b"abc", 1, b"topic", b"state") != one


def test_text_originator_ids_are_utf8() -> None:
    assert encode_originator_id("crm:Ünïcode") == "crm:Ünïcode".encode()


def test_the_genesis_names_the_scheme() -> None:
    assert hashlib.sha256(b"acctdomain audit chain v1").digest() == GENESIS
    assert chain_table_name("stored_events") == "stored_events_chain"


def _chain_of(kind: str, events: list[StoredEvent], tmp_path: Path) -> list[bytes]:
    if kind == "sqlite":
        spec = parse_store(str(tmp_path / "events.db"))
    else:
        url, schema = new_schema_url()
        spec = parse_store(url)
    try:
        with spec.setting_up():
            factory = InfrastructureFactory.construct(Environment("acctdomain", spec.environment()))
        factory.process_recorder().insert_events(events)
        factory.close()
        if kind == "sqlite":
            with sqlite3.connect(spec.path) as connection:
                rows = connection.execute(
                    "SELECT hash FROM stored_events_chain ORDER BY notification_id"
                ).fetchall()
            connection.close()
        else:
            with spec.connect() as pg:
                rows = pg.execute(
                    f'SELECT hash FROM "{schema}".acctdomain_events_chain ORDER BY notification_id'
                ).fetchall()
        return [bytes(row[0]) for row in rows]
    finally:
        if kind == "postgres":
            drop_schema(schema)


@pytest.mark.postgres
def test_the_same_events_chain_alike_on_sqlite_and_postgres(tmp_path: Path) -> None:
    ids = [uuid4(), uuid4()]
    events = [
        StoredEvent(ids[0], 1, "a:Opened", b'{"x":1}'),
        StoredEvent(ids[1], 1, "a:Opened", b'{"x":2}'),
        StoredEvent(ids[0], 2, "a:Renewed", b"\x00\xff binary"),
    ]
    sqlite_chain = _chain_of("sqlite", events, tmp_path)
    assert sqlite_chain == _chain_of("postgres", events, tmp_path)
    previous = GENESIS
    for position, (event, stored) in enumerate(zip(events, sqlite_chain, strict=True), 1):
        previous = link(
            previous,
            position,
            encode_originator_id(event.originator_id),
            event.originator_version,
            event.topic.encode(),
            event.state,
        )
        assert stored == previous


@pytest.mark.postgres
def test_the_postgres_insert_function_is_refused() -> None:
    url, schema = new_schema_url()
    spec = parse_store(url)
    env = {**spec.environment(), "POSTGRES_ENABLE_DB_FUNCTIONS": "y"}
    try:
        with spec.setting_up(), pytest.raises(StoreConfigurationError) as refused:
            InfrastructureFactory.construct(Environment("acctdomain", env))
        assert refused.value.field == "POSTGRES_ENABLE_DB_FUNCTIONS"
        assert "lock" in refused.value.reason
    finally:
        drop_schema(schema)
