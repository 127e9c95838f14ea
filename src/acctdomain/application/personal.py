"""Personal data of contacts and stakeholders, encrypted per data subject; erasure destroys the key.

**What is personal** (:data:`PERSONAL_FIELDS`, the one place that declares it):

==========================  ============================  ====================================
event                       fields                        data subject(s)
==========================  ============================  ====================================
``StakeholderAdded``        ``name``, ``title``           the stakeholder (``stakeholder_id``)
``StakeholderUpdated``      ``title``                     the stakeholder (``stakeholder_id``)
``FeedbackRecorded``        ``respondent``, ``comment``   the respondent:
                                                          :func:`respondent_subject_id`
``ContactLogged``           ``summary``                   every stakeholder present (all their
                                                          keys are needed to read it); with
                                                          none, :func:`contact_notes_subject_id`
==========================  ============================  ====================================

and, in the account's snapshots, each stakeholder's ``name`` and ``title``. Requests, issues,
plan items and account names are about the customer company, not about a person, and stay in
clear; so do our own people (``actor``, ``manager``, tactic owners), who are not the data
subjects this protects.

**How.** Each data subject has a random 256-bit key, made the first time something personal
about it is written (in a table of the event store: ``subject_keys`` in SQLite,
``<app>_subject_keys`` in PostgreSQL, a dict in memory). A personal field is stored as a tagged
value ``{"_type_": "acctdomain:sealed", "_data_": {"f": field, "s": [subject hex, ...],
"n": nonce, "c": ciphertext}}``: AES-256-GCM under the subject's key (several subjects: under
the SHA-256 of their keys together), with the field name and the subjects as associated data.
An empty text stays empty (it says nothing). Decoding, wherever it happens (the mapper, the
projections' fast decoder, the snapshot store), opens it again; when a key is missing it reads
:data:`~acctdomain.domain.events.ERASED` (``"[erased]"``), so aggregates, read models,
timelines and snapshots go on working with the data shown as erased.

**Erasure** (:meth:`AccountService.erase_subject`) destroys the key: the events stay as they
were (the hash chain covers the stored bytes, which do not change, so ``verify`` still passes),
but nothing can open them again. A key row is kept with no key (``erased_at`` set), so nothing
personal about that subject can be written again under its id (:class:`InvalidTransition`).

Keys are created in a transaction of their own just before the events that need them: an event
that then fails to append leaves an unused key, never an event without its key. Each process
caches keys for :data:`KEY_CACHE_SECONDS`: another process sees an erasure within that time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import StoredEvent, Transcoding
from eventsourcing.utils import get_topic

from acctdomain.application.upcasting import UpcastingMapper
from acctdomain.domain import events as ev
from acctdomain.domain.events import ERASED
from acctdomain.domain.records import Stakeholder
from acctdomain.errors import InvalidTransition, InvalidValue, StoreConfigurationError

__all__ = [
    "ERASED",
    "KEYS_FORMAT",
    "KEY_CACHE_SECONDS",
    "PERSONAL_FIELDS",
    "KeyRecord",
    "KeyStore",
    "MemoryKeyStore",
    "PersonalData",
    "PersonalDataMapper",
    "PersonalFields",
    "PostgresKeyStore",
    "SQLiteKeyStore",
    "Sealed",
    "SealedTranscoding",
    "contact_notes_subject_id",
    "key_store_for",
    "load_keys",
    "opened_key_store",
    "read_keys",
    "respondent_subject_id",
    "write_keys",
]

KEY_CACHE_SECONDS = 1.0
"""How long a process trusts a key it read (an erasure in another process shows after that)."""

KEYS_FORMAT = "acctdomain-subject-keys"
SEALED = "acctdomain:sealed"
_AAD_PREFIX = b"acctdomain-personal/1|"
_KEY_SIZE = 32
_NONCE_SIZE = 12


# --- who the data is about ----------------------------------------------------------------------


def respondent_subject_id(account_id: UUID, respondent: str) -> UUID:
    """The data subject of a survey respondent of an account: the same name (whitespace and
    case aside) on the same account is the same person."""
    normalised = " ".join(respondent.split()).casefold()
    return uuid5(account_id, f"acctdomain:respondent:{normalised}")


def contact_notes_subject_id(account_id: UUID) -> UUID:
    """The data subject of the summaries of an account's contacts that list no stakeholder."""
    return uuid5(account_id, "acctdomain:contact-notes")


