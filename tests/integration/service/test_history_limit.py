"""One rule for long histories on both chat APIs: more than MAX_MESSAGES user and assistant
messages is a 413 too_many_messages, never cut to the last ones; an OpenAI client gets it
as its own error, with the same code and message."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from service.app import create_app
from service.deps import Deps
from service.routes.chat import MAX_MESSAGES
from tests.fakes.server import serving
from tests.integration.conftest import MakeUser

MESSAGE = f"At most {MAX_MESSAGES} messages per request; send the recent history only."


def _history(count: int) -> list[dict[str, str]]:
    roles = ["user", "assistant"]
    return [{"role": roles[(count - 1 - i) % 2], "content": f"m{i}"} for i in range(count)]


@pytest.fixture
async def resident(make_user: MakeUser) -> dict[str, str]:
    return (await make_user("resident"))[1]


@pytest.fixture
async def openai_client(deps: Deps, resident: dict[str, str]) -> AsyncIterator[openai.AsyncOpenAI]:
    async with (
        serving(create_app(deps=deps)) as url,
        openai.AsyncOpenAI(
            base_url=f"{url}/v1",
            api_key=resident["Authorization"].removeprefix("Bearer "),
            max_retries=0,
        ) as client,
    ):
        yield client


@pytest.mark.parametrize("count", [MAX_MESSAGES + 1, 1000])
async def test_chat_refuses_a_history_over_the_limit(
    client: httpx.AsyncClient, resident: dict[str, str], count: int
) -> None:
    r = await client.post(
        f"/v1/households/{uuid.uuid4()}/chat",
        json={"messages": _history(count)},
        headers=resident,
    )
    assert r.status_code == 413
    assert r.json()["error"] == {"code": "too_many_messages", "message": MESSAGE}


@pytest.mark.parametrize("count", [MAX_MESSAGES + 1, 1000])
async def test_completions_refuse_a_history_over_the_limit_instead_of_cutting_it(
    openai_client: openai.AsyncOpenAI, count: int
) -> None:
    with pytest.raises(openai.APIStatusError) as refused:
        await openai_client.chat.completions.create(
            model="wattwise",
            messages=_history(count),  # type: ignore[arg-type]
        )
    assert refused.value.status_code == 413
    assert refused.value.code == "too_many_messages"
    assert refused.value.body == {"code": "too_many_messages", "message": MESSAGE}


async def test_completions_count_only_user_and_assistant_messages(
    openai_client: openai.AsyncOpenAI,
) -> None:
    # A system prompt is ignored, so it does not count: MAX_MESSAGES and a system message
    # pass the limits (and stop at the next check: this user sees no household).
    messages = [{"role": "system", "content": "be brief"}, *_history(MAX_MESSAGES)]
    with pytest.raises(openai.APIStatusError) as refused:
        await openai_client.chat.completions.create(
            model="wattwise",
            messages=messages,  # type: ignore[arg-type]
        )
    assert refused.value.code == "household_required"
