"""A client that goes away mid-stream leaves no reservation behind: a real server on
loopback streams Server-Sent Events from inside a metered call, and the client hangs up."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import redis.asyncio as aioredis
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from quota.core import Limits
from quota.guard import metered
from quota.ledger import Ledger
from quota.prices import parse_prices
from quota.redis_store import RedisStore
from quota.service import QuotaService
from tests.fakes.server import serving

PRICES = parse_prices('{"m": {"input": 1, "output": 1, "max_tokens": 500}}')


async def test_a_client_that_hangs_up_mid_stream_leaves_no_reservation(
    pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    prefix = f"wwtest:{uuid.uuid4().hex[:12]}"
    quota = QuotaService(
        RedisStore(redis_client, prefix=prefix),
        Ledger(pool),
        prices=PRICES,
        limits=Limits(10**9, 10**9, 10**12, 1_000_000, 10_000),
    )
    user = uuid.uuid4()

    async def chat(request: Request) -> EventSourceResponse:
        async def events() -> AsyncIterator[dict[str, str]]:
            async with metered(
                quota, user_id=user, household_id=None, model="m", prompt_tokens=50
            ) as call:
                for n in range(1000):
                    call.streamed("token ")
                    yield {"data": f"token {n}"}
                    await asyncio.sleep(0.05)

        return EventSourceResponse(events())

    try:
        async with serving(Starlette(routes=[Route("/chat", chat)])) as url:
            async with (
                httpx.AsyncClient() as client,
                client.stream("GET", f"{url}/chat") as response,
            ):
                lines = response.aiter_lines()
                while not (await lines.__anext__()).startswith("data: token 2"):
                    pass
                held = await quota.store.snapshot(user=user)
                assert held.user_day.held == 550
            # The connection is closed, the server still up: the reservation must be gone
            # within 2 seconds.
            hung_up = time.monotonic()
            while (await quota.store.snapshot(user=user)).user_day.held:
                assert time.monotonic() - hung_up < 2, "the reservation outlived the client"
                await asyncio.sleep(0.05)
        snap = await quota.store.snapshot(user=user)
        assert 50 < snap.user_day.used < 550  # the prompt and what streamed, estimated
    finally:
        keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis_client.delete(*keys)
