"""An SQLite event store that can be followed live, also from another process.

eventsourcing's SQLite application recorder cannot be subscribed to (``subscribe()`` raises
``NotImplementedError``), so nothing could follow an SQLite store. This module is a drop-in
``PERSISTENCE_MODULE``: eventsourcing's SQLite factory and recorders, unchanged, plus a
:class:`SQLiteSubscription`. SQLite has no LISTEN/NOTIFY, so a subscription learns of new events
in two ways:

- a commit made through any recorder of this process on the same file wakes it at once (a
  condition variable shared by every recorder of that file);
- a commit made by another process is seen by polling ``PRAGMA data_version`` on a connection
  of the subscription's own, every ``SQLITE_POLL_INTERVAL`` seconds (default 0.05): a check of
  the WAL index that reads no table, so idle followers cost next to nothing.

Either way the subscription then reads the notifications after the last one it returned, so a
missed or spurious wake-up costs at most one poll interval or one empty query, never an event.

The application and process recorders also keep the store's hash chain (see
:mod:`acctdomain.audit`): each insert of events writes their chain rows to
``<events table>_chain`` in the same transaction. The chain rows are written after the events,
when the transaction holds SQLite's write lock, so the previous hash they read is the last one
committed and the chain follows notification order. A store that has events but no chain rows
yet (written before the chain existed) gets its chain built when a recorder creates its tables.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from eventsourcing import sqlite as es_sqlite
from eventsourcing.persistence import (
    ApplicationRecorder,
    Notification,
    ProcessRecorder,
    StoredEvent,
    Subscription,
)
from eventsourcing.utils import Environment, EnvType

from acctdomain.audit.chain import GENESIS, chain_table_name, encode_originator_id, link
from acctdomain.errors import StoreConfigurationError

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "PERSISTENCE_MODULE",
    "SQLiteSubscription",
    "SubscribableSQLiteApplicationRecorder",
    "SubscribableSQLiteFactory",
    "SubscribableSQLiteProcessRecorder",
]

PERSISTENCE_MODULE = __name__

# Seconds between two looks at another process's commits.
DEFAULT_POLL_INTERVAL = 0.05

# Notifications read per query while a subscription catches up.
_SELECT_LIMIT = 500

# Events read per query while the chain of an older store is built.
_BACKFILL_PAGE = 1_000


class _CommitSignal:
    """Counts the commits of events this process made to one database file, and wakes the
    subscriptions waiting for the next one."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._commits = 0

    @property
    def commits(self) -> int:
        with self._condition:
            return self._commits

    def committed(self) -> None:
        with self._condition:
            self._commits += 1
            self._condition.notify_all()

    def wake(self) -> None:
        """Wake every waiter so it looks at its stop flag."""
        with self._condition:
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float, stopped: threading.Event) -> bool:
        """Wait up to ``timeout`` for a commit after count ``seen``; True if one came."""
        with self._condition:
            self._condition.wait_for(
                lambda: self._commits != seen or stopped.is_set(), timeout=timeout
            )
            return self._commits != seen


_signals: weakref.WeakValueDictionary[str, _CommitSignal] = weakref.WeakValueDictionary()
_signals_lock = threading.Lock()


def _database_key(db_name: str) -> str:
    """One key per database file however it is named (relative path, absolute, ``file:`` URI)."""
    if es_sqlite.SQLiteConnectionPool.detect_memory_mode(db_name):
        return db_name  # a shared-cache in-memory database is known by its name only
    path = unquote(urlsplit(db_name).path) if db_name.startswith("file:") else db_name
    return os.path.realpath(path)


def _signal_for(db_name: str) -> _CommitSignal:
    key = _database_key(db_name)
    with _signals_lock:
        signal = _signals.get(key)
        if signal is None:
            signal = _CommitSignal()
            _signals[key] = signal
        return signal


