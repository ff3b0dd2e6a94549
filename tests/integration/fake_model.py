"""Deps whose model is the fake at the wire (tests.fakes.llm, "fake-model"), under a quota
prefix of their own: for the quota tests of whole turns. Closed on the way out, with the
quota's keys under that prefix deleted."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from service.deps import Deps, build_deps
from service.settings import Settings
from tests.fakes.llm import FAKE_PRICES, FakeLLM


@asynccontextmanager
async def model_deps(
    settings: Settings,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    fake: FakeLLM,
    **extra: Any,
) -> AsyncIterator[Deps]:
    """`extra` settings override the defaults here."""
    deps = build_deps(
        settings.model_copy(
            update={
                "openai_base_url": fake.base_url,
                "openai_api_key": None,
                "model": "fake-model",
                "model_prices": FAKE_PRICES,
                "quota_prefix": f"wwtest:{uuid.uuid4().hex[:10]}",
                **extra,
            }
        ),
        pool,
        redis_client,
    )
    try:
        yield deps
    finally:
        assert deps.model is not None
        await deps.model.client.close()
        await deps.live.close()
        prefix = deps.settings.quota_prefix
        keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis_client.delete(*keys)
