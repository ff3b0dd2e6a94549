"""Real PostgreSQL, TimescaleDB and Redis on loopback.

Each backend gets a template database, migrated once per session; every test gets its own
database copied from that template and dropped afterwards, so tests never see each
other's rows. Tests that take `db` run once per backend.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from quota.redis_store import connect as redis_connect
from service.app import create_app
from service.deps import Deps, build_deps
from service.settings import Settings
from telemetry import access
from telemetry.db import connect, create_pool
from telemetry.migrate import migrate
from tests.conftest import backend_dsns, redis_url

TEST_SECRET = "test-secret-7f3a9c1e5b2d8f4a6c0e9b1d3f5a7c9e-2b4d6f8a0c1e3a5c7e9b1d3f"
_counter = itertools.count()
# The name of this process's Redis connections: a test that drops connections drops its own
# only, not those of the other pytest-xdist workers sharing the server.
REDIS_CLIENT_NAME = f"wwtest-{os.getpid()}"


async def kill_redis_connections(name: str = REDIS_CLIENT_NAME, kind: str | None = None) -> int:
    """Drop, from a second client, the Redis connections named `name` (this process's by
    default), of `kind` (normal or pubsub) if given, as the server would (CLIENT KILL);
    how many. Only those: the Redis is shared with other tests and workers."""
    killer = aioredis.Redis.from_url(redis_url())
    try:
        clients = await killer.client_list(_type=kind)
        ids = [c["id"] for c in clients if c.get("name") == name]
        for client_id in ids:
            await killer.client_kill_filter(_id=client_id)
        return len(ids)
    finally:
        await killer.aclose()


def with_database(dsn: str, name: str) -> str:
    return urlsplit(dsn)._replace(path=f"/{name}").geturl()


@dataclass(frozen=True)
class Server:
    backend: str
    admin_dsn: str
    template: str


@dataclass(frozen=True)
class Database:
    backend: str
    name: str
    dsn: str


async def _create_database(admin_dsn: str, name: str, template: str | None = None) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        suffix = f' TEMPLATE "{template}"' if template else ""
        for attempt in range(10):
            try:
                await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
                return
            except asyncpg.ObjectInUseError:
                # A TimescaleDB background worker can still hold the template for a moment.
                if template is None or attempt == 9:
                    raise
                await _end_sessions(conn, template)
                await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def _end_sessions(conn: asyncpg.Connection, database: str) -> None:
    await conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = $1 AND pid <> pg_backend_pid()",
        database,
    )


async def _seal_template(admin_dsn: str, name: str) -> None:
    """No new sessions on the template (TimescaleDB's scheduler included), none left over."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await _end_sessions(conn, name)
    finally:
        await conn.close()


async def _drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session", params=["postgres", "timescaledb"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    backend: str = request.param
    dsn = backend_dsns()[backend]
    if dsn is None:
        if os.environ.get("WATTWISE_REQUIRE_ALL_BACKENDS") == "1":
            pytest.fail(f"backend {backend} is required but not configured")
        pytest.skip(f"{backend} not configured")
    template = f"wattwise_tpl_{backend}_{os.getpid()}"
    await _create_database(dsn, template)
    conn = await connect(with_database(dsn, template))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    await _seal_template(dsn, template)
    yield Server(backend, dsn, template)
    await _drop_database(dsn, template)


async def _fresh(server: Server, template: str | None) -> AsyncIterator[Database]:
    name = f"wattwise_t_{os.getpid()}_{next(_counter)}"
    await _create_database(server.admin_dsn, name, template)
    yield Database(server.backend, name, with_database(server.admin_dsn, name))
    await _drop_database(server.admin_dsn, name)


@pytest.fixture
async def db(server: Server) -> AsyncIterator[Database]:
    """A migrated database of its own, on each backend in turn."""
    async for database in _fresh(server, server.template):
        yield database


@pytest.fixture
async def empty_db(server: Server) -> AsyncIterator[Database]:
    """A database with nothing in it, not even the migrations."""
    async for database in _fresh(server, None):
        yield database


@pytest.fixture
async def pool(db: Database) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(db.dsn, max_size=4)
    yield created
    await created.close()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = redis_connect(f"{redis_url()}?client_name={REDIS_CLIENT_NAME}")
    yield client
    await client.aclose()


@pytest.fixture
def settings(db: Database) -> Settings:
    return Settings(env="development", database_url=db.dsn, jwt_secret=TEST_SECRET)


@pytest.fixture
async def deps(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> AsyncIterator[Deps]:
    built = build_deps(settings, pool, redis_client)
    yield built
    await built.live.close()


@pytest.fixture
async def client(deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(deps=deps))
    async with httpx.AsyncClient(transport=transport, base_url="http://wattwise.test") as c:
        yield c


MakeUser = Callable[..., Awaitable[tuple[access.User, dict[str, str]]]]


@pytest.fixture
def make_user(pool: asyncpg.Pool, deps: Deps) -> MakeUser:
    """Create a user with a role; returns it and the headers that authenticate as it."""

    async def make(
        role: access.Role, email: str | None = None
    ) -> tuple[access.User, dict[str, str]]:
        async with pool.acquire() as conn:
            user = await access.create_user(
                conn, email=email or f"{role}-{next(_counter)}@example.test", role=role
            )
        token = deps.tokens.issue(user.id, ttl=timedelta(minutes=5))
        return user, {"Authorization": f"Bearer {token}"}

    return make
