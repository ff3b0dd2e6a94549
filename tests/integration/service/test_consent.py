"""Consent, strictly, through both chat endpoints: only a plain yes to the proposal the answer
just before it showed sends a command; every near miss has the proposal asked again, exactly,
and sends nothing; a yes binds to its own thread's proposal, not to whatever is pending."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from service.settings import Settings
from telemetry import access
from tests.chat import Chat, commands_in, outbox, said
from tests.integration.conftest import MakeUser
from tests.integration.homes import seeded_home
from tests.routing import NEAR_MISSES

pytestmark = pytest.mark.usefixtures("deps")

COMMAND = {"op": "SET_POWER", "device_name": "Dishwasher", "value": "OFF"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Room for the many turns these tests take in a few seconds."""
    return settings.model_copy(update={"rate_per_minute": 6000, "rate_burst": 100})


@pytest.fixture
async def home(pool: asyncpg.Pool, make_user: MakeUser) -> tuple[uuid.UUID, dict[str, str]]:
    user, headers = await make_user("resident")
    return await seeded_home(pool, user.id, days=0.2, seed=7), headers


async def test_near_misses_ask_again_and_send_nothing_then_a_plain_yes_sends_one(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: tuple[uuid.UUID, dict[str, str]]
) -> None:
    household, headers = home
    chat = Chat(client, household, headers)
    [proposal] = [
        c["data"] for c in await chat.say("turn off the dishwasher") if c["type"] == "data-action"
    ]
    for text in NEAR_MISSES:
        chunks = await chat.say(text, keep=False)  # each answers the proposal itself
        assert commands_in(chunks) == [], text
        answer = said(chunks)
        [route] = [c["data"] for c in chunks if c["type"] == "data-route"]
        assert route["branch"] == "consent", (text, route)
        assert "have not changed anything" in answer, (text, answer)
        block = answer.split("```json\n")[1].split("\n```")[0]
        assert json.loads(block) == COMMAND, text  # asked again with its exact command
    assert await outbox(pool, household) == []
    # A near miss kept in the thread: the proposal is still bound, and the plain yes after the
    # repeated question confirms that one proposal.
    await chat.say("ok")
    [command] = commands_in(await chat.say("Yes!"))
    assert (command["action_id"], command["command"]) == (proposal["id"], COMMAND)
    assert await outbox(pool, household) == [COMMAND]


async def test_a_yes_binds_to_its_own_threads_proposal(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: tuple[uuid.UUID, dict[str, str]]
) -> None:
    household, headers = home
    first, second = Chat(client, household, headers), Chat(client, household, headers)
    await first.say("turn off the dishwasher")
    # A bare yes with no thread, and a yes in a fresh thread answering another question,
    # confirm nothing, though the proposal waits for this very user.
    assert commands_in(await Chat(client, household, headers).say("yes")) == []
    await second.say("how much energy did I use today?")
    assert commands_in(await second.say("yes")) == []
    # Cancelled in the second tab, another proposal made there: the first thread's yes
    # answers its own proposal, which is gone, and sends nothing.
    await second.say("turn off the dishwasher")
    await second.say("no")
    await second.say("turn on the heat pump")
    chunks = await first.say("yes")
    assert commands_in(chunks) == []
    assert "did not send anything" in said(chunks)
    # After a new question, a bare yes no longer confirms the proposal before it.
    assert commands_in(await second.say("what did I use yesterday?")) == []
    assert commands_in(await second.say("yes")) == []
    assert await outbox(pool, household) == []


async def test_an_answer_copied_into_another_users_thread_is_not_recognised(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    home: tuple[uuid.UUID, dict[str, str]],
    make_user: MakeUser,
) -> None:
    household, headers = home
    owner = Chat(client, household, headers)
    await owner.say("turn off the dishwasher")
    other, other_headers = await make_user("resident")
    async with pool.acquire() as conn:
        await access.add_member(conn, household_id=household, user_id=other.id, role="member")
    copied = Chat(client, household, other_headers)
    copied.thread = list(owner.thread)
    assert commands_in(await copied.say("yes")) == []
    assert await outbox(pool, household) == []


async def test_the_openai_endpoint_takes_only_the_plain_yes_of_its_thread(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: tuple[uuid.UUID, dict[str, str]]
) -> None:
    household, headers = home
    headers = {**headers, "X-Wattwise-Household": str(household)}

    async def complete(model: str, messages: list[dict[str, str]]) -> dict[str, Any]:
        r = await client.post(
            "/v1/chat/completions", headers=headers, json={"model": model, "messages": messages}
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    for model in ("wattwise", "wattwise-voice"):
        bare = await complete(model, [{"role": "user", "content": "yes"}])
        assert "command" not in bare["wattwise"]
        asked = [{"role": "user", "content": "turn off the dishwasher"}]
        proposal = await complete(model, asked)
        thread = [
            *asked,
            {"role": "assistant", "content": proposal["choices"][0]["message"]["content"]},
        ]
        for text in NEAR_MISSES:
            answer = await complete(model, [*thread, {"role": "user", "content": text}])
            assert "command" not in answer["wattwise"], (model, text)
        done = await complete(model, [*thread, {"role": "user", "content": "yes"}])
        assert done["wattwise"]["command"] == COMMAND
    assert await outbox(pool, household) == [COMMAND, COMMAND]
