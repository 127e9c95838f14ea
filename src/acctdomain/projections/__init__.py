"""The projection engine: read-model stores on every backend, and the runners that keep
projections and policies up to date with the event store, exactly once.

>>> from acctdomain import AccountService
>>> from acctdomain.projections import ProjectionRunner
>>> runner = ProjectionRunner(AccountService("memory:"), [])
>>> runner.catch_up()
0
"""

from acctdomain.projections.batch import Batch, Changes, StoreReader
from acctdomain.projections.codec import RowCodec
from acctdomain.projections.eventids import EVENT_NAMESPACE, event_id
from acctdomain.projections.factory import read_model_store_for
from acctdomain.projections.keys import ReadModelKey, table_name
from acctdomain.projections.memory_store import MemoryReadModelStore
from acctdomain.projections.policies import PolicyRunner
from acctdomain.projections.postgres_store import PostgresReadModelStore
from acctdomain.projections.runner import ProjectionRunner
from acctdomain.projections.sqlite_store import SQLiteReadModelStore
from acctdomain.projections.status import Failure, PolicyRefusal, ProjectionStatus, State
from acctdomain.projections.store import TRACKING_TABLE, PositionConflict, ReadModelStore

__all__ = [
    "EVENT_NAMESPACE",
    "TRACKING_TABLE",
    "Batch",
    "Changes",
    "Failure",
    "MemoryReadModelStore",
    "PolicyRefusal",
    "PolicyRunner",
    "PositionConflict",
    "PostgresReadModelStore",
    "ProjectionRunner",
    "ProjectionStatus",
    "ReadModelKey",
    "ReadModelStore",
    "RowCodec",
    "SQLiteReadModelStore",
    "State",
    "StoreReader",
    "event_id",
    "read_model_store_for",
    "table_name",
]