@attrs.frozen
class PersonalFields:
    """Which fields of an event class are personal, and whose data they are: ``subjects``
    takes the event's state and its account id."""

    fields: tuple[str, ...]
    subjects: Callable[[Mapping[str, Any], UUID], tuple[UUID, ...]]


def _stakeholder(state: Mapping[str, Any], _: UUID) -> tuple[UUID, ...]:
    return (state["stakeholder_id"],)


def _respondent(state: Mapping[str, Any], account_id: UUID) -> tuple[UUID, ...]:
    return (respondent_subject_id(account_id, state["respondent"]),)


def _present(state: Mapping[str, Any], account_id: UUID) -> tuple[UUID, ...]:
    present = tuple(state["stakeholder_ids"])
    return present or (contact_notes_subject_id(account_id),)


PERSONAL_FIELDS: Mapping[type, PersonalFields] = {
    ev.StakeholderAdded: PersonalFields(("name", "title"), _stakeholder),
    ev.StakeholderUpdated: PersonalFields(("title",), _stakeholder),
    ev.FeedbackRecorded: PersonalFields(("respondent", "comment"), _respondent),
    ev.ContactLogged: PersonalFields(("summary",), _present),
}
"""Every personal field of every event class, with its data subjects (see the module)."""

_STAKEHOLDER_FIELDS = ("name", "title")  # of each Stakeholder record in an Account snapshot


# --- keys ---------------------------------------------------------------------------------------


@attrs.frozen
class KeyRecord:
    """One data subject's key row: ``key`` is None once the subject was erased."""

    subject_id: UUID
    account_id: UUID
    key: bytes | None
    created_at: datetime
    erased_at: datetime | None = None


class KeyStore:
    """Where a store keeps its subjects' keys."""

    def create_table(self) -> None:
        """Create the key table if it does not exist."""

    def get(self, subject_id: UUID) -> KeyRecord | None:
        """The subject's row, or None if no key was ever made for it."""
        raise NotImplementedError

    def create(self, record: KeyRecord) -> KeyRecord:
        """Insert ``record`` unless the subject has a row already; the row that stays."""
        raise NotImplementedError

    def erase(self, subject_id: UUID, erased_at: datetime) -> None:
        """Destroy the subject's key (its row stays, with no key)."""
        raise NotImplementedError

    def records(self) -> list[KeyRecord]:
        """Every row, by subject id."""
        raise NotImplementedError

    def scrub(self) -> bool:
        """Make freed space unreadable where the backend allows it; False if it could not
        finish (a reader held the SQLite log)."""
        return True


class MemoryKeyStore(KeyStore):
    """Keys of an in-memory store."""

    def __init__(self) -> None:
        self._rows: dict[UUID, KeyRecord] = {}
        self._lock = threading.Lock()

    def get(self, subject_id: UUID) -> KeyRecord | None:
        return self._rows.get(subject_id)

    def create(self, record: KeyRecord) -> KeyRecord:
        with self._lock:
            return self._rows.setdefault(record.subject_id, record)

    def erase(self, subject_id: UUID, erased_at: datetime) -> None:
        with self._lock:
            row = self._rows[subject_id]
            self._rows[subject_id] = attrs.evolve(row, key=None, erased_at=erased_at)

    def records(self) -> list[KeyRecord]:
        return sorted(self._rows.values(), key=lambda r: r.subject_id.hex)


def _row(subject: str, account: str, key: Any, created: str, erased: str | None) -> KeyRecord:
    return KeyRecord(
        UUID(subject),
        UUID(account),
        None if key is None else bytes(key),
        datetime.fromisoformat(created),
        None if erased is None else datetime.fromisoformat(erased),
    )


