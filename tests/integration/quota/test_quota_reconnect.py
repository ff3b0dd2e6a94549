"""A Redis connection the server dropped (CLIENT KILL, an idle timeout) does not fail the
next model turn, and the turn's reservation counts once: against the real Redis, with the
model faked at the wire."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from quota.core import Limits, Reserved
from quota.redis_store import RedisStore
from quota.redis_store import connect as redis_connect
from service.app import create_app
from service.settings import Settings
from tests.conftest import redis_url
from tests.fakes.llm import FakeLLM, fake_llm, says
from tests.integration.conftest import MakeUser, kill_redis_connections
from tests.integration.fake_model import model_deps
from tests.integration.homes import seeded_home


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with fake_llm() as server:
        yield server


async def test_a_dropped_redis_connection_does_not_fail_the_next_model_turn(
    settings: Settings, pool: asyncpg.Pool, fake: FakeLLM, make_user: MakeUser
) -> None:
    name = f"wwtest-{uuid.uuid4().hex[:10]}"
    client = redis_connect(f"{redis_url()}?client_name={name}")
    user, headers = await make_user("resident")
    home = await seeded_home(pool, user.id, days=1.2, seed=11)
    try:
        async with model_deps(settings, pool, client, fake) as deps:
            assert isinstance(deps.quota.store, RedisStore)
            # Open the pool's connection (a read through the same script path), then drop
            # it from the server's side.
            await deps.quota.store.snapshot(user=user.id)
            assert await kill_redis_connections(name) >= 1
            fake.replies.append(says("I don't know that yet.", prompt=500, completion=20))
            transport = httpx.ASGITransport(app=create_app(deps=deps))
            async with httpx.AsyncClient(transport=transport, base_url="http://wattwise.test") as c:
                response = await c.post(
                    f"/v1/households/{home}/chat",
                    headers=headers,
                    json={"messages": [{"role": "user", "content": "how much did I use today?"}]},
                )
            assert response.status_code == 200, response.text
            assert len(fake.requests) == 1
            snap = await deps.quota.store.snapshot(user=user.id)
            # Reserved once and settled once: exactly the provider's usage of one turn.
            assert (snap.user_day.used, snap.user_day.held) == (520, 0)
        async with pool.acquire() as conn:
            rows = await conn.fetchval(
                "SELECT count(*) FROM usage_ledger WHERE user_id = $1", user.id
            )
        assert rows == 1
    finally:
        await client.aclose()


async def test_a_reservation_sent_twice_counts_once(redis_client: aioredis.Redis) -> None:
    """What makes sending a batch again safe when its connection broke: the same
    reservation (or admission) id a second time changes nothing."""
    prefix = f"wwtest:{uuid.uuid4().hex[:10]}"
    store = RedisStore(redis_client, prefix=prefix)
    limits = Limits(10**9, 10**9, 10**12, rate_per_minute=1, burst=2)
    user = uuid.uuid4()
    try:
        for scope in ("user_day", "user_month", "global_month"):
            snap = await store.snapshot(user=user)
            await store.load(user=user, periods=snap.periods, scope=scope, used=0)
        first = await store.reserve(user=user, rid="r1", tokens=100, cost=5, limits=limits)
        again = await store.reserve(user=user, rid="r1", tokens=100, cost=5, limits=limits)
        assert isinstance(first, Reserved)
        assert again == first
        assert (await store.snapshot(user=user)).user_day.held == 100
        # The reservation took one slot of the burst of two, once; a1 takes the other, once.
        assert await store.admit(user=user, aid="a1", limits=limits) is None
        assert await store.admit(user=user, aid="a1", limits=limits) is None
        assert await store.admit(user=user, aid="a2", limits=limits) is not None
    finally:
        keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis_client.delete(*keys)
