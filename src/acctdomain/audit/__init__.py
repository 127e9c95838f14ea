"""The audit trail: a tamper-evident hash chain over the event store, its verification, signed
checkpoints, and export and import of the whole log.

Every event written to an SQLite or PostgreSQL store is linked by a SHA-256 hash to the event
before it in notification order (:mod:`acctdomain.audit.chain`), in the transaction that writes
it. :func:`verify` walks the chain and names the first event that was modified, deleted,
inserted or moved. :func:`make_checkpoint` signs the chain's head with Ed25519 and
:func:`check_checkpoint` proves later, with the public key only, that the store still extends
it (:mod:`acctdomain.audit.checkpoint`). :func:`export_log` writes the log with its hashes as
JSON Lines and :func:`import_log` replays such a file into an empty store
(:mod:`acctdomain.audit.export`). :func:`timeline` tells an account's history with its causes
and :func:`read_models_as_known_at` builds every read model as known at a moment
(``docs/history.md``). See ``docs/audit.md``.
"""

from __future__ import annotations

from acctdomain.audit.asof import AsOfReadModels, read_models_as_known_at, recorded_time
from acctdomain.audit.chain import GENESIS, chain_table_name, encode_originator_id, link
from acctdomain.audit.checkpoint import (
    CheckFailure,
    Checkpoint,
    CheckResult,
    check_checkpoint,
    generate_keys,
    key_id,
    load_private_key,
    load_public_key,
    make_checkpoint,
)
from acctdomain.audit.export import ExportSummary, ImportSummary, export_log, import_log
from acctdomain.audit.readers import ChainReader, PostgresChainReader, SQLiteChainReader
from acctdomain.audit.scheme import CHAIN_SCHEME
from acctdomain.audit.timeline import (
    DESCRIPTIONS,
    ORDERS,
    Cause,
    TimelineEntry,
    describe,
    describe_history,
    timeline,
)
from acctdomain.audit.verify import Problem, ProblemKind, Progress, VerifyReport, verify

__all__ = [
    "CHAIN_SCHEME",
    "DESCRIPTIONS",
    "GENESIS",
    "ORDERS",
    "AsOfReadModels",
    "Cause",
    "ChainReader",
    "CheckFailure",
    "CheckResult",
    "Checkpoint",
    "ExportSummary",
    "ImportSummary",
    "PostgresChainReader",
    "Problem",
    "ProblemKind",
    "Progress",
    "SQLiteChainReader",
    "TimelineEntry",
    "VerifyReport",
    "chain_table_name",
    "check_checkpoint",
    "describe",
    "describe_history",
    "encode_originator_id",
    "export_log",
    "generate_keys",
    "import_log",
    "key_id",
    "link",
    "load_private_key",
    "load_public_key",
    "make_checkpoint",
    "read_models_as_known_at",
    "recorded_time",
    "timeline",
    "verify",
]
