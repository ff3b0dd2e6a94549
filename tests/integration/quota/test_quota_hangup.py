"""A client that hangs up before the model's first token is charged what the provider
reported, not the server's estimate: the provider's stream is read on after the hang-up for
its usage. A real server on loopback, the model faked at the wire."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from agent.model import UserMessage
from service.app import create_app
from service.deps import Deps
from service.settings import Settings
from tests.fakes.llm import FakeLLM, Reply, chunk, fake_llm, sse, usage
from tests.fakes.server import serving
from tests.integration.conftest import MakeUser
from tests.integration.fake_model import model_deps
from tests.integration.homes import seeded_home


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with fake_llm() as server:
        yield server


@pytest.fixture
async def deps(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis, fake: FakeLLM
) -> AsyncIterator[Deps]:
    async with model_deps(settings, pool, redis_client, fake, llm_first_token_seconds=10) as d:
        yield d


async def _hang_up_before_the_first_token(deps: Deps, url_path: str, headers: Any) -> None:
    async with (
        serving(create_app(deps=deps)) as url,
        httpx.AsyncClient(timeout=10) as http,
        http.stream(
            "POST",
            f"{url}{url_path}",
            headers=headers,
            json={"messages": [{"role": "user", "content": "how much did I use today?"}]},
        ) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            assert '"text-delta"' not in line
            if '"start-step"' in line:
                break  # the model round has begun; its first token is a while off


async def _settled(
    pool: asyncpg.Pool, redis_client: aioredis.Redis, deps: Deps, user: uuid.UUID
) -> asyncpg.Record:
    """The round's one ledger row, once the settlement is complete: the row is written
    first, then the counters change with the reservation's done marker, in one script
    (after the provider's stream ended, or the grace did; the deadline only keeps a broken
    run from hanging)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT reservation_id, prompt_tokens, completion_tokens, estimated"
                " FROM usage_ledger WHERE user_id = $1",
                user,
            )
        if rows:
            [row] = rows
            done = f"{deps.settings.quota_prefix}:done:{row['reservation_id']}"
            if await redis_client.exists(done):
                return row
        assert asyncio.get_running_loop().time() < deadline, "the round was never settled"
        await asyncio.sleep(0.05)


async def test_a_hang_up_before_the_first_token_is_charged_the_providers_usage(
    deps: Deps,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    fake: FakeLLM,
    make_user: MakeUser,
) -> None:
    user, headers = await make_user("resident")
    home = await seeded_home(pool, user.id, days=1.2, seed=11)
    # Usage only at the end, as providers send it; the first token comes late.
    body = sse(chunk({"content": "You used "}), chunk({"content": "some."}, "stop"), usage(500, 7))
    fake.replies.append(Reply(body, delay=0.4))
    await _hang_up_before_the_first_token(deps, f"/v1/households/{home}/chat", headers)
    row = await _settled(pool, redis_client, deps, user.id)
    assert (row["prompt_tokens"], row["completion_tokens"], row["estimated"]) == (500, 7, False)
    snap = await deps.quota.store.snapshot(user=user.id)
    assert (snap.user_day.used, snap.user_day.held) == (507, 0)
    assert fake.hung_up == 0  # read to its end, not cut


async def test_a_provider_that_does_not_finish_in_time_after_a_hang_up_is_cut_and_estimated(
    deps: Deps,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    fake: FakeLLM,
    make_user: MakeUser,
) -> None:
    user, headers = await make_user("resident")
    home = await seeded_home(pool, user.id, days=1.2, seed=11)
    words = [chunk({"content": "More words follow here. "}) for _ in range(400)]
    fake.replies.append(Reply(sse(*words, usage(500, 400)), delay=0.3))
    assert deps.model is not None
    deps.model.settle_grace = 1.0
    await _hang_up_before_the_first_token(deps, f"/v1/households/{home}/chat", headers)
    row = await _settled(pool, redis_client, deps, user.id)
    assert row["estimated"] is True
    assert fake.hung_up == 1  # closed at the grace's end
    snap = await deps.quota.store.snapshot(user=user.id)
    assert snap.user_day.held == 0


async def test_a_hang_up_does_not_wait_for_the_providers_usage_to_end_its_turn(
    deps: Deps,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    fake: FakeLLM,
    make_user: MakeUser,
) -> None:
    """The read-on settles in the background: the round's way out (a hang-up, or a turn
    cut at the shutdown deadline) is not held for up to the settle grace."""
    user, _ = await make_user("resident")
    body = sse(chunk({"content": "You used "}), chunk({"content": "some."}, "stop"), usage(500, 7))
    fake.replies.append(Reply(body, delay=1.0))  # before each event: seconds after the hang-up
    assert deps.model is not None
    deps.model.settle_grace = 15.0  # well past the provider's end
    messages = [UserMessage("how much did I use today?")]
    reservation = await deps.model.reserve(user_id=user.id, household_id=None, messages=messages)
    rounds = deps.model.round(
        user_id=user.id, household_id=None, messages=messages, reservation=reservation
    )
    first = asyncio.ensure_future(anext(rounds))
    while not fake.requests:  # noqa: ASYNC110  # the fake server has no event to wait on
        await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await rounds.aclose()
    async with pool.acquire() as conn:
        early = await conn.fetchval("SELECT count(*) FROM usage_ledger WHERE user_id = $1", user.id)
    assert early == 0  # the way out did not wait for the provider's end
    row = await _settled(pool, redis_client, deps, user.id)
    assert (row["prompt_tokens"], row["completion_tokens"], row["estimated"]) == (500, 7, False)
