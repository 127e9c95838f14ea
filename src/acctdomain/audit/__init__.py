"""The audit trail: a tamper-evident hash chain over the event store, and its verification.

Every event written to an SQLite or PostgreSQL store is linked by a SHA-256 hash to the event
before it in notification order (:mod:`acctdomain.audit.chain`), in the transaction that writes
it. :func:`verify` walks the chain and names the first event that was modified, deleted,
inserted or moved. See ``docs/audit.md``.
"""

from __future__ import annotations

from acctdomain.audit.chain import GENESIS, chain_table_name, encode_originator_id, link
from acctdomain.audit.readers import ChainReader, PostgresChainReader, SQLiteChainReader
from acctdomain.audit.verify import Problem, ProblemKind, Progress, VerifyReport, verify

__all__ = [
    "GENESIS",
    "ChainReader",
    "PostgresChainReader",
    "Problem",
    "ProblemKind",
    "Progress",
    "SQLiteChainReader",
    "VerifyReport",
    "chain_table_name",
    "encode_originator_id",
    "link",
    "verify",
]
