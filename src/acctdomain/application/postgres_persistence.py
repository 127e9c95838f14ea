"""A PostgreSQL event store that keeps the hash chain (see :mod:`acctdomain.audit`).

A drop-in ``PERSISTENCE_MODULE``: eventsourcing's PostgreSQL factory and recorders, whose
application and process recorders also write one chain row per event to
``<events table>_chain``, in the transaction that inserts the events.

The chain needs a total order, and the order must be notification order. eventsourcing already
serialises the transactions that insert events: each takes ``LOCK TABLE ... IN EXCLUSIVE MODE``
on the events table before it inserts, and holds it until it commits. The previous hash is read
right after that lock is granted (in the same pipeline, so it costs no extra round trip), when
every earlier writer has committed and no later one can start: the chain rows of one transaction
follow those of the one before, whatever the gaps in the notification ids (a rolled-back insert
burns sequence values; gaps are legal and the chain does not rely on contiguity).

eventsourcing's optional insert function (``POSTGRES_ENABLE_DB_FUNCTIONS``) inserts without that
lock, so it is refused. A store that has events but no chain rows yet (written before the chain
existed) gets its chain built when a recorder creates its tables, under the same lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing import postgres as es_postgres
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import Environment, EnvType
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from acctdomain.audit.chain import GENESIS, chain_table_name, encode_originator_id, link
from acctdomain.errors import StoreConfigurationError

__all__ = [
    "PERSISTENCE_MODULE",
    "ChainedPostgresApplicationRecorder",
    "ChainedPostgresFactory",
    "ChainedPostgresProcessRecorder",
]

PERSISTENCE_MODULE = __name__

# Events read per query while the chain of an older store is built.
_BACKFILL_PAGE = 1_000


class ChainedPostgresApplicationRecorder(es_postgres.PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL application recorder, writing the hash chain."""

    key_writer: Callable[[Any, Sequence[StoredEvent]], None] | None = None
    """Called with a cursor and the events in each transaction that inserts events, before
    the inserts (the subjects' keys, see :mod:`acctdomain.application.personal`)."""

    def __init__(
        self, datastore: es_postgres.PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.chain_table_name = chain_table_name(events_table_name)
        self.check_identifier_length(self.chain_table_name)
        chain = SQL("{}.{}").format(
            Identifier(self.datastore.schema), Identifier(self.chain_table_name)
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (notification_id bigint PRIMARY KEY, "
                "hash bytea NOT NULL)"
            ).format(chain)
        )
        self._select_previous_hash = SQL(
            "SELECT hash FROM {} ORDER BY notification_id DESC LIMIT 1"
        ).format(chain)
        self._insert_links = SQL(
            "INSERT INTO {} (notification_id, hash) SELECT * FROM unnest(%s::bigint[], %s::bytea[])"
        ).format(chain)
        self._chain_has_rows = SQL("SELECT 1 FROM {} LIMIT 1").format(chain)
        self._events_have_rows = SQL("SELECT 1 FROM {}.{} LIMIT 1").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        self._select_events_page = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {}.{} "
            "WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        self._uuid_ids = datastore.originator_id_type == "uuid"
        # The cursor that read the previous hash, from the lock to the fetch of the ids: one
        # insert at a time per thread, so a thread-local hands it over without a registry.
        self._pending = threading.local()

    def create_table(self) -> None:
        super().create_table()
        self._build_missing_chain()

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        # Before the events: an error raised while eventsourcing inserts them is re-raised only
        # after the transaction committed. The key rows are locked (FOR SHARE) until the commit.
        if self.key_writer is not None and stored_events:
            self.key_writer(curs, stored_events)

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # eventsourcing's order (lock, notify, insert), with the previous hash read between
        # the lock and the insert: pipelined, so it travels with them.
        self._lock_table(curs)
        self._notify_channel(curs)
        head = curs.connection.cursor()
        head.execute(self._select_previous_hash, prepare=True)
        self._pending.head = head
        es_postgres.PostgresAggregateRecorder._insert_stored_events(
            self, curs, stored_events, **kwargs
        )

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        notification_ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        head: Cursor[DictRow] = self._pending.head
        self._pending.head = None
        row = head.fetchone()
        head.close()
        if notification_ids:
            previous = bytes(row["hash"]) if row is not None else GENESIS
            hashes = []
            for notification_id, event in zip(notification_ids, stored_events, strict=True):
                previous = link(
                    previous,
                    notification_id,
                    self._encoded_originator_id(event.originator_id),
                    event.originator_version,
                    event.topic.encode("utf-8"),
                    event.state,
                )
                hashes.append(previous)
            curs.execute(self._insert_links, (list(notification_ids), hashes), prepare=True)
        return notification_ids

    def _encoded_originator_id(self, originator_id: UUID | str) -> bytes:
        # As the column holds it: a uuid column reads back a UUID, a text column a string.
        if self._uuid_ids and not isinstance(originator_id, UUID):
            originator_id = UUID(originator_id)
        elif not self._uuid_ids:
            originator_id = str(originator_id)
        return encode_originator_id(originator_id)

    def _build_missing_chain(self) -> None:
        """Chain the events of a store written before the chain existed, oldest first.

        Only when the chain table is empty and events exist, under the lock writers take: a
        chain that has rows is never rewritten here (a gap in it is for ``verify`` to report).
        """
        with self.datastore.transaction(commit=False) as curs:
            if not self._chain_is_missing(curs):
                return
        with self.datastore.transaction(commit=True) as curs:
            self._lock_table(curs)
            if not self._chain_is_missing(curs):
                return
            previous, after = GENESIS, 0
            while True:
                curs.execute(self._select_events_page, (after, _BACKFILL_PAGE))
                rows = curs.fetchall()
                if not rows:
                    return
                ids, hashes = [], []
                for row in rows:
                    previous = link(
                        previous,
                        row["notification_id"],
                        self._encoded_originator_id(row["originator_id"]),
                        row["originator_version"],
                        row["topic"].encode("utf-8"),
                        bytes(row["state"]),
                    )
                    ids.append(row["notification_id"])
                    hashes.append(previous)
                curs.execute(self._insert_links, (ids, hashes))
                after = ids[-1]

    def _chain_is_missing(self, curs: Cursor[DictRow]) -> bool:
        curs.execute(self._chain_has_rows)
        if curs.fetchone() is not None:
            return False
        curs.execute(self._events_have_rows)
        return curs.fetchone() is not None


class ChainedPostgresProcessRecorder(
    es_postgres.PostgresProcessRecorder, ChainedPostgresApplicationRecorder
):
    """eventsourcing's PostgreSQL process recorder, writing the hash chain."""

    def __init__(
        self,
        datastore: es_postgres.PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
        tracking_table_name: str = "notification_tracking",
    ) -> None:
        super().__init__(
            datastore, events_table_name=events_table_name, tracking_table_name=tracking_table_name
        )


class ChainedPostgresFactory(es_postgres.PostgresFactory):
    """eventsourcing's PostgreSQL factory, making recorders that keep the hash chain."""

    application_recorder_class = ChainedPostgresApplicationRecorder
    process_recorder_class = ChainedPostgresProcessRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        if self.datastore.enable_db_functions:
            self.datastore.close()
            raise StoreConfigurationError(
                self.POSTGRES_ENABLE_DB_FUNCTIONS,
                "the hash chain needs the locked insert; eventsourcing's insert function "
                "inserts without the lock, so it cannot be enabled",
            )


Factory = ChainedPostgresFactory
