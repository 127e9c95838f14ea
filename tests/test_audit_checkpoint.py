"""Signed checkpoints: honest growth passes; a history rewritten before a checkpoint fails even
when the whole chain was recomputed; a tampered checkpoint, another signer's key, a malformed
file or key, a checkpoint beyond the head and an in-memory store are refused with typed errors.

Stores are real SQLite files and PostgreSQL schemas; the rewrites are plain SQL on a connection
of the test's own, the way someone with write access to the database would make them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from psycopg import sql

from acctdomain import AccountService
from acctdomain.application.stores import parse_store
from acctdomain.audit import (
    CHAIN_SCHEME,
    GENESIS,
    CheckFailure,
    Checkpoint,
    ProblemKind,
    check_checkpoint,
    generate_keys,
    key_id,
    link,
    load_private_key,
    load_public_key,
    make_checkpoint,
    verify,
)
from acctdomain.errors import InvalidValue, StoreConfigurationError
from acctdomain.plugins import PluginHost
from tests.pg import POSTGRES_URL, drop_schema, new_schema_url

NAMES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark")


class Backend:
    """A chained store behind an AccountService, and plain SQL on it for rewriting history."""

    def __init__(self, kind: str, url: str, schema: str = "") -> None:
        self.kind, self.url, self.schema = kind, url, schema
        self.service = AccountService(url, plugins=PluginHost(entry_points=False))

    def open_accounts(self, names: tuple[str, ...]) -> None:
        for name in names:
            self.service.open_account(
                name=name,
                segment="enterprise",
                industry="logistics",
                currency="EUR",
                manager="amy",
                manager_type="strategic",
                actor="amy",
            )

    def close(self) -> None:
        self.service.close()

    # --- plain SQL ---------------------------------------------------------------------------

    def _tables(self) -> tuple[Any, Any]:
        if self.kind == "sqlite":
            return "stored_events", "stored_events_chain"
        return (
            sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))
            for name in ("acctdomain_events", "acctdomain_events_chain")
        )

    def _run(self, statements: list[tuple[Any, tuple[Any, ...]]]) -> list[list[Any]]:
        results = []
        if self.kind == "sqlite":
            connection = sqlite3.connect(self.url)
            try:
                with connection:
                    for statement, params in statements:
                        results.append(connection.execute(statement, params).fetchall())
            finally:
                connection.close()
            return results
        with parse_store(POSTGRES_URL).connect() as pg, pg.transaction():
            for statement, params in statements:
                cursor = pg.execute(statement, params)
                results.append(cursor.fetchall() if cursor.description else [])
        return results

    def events(self) -> list[tuple[int, bytes, int, bytes, bytes]]:
        """(notification id, originator id, version, topic, state) as the chain hashes them."""
        events, _ = self._tables()
        if self.kind == "sqlite":
            query: Any = (
                "SELECT rowid, CAST(originator_id AS BLOB), originator_version, "
                "CAST(topic AS BLOB), CAST(state AS BLOB) FROM stored_events ORDER BY rowid"
            )
        else:
            query = sql.SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state "
                "FROM {} ORDER BY notification_id"
            ).format(events)
        rows = self._run([(query, ())])[0]
        if self.kind == "sqlite":
            return [(n, bytes(o), v, bytes(t), bytes(s)) for n, o, v, t, s in rows]
        return [(n, o.hex.encode(), v, t.encode(), bytes(s)) for n, o, v, t, s in rows]

    def set_state(self, position: int, state: bytes) -> None:
        events, _ = self._tables()
        if self.kind == "sqlite":
            statement: Any = "UPDATE stored_events SET state = ? WHERE rowid = ?"
            self._run([(statement, (state, position))])
        else:
            statement = sql.SQL("UPDATE {} SET state = %s WHERE notification_id = %s").format(
                events
            )
            self._run([(statement, (state, position))])

    def delete_event(self, position: int) -> None:
        events, _ = self._tables()
        if self.kind == "sqlite":
            self._run([("DELETE FROM stored_events WHERE rowid = ?", (position,))])
        else:
            statement = sql.SQL("DELETE FROM {} WHERE notification_id = %s").format(events)
            self._run([(statement, (position,))])

    def set_link(self, position: int, digest: bytes) -> None:
        _, chain = self._tables()
        if self.kind == "sqlite":
            statement: Any = f"UPDATE {chain} SET hash = ? WHERE notification_id = ?"
        else:
            statement = sql.SQL("UPDATE {} SET hash = %s WHERE notification_id = %s").format(chain)
        self._run([(statement, (digest, position))])

    def rechain(self) -> None:
        """Recompute every hash of the chain over the events as they are now: what someone
        with write access does after rewriting history."""
        _, chain = self._tables()
        previous, links = GENESIS, []
        for notification_id, originator_id, version, topic, state in self.events():
            previous = link(previous, notification_id, originator_id, version, topic, state)
            links.append((notification_id, previous))
        if self.kind == "sqlite":
            delete: Any = f"DELETE FROM {chain}"
            insert: Any = f"INSERT INTO {chain} (notification_id, hash) VALUES (?, ?)"
        else:
            delete = sql.SQL("DELETE FROM {}").format(chain)
            insert = sql.SQL("INSERT INTO {} (notification_id, hash) VALUES (%s, %s)").format(chain)
        self._run([(delete, ()), *((insert, pair) for pair in links)])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        store = Backend("sqlite", str(tmp_path / "book.db"))
        try:
            yield store
        finally:
            store.close()
        return
    url, schema = new_schema_url()
    store = Backend("postgres", url, schema)
    try:
        yield store
    finally:
        store.close()
        drop_schema(schema)


@pytest.fixture(scope="module")
def signer() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_honest_growth_after_a_checkpoint_passes(
    backend: Backend, signer: Ed25519PrivateKey
) -> None:
    backend.open_accounts(NAMES[:3])
    checkpoint = make_checkpoint(backend.service, signer)
    assert checkpoint.position == verify(backend.service).head_position
    backend.open_accounts(NAMES[3:])

    result = check_checkpoint(backend.service, checkpoint, signer.public_key())

    assert result.ok
    assert result.reason is None
    assert result.report is not None
    assert result.report.ok
    assert result.report.head_position > checkpoint.position
    assert result.report.checked == len(NAMES)
    assert "extends the checkpoint" in result.detail


def test_a_checkpoint_of_the_head_itself_passes(
    backend: Backend, signer: Ed25519PrivateKey
) -> None:
    backend.open_accounts(NAMES[:2])
    checkpoint = make_checkpoint(backend.url, signer)
    assert check_checkpoint(backend.url, checkpoint, signer.public_key()).ok


def test_history_rewritten_before_the_checkpoint_fails_though_the_chain_was_recomputed(
    backend: Backend, signer: Ed25519PrivateKey
) -> None:
    backend.open_accounts(NAMES[:3])
    checkpoint = make_checkpoint(backend.service, signer)
    backend.open_accounts(NAMES[3:])
    first = backend.events()[0]
    backend.set_state(first[0], first[4].replace(b'"actor":"amy"', b'"actor":"eve"'))
    backend.rechain()
    assert verify(backend.service).ok  # the chain alone cannot tell

    result = check_checkpoint(backend.service, checkpoint, signer.public_key())

    assert not result.ok
    assert result.reason is CheckFailure.HISTORY_REWRITTEN
    assert f"position {checkpoint.position}" in result.detail


def test_an_event_removed_before_the_checkpoint_with_a_recomputed_chain_fails(
    backend: Backend, signer: Ed25519PrivateKey
) -> None:
    backend.open_accounts(NAMES[:3])
    checkpoint = make_checkpoint(backend.service, signer)
    backend.open_accounts(NAMES[3:])
    backend.delete_event(checkpoint.position)
    backend.rechain()

    result = check_checkpoint(backend.service, checkpoint, signer.public_key())

    assert result.reason is CheckFailure.HISTORY_REWRITTEN
    assert "no event at position" in result.detail


def test_a_rewrite_that_keeps_the_signed_hash_in_place_breaks_the_recomputed_chain(
    backend: Backend, signer: Ed25519PrivateKey
) -> None:
    backend.open_accounts(NAMES[:3])
    checkpoint = make_checkpoint(backend.service, signer)
    first = backend.events()[0]
    backend.set_state(first[0], first[4].replace(b'"actor":"amy"', b'"actor":"eve"'))
    backend.rechain()
    backend.set_link(checkpoint.position, checkpoint.head_hash)  # the row reads as signed

    result = check_checkpoint(backend.service, checkpoint, signer.public_key())

    assert result.reason is CheckFailure.CHAIN_BROKEN
    assert result.report is not None
    assert result.report.problem is not None
    assert result.report.problem.position == checkpoint.position


def test_an_edit_before_the_checkpoint_without_recomputing_breaks_the_chain(
    backend: Backend, signer: Ed25519PrivateKey
) -> None:
    backend.open_accounts(NAMES[:3])
    checkpoint = make_checkpoint(backend.service, signer)
    second = backend.events()[1]
    backend.set_state(second[0], second[4].replace(b"Globex", b"Glob3x"))

    result = check_checkpoint(backend.service, checkpoint, signer.public_key())

    assert result.reason is CheckFailure.CHAIN_BROKEN
    assert result.report is not None
    assert result.report.problem is not None
    assert result.report.problem.position == second[0]
    assert result.report.problem.kind is ProblemKind.MODIFIED


def test_a_chain_broken_after_the_checkpoint_is_not_an_extension(
    backend: Backend, signer: Ed25519PrivateKey
) -> None:
    backend.open_accounts(NAMES[:2])
    checkpoint = make_checkpoint(backend.service, signer)
    backend.open_accounts(NAMES[2:])
    last = backend.events()[-1]
    backend.set_state(last[0], last[4].replace(b"Stark", b"Stork"))

    result = check_checkpoint(backend.service, checkpoint, signer.public_key())

    assert result.reason is CheckFailure.NOT_EXTENDED
    assert result.report is not None
    assert result.report.problem is not None
    assert result.report.problem.position == last[0]


def test_a_checkpoint_beyond_the_head_is_refused(
    backend: Backend, signer: Ed25519PrivateKey, tmp_path: Path
) -> None:
    bigger = Backend("sqlite", str(tmp_path / "bigger.db"))
    try:
        bigger.open_accounts(NAMES)
        checkpoint = make_checkpoint(bigger.service, signer)
    finally:
        bigger.close()
    backend.open_accounts(NAMES[:2])

    with pytest.raises(InvalidValue) as refused:
        check_checkpoint(backend.service, checkpoint, signer.public_key())
    assert refused.value.field == "position"
    assert f"position {checkpoint.position}" in refused.value.reason


@pytest.mark.parametrize(
    "change",
    [
        {"position": 1},
        {"head_hash": "A" * 43 + "="},
        {"signed_at": "2020-01-01T00:00:00+00:00"},
        {"recorded_at": None},
    ],
    ids=["position", "head_hash", "signed_at", "recorded_at"],
)
def test_a_tampered_checkpoint_file_fails_its_signature(
    backend: Backend, signer: Ed25519PrivateKey, tmp_path: Path, change: dict[str, Any]
) -> None:
    backend.open_accounts(NAMES[:3])
    path = tmp_path / "checkpoint.json"
    make_checkpoint(backend.service, signer).save(path)
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, **change}))

    with pytest.raises(InvalidValue) as refused:
        check_checkpoint(backend.service, Checkpoint.load(path), signer.public_key())
    assert refused.value.field == "signature"


def test_a_forged_signature_fails(signer: Ed25519PrivateKey, tmp_path: Path) -> None:
    store = Backend("sqlite", str(tmp_path / "book.db"))
    try:
        store.open_accounts(NAMES[:1])
        checkpoint = make_checkpoint(store.service, signer)
        forged = attrs.evolve(checkpoint, signature=bytes(64))
        with pytest.raises(InvalidValue) as refused:
            check_checkpoint(store.service, forged, signer.public_key())
        assert refused.value.field == "signature"
    finally:
        store.close()


def test_a_checkpoint_signed_by_another_key_fails(
    backend: Backend, signer: Ed25519PrivateKey
) -> None:
    backend.open_accounts(NAMES[:2])
    other = Ed25519PrivateKey.generate()
    checkpoint = make_checkpoint(backend.service, other)

    with pytest.raises(InvalidValue) as refused:
        check_checkpoint(backend.service, checkpoint, signer.public_key())
    assert refused.value.field == "key"
    assert "signed by key" in refused.value.reason
    # Claiming our key in the file does not help: the signature is still the other key's.
    claimed = attrs.evolve(checkpoint, key_id=key_id(signer.public_key()))
    with pytest.raises(InvalidValue) as refused:
        check_checkpoint(backend.service, claimed, signer.public_key())
    assert refused.value.field == "signature"


def test_an_in_memory_store_is_refused(signer: Ed25519PrivateKey, tmp_path: Path) -> None:
    service = AccountService("memory:", plugins=PluginHost(entry_points=False))
    with pytest.raises(StoreConfigurationError):
        make_checkpoint(service, signer)
    with pytest.raises(StoreConfigurationError):
        make_checkpoint("memory:", signer)
    store = Backend("sqlite", str(tmp_path / "book.db"))
    try:
        store.open_accounts(NAMES[:1])
        checkpoint = make_checkpoint(store.service, signer)
    finally:
        store.close()
    with pytest.raises(StoreConfigurationError):
        check_checkpoint(service, checkpoint, signer.public_key())


def test_a_broken_or_empty_store_is_not_signed(signer: Ed25519PrivateKey, tmp_path: Path) -> None:
    store = Backend("sqlite", str(tmp_path / "book.db"))
    try:
        with pytest.raises(InvalidValue) as refused:
            make_checkpoint(store.service, signer)
        assert (refused.value.field, "no events" in refused.value.reason) == ("store", True)
        store.open_accounts(NAMES[:2])
        first = store.events()[0]
        store.set_state(first[0], first[4] + b" ")
        with pytest.raises(InvalidValue) as refused:
            make_checkpoint(store.service, signer)
        assert refused.value.field == "store"
        assert "broken at position 1" in refused.value.reason
    finally:
        store.close()


# --- the file ------------------------------------------------------------------------------------


@pytest.fixture
def sample(signer: Ed25519PrivateKey, tmp_path: Path) -> Iterator[tuple[Backend, Checkpoint]]:
    store = Backend("sqlite", str(tmp_path / "book.db"))
    try:
        store.open_accounts(NAMES[:3])
        yield store, make_checkpoint(store.service, signer)
    finally:
        store.close()


def test_the_file_is_one_line_of_canonical_versioned_json(
    sample: tuple[Backend, Checkpoint], tmp_path: Path
) -> None:
    store, checkpoint = sample
    path = tmp_path / "checkpoint.json"
    checkpoint.save(path)
    text = path.read_text(encoding="ascii")
    document = json.loads(text)

    assert text == checkpoint.to_json()
    assert text.count("\n") == 1
    assert text.strip() == json.dumps(document, sort_keys=True, separators=(",", ":"))
    assert (document["format"], document["version"]) == ("acctdomain-checkpoint", 1)
    assert document["scheme"] == CHAIN_SCHEME
    assert Checkpoint.load(path) == checkpoint == Checkpoint.from_json(text.encode())
    head_state = json.loads(store.events()[-1][4])
    assert document["recorded_at"] == head_state["timestamp"]["_data_"]
    del document["signature"]
    assert (
        checkpoint.payload() == json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    )


def test_the_signing_time_can_be_given(signer: Ed25519PrivateKey, tmp_path: Path) -> None:
    store = Backend("sqlite", str(tmp_path / "book.db"))
    try:
        store.open_accounts(NAMES[:1])
        moment = datetime(2025, 3, 1, 12, tzinfo=UTC)
        assert make_checkpoint(store.service, signer, now=moment).signed_at == moment
        with pytest.raises(InvalidValue) as refused:
            make_checkpoint(store.service, signer, now=datetime(2025, 3, 1))
        assert refused.value.field == "now"
    finally:
        store.close()


def test_progress_is_reported_while_checking(
    sample: tuple[Backend, Checkpoint], signer: Ed25519PrivateKey
) -> None:
    store, checkpoint = sample
    public = signer.public_key()
    seen: list[tuple[int, int]] = []
    assert check_checkpoint(
        store.service, checkpoint, public, page_size=1, progress=lambda d, t: seen.append((d, t))
    ).ok
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]
    with pytest.raises(InvalidValue):
        check_checkpoint(store.service, checkpoint, public, page_size=0)
    with pytest.raises(InvalidValue):
        check_checkpoint(store.service, checkpoint, public, progress="yes")  # type: ignore[arg-type]


def _valid_document(checkpoint: Checkpoint) -> dict[str, Any]:
    return dict(json.loads(checkpoint.to_json()))


MALFORMED: list[tuple[str, Any]] = [
    ("not JSON", "{"),
    ("a list", "[]"),
    ("another format", {"format": "something"}),
    ("an unknown version", {"version": 2}),
    ("a boolean version", {"version": True}),
    ("a missing field", {"signature": None}),
    ("an unknown field", {"note": "hi"}),
    ("another scheme", {"scheme": "other-chain-v9"}),
    ("a zero position", {"position": 0}),
    ("a boolean position", {"position": True}),
    ("a text position", {"position": "3"}),
    ("a short hash", {"head_hash": "AAAA"}),
    ("a hash that is not base64", {"head_hash": "!" * 44}),
    ("a short signature", {"signature": "AAAA"}),
    ("a short key id", {"key_id": "AAAA"}),
    ("a naive time", {"signed_at": "2025-01-01T00:00:00"}),
    ("a time that is not ISO", {"signed_at": "yesterday"}),
    ("a time written otherwise", {"signed_at": "2025-01-01T00:00:00Z"}),
    ("a numeric time", {"recorded_at": 5}),
]


@pytest.mark.parametrize(("case", "change"), MALFORMED, ids=[case for case, _ in MALFORMED])
def test_a_malformed_checkpoint_file_is_refused(
    sample: tuple[Backend, Checkpoint], case: str, change: Any
) -> None:
    _, checkpoint = sample
    if isinstance(change, str):
        text = change
    else:
        document = {**_valid_document(checkpoint), **change}
        if change == {"signature": None}:
            del document["signature"]
        text = json.dumps(document)
    with pytest.raises(InvalidValue) as refused:
        Checkpoint.from_json(text)
    assert refused.value.field == "checkpoint", case


def test_a_checkpoint_file_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue) as refused:
        Checkpoint.load(tmp_path / "missing.json")
    assert refused.value.field == "checkpoint"
    huge = tmp_path / "huge.json"
    huge.write_text(" " * 70_000 + "{}")
    with pytest.raises(InvalidValue) as refused:
        Checkpoint.load(huge)
    assert "larger than" in refused.value.reason


def test_wrong_arguments_are_refused(
    sample: tuple[Backend, Checkpoint], signer: Ed25519PrivateKey
) -> None:
    store, checkpoint = sample
    with pytest.raises(InvalidValue) as refused:
        check_checkpoint(store.service, checkpoint.to_json(), signer.public_key())  # type: ignore[arg-type]
    assert refused.value.field == "checkpoint"
    with pytest.raises(InvalidValue) as refused:
        check_checkpoint(store.service, checkpoint, signer)  # type: ignore[arg-type]
    assert refused.value.field == "key"
    with pytest.raises(InvalidValue) as refused:
        make_checkpoint(store.service, signer.public_key())  # type: ignore[arg-type]
    assert refused.value.field == "key"


# --- keys ----------------------------------------------------------------------------------------


def test_keys_round_trip_through_pem_files(tmp_path: Path) -> None:
    public = generate_keys(tmp_path / "key.pem", tmp_path / "key.pub")
    private = load_private_key(tmp_path / "key.pem")
    assert key_id(load_public_key(tmp_path / "key.pub")) == key_id(public)
    assert key_id(private.public_key()) == key_id(public)
    assert (tmp_path / "key.pem").stat().st_mode & 0o077 == 0
    assert (tmp_path / "key.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----")


def test_a_private_key_can_be_protected_by_a_passphrase(tmp_path: Path) -> None:
    public = generate_keys(tmp_path / "key.pem", tmp_path / "key.pub", passphrase="s3cret")
    assert "ENCRYPTED" in (tmp_path / "key.pem").read_text()
    assert key_id(load_private_key(tmp_path / "key.pem", b"s3cret").public_key()) == key_id(public)
    for passphrase, words in ((None, "give its passphrase"), ("wrong", "passphrase is wrong")):
        with pytest.raises(InvalidValue) as refused:
            load_private_key(tmp_path / "key.pem", passphrase)
        assert refused.value.field == "key"
        assert words in refused.value.reason


def test_a_passphrase_for_a_plain_key_is_refused(tmp_path: Path) -> None:
    generate_keys(tmp_path / "key.pem", tmp_path / "key.pub")
    with pytest.raises(InvalidValue) as refused:
        load_private_key(tmp_path / "key.pem", "s3cret")
    assert "not encrypted" in refused.value.reason
    with pytest.raises(InvalidValue) as refused:
        generate_keys(tmp_path / "other.pem", tmp_path / "other.pub", passphrase="")
    assert refused.value.field == "passphrase"


def test_existing_key_files_are_never_overwritten(tmp_path: Path) -> None:
    generate_keys(tmp_path / "key.pem", tmp_path / "key.pub")
    before = (tmp_path / "key.pem").read_bytes()
    for private, public in (("key.pem", "new.pub"), ("new.pem", "key.pub")):
        with pytest.raises(InvalidValue) as refused:
            generate_keys(tmp_path / private, tmp_path / public)
        assert refused.value.field == "path"
    assert (tmp_path / "key.pem").read_bytes() == before
    assert not (tmp_path / "new.pem").exists()
    assert not (tmp_path / "new.pub").exists()


def test_key_files_that_are_not_ed25519_keys_are_refused(tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "ec.pem").write_bytes(
        other.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    (tmp_path / "ec.pub").write_bytes(
        other.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "junk.pem").write_text("not a key")
    cases = [
        (load_private_key, "ec.pem", "not an Ed25519 private key"),
        (load_public_key, "ec.pub", "not an Ed25519 public key"),
        (load_private_key, "junk.pem", "not a PEM private key"),
        (load_public_key, "junk.pem", "not a PEM public key"),
        (load_private_key, "missing.pem", "cannot read"),
        (load_public_key, "missing.pem", "cannot read"),
    ]
    for load, name, words in cases:
        with pytest.raises(InvalidValue) as refused:
            load(tmp_path / name)  # type: ignore[operator]
        assert refused.value.field == "key", name
        assert words in refused.value.reason, name
