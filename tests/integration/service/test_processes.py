"""Two `wattwise serve` processes over one database and one Redis behave as one service:
a reading stored through one is in the other's live stream and answers at once; the rate
limit counts turns at both; a proposal made at one is confirmed by a yes at the other,
into exactly one command."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from telemetry import access
from tests.fakes.llm import FakeLLM, fake_llm, says
from tests.fakes.service import service_env, wattwise_serve
from tests.integration.conftest import Database, MakeUser
from tests.integration.homes import seeded_home
from tests.sse import events, parse


def _chunks(response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    return [e.json() for e in parse(response.text) if e.data != "[DONE]"]


def _data(chunks: list[Any], name: str) -> list[Any]:
    return [c["data"] for c in chunks if c["type"] == f"data-{name}"]


async def _say(
    client: httpx.AsyncClient, path: str, text: str, thread: list[dict[str, str]] | None = None
) -> httpx.Response:
    """One message, after `thread`'s; the message and its answer are added to `thread`."""
    asked = {"role": "user", "content": text}
    response = await client.post(path, json={"messages": [*(thread or []), asked]})
    if thread is not None:
        said = "".join(c["delta"] for c in _chunks(response) if c["type"] == "text-delta")
        thread += [asked, {"role": "assistant", "content": said}]
    return response


async def _consumption(client: httpx.AsyncClient, household: uuid.UUID) -> float:
    response = await client.get(f"/v1/households/{household}/energy?window=day")
    assert response.status_code == 200, response.text
    value: float = response.json()["consumption_kwh"]
    return value


async def test_two_processes_behave_as_one_service(
    tmp_path: Path, db: Database, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    if db.backend != "postgres":
        pytest.skip("what the processes share does not depend on the backend")
    user, headers = await make_user("resident")
    gateway, gateway_headers = await make_user("gateway")
    household = await seeded_home(pool, user.id, days=0.5, seed=12)
    async with pool.acquire() as conn:
        await access.add_member(conn, household_id=household, user_id=gateway.id, role="gateway")
        row = await conn.fetchrow(
            "SELECT d.id, l.watts FROM devices d JOIN device_latest l ON l.device_id = d.id"
            " WHERE household_id = $1 AND name = 'Heat pump'",
            household,
        )
    assert row is not None
    heat_pump, latest = row["id"], row["watts"]
    # Far from what it drew: the last four minutes' energy changes by 0.1 kWh at least.
    watts = 3499.0 if latest < 1750 else 0.0
    async with fake_llm() as fake:
        await _both(tmp_path, db, fake, household, (heat_pump, watts), headers, gateway_headers)


async def _both(
    tmp_path: Path,
    db: Database,
    fake: FakeLLM,
    household: uuid.UUID,
    reading: tuple[uuid.UUID, float],
    headers: dict[str, str],
    gateway_headers: dict[str, str],
) -> None:
    env = service_env(db.dsn, fake.base_url, WATTWISE_RATE_BURST="4", WATTWISE_RATE_PER_MINUTE="1")
    chat = f"/v1/households/{household}/chat"
    async with (
        wattwise_serve(tmp_path / "a.log", env) as a,
        wattwise_serve(tmp_path / "b.log", env) as b,
        httpx.AsyncClient(base_url=a.url, headers=headers, timeout=15) as at_a,
        httpx.AsyncClient(base_url=b.url, headers=headers, timeout=15) as at_b,
        at_a.stream("GET", f"/v1/households/{household}/live/stream") as live_at_a,
    ):
        live = events(live_at_a)
        assert (await anext(live)).event == "live"
        # A's answer is cached now; a reading stored through B must change it at once.
        heat_pump, watts = reading
        before = await _consumption(at_a, household)
        assert await _consumption(at_b, household) == pytest.approx(before, abs=0.01)
        stored = await at_b.post(
            "/v1/telemetry",
            headers=gateway_headers,
            json={
                "readings": [
                    {
                        "device_id": str(heat_pump),
                        "ts": (datetime.now(UTC) - timedelta(minutes=4)).isoformat(),
                        "watts": watts,
                    }
                ]
            },
        )
        assert stored.json()["accepted"] == 1, stored.text
        after = await _consumption(at_a, household)
        assert abs(after - before) > 0.09
        assert await _consumption(at_b, household) == pytest.approx(after, abs=0.01)
        async with asyncio.timeout(5):
            async for event in live:
                devices = {d["name"]: d["watts"] for d in event.json()["devices"]}
                if devices["Heat pump"] == watts:
                    break

        # A proposal made at A, confirmed by a yes at B (the thread's state is the
        # database's, not a process's): one command.
        thread: list[dict[str, str]] = []
        proposed = await _say(at_a, chat, "turn off the dishwasher", thread)
        [proposal] = _data(_chunks(proposed), "action")
        [command] = _data(_chunks(await _say(at_b, chat, "yes", list(thread))), "command")
        assert command["action_id"] == proposal["id"]
        assert command["command"] == {
            "op": "SET_POWER",
            "device_name": "Dishwasher",
            "value": "OFF",
        }
        # The same yes again at A (a client's retry): the command replayed, not a second one.
        [again] = _data(_chunks(await _say(at_a, chat, "yes", list(thread))), "command")
        assert (again["command_id"], again["replayed"]) == (command["command_id"], True)
        outbox = await at_a.get(f"/v1/households/{household}/commands", headers=gateway_headers)
        assert [c["command"] for c in outbox.json()["commands"]] == [command["command"]]

        # One rate limit for both, and every turn counts: the three above and this one at A
        # use the burst of four; the next, at B, is refused.
        fake.replies.append(says("Your use today looks steady. "))
        assert _data(_chunks(await _say(at_a, chat, "how much energy today?")), "route")
        refused = await _say(at_b, chat, "how much energy today?")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) > 0
    for service in (a, b):
        assert any(line.get("event") == "request" for line in service.logs())
