"""Every turn takes one slot of the user's rate limit, whatever it does, and a model turn
takes exactly one however many rounds it has: against the real database and Redis, the
model faked at the wire."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from service.app import create_app
from service.deps import Deps
from service.settings import Settings
from tests.fakes.llm import FakeLLM, Reply, chunk, fake_llm, says, sse, usage
from tests.integration.conftest import MakeUser
from tests.integration.fake_model import model_deps
from tests.integration.homes import seeded_home

TODAY = {"name": "today", "first_date": None, "last_date": None}


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with fake_llm() as server:
        yield server


@pytest.fixture
async def deps(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis, fake: FakeLLM
) -> AsyncIterator[Deps]:
    """One turn a minute, two at once."""
    async with model_deps(
        settings, pool, redis_client, fake, rate_per_minute=1, rate_burst=2
    ) as built:
        yield built


def _tool_round() -> Reply:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "energy_summary", "arguments": json.dumps({"window": TODAY})},
    }
    return Reply(sse(chunk({"tool_calls": [call]}), chunk({}, "tool_calls"), usage(10, 5)))


async def test_a_model_turn_with_tool_rounds_takes_one_rate_limit_slot_like_any_turn(
    deps: Deps, pool: asyncpg.Pool, fake: FakeLLM, make_user: MakeUser
) -> None:
    user, headers = await make_user("resident")
    home = await seeded_home(pool, user.id, days=1.2, seed=11)
    fake.replies += [_tool_round(), says("I don't know that yet."), says("Nor that.")]
    transport = httpx.ASGITransport(app=create_app(deps=deps))

    async def ask(client: httpx.AsyncClient, text: str) -> httpx.Response:
        return await client.post(
            f"/v1/households/{home}/chat",
            headers=headers,
            json={"messages": [{"role": "user", "content": text}]},
        )

    async with httpx.AsyncClient(transport=transport, base_url="http://ww.test") as client:
        first = await ask(client, "how much energy did I use today?")
        second = await ask(client, "and how much did the heat pump use today?")
        third: Any = await ask(client, "thanks!")
    assert (first.status_code, second.status_code) == (200, 200)
    assert len(fake.requests) == 3  # the first turn's two rounds and the second's one
    # Smalltalk is a turn too: the burst of two is spent.
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "rate_limited"
    assert int(third.headers["Retry-After"]) >= 1