class SQLiteKeyStore(KeyStore):
    """Table ``subject_keys`` in the SQLite file of the events, through the recorder's
    connections; erasure and scrubbing through a connection of their own, with
    ``secure_delete`` on, followed by ``VACUUM`` and a truncating checkpoint of the log, so that
    neither the key nor any replaced read-model row stays in the file's free space or its log."""

    def __init__(self, datastore: Any, table: str = "subject_keys") -> None:
        self.datastore = datastore
        self.table = table
        self._db_name: str = datastore.pool.db_name
        self._in_memory: bool = datastore.pool.is_sqlite_memory_mode

    def create_table(self) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (subject_id TEXT PRIMARY KEY, "
                "account_id TEXT NOT NULL, key BLOB, created_at TEXT NOT NULL, erased_at TEXT)"
            )

    def get(self, subject_id: UUID) -> KeyRecord | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT subject_id, account_id, key, created_at, erased_at FROM {self.table} "
                "WHERE subject_id = ?",
                (subject_id.hex,),
            )
            row = c.fetchone()
        return None if row is None else _row(*row)

    def create(self, record: KeyRecord) -> KeyRecord:
        erased = record.erased_at
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                f"INSERT INTO {self.table} (subject_id, account_id, key, created_at, erased_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject_id) DO NOTHING",
                (
                    record.subject_id.hex,
                    record.account_id.hex,
                    record.key,
                    record.created_at.isoformat(),
                    None if erased is None else erased.isoformat(),
                ),
            )
        found = self.get(record.subject_id)
        assert found is not None
        return found

    def erase(self, subject_id: UUID, erased_at: datetime) -> None:
        update = f"UPDATE {self.table} SET key = NULL, erased_at = ? WHERE subject_id = ?"
        parameters = (erased_at.isoformat(), subject_id.hex)
        if self._in_memory:  # the pool's connections are the only way to this database
            with self.datastore.transaction(commit=True) as c:
                c.execute("PRAGMA secure_delete = ON")
                c.execute(update, parameters)
            return
        with self._own_connection() as connection:
            connection.execute("PRAGMA secure_delete = ON")
            connection.execute(update, parameters)

    def records(self) -> list[KeyRecord]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT subject_id, account_id, key, created_at, erased_at FROM {self.table} "
                "ORDER BY subject_id"
            )
            rows = c.fetchall()
        return [_row(*row) for row in rows]

    def scrub(self) -> bool:
        if self._in_memory:
            return True  # nothing on disk
        with self._own_connection() as connection:
            connection.execute("PRAGMA secure_delete = ON")
            connection.execute("VACUUM")
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy

    def _own_connection(self) -> closing[sqlite3.Connection]:
        return closing(sqlite3.connect(self._db_name, uri=True, isolation_level=None, timeout=30.0))


class PostgresKeyStore(KeyStore):
    """Table ``<app>_subject_keys`` in the store's schema; after an erasure the table is
    vacuumed, so the destroyed key's old row version is not kept."""

    def __init__(self, datastore: Any, table: str) -> None:
        from psycopg.sql import SQL, Identifier

        self.datastore = datastore
        name = SQL("{}.{}").format(Identifier(datastore.schema), Identifier(table))
        columns = SQL("subject_id, account_id, key, created_at, erased_at")
        self._create = SQL(
            "CREATE TABLE IF NOT EXISTS {} (subject_id uuid PRIMARY KEY, account_id uuid NOT "
            "NULL, key bytea, created_at timestamptz NOT NULL, erased_at timestamptz)"
        ).format(name)
        self._get = SQL("SELECT {} FROM {} WHERE subject_id = %s").format(columns, name)
        self._insert = SQL(
            "INSERT INTO {} ({}) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (subject_id) DO NOTHING"
        ).format(name, columns)
        self._erase = SQL("UPDATE {} SET key = NULL, erased_at = %s WHERE subject_id = %s").format(
            name
        )
        self._all = SQL("SELECT {} FROM {} ORDER BY subject_id").format(columns, name)
        self._vacuum = SQL("VACUUM {}").format(name)

    @staticmethod
    def _record(row: Mapping[str, Any]) -> KeyRecord:
        key = row["key"]
        return KeyRecord(
            row["subject_id"],
            row["account_id"],
            None if key is None else bytes(key),
            row["created_at"],
            row["erased_at"],
        )

    def create_table(self) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self._create)

    def get(self, subject_id: UUID) -> KeyRecord | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._get, (subject_id,))
            row = c.fetchone()
        return None if row is None else self._record(row)

    def create(self, record: KeyRecord) -> KeyRecord:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._insert,
                (
                    record.subject_id,
                    record.account_id,
                    record.key,
                    record.created_at,
                    record.erased_at,
                ),
            )
        found = self.get(record.subject_id)
        assert found is not None
        return found

    def erase(self, subject_id: UUID, erased_at: datetime) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self._erase, (erased_at, subject_id))

    def records(self) -> list[KeyRecord]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._all)
            rows = c.fetchall()
        return [self._record(row) for row in rows]

    def scrub(self) -> bool:
        with self.datastore.get_connection() as connection:
            autocommit = connection.autocommit
            connection.autocommit = True
            try:
                connection.execute(self._vacuum)
            finally:
                connection.autocommit = autocommit
        return True


