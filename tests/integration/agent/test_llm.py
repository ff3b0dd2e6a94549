"""The model client against a local fake OpenAI-compatible server: streamed text and tool
calls, usage settled from the provider's report, and no request at all when the quota
cannot account for it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import openai
import pytest
import redis.asyncio as aioredis

from agent.llm import ChatModel, RoundEnd, TextDelta, ToolCall
from quota.core import Limits, ModelNotPriced, QuotaUnavailable
from quota.ledger import Ledger
from quota.memory_store import MemoryStore
from quota.prices import parse_prices
from quota.redis_store import RedisStore
from quota.service import QuotaService
from tests.fakes.llm import FakeLLM, Reply, chunk, fake_llm, sse, usage

PRICES = parse_prices('{"fake-model": {"input": 1, "output": 1, "max_tokens": 200}}')
LIMITS = Limits(10**9, 10**9, 10**12, 1_000_000, 10_000)


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with fake_llm() as server:
        yield server


@pytest.fixture
async def client(fake: FakeLLM) -> AsyncIterator[openai.AsyncOpenAI]:
    c = openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
    yield c
    await c.close()


async def _collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [event async for event in stream]


async def test_text_and_tool_calls_stream_and_the_reported_usage_is_settled(
    fake: FakeLLM, client: openai.AsyncOpenAI, pool: asyncpg.Pool
) -> None:
    body = sse(
        chunk({"role": "assistant", "content": "Today "}),
        chunk({"content": "so far:"}),
        chunk({"tool_calls": [{"index": 0, "id": "t1", "type": "function",
                                "function": {"name": "energy_summary", "arguments": "{\"win"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "dow\": 1}"}}]}),
        chunk({}, "tool_calls"),
        usage(31, 9),
    )  # fmt: skip
    fake.replies.append(Reply(body))
    quota = QuotaService(MemoryStore(), Ledger(pool), prices=PRICES, limits=LIMITS)
    model = ChatModel(client, model="fake-model", quota=quota)
    user = uuid.uuid4()
    events = await _collect(
        model.round(
            user_id=user,
            household_id=None,
            messages=[{"role": "user", "content": "how much today?"}],
            max_tokens=10**6,
        )
    )
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Today ", "so far:"]
    end = events[-1]
    assert isinstance(end, RoundEnd)
    assert end.tool_calls == (ToolCall("t1", "energy_summary", '{"window": 1}'),)
    assert end.finish_reason == "tool_calls"
    assert end.usage == (31, 9)
    [sent] = fake.requests
    assert sent["max_tokens"] == 200  # clamped to the model's configured maximum
    assert sent["stream_options"] == {"include_usage": True}
    snap = await quota.store.snapshot(user=user)
    assert (snap.user_day.used, snap.user_day.held) == (40, 0)


async def test_no_request_is_made_when_redis_is_down(
    fake: FakeLLM, client: openai.AsyncOpenAI, pool: asyncpg.Pool
) -> None:
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    try:
        quota = QuotaService(RedisStore(dead), Ledger(pool), prices=PRICES, limits=LIMITS)
        model = ChatModel(client, model="fake-model", quota=quota)
        with pytest.raises(QuotaUnavailable):
            await _collect(
                model.round(
                    user_id=uuid.uuid4(),
                    household_id=None,
                    messages=[{"role": "user", "content": "hi"}],
                )
            )
    finally:
        await dead.aclose()
    assert fake.requests == []


async def test_an_unpriced_model_is_never_called(
    fake: FakeLLM, client: openai.AsyncOpenAI, pool: asyncpg.Pool
) -> None:
    quota = QuotaService(MemoryStore(), Ledger(pool), prices=PRICES, limits=LIMITS)
    model = ChatModel(client, model="free-lunch", quota=quota)
    with pytest.raises(ModelNotPriced):
        await _collect(
            model.round(
                user_id=uuid.uuid4(),
                household_id=None,
                messages=[{"role": "user", "content": "hi"}],
            )
        )
    assert fake.requests == []


async def test_a_stream_abandoned_before_usage_is_settled_by_estimate(
    fake: FakeLLM, client: openai.AsyncOpenAI, pool: asyncpg.Pool
) -> None:
    body = sse(chunk({"content": "The heater used "}), chunk({"content": "a lot"}), usage(31, 9))
    fake.replies.append(Reply(body, delay=0.05))
    quota = QuotaService(MemoryStore(), Ledger(pool), prices=PRICES, limits=LIMITS)
    model = ChatModel(client, model="fake-model", quota=quota)
    user = uuid.uuid4()
    stream = model.round(
        user_id=user, household_id=None, messages=[{"role": "user", "content": "x"}]
    )
    first = await stream.__anext__()
    assert first == TextDelta("The heater used ")
    await stream.aclose()  # the client went away before usage arrived
    snap = await quota.store.snapshot(user=user)
    assert snap.user_day.held == 0
    prompt = snap.user_day.used - 6  # "The heater used " is 16 bytes: 6 estimated tokens
    assert prompt > 0
