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

**Keys and transactions.** In an SQLite or PostgreSQL store a new key is written by the
recorder in the very transaction that inserts the events sealed under it (the mapper hands the
keys it used to the recorder on each :class:`SealedStoredEvent`): the events and their keys are
committed together or not at all, and a bulk save of many accounts makes all its keys in one
commit. In that transaction, once the write lock is held, the recorder also looks at the key
row of every subject it writes about: an erased one (in any process, however recently) refuses
the whole save with :class:`InvalidTransition`; a key another writer made first for the same
new subject fails it with an ``IntegrityError``, which the service's retry decides again under
that key. So each process may keep the keys it writes with for as long as it runs; the
erasing process forgets the subject's key at once. Keys read to *open* personal fields are
trusted for :data:`KEY_CACHE_SECONDS`: another process shows an erasure within that time. In
memory, and for snapshots (written after their events, under keys that exist already), a new
key is stored in its own transaction before it is used: an event that then fails to append
leaves an unused key, never an event without its key.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import IntegrityError, StoredEvent, Transcoding
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
    "SealedStoredEvent",
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
_IN_CHUNK = 500  # subjects per "IN (...)" query
_MAX_CACHED = 1_000_000  # keys a process keeps before it starts again from the store
# Cipher objects kept for reuse: each holds ~2.6 KB of OpenSSL state and costs under 1 us to
# make again, so a rebuild must not keep one per data subject (memory would grow with them).
_MAX_CIPHERS = 1_024


# --- who the data is about ----------------------------------------------------------------------


@functools.lru_cache(maxsize=65_536)
def respondent_subject_id(account_id: UUID, respondent: str) -> UUID:
    """The data subject of a survey respondent of an account: the same name (whitespace and
    case aside) on the same account is the same person."""
    normalised = " ".join(respondent.split()).casefold()
    return uuid5(account_id, f"acctdomain:respondent:{normalised}")