def key_store_for(recorder: Any) -> KeyStore:
    """The key store that goes with an application recorder (SQLite, PostgreSQL or memory)."""
    from eventsourcing.popo import POPORecorder

    from acctdomain.application.sqlite_persistence import SubscribableSQLiteApplicationRecorder

    if isinstance(recorder, SubscribableSQLiteApplicationRecorder):
        return SQLiteKeyStore(recorder.datastore, _table_name(recorder.events_table_name))
    if isinstance(recorder, POPORecorder):
        return MemoryKeyStore()
    try:
        from acctdomain.application.postgres_persistence import (
            ChainedPostgresApplicationRecorder,
        )
    except ImportError:  # no psycopg, no PostgreSQL store
        pass
    else:
        if isinstance(recorder, ChainedPostgresApplicationRecorder):
            return PostgresKeyStore(recorder.datastore, _table_name(recorder.events_table_name))
    raise StoreConfigurationError(
        "store", f"personal data cannot be kept in a {type(recorder).__name__}: no key store"
    )


def _table_name(events_table_name: str) -> str:
    """``subject_keys`` beside SQLite's ``stored_events``; ``<app>_subject_keys`` beside
    PostgreSQL's ``<app>_events``."""
    if events_table_name == "stored_events":
        return "subject_keys"
    return events_table_name.removesuffix("_events") + "_subject_keys"


# --- sealing and opening ------------------------------------------------------------------------


@attrs.frozen
class Sealed:
    """A personal text as stored: encrypted under the keys of ``subjects``."""

    field: str
    subjects: tuple[UUID, ...]
    nonce: bytes
    ciphertext: bytes


def _aad(field: str, subjects: Sequence[UUID]) -> bytes:
    return _AAD_PREFIX + field.encode() + b"|" + b",".join(s.hex.encode() for s in subjects)


