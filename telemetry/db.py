"""Connection pools and per-connection setup shared by the service, the CLI and the tests."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

import asyncpg

SslMode = Literal["disable", "prefer", "require", "verify-full"]


@dataclass(frozen=True)
class PoolOptions:
    """How the service's pool connects and guards its connections (settings: WATTWISE_DB_*)."""

    min_size: int = 1
    max_size: int = 10
    idle_lifetime: float = 300.0  # seconds an idle connection is kept
    health_check_after: float = 30.0  # idle seconds after which acquire first runs SELECT 1
    statement_timeout: float = 30.0  # seconds; PostgreSQL cancels a longer statement
    idle_in_transaction_timeout: float = 60.0  # seconds; PostgreSQL ends such a session
    sslmode: SslMode = "prefer"
    sslrootcert: str | None = None  # CA file for verify-full (default: the system's CAs)

    def server_settings(self) -> dict[str, str]:
        return {
            **SERVER_SETTINGS,
            "statement_timeout": f"{round(self.statement_timeout * 1000)}ms",
            "idle_in_transaction_session_timeout": (
                f"{round(self.idle_in_transaction_timeout * 1000)}ms"
            ),
        }

    def ssl(self) -> SslMode | ssl.SSLContext:
        """asyncpg's `ssl` argument: a mode, or for verify-full a context that checks the
        server's certificate against `sslrootcert` and its name against the host."""
        if self.sslmode != "verify-full":
            return self.sslmode
        return ssl.create_default_context(cafile=self.sslrootcert)


if TYPE_CHECKING:
    _Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]
else:
    _Connection = asyncpg.Connection  # generic in the stubs only


class Connection(_Connection):
    """asyncpg's connection, stamped when the pool last took it back."""

    __slots__ = ("released_at",)

    released_at: float


async def init_connection(conn: asyncpg.Connection) -> None:
    # issubclass, not isinstance: asyncpg's metaclass makes every connection (and proxy)
    # an instance of every Connection class.
    if issubclass(type(conn), Connection):
        cast(Connection, conn).released_at = time.monotonic()
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
    if issubclass(type(conn), Connection):
        cast(Connection, conn).released_at = time.monotonic()


class StaleConnection(ConnectionError):
    """A pooled connection failed its health check; asyncpg has closed it."""


def health_check(after: float) -> Callable[[PoolConnectionProxy[Any]], Coroutine[Any, Any, None]]:
    """The pool's `setup`: a connection idle for `after` seconds or more answers SELECT 1
    before anyone gets it. One that cannot is closed by asyncpg and the acquire fails;
    Deps.connection then takes another."""

    async def setup(proxy: PoolConnectionProxy[Any]) -> None:
        conn: Any = proxy  # the proxy passes attribute reads through to the Connection
        if time.monotonic() - conn.released_at >= after:
            try:
                await conn.execute("SELECT 1", timeout=5.0)
            except Exception as exc:  # whatever broke it, another connection is the cure
                raise StaleConnection(f"health check failed: {exc!r}") from exc

    return setup


async def create_pool(
    dsn: str,
    *,
    min_size: int | None = None,
    max_size: int | None = None,
    options: PoolOptions | None = None,
) -> asyncpg.Pool:
    o = options or PoolOptions()
    pool = await asyncpg.create_pool(
        dsn,
        min_size=o.min_size if min_size is None else min_size,
        max_size=o.max_size if max_size is None else max_size,
        max_inactive_connection_lifetime=o.idle_lifetime,
        connection_class=Connection,
        init=init_connection,
        setup=health_check(o.health_check_after),
        reset=keep_session,
        server_settings=o.server_settings(),
        ssl=o.ssl(),
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
