"""The projection engine: read-model stores on every backend, and the runners that keep
projections and policies up to date with the event store, exactly once.

>>> from acctdomain import AccountService
>>> from acctdomain.projections import ProjectionRunner
>>> runner = ProjectionRunner(AccountService("memory:"), [])
>>> runner.catch_up()
0
"""

from acctdomain.plugins.types import DeadLetter, FailurePolicy, Retry, Stop
from acctdomain.projections.batch import Batch, Changes, ShareBatch, StoreReader
from acctdomain.projections.codec import RowCodec
from acctdomain.projections.eventids import EVENT_NAMESPACE, event_id
from acctdomain.projections.factory import read_model_store_for
from acctdomain.projections.follow import FollowerCrash, StoreFollower
from acctdomain.projections.keys import Partition, ReadModelKey, table_name
from acctdomain.projections.memory_store import MemoryReadModelStore
from acctdomain.projections.policies import PolicyRunner
from acctdomain.projections.runner import Cancel, ProjectionRunner, keeps_accounts_apart
from acctdomain.projections.sqlite_store import SQLiteReadModelStore
from acctdomain.projections.status import (
    Failure,
    ParkedEvent,
    ParkedEventDetail,
    PolicyRefusal,
    ProjectionStatus,
    ReplayResult,
    State,
)
from acctdomain.projections.store import (
    DEAD_LETTER_TABLE,
    PARTITIONS_TABLE,
    PAUSED_TABLE,
    TRACKING_TABLE,
    LayoutConflict,
    LetterFilter,
    PositionConflict,
    ReadModelStore,
    Tracking,
)


def __getattr__(name: str) -> object:
    # psycopg is an optional extra: only a PostgreSQL store needs it.
    if name == "PostgresReadModelStore":
        from acctdomain.projections.postgres_store import PostgresReadModelStore

        return PostgresReadModelStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEAD_LETTER_TABLE",
    "EVENT_NAMESPACE",
    "PARTITIONS_TABLE",
    "PAUSED_TABLE",
    "TRACKING_TABLE",
    "Batch",
    "Cancel",
    "Changes",
    "DeadLetter",
    "Failure",
    "FailurePolicy",
    "FollowerCrash",
    "LayoutConflict",
    "LetterFilter",
    "MemoryReadModelStore",
    "ParkedEvent",
    "ParkedEventDetail",
    "Partition",
    "PolicyRefusal",
    "PolicyRunner",
    "PositionConflict",
    "PostgresReadModelStore",
    "ProjectionRunner",
    "ProjectionStatus",
    "ReadModelKey",
    "ReadModelStore",
    "ReplayResult",
    "Retry",
    "RowCodec",
    "SQLiteReadModelStore",
    "ShareBatch",
    "State",
    "Stop",
    "StoreFollower",
    "StoreReader",
    "Tracking",
    "event_id",
    "keeps_accounts_apart",
    "read_model_store_for",
    "table_name",
]
