"""The pool's production settings against real PostgreSQL: server-side timeouts on every
connection, a slow query ending in 503 `timeout`, a full pool in 503 `database_busy`, a
read that survives its connection being killed, and the SSL modes."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from service.app import create_app
from service.deps import Deps, build_deps
from service.settings import ConfigError, Settings, check
from telemetry.db import PoolOptions, create_pool
from tests.conftest import backend_dsns
from tests.integration.conftest import Database, MakeUser

pytestmark = pytest.mark.db

Opened = Callable[..., AbstractAsyncContextManager[tuple[Deps, httpx.AsyncClient]]]


@pytest.fixture
def opened(settings: Settings, redis_client: aioredis.Redis) -> Opened:
    """The app over a pool built from `settings` with some fields changed."""

    @asynccontextmanager
    async def open_app(**changed: Any) -> AsyncIterator[tuple[Deps, httpx.AsyncClient]]:
        configured = settings.model_copy(update=changed)
        assert configured.database_url is not None
        pool = await create_pool(configured.database_url, options=configured.pool_options())
        deps = build_deps(configured, pool, redis_client)
        transport = httpx.ASGITransport(app=create_app(deps=deps))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://ww.test") as c:
                yield deps, c
        finally:
            await pool.close()

    return open_app


@asynccontextmanager
async def _users_locked(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """Hold an exclusive lock on users: every request reads that table first, so it waits."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            yield conn
    finally:
        await conn.close()


async def test_every_connection_carries_the_server_side_timeouts(opened: Opened) -> None:
    async with (
        opened(db_statement_timeout=2.5, db_idle_in_transaction_timeout=7) as (deps, _),
        deps.connection() as conn,
    ):
        assert await conn.fetchval("SHOW statement_timeout") == "2500ms"
        assert await conn.fetchval("SHOW idle_in_transaction_session_timeout") == "7s"


async def test_a_query_past_the_statement_timeout_is_a_503_timeout(
    opened: Opened, db: Database, make_user: MakeUser
) -> None:
    _, headers = await make_user("admin")
    async with opened(db_statement_timeout=0.3) as (_, client), _users_locked(db.dsn):
        async with asyncio.timeout(5):
            r = await client.get("/v1/households", headers=headers)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "timeout"
    assert "0.3 s" in r.json()["error"]["message"]


async def test_a_session_idle_in_a_transaction_is_ended_by_the_server(db: Database) -> None:
    options = PoolOptions(idle_in_transaction_timeout=0.2)
    conn = await asyncpg.connect(db.dsn, server_settings=options.server_settings())
    try:
        transaction = conn.transaction()
        await transaction.start()
        await asyncio.sleep(0.6)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
            await conn.execute("SELECT 1")
        assert conn.is_closed()
    finally:
        conn.terminate()


async def test_no_free_connection_within_the_acquire_timeout_is_a_503(
    opened: Opened, make_user: MakeUser
) -> None:
    _, headers = await make_user("admin")
    async with opened(db_pool_max_size=1, db_acquire_timeout=0.2) as (deps, client):
        async with deps.connection():  # the only one
            r = await client.get("/v1/households", headers=headers)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "database_busy"
        again = await client.get("/v1/households", headers=headers)
        assert again.status_code == 200


async def test_a_read_whose_connection_is_killed_is_retried_on_another(
    opened: Opened, db: Database, make_user: MakeUser
) -> None:
    _, headers = await make_user("admin")
    async with opened(db_pool_max_size=2) as (_, client):
        async with _users_locked(db.dsn) as admin:
            read = asyncio.create_task(client.get("/v1/households", headers=headers))
            victim = None
            async with asyncio.timeout(5):
                while victim is None:
                    victim = await admin.fetchval(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND application_name = 'wattwise'"
                    )
                    await asyncio.sleep(0.02)
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", victim)
        r = await asyncio.wait_for(read, 10)
    assert r.status_code == 200, r.text


async def test_pooled_connections_killed_between_requests_cost_no_request(
    opened: Opened, db: Database, make_user: MakeUser
) -> None:
    _, headers = await make_user("admin")
    async with opened(db_pool_min_size=2, db_pool_max_size=2, db_health_check_after=0) as (
        _,
        client,
    ):
        assert (await client.get("/v1/households", headers=headers)).status_code == 200
        admin = await asyncpg.connect(db.dsn)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'wattwise'"
            )
        finally:
            await admin.close()
        assert killed >= 1
        for _ in range(3):
            r = await client.get("/v1/households", headers=headers)
            assert r.status_code == 200, r.text


async def _ssl_on(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn, ssl="disable")
    try:
        return bool(await conn.fetchval("SHOW ssl") == "on")
    finally:
        await conn.close()


async def test_ssl_modes_against_the_servers_as_they_are() -> None:
    """require encrypts where the server offers TLS and refuses where it does not;
    verify-full checks the certificate (these servers' self-signed ones fail it)."""
    seen = 0
    for dsn in filter(None, backend_dsns().values()):
        has_ssl = await _ssl_on(dsn)
        if has_ssl:
            pool = await create_pool(dsn, options=PoolOptions(sslmode="require"))
            try:
                async with pool.acquire() as conn:
                    used = await conn.fetchval(
                        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                    )
                assert used is True
            finally:
                await pool.close()
            with pytest.raises(ssl.SSLCertVerificationError):
                await create_pool(dsn, options=PoolOptions(sslmode="verify-full"))
            seen += 1
        else:
            with pytest.raises(ConnectionError):
                await create_pool(dsn, options=PoolOptions(sslmode="require"))
        pool = await create_pool(dsn, options=PoolOptions(sslmode="disable"))
        await pool.close()
    if not seen:
        pytest.skip("no configured server offers TLS")


def test_a_missing_ca_file_refuses_to_start(settings: Settings) -> None:
    changed = settings.model_copy(
        update={"db_sslmode": "verify-full", "db_sslrootcert": Path("/nonexistent/ca.pem")}
    )
    with pytest.raises(ConfigError, match="WATTWISE_DB_SSLROOTCERT"):
        check(changed)