class PersonalData:
    """The service's keys (through a cache) and the sealing and opening of personal texts."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store: KeyStore | None = None
        self._clock = clock
        self._cache: dict[UUID, tuple[float, bytes | None]] = {}

    @property
    def store(self) -> KeyStore:
        """The key store (set when the service has made its recorder)."""
        if self._store is None:
            raise StoreConfigurationError("store", "the key store is not attached yet")
        return self._store

    def attach(self, store: KeyStore) -> None:
        """Use ``store`` (and create its table)."""
        store.create_table()
        self._store = store

    def forget_cached(self) -> None:
        """Drop every cached key (after an erasure, or keys imported)."""
        self._cache.clear()

    def _key(self, subject_id: UUID) -> bytes | None:
        now = time.monotonic()
        cached = self._cache.get(subject_id)
        if cached is not None and now - cached[0] < KEY_CACHE_SECONDS:
            return cached[1]
        record = self.store.get(subject_id)
        key = None if record is None else record.key
        self._cache[subject_id] = (now, key)
        return key

    def _cipher(self, subjects: tuple[UUID, ...]) -> AESGCM | None:
        keys = [self._key(subject) for subject in subjects]
        if any(key is None for key in keys):
            return None
        if len(keys) == 1:
            key = keys[0]
        else:
            key = hashlib.sha256(b"".join(k for k in keys if k is not None)).digest()
        assert key is not None
        return AESGCM(key)

    def _writing_key(self, subject_id: UUID, account_id: UUID) -> bytes:
        record = self.store.get(subject_id)
        if record is None:
            record = self.store.create(
                KeyRecord(subject_id, account_id, AESGCM.generate_key(256), self._clock())
            )
        if record.key is None:
            raise InvalidTransition(
                "subject_id",
                f"the personal data of subject {subject_id} was erased: nothing personal "
                "about it can be recorded again",
            )
        return record.key

    def seal(self, field: str, value: Any, subjects: tuple[UUID, ...], account_id: UUID) -> Any:
        """``value`` sealed under the keys of ``subjects`` (made if need be); an empty text or
        the erased marker is kept as it is."""
        if not isinstance(value, str) or value in ("", ERASED):
            return value
        ordered = tuple(sorted(set(subjects), key=lambda s: s.bytes))
        keys = [self._writing_key(subject, account_id) for subject in ordered]
        key = keys[0] if len(keys) == 1 else hashlib.sha256(b"".join(keys)).digest()
        nonce = os.urandom(_NONCE_SIZE)
        ciphertext = AESGCM(key).encrypt(nonce, value.encode("utf-8"), _aad(field, ordered))
        return Sealed(field, ordered, nonce, ciphertext)

    def open(self, sealed: Sealed) -> str:
        """The text, or :data:`ERASED` when a subject's key was destroyed."""
        cipher = self._cipher(sealed.subjects)
        if cipher is None:
            return ERASED
        try:
            plain = cipher.decrypt(
                sealed.nonce, sealed.ciphertext, _aad(sealed.field, sealed.subjects)
            )
        except InvalidTag as error:
            raise InvalidValue(
                sealed.field, "the personal data does not open with its subject's key"
            ) from error
        return plain.decode("utf-8")

    def seal_state(self, cls: type, state: dict[str, Any], account_id: UUID) -> None:
        """Seal the personal fields of an event's state (in place), as declared for ``cls``;
        an Account snapshot's stakeholders too."""
        declared = PERSONAL_FIELDS.get(cls)
        if declared is not None:
            subjects = declared.subjects(state, account_id)
            for field in declared.fields:
                state[field] = self.seal(field, state[field], subjects, account_id)
        elif issubclass(cls, Snapshot):
            aggregate = state.get("state")
            if isinstance(aggregate, dict) and aggregate.get("_stakeholders"):
                state["state"] = {
                    **aggregate,
                    "_stakeholders": {
                        stakeholder_id: self._seal_stakeholder(person, account_id)
                        for stakeholder_id, person in aggregate["_stakeholders"].items()
                    },
                }

    def _seal_stakeholder(self, person: Any, account_id: UUID) -> Any:
        if not isinstance(person, Stakeholder):
            return person
        subjects = (person.stakeholder_id,)
        return attrs.evolve(
            person,
            **{
                field: self.seal(field, getattr(person, field), subjects, account_id)
                for field in _STAKEHOLDER_FIELDS
            },
        )

    def erase(self, subject_id: UUID) -> None:
        """Destroy the subject's key now."""
        self.store.erase(subject_id, self._clock())
        self.forget_cached()


class SealedTranscoding(Transcoding):
    """Writes a :class:`Sealed` value; reads it back opened (the text, or ``ERASED``)."""

    type = Sealed
    name = SEALED

    def __init__(self, personal: PersonalData) -> None:
        self.personal = personal

    def encode(self, obj: Sealed) -> dict[str, Any]:
        return {
            "f": obj.field,
            "s": [subject.hex for subject in obj.subjects],
            "n": base64.b64encode(obj.nonce).decode("ascii"),
            "c": base64.b64encode(obj.ciphertext).decode("ascii"),
        }

    def decode(self, data: dict[str, Any]) -> str:
        sealed = Sealed(
            data["f"],
            tuple(UUID(subject) for subject in data["s"]),
            base64.b64decode(data["n"]),
            base64.b64decode(data["c"]),
        )
        return self.personal.open(sealed)


class PersonalDataMapper(UpcastingMapper):
    """The service's mapper: personal fields are sealed on the way into the store (see
    :class:`PersonalData`); reading is the transcoder's (:class:`SealedTranscoding`)."""

    personal: PersonalData

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        # eventsourcing's Mapper.to_stored_event, with the sealing before the encoding.
        cls = type(domain_event)
        event_state = dict(vars(domain_event))
        originator_id = event_state.pop("originator_id")
        originator_version = event_state.pop("originator_version")
        class_version = getattr(cls, "class_version", 1)
        if class_version > 1:
            event_state["class_version"] = class_version
        if isinstance(originator_id, UUID):
            self.personal.seal_state(cls, event_state, originator_id)
        stored_state = self.transcoder.encode(event_state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=get_topic(cls),
            state=stored_state,
        )


