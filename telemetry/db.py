"""Connection pools and per-connection setup shared by the service, the CLI and the tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeAlias
from urllib.parse import urlsplit

import asyncpg


async def init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python values; PostgreSQL does the parsing and validation.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


# Every timestamp leaves the database in UTC; local time is computed in Python. JIT is off:
# compiling a query costs hundreds of milliseconds, and on a database without statistics
# yet the planner's estimates trigger it for queries that run in one. Prepared statements
# keep one generic plan: every statement here has a fixed shape, reaches rows through
# per-device index probes (LATERAL), and would otherwise be planned again on each run
# (the window figure spends 0.9 ms planning for 2 ms executing).
SERVER_SETTINGS = {
    "timezone": "UTC",
    "application_name": "wattwise",
    "jit": "off",
    "plan_cache_mode": "force_generic_plan",
}


async def keep_session(conn: asyncpg.Connection) -> None:
    """A pooled connection's reset on release, without the reset query.

    asyncpg still rolls back an open transaction and drops listeners before calling this;
    what its default reset query adds (RESET ALL, CLOSE ALL, UNLISTEN *, releasing session
    advisory locks) undoes state wattwise never leaves on a pooled connection: settings are
    fixed at connect or SET LOCAL, advisory locks are per transaction, cursors live inside
    transactions. Skipping it saves a round trip on every request.
    """


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=keep_session,
        server_settings=SERVER_SETTINGS,
    )
    assert pool is not None
    return pool


async def connect(dsn: str, **settings: str) -> asyncpg.Connection:
    """A connection with the service's settings (`settings` override some)."""
    conn = await asyncpg.connect(dsn, server_settings={**SERVER_SETTINGS, **settings})
    await init_connection(conn)
    return conn


if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # What a pool hands out and what connect() returns: both speak the query API.
    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]


@asynccontextmanager
async def scratch_database(admin_dsn: str, name: str) -> AsyncIterator[str]:
    """A new, empty database `name` on the server of `admin_dsn` (replacing one left by a
    crashed run); yields its DSN and drops it on the way out."""
    dsn = urlsplit(admin_dsn)._replace(path=f"/{name}").geturl()
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield dsn
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
