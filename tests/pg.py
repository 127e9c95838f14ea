"""PostgreSQL helpers for tests: a throwaway schema per test on the real server."""

from __future__ import annotations

import os
from uuid import uuid4

from psycopg import sql

from acctdomain.application.stores import parse_store

POSTGRES_URL = os.environ.get(
    "ACCTDOMAIN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


def new_schema_url() -> tuple[str, str]:
    """A store URL naming a fresh schema, and the schema's name."""
    schema = f"acctdomain_test_{uuid4().hex[:12]}"
    return f"{POSTGRES_URL}?schema={schema}", schema


def drop_schema(schema: str) -> None:
    """Drop a test schema and everything in it."""
    with parse_store(POSTGRES_URL).connect() as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )
