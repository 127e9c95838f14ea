"""The read-model store that goes with a service's event store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from acctdomain.projections.codec import RowCodec
from acctdomain.projections.memory_store import MemoryReadModelStore
from acctdomain.projections.store import ReadModelStore

if TYPE_CHECKING:
    from acctdomain.application.service import AccountService

__all__ = ["read_model_store_for"]

# The attribute of a service that holds its in-memory read models.
_MEMORY_ATTRIBUTE = "_acctdomain_memory_read_models"


def read_model_store_for(service: AccountService) -> ReadModelStore:
    """A store beside the service's events: the same SQLite file, the same PostgreSQL database
    and schema, or, for an in-memory service, memory held by the service object itself (every
    call returns that one store, since the events live only in that object too).

    SQL stores are new connections each call: close them when done.
    """
    spec = service.store
    codec = RowCodec(service.mapper.transcoder)
    if spec.kind == "postgres":
        from acctdomain.projections.postgres_store import PostgresReadModelStore

        return PostgresReadModelStore(spec, codec)
    if spec.kind == "sqlite" and not _in_memory(spec.path):
        from acctdomain.projections.sqlite_store import SQLiteReadModelStore

        return SQLiteReadModelStore(spec.path, codec)
    store = getattr(service, _MEMORY_ATTRIBUTE, None)
    if not isinstance(store, MemoryReadModelStore):
        store = MemoryReadModelStore(codec)
        setattr(service, _MEMORY_ATTRIBUTE, store)
    return store


def _in_memory(path: str) -> bool:
    # An in-memory SQLite database cannot be opened by a second connection.
    return path == ":memory:" or "mode=memory" in path
