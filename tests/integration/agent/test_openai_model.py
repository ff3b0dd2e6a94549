"""The OpenAI adapter against a local fake OpenAI-compatible server: streamed text and
tool calls, usage settled from the provider's report (or estimated when it reports none),
a provider's failure as ModelError, the neutral messages and tools in the wire format, and
no request at all when the quota cannot account for it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import openai
import pytest
import redis.asyncio as aioredis

from agent.model import (
    AssistantMessage,
    ModelError,
    ModelMessage,
    RoundEnd,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from agent.openai_model import OpenAIModel
from quota.core import Limits, ModelNotPriced, QuotaUnavailable
from quota.ledger import Ledger
from quota.memory_store import MemoryStore
from quota.prices import parse_prices
from quota.redis_store import RedisStore
from quota.service import QuotaService
from tests.fakes.llm import FakeLLM, Reply, chunk, fake_llm, sse, usage
from tools import catalog

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
    model = OpenAIModel(client, model="fake-model", quota=quota)
    user = uuid.uuid4()
    events = await _collect(
        model.round(
            user_id=user,
            household_id=None,
            messages=[UserMessage("how much today?")],
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
        model = OpenAIModel(client, model="fake-model", quota=quota)
        with pytest.raises(QuotaUnavailable):
            await _collect(
                model.round(
                    user_id=uuid.uuid4(),
                    household_id=None,
                    messages=[UserMessage("hi")],
                )
            )
    finally:
        await dead.aclose()
    assert fake.requests == []


async def test_an_unpriced_model_is_never_called(
    fake: FakeLLM, client: openai.AsyncOpenAI, pool: asyncpg.Pool
) -> None:
    quota = QuotaService(MemoryStore(), Ledger(pool), prices=PRICES, limits=LIMITS)
    model = OpenAIModel(client, model="free-lunch", quota=quota)
    with pytest.raises(ModelNotPriced):
        await _collect(
            model.round(
                user_id=uuid.uuid4(),
                household_id=None,
                messages=[UserMessage("hi")],
            )
        )
    assert fake.requests == []


async def test_a_stream_abandoned_before_usage_is_settled_by_estimate(
    fake: FakeLLM, client: openai.AsyncOpenAI, pool: asyncpg.Pool
) -> None:
    body = sse(chunk({"content": "The heater used "}), chunk({"content": "a lot"}), usage(31, 9))
    fake.replies.append(Reply(body, delay=0.05))
    quota = QuotaService(MemoryStore(), Ledger(pool), prices=PRICES, limits=LIMITS)
    model = OpenAIModel(client, model="fake-model", quota=quota)
    user = uuid.uuid4()
    stream = model.round(user_id=user, household_id=None, messages=[UserMessage("x")])
    first = await stream.__anext__()
    assert first == TextDelta("The heater used ")
    await stream.aclose()  # the client went away before usage arrived
    snap = await quota.store.snapshot(user=user)
    assert snap.user_day.held == 0
    prompt = snap.user_day.used - 6  # "The heater used " is 16 bytes: 6 estimated tokens
    assert prompt > 0


async def test_the_neutral_messages_and_tools_go_out_in_the_chat_completions_format(
    fake: FakeLLM, client: openai.AsyncOpenAI, pool: asyncpg.Pool
) -> None:
    fake.replies.append(Reply(sse(chunk({"content": "Done."}, "stop"), usage(5, 1))))
    quota = QuotaService(MemoryStore(), Ledger(pool), prices=PRICES, limits=LIMITS)
    model = OpenAIModel(client, model="fake-model", quota=quota)
    call = ToolCall("t1", "energy_summary", '{"window": 1}')
    messages: list[ModelMessage] = [
        SystemMessage("be brief"),
        UserMessage("how much?"),
        AssistantMessage(None, (call,)),
        ToolMessage("t1", '{"kwh": 2}'),
        AssistantMessage("2 kWh."),
    ]
    [tool] = [d for d in catalog.definitions("energy") if d.name == "energy_summary"]
    await _collect(
        model.round(user_id=uuid.uuid4(), household_id=None, messages=messages, tools=[tool])
    )
    [sent] = fake.requests
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "how much?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t1", "type": "function",
            "function": {"name": "energy_summary", "arguments": '{"window": 1}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": '{"kwh": 2}'},
        {"role": "assistant", "content": "2 kWh."},
    ]  # fmt: skip
    [function] = sent["tools"]
    assert function == {
        "type": "function",
        "function": {
            "name": "energy_summary",
            "strict": True,
            "parameters": tool.parameters,
            "description": tool.description,
        },
    }


async def test_a_round_without_reported_usage_ends_with_an_estimate(
    fake: FakeLLM, client: openai.AsyncOpenAI, pool: asyncpg.Pool
) -> None:
    fake.replies.append(Reply(sse(chunk({"content": "Twelve words"}), chunk({}, "stop"))))
    quota = QuotaService(MemoryStore(), Ledger(pool), prices=PRICES, limits=LIMITS)
    model = OpenAIModel(client, model="fake-model", quota=quota)
    events = await _collect(
        model.round(user_id=uuid.uuid4(), household_id=None, messages=[UserMessage("hi")])
    )
    end = events[-1]
    assert isinstance(end, RoundEnd)
    assert end.estimated is True
    # The JSON sent, [{"role": "user", "content": "hi"}], is 35 bytes: 12 tokens as
    # quota.prices estimates them; "Twelve words", 12 bytes: 4.
    assert end.usage == (12, 4)


async def test_a_provider_failure_is_a_model_error_and_its_round_is_settled(
    fake: FakeLLM, client: openai.AsyncOpenAI, pool: asyncpg.Pool
) -> None:
    fake.replies.append(Reply(status=400))  # not worth a retry
    quota = QuotaService(MemoryStore(), Ledger(pool), prices=PRICES, limits=LIMITS)
    model = OpenAIModel(client, model="fake-model", quota=quota)
    user = uuid.uuid4()
    with pytest.raises(ModelError) as caught:
        await _collect(model.round(user_id=user, household_id=None, messages=[UserMessage("x")]))
    assert isinstance(caught.value.__cause__, openai.BadRequestError)
    assert len(fake.requests) == 1
    snap = await quota.store.snapshot(user=user)
    assert snap.user_day.held == 0  # settled by estimate: the request did go out
    assert snap.user_day.used > 0