class SQLiteSubscription(Subscription["SubscribableSQLiteApplicationRecorder"]):
    """Notifications after ``gt`` (of ``topics``, if given), then each new one as it is
    committed; iteration blocks while there are none, until :meth:`stop`.

    Unlike eventsourcing's LISTEN/NOTIFY subscriptions it starts no thread: the iterating
    thread reads and waits, and ``stop()`` (from any thread) wakes it to end the iteration.
    """

    def __init__(
        self,
        recorder: SubscribableSQLiteApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._poll_interval = poll_interval
        self._signal = recorder.commit_signal
        self._stopped = threading.Event()
        self._buffer: deque[Notification] = deque()
        self._watch_lock = threading.Lock()
        self._watch: sqlite3.Connection | None = None
        self._db_name = recorder.datastore.pool.db_name
        self._watch_other_processes = not recorder.datastore.pool.is_sqlite_memory_mode

    def stop(self) -> None:
        """End the iteration (the blocked ``next()`` returns within moments) and release the
        subscription's connection."""
        super().stop()
        self._stopped.set()
        self._signal.wake()
        self._close_watch()

    def __next__(self) -> Notification:
        while not self._has_been_stopped:
            if self._buffer:
                return self._buffer.popleft()
            self._read_or_wait()
        self._close_watch()
        raise StopIteration

    def _read_or_wait(self) -> None:
        # Take both marks before reading, so a commit after the read is never missed.
        seen = self._signal.commits
        version = self._data_version()
        notifications = self._recorder.select_notifications(
            start=self._last_notification_id,
            limit=_SELECT_LIMIT,
            topics=self._topics,
            inclusive_of_start=False,
        )
        if notifications:
            self._buffer.extend(notifications)
            self._last_notification_id = notifications[-1].id
            return
        while not self._has_been_stopped:
            if self._signal.wait(seen, self._poll_interval, self._stopped):
                return
            if version is not None and self._data_version() != version:
                return

    def _data_version(self) -> int | None:
        """The database's change counter as this subscription's own connection sees it: it
        moves whenever another connection, in any process, commits."""
        if not self._watch_other_processes:
            return None
        with self._watch_lock:
            if self._has_been_stopped:
                return None
            if self._watch is None:
                self._watch = sqlite3.connect(
                    self._db_name, uri=True, check_same_thread=False, isolation_level=None
                )
            row = self._watch.execute("PRAGMA data_version").fetchone()
            return int(row[0])

    def _close_watch(self) -> None:
        with self._watch_lock:
            if self._watch is not None:
                self._watch.close()
                self._watch = None


class SubscribableSQLiteApplicationRecorder(es_sqlite.SQLiteApplicationRecorder):
    """eventsourcing's SQLite application recorder, with :meth:`subscribe` and the hash chain."""

    poll_interval: float = DEFAULT_POLL_INTERVAL

    key_writer: Callable[[Any, Sequence[StoredEvent]], None] | None = None
    """Called with the cursor and the events in each transaction that inserts events, after
    the inserts (the subjects' keys, see :mod:`acctdomain.application.personal`)."""

    def __init__(
        self, datastore: es_sqlite.SQLiteDatastore, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name)
        self.commit_signal = _signal_for(datastore.pool.db_name)
        self.chain_table_name = chain_table_name(events_table_name)
        self._select_previous_hash = (
            f"SELECT hash FROM {self.chain_table_name} WHERE notification_id < ? "
            "ORDER BY notification_id DESC LIMIT 1"
        )
        self._insert_links = f"INSERT INTO {self.chain_table_name} VALUES (?, ?)"

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {chain_table_name(self.events_table_name)} ("
            "notification_id INTEGER PRIMARY KEY, hash BLOB NOT NULL)"
        )
        return statements

    def create_table(self) -> None:
        super().create_table()
        self._build_missing_chain()

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        notification_ids = super().insert_events(stored_events, **kwargs)
        self.commit_signal.committed()  # after the commit: a woken reader sees the rows
        return notification_ids

    def _insert_events(
        self, c: es_sqlite.SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        if notification_ids:
            # The inserts above took the write lock: no other writer can come in between, and
            # the last chain row committed before them is the one to link to.
            c.execute(self._select_previous_hash, (notification_ids[0],))
            row = c.fetchone()
            previous = bytes(row[0]) if row is not None else GENESIS
            links = []
            for notification_id, event in zip(notification_ids, stored_events, strict=True):
                previous = link(
                    previous,
                    notification_id,
                    encode_originator_id(event.originator_id),
                    event.originator_version,
                    event.topic.encode("utf-8"),
                    event.state,
                )
                links.append((notification_id, previous))
            c.executemany(self._insert_links, links)
        if self.key_writer is not None:
            self.key_writer(c, stored_events)
        return notification_ids

    def _build_missing_chain(self) -> None:
        """Chain the events of a store written before the chain existed, oldest first.

        Only when the chain table is empty and events exist: a chain that has rows is never
        rewritten here (a gap in it is for ``verify`` to report, not for this to paper over).
        """
        with self.datastore.transaction(commit=False) as c:
            if not self._chain_is_missing(c):
                return
        with self.datastore.transaction(commit=True) as c:
            # A write first, so the transaction holds the write lock before it looks again.
            c.execute(f"DELETE FROM {self.chain_table_name} WHERE notification_id < 0")
            if not self._chain_is_missing(c):
                return
            previous, after = GENESIS, 0
            while True:
                c.execute(
                    f"SELECT rowid, originator_id, originator_version, topic, state "
                    f"FROM {self.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                    (after, _BACKFILL_PAGE),
                )
                rows = c.fetchall()
                if not rows:
                    return
                links = []
                for notification_id, originator_id, version, topic, state in rows:
                    previous = link(
                        previous,
                        notification_id,
                        originator_id.encode("utf-8"),
                        version,
                        topic.encode("utf-8"),
                        bytes(state),
                    )
                    links.append((notification_id, previous))
                c.executemany(self._insert_links, links)
                after = rows[-1][0]

    def _chain_is_missing(self, c: es_sqlite.SQLiteCursor) -> bool:
        c.execute(f"SELECT 1 FROM {self.chain_table_name} LIMIT 1")
        if c.fetchone() is not None:
            return False
        c.execute(f"SELECT 1 FROM {self.events_table_name} LIMIT 1")
        return c.fetchone() is not None

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        """Notifications after ``gt``, then live ones: see :class:`SQLiteSubscription`."""
        return SQLiteSubscription(self, gt, topics, poll_interval=self.poll_interval)


class SubscribableSQLiteProcessRecorder(
    es_sqlite.SQLiteProcessRecorder, SubscribableSQLiteApplicationRecorder
):
    """eventsourcing's SQLite process recorder, with :meth:`subscribe` and the hash chain."""

    def __init__(
        self, datastore: es_sqlite.SQLiteDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)


class SubscribableSQLiteFactory(es_sqlite.SQLiteFactory):
    """eventsourcing's SQLite factory, making recorders that can be subscribed to.

    Reads ``SQLITE_POLL_INTERVAL`` (seconds between looks for another process's commits)
    besides eventsourcing's own SQLite settings.
    """

    SQLITE_POLL_INTERVAL = "SQLITE_POLL_INTERVAL"

    application_recorder_class = SubscribableSQLiteApplicationRecorder
    process_recorder_class = SubscribableSQLiteProcessRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        self.poll_interval = _poll_interval(self.env.get(self.SQLITE_POLL_INTERVAL))

    def application_recorder(self) -> ApplicationRecorder:
        recorder = super().application_recorder()
        if isinstance(recorder, SubscribableSQLiteApplicationRecorder):
            recorder.poll_interval = self.poll_interval
        return recorder

    def process_recorder(self) -> ProcessRecorder:
        recorder = super().process_recorder()
        if isinstance(recorder, SubscribableSQLiteApplicationRecorder):
            recorder.poll_interval = self.poll_interval
        return recorder


def _poll_interval(text: str | None) -> float:
    if text is None or not text.strip():
        return DEFAULT_POLL_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise StoreConfigurationError(
            SubscribableSQLiteFactory.SQLITE_POLL_INTERVAL,
            f"expected a number of seconds > 0, got {text!r}",
        )
    return value