# --- keys on export and import ------------------------------------------------------------------


def write_keys(store: KeyStore, destination: str | os.PathLike[str]) -> int:
    """Write every key row of ``store`` to the JSON file ``destination`` (keys in base64,
    erased subjects with ``null``); the number of live keys written. The file can read every
    personal field of the store: keep it as safe as the keys themselves."""
    rows = store.records()
    document = {
        "format": KEYS_FORMAT,
        "version": 1,
        "keys": [
            {
                "subject_id": r.subject_id.hex,
                "account_id": r.account_id.hex,
                "key": None if r.key is None else base64.b64encode(r.key).decode("ascii"),
                "created_at": r.created_at.isoformat(),
                "erased_at": None if r.erased_at is None else r.erased_at.isoformat(),
            }
            for r in rows
        ],
    }
    target = Path(destination)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as file:
            json.dump(document, file)
    except OSError as error:
        raise InvalidValue("keys", f"cannot write {str(target)!r}: {error}") from error
    return sum(1 for r in rows if r.key is not None)


def read_keys(source: str | os.PathLike[str]) -> list[KeyRecord]:
    """The key rows of a file written by :func:`write_keys` (InvalidValue, field ``keys``,
    if it is not one)."""
    try:
        document = json.loads(Path(source).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InvalidValue("keys", f"cannot read a key file at {str(source)!r}: {error}") from error
    if not isinstance(document, dict) or document.get("format") != KEYS_FORMAT:
        raise InvalidValue("keys", f"not an {KEYS_FORMAT} file")
    if document.get("version") != 1 or not isinstance(document.get("keys"), list):
        raise InvalidValue("keys", "unsupported version or no key list")
    records = []
    for number, item in enumerate(document["keys"], start=1):
        try:
            key = None if item["key"] is None else base64.b64decode(item["key"], validate=True)
            if key is not None and len(key) != _KEY_SIZE:
                raise ValueError(f"a key of {len(key)} bytes")
            erased = item["erased_at"]
            records.append(
                KeyRecord(
                    UUID(item["subject_id"]),
                    UUID(item["account_id"]),
                    key,
                    datetime.fromisoformat(item["created_at"]),
                    None if erased is None else datetime.fromisoformat(erased),
                )
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidValue("keys", f"key {number} is malformed: {error}") from error
    return records


def load_keys(store: KeyStore, records: Sequence[KeyRecord]) -> int:
    """Put ``records`` into ``store`` (a subject it has already is left as it is; an erased
    one stays erased); the number of live keys added."""
    added = 0
    for record in records:
        if record.key is None and record.erased_at is None:
            record = attrs.evolve(record, erased_at=record.created_at)
        stored = store.create(record)
        if record.key is not None and stored.key == record.key:
            added += 1
    return added


@contextmanager
def opened_key_store(store: Any) -> Iterator[KeyStore]:
    """The key store of ``store``: an ``AccountService``, an application recorder, a store URL
    or ``StoreSpec`` (opened for the time of the ``with`` block)."""
    from acctdomain.application.stores import StoreSpec, parse_store

    personal = getattr(store, "personal_data", None)
    if isinstance(personal, PersonalData):
        yield personal.store
        personal.forget_cached()
        return
    if isinstance(store, str):
        store = parse_store(store)
    if not isinstance(store, StoreSpec):
        key_store = key_store_for(getattr(store, "recorder", store))
        key_store.create_table()
        yield key_store
        return
    from eventsourcing.persistence import InfrastructureFactory
    from eventsourcing.utils import Environment

    from acctdomain.application.service import AccountService

    with store.setting_up():
        factory: Any = InfrastructureFactory.construct(
            Environment(AccountService.name, store.environment())
        )
    try:
        key_store = key_store_for(factory.application_recorder())
        key_store.create_table()
        yield key_store
    finally:
        factory.close()