@functools.lru_cache(maxsize=65_536)
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

    def get_many(self, subject_ids: Iterable[UUID]) -> dict[UUID, KeyRecord]:
        """The rows of those of ``subject_ids`` that have one."""
        found = {}
        for subject_id in subject_ids:
            record = self.get(subject_id)
            if record is not None:
                found[subject_id] = record
        return found

    def bind(self, writer: Callable[[Any, Sequence[StoredEvent]], None]) -> bool:
        """Have the store's recorder call ``writer(cursor, stored_events)`` in each transaction
        that inserts events, after the inserts; False if it cannot (keys are then stored on
        their own before use)."""
        return False

    def select_in(self, cursor: Any, subject_ids: Sequence[UUID]) -> dict[UUID, bytes | None]:
        """In the recorder's transaction: the key (None: erased) of each subject with a row,
        locked against an erasure until the transaction ends."""
        raise NotImplementedError

    def insert_in(self, cursor: Any, records: Sequence[KeyRecord]) -> None:
        """In the recorder's transaction: insert ``records`` (a subject with a row already is
        left as it is)."""
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

    def __init__(self, datastore: Any, table: str = "subject_keys", recorder: Any = None) -> None:
        self.datastore = datastore
        self.table = table
        self.recorder = recorder
        self._db_name: str = datastore.pool.db_name
        self._in_memory: bool = datastore.pool.is_sqlite_memory_mode
        self._columns = "subject_id, account_id, key, created_at, erased_at"
        self._insert = (
            f"INSERT INTO {table} ({self._columns}) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (subject_id) DO NOTHING"
        )

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

    def get_many(self, subject_ids: Iterable[UUID]) -> dict[UUID, KeyRecord]:
        wanted = [s.hex for s in subject_ids]
        found: dict[UUID, KeyRecord] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                c.execute(
                    f"SELECT {self._columns} FROM {self.table} WHERE subject_id IN "
                    f"({', '.join('?' * len(chunk))})",
                    chunk,
                )
                for row in c.fetchall():
                    record = _row(*row)
                    found[record.subject_id] = record
        return found

    def bind(self, writer: Callable[[Any, Sequence[StoredEvent]], None]) -> bool:
        if self.recorder is None or not hasattr(self.recorder, "key_writer"):
            return False
        self.recorder.key_writer = writer
        return True

    def select_in(self, cursor: Any, subject_ids: Sequence[UUID]) -> dict[UUID, bytes | None]:
        # The recorder's transaction inserted its events first: it holds SQLite's write lock,
        # so no erasure can come between this look and the commit.
        wanted = [s.hex for s in subject_ids]
        found: dict[UUID, bytes | None] = {}
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            cursor.execute(
                f"SELECT subject_id, key FROM {self.table} WHERE subject_id IN "
                f"({', '.join('?' * len(chunk))})",
                chunk,
            )
            for subject, key in cursor.fetchall():
                found[UUID(subject)] = None if key is None else bytes(key)
        return found

    def insert_in(self, cursor: Any, records: Sequence[KeyRecord]) -> None:
        cursor.executemany(self._insert, [self._parameters(r) for r in records])

    @staticmethod
    def _parameters(record: KeyRecord) -> tuple[Any, ...]:
        erased = record.erased_at
        return (
            record.subject_id.hex,
            record.account_id.hex,
            record.key,
            record.created_at.isoformat(),
            None if erased is None else erased.isoformat(),
        )

    def create(self, record: KeyRecord) -> KeyRecord:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self._insert, self._parameters(record))
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

    def __init__(self, datastore: Any, table: str, recorder: Any = None) -> None:
        from psycopg.sql import SQL, Identifier

        self.datastore = datastore
        self.recorder = recorder
        name = SQL("{}.{}").format(Identifier(datastore.schema), Identifier(table))
        columns = SQL("subject_id, account_id, key, created_at, erased_at")
        self._create = SQL(
            "CREATE TABLE IF NOT EXISTS {} (subject_id uuid PRIMARY KEY, account_id uuid NOT "
            "NULL, key bytea, created_at timestamptz NOT NULL, erased_at timestamptz)"
        ).format(name)
        self._get = SQL("SELECT {} FROM {} WHERE subject_id = %s").format(columns, name)
        self._get_many = SQL("SELECT {} FROM {} WHERE subject_id = ANY(%s)").format(columns, name)
        self._lock_many = SQL(
            "SELECT subject_id, key FROM {} WHERE subject_id = ANY(%s) FOR SHARE"
        ).format(name)
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

    def get_many(self, subject_ids: Iterable[UUID]) -> dict[UUID, KeyRecord]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._get_many, (list(subject_ids),))
            rows = c.fetchall()
        return {record.subject_id: record for record in map(self._record, rows)}

    def bind(self, writer: Callable[[Any, Sequence[StoredEvent]], None]) -> bool:
        if self.recorder is None or not hasattr(self.recorder, "key_writer"):
            return False
        self.recorder.key_writer = writer
        return True

    def select_in(self, cursor: Any, subject_ids: Sequence[UUID]) -> dict[UUID, bytes | None]:
        # FOR SHARE: an erasure (an UPDATE of the row) waits until this transaction ends.
        cursor.execute(self._lock_many, (list(subject_ids),))
        return {
            row["subject_id"]: None if row["key"] is None else bytes(row["key"])
            for row in cursor.fetchall()
        }

    def insert_in(self, cursor: Any, records: Sequence[KeyRecord]) -> None:
        cursor.executemany(self._insert, [self._parameters(r) for r in records])

    @staticmethod
    def _parameters(record: KeyRecord) -> tuple[Any, ...]:
        return (
            record.subject_id,
            record.account_id,
            record.key,
            record.created_at,
            record.erased_at,
        )

    def create(self, record: KeyRecord) -> KeyRecord:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self._insert, self._parameters(record))
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
        return SQLiteKeyStore(recorder.datastore, _table_name(recorder.events_table_name), recorder)
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
            return PostgresKeyStore(
                recorder.datastore, _table_name(recorder.events_table_name), recorder
            )
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


_ERASED_KEY = b""  # in PersonalData._writing: the subject was erased


@dataclass(frozen=True)
class SealedStoredEvent(StoredEvent):
    """A stored event with the keys its personal fields were sealed under (``(subject,
    account, key)`` each), for the recorder to write and check in the transaction that inserts
    the event (see the module)."""

    keys: tuple[tuple[UUID, UUID, bytes], ...] = field(default=(), compare=False, repr=False)


class PersonalData:
    """The service's keys (through a cache) and the sealing and opening of personal texts."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store: KeyStore | None = None
        self._clock = clock
        self._cache: dict[UUID, tuple[float, bytes | None]] = {}  # to open, for a while
        self._writing: dict[UUID, bytes] = {}  # to seal with (_ERASED_KEY: erased)
        self._stored: set[UUID] = set()  # subjects whose key row is known to exist
        self._transactional = False  # the recorder writes keys with the events
        self._ciphers: dict[bytes, AESGCM] = {}  # by key

    @property
    def store(self) -> KeyStore:
        """The key store (set when the service has made its recorder)."""
        if self._store is None:
            raise StoreConfigurationError("store", "the key store is not attached yet")
        return self._store

    @property
    def transactional(self) -> bool:
        """True when new keys are written in the transaction of their events (SQLite,
        PostgreSQL); False when each is stored on its own first (memory)."""
        return self._transactional

    def attach(self, store: KeyStore) -> None:
        """Use ``store`` (and create its table); have its recorder write the keys of the events
        it inserts where it can."""
        store.create_table()
        self._store = store
        self.forget_cached()
        self._transactional = store.bind(self.write_keys_in)

    def forget_cached(self) -> None:
        """Drop every cached key (after keys were imported, say)."""
        self._cache.clear()
        self._writing.clear()
        self._stored.clear()
        self._ciphers.clear()

    def forget(self, subject_id: UUID) -> None:
        """Drop what this process knows of one subject's key (the next use reads the store)."""
        self._cache.pop(subject_id, None)
        self._writing.pop(subject_id, None)
        self._stored.discard(subject_id)
        self._ciphers.clear()

    def _aesgcm(self, key: bytes) -> AESGCM:
        cipher = self._ciphers.get(key)
        if cipher is None:
            if len(self._ciphers) >= _MAX_CIPHERS:
                self._ciphers.clear()
            cipher = self._ciphers[key] = AESGCM(key)
        return cipher

    # --- opening: keys read through a short cache ---------------------------------------------

    def _key(self, subject_id: UUID) -> bytes | None:
        now = time.monotonic()
        cached = self._cache.get(subject_id)
        if cached is not None and now - cached[0] < KEY_CACHE_SECONDS:
            return cached[1]
        record = self.store.get(subject_id)
        key = None if record is None else record.key
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
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
        return self._aesgcm(key)

    # --- sealing: keys kept for as long as the process runs ----------------------------------

    def _remember(self, record: KeyRecord) -> None:
        if len(self._writing) >= _MAX_CACHED:
            self._writing.clear()
            self._stored.clear()
        self._writing[record.subject_id] = _ERASED_KEY if record.key is None else record.key
        self._stored.add(record.subject_id)

    def prefetch(self, subject_ids: Iterable[UUID]) -> None:
        """Read the keys of ``subject_ids`` this process does not know yet, in as few queries
        as can be (before a bulk save, instead of one read per new subject)."""
        unknown = {s for s in subject_ids if s not in self._writing}
        if not unknown:
            return
        found = self.store.get_many(unknown)
        for record in found.values():
            self._remember(record)
        for subject_id in unknown - found.keys():  # new subjects: keys to write with the events
            self._writing.setdefault(subject_id, AESGCM.generate_key(256))

    def prefetch_for(self, events: Iterable[Any]) -> None:
        """:meth:`prefetch` the subjects of the personal fields of domain ``events``."""
        subjects: set[UUID] = set()
        for event in events:
            declared = PERSONAL_FIELDS.get(type(event))
            if declared is not None and isinstance(event.originator_id, UUID):
                subjects.update(declared.subjects(vars(event), event.originator_id))
        self.prefetch(subjects)

    def _writing_key(
        self,
        subject_id: UUID,
        account_id: UUID,
        used: dict[UUID, tuple[UUID, bytes]] | None,
    ) -> bytes:
        key = self._writing.get(subject_id)
        if key is None:
            record = self.store.get(subject_id)
            if record is None:  # a new subject: its key, stored with the events that use it
                key = self._writing.setdefault(subject_id, AESGCM.generate_key(256))
            else:
                self._remember(record)
                key = self._writing[subject_id]
        if key == _ERASED_KEY:
            raise _erased(subject_id)
        if used is None and subject_id not in self._stored:
            # Nobody writes this key with the events: store it now, on its own.
            record = self.store.create(KeyRecord(subject_id, account_id, key, self._clock()))
            self._remember(record)
            if record.key is None:
                raise _erased(subject_id)
            key = record.key
        if used is not None:
            used[subject_id] = (account_id, key)
        return key

    def seal(
        self,
        field: str,
        value: Any,
        subjects: tuple[UUID, ...],
        account_id: UUID,
        *,
        used: dict[UUID, tuple[UUID, bytes]] | None = None,
    ) -> Any:
        """``value`` sealed under the keys of ``subjects`` (made if need be); an empty text or
        the erased marker is kept as it is. With ``used``, a new key is not stored here: it is
        entered in ``used`` (with every other key the value was sealed under) for the recorder
        to write with the event; without, it is stored before it is used."""
        if not isinstance(value, str) or value in ("", ERASED):
            return value
        ordered: tuple[UUID, ...]
        if len(subjects) == 1:
            ordered = (subjects[0],)
            key = self._writing_key(subjects[0], account_id, used)
        else:
            ordered = tuple(sorted(set(subjects), key=lambda s: s.bytes))
            keys = [self._writing_key(subject, account_id, used) for subject in ordered]
            key = keys[0] if len(keys) == 1 else hashlib.sha256(b"".join(keys)).digest()
        nonce = os.urandom(_NONCE_SIZE)
        ciphertext = self._aesgcm(key).encrypt(nonce, value.encode("utf-8"), _aad(field, ordered))
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

    def seal_state(
        self,
        cls: type,
        state: dict[str, Any],
        account_id: UUID,
        *,
        used: dict[UUID, tuple[UUID, bytes]] | None = None,
    ) -> None:
        """Seal the personal fields of an event's state (in place), as declared for ``cls``;
        an Account snapshot's stakeholders too (their keys are stored before use, whatever
        ``used``: snapshots are not written with the events)."""
        declared = PERSONAL_FIELDS.get(cls)
        if declared is not None:
            subjects = declared.subjects(state, account_id)
            for name in declared.fields:
                state[name] = self.seal(name, state[name], subjects, account_id, used=used)
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
                name: self.seal(name, getattr(person, name), subjects, account_id)
                for name in _STAKEHOLDER_FIELDS
            },
        )

    def write_keys_in(self, cursor: Any, stored_events: Sequence[StoredEvent]) -> None:
        """In the recorder's transaction, after its inserts: write the new keys the events were
        sealed under and check every one against its row. An erased subject refuses the save
        (:class:`InvalidTransition`); a key another writer made first for a new subject fails
        it with ``IntegrityError`` (deciding again uses that writer's key)."""
        used: dict[UUID, tuple[UUID, bytes]] = {}
        clashes: list[UUID] = []
        for event in stored_events:
            for subject_id, account_id, key in getattr(event, "keys", ()):
                first = used.setdefault(subject_id, (account_id, key))
                if first[1] != key:
                    clashes.append(subject_id)  # two threads of this process raced
        if not used:
            return
        subjects = list(used)
        rows = self.store.select_in(cursor, subjects)
        missing = [s for s in subjects if s not in rows]
        if missing:
            now = self._clock()
            self.store.insert_in(
                cursor, [KeyRecord(s, used[s][0], used[s][1], now) for s in missing]
            )
            rows.update(self.store.select_in(cursor, missing))
        for subject_id in subjects:
            stored = rows.get(subject_id)
            if stored is None:
                self._writing[subject_id] = _ERASED_KEY
                self._stored.add(subject_id)
                raise _erased(subject_id)
            if stored != used[subject_id][1]:
                clashes.append(subject_id)
            self._writing[subject_id] = stored
        if clashes:
            for subject_id in clashes:
                self._stored.add(subject_id)
            raise IntegrityError(
                f"the key of subject {clashes[0]} was made by another writer first"
            )
        self._stored.update(subjects)

    def erase(self, subject_id: UUID) -> None:
        """Destroy the subject's key now (this process forgets it at once)."""
        self.store.erase(subject_id, self._clock())
        self._ciphers.clear()
        self._writing[subject_id] = _ERASED_KEY
        self._stored.add(subject_id)
        self._cache[subject_id] = (time.monotonic(), None)


def _erased(subject_id: UUID) -> InvalidTransition:
    return InvalidTransition(
        "subject_id",
        f"the personal data of subject {subject_id} was erased: nothing personal "
        "about it can be recorded again",
    )


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
        used: dict[UUID, tuple[UUID, bytes]] | None = None
        if isinstance(originator_id, UUID):
            used = {} if self.personal.transactional else None
            self.personal.seal_state(cls, event_state, originator_id, used=used)
        stored_state = self.transcoder.encode(event_state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        if used:
            return SealedStoredEvent(
                originator_id=originator_id,
                originator_version=originator_version,
                topic=get_topic(cls),
                state=stored_state,
                keys=tuple((s, account, key) for s, (account, key) in used.items()),
            )
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
