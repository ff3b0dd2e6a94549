"""Graceful shutdown: a turn still running at the drain deadline is cut, its stream ends
with an error part and its quota is settled; a turn that ends in time ends normally; live
streams end at once; a real `wattwise serve` does all of it on SIGTERM and leaves no
reservation behind."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from quota.redis_store import RedisStore
from service.app import create_app
from service.deps import build_deps
from service.settings import Settings
from tests.fakes.llm import FAKE_PRICES, FakeLLM, fake_llm, says
from tests.fakes.server import serving
from tests.fakes.service import service_env, wattwise_serve
from tests.integration.conftest import Database, MakeUser
from tests.integration.homes import seeded_home
from tests.sse import Event, events

# Whole sentences without numbers, so each is released as soon as it has arrived.
SLOW = ["This answer goes on. "] * 200  # one every 0.1 s: 20 s of answer
QUICK = ["This answer is short. "] * 8
QUESTION = {"messages": [{"role": "user", "content": "how much energy did I use today?"}]}


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with fake_llm() as server:
        yield server


async def _chunks(response: httpx.Response) -> AsyncIterator[dict[str, Any] | str]:
    async for event in events(response):
        yield event.data if event.data == "[DONE]" else event.json()


async def _rest(chunks: AsyncIterator[dict[str, Any] | str]) -> list[dict[str, Any] | str]:
    return [c async for c in chunks]


async def _first_text(chunks: AsyncIterator[dict[str, Any] | str]) -> None:
    async for c in chunks:
        if isinstance(c, dict) and c["type"] == "text-delta":
            return


@asynccontextmanager
async def _two_turns(
    client: httpx.AsyncClient, path: str
) -> AsyncIterator[tuple[AsyncIterator[dict[str, Any] | str], AsyncIterator[dict[str, Any] | str]]]:
    """A slow turn, then a quick one, both streaming text: the rest of each to read."""
    async with client.stream("POST", path, json=QUESTION) as slow:
        slow_chunks = _chunks(slow)
        await _first_text(slow_chunks)
        async with client.stream("POST", path, json=QUESTION) as quick:
            quick_chunks = _chunks(quick)
            await _first_text(quick_chunks)
            yield slow_chunks, quick_chunks


def _types(chunks: list[dict[str, Any] | str]) -> list[str]:
    return [c if isinstance(c, str) else c["type"] for c in chunks]


async def _held(redis_client: aioredis.Redis, prefix: str, user: uuid.UUID) -> tuple[int, int]:
    snap = await RedisStore(redis_client, prefix=prefix).snapshot(user=user)
    return snap.user_day.held, snap.global_month.held


async def _ledger(pool: asyncpg.Pool, user: uuid.UUID) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            "SELECT estimated, completion_tokens FROM usage_ledger WHERE user_id = $1 ORDER BY id",
            user,
        )


async def test_a_turn_running_at_the_deadline_is_cut_and_settled(
    settings: Settings,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    fake: FakeLLM,
    make_user: MakeUser,
) -> None:
    user, headers = await make_user("resident")
    home = await seeded_home(pool, user.id, days=0.5, seed=5)
    prefix = f"wwtest:{uuid.uuid4().hex[:10]}"
    configured = settings.model_copy(
        update={
            "openai_base_url": fake.base_url,
            "model": "fake-model",
            "model_prices": FAKE_PRICES,
            "quota_prefix": prefix,
            "shutdown_grace_seconds": 0.8,
        }
    )
    deps = build_deps(configured, pool, redis_client)
    fake.replies += [says(*SLOW, delay=0.1), says(*QUICK, delay=0.05)]
    path = f"/v1/households/{home}/chat"
    try:
        async with (
            serving(create_app(deps=deps)) as url,
            httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client,
        ):
            async with _two_turns(client, path) as (slow, quick):
                started = asyncio.get_running_loop().time()
                deps.lifecycle.drain()
                cut, ended = await asyncio.gather(_rest(slow), _rest(quick))
            elapsed = asyncio.get_running_loop().time() - started
        assert 0.7 < elapsed < 3
        assert _types(cut)[-3:] == ["error", "finish", "[DONE]"]
        [error] = [c for c in cut if isinstance(c, dict) and c["type"] == "error"]
        assert error["errorText"].endswith("(shutting_down)")
        assert "error" not in _types(ended)
        assert _types(ended)[-3:] == ["data-usage", "finish", "[DONE]"]
        assert fake.hung_up == 1  # the cut turn's model request was closed
        assert await _held(redis_client, prefix, user.id) == (0, 0)
        rows = await _ledger(pool, user.id)
        assert sorted(r["estimated"] for r in rows) == [False, True]
        turns = deps.metrics.registry.get_sample_value
        assert turns("wattwise_turns_total", {"branch": "energy", "mode": "model",
                                              "outcome": "shutting_down"}) == 1.0  # fmt: skip
        assert turns("wattwise_turns_total", {"branch": "energy", "mode": "model",
                                              "outcome": "ok"}) == 1.0  # fmt: skip
    finally:
        assert deps.model is not None
        await deps.model.client.close()
        await deps.live.close()


async def _refused_soon(url: str) -> bool:
    """Whether the service stops serving new connections within a second of the signal:
    it refuses them, or (a connection the closing listener still took) drops one unanswered."""
    async with httpx.AsyncClient() as fresh:  # a new connection, not the streams' pool
        for _ in range(20):
            try:
                await fresh.get(f"{url}/healthz", headers={"connection": "close"})
            except (httpx.ConnectError, httpx.RemoteProtocolError):
                return True
            await asyncio.sleep(0.05)
    return False


async def _live_end(response: httpx.Response) -> Event:
    async for event in events(response):
        if event.event == "end":
            return event
    raise AssertionError("the live stream ended without an end event")


async def test_sigterm_drains_a_real_service_and_leaves_no_reservation(
    tmp_path: Path,
    db: Database,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    fake: FakeLLM,
    make_user: MakeUser,
) -> None:
    if db.backend != "postgres":
        pytest.skip("a process's signal handling does not depend on the backend")
    user, headers = await make_user("resident")
    home = await seeded_home(pool, user.id, days=0.5, seed=6)
    env = service_env(db.dsn, fake.base_url, WATTWISE_SHUTDOWN_GRACE_SECONDS="2")
    prefix = env["WATTWISE_QUOTA_PREFIX"]
    fake.replies += [says(*SLOW, delay=0.1), says(*QUICK, delay=0.15)]
    path = f"/v1/households/{home}/chat"
    async with (
        wattwise_serve(tmp_path / "service.log", env) as service,
        httpx.AsyncClient(base_url=service.url, headers=headers, timeout=15) as client,
        client.stream("GET", f"/v1/households/{home}/live/stream") as live,
    ):
        assert live.status_code == 200
        async with _two_turns(client, path) as (slow, quick):
            started = asyncio.get_running_loop().time()
            exited = asyncio.ensure_future(service.terminate())
            live_end, cut, ended, refused = await asyncio.gather(
                _live_end(live), _rest(slow), _rest(quick), _refused_soon(service.url)
            )
        status = await asyncio.wait_for(exited, 10)
        elapsed = asyncio.get_running_loop().time() - started
    assert status == -signal.SIGTERM  # uvicorn re-raises the signal once it is done
    assert elapsed < 2 + 5  # the grace, and uvicorn's margin after it
    assert live_end.json()["code"] == "shutting_down"
    assert refused  # no new connection while the running turns drain
    assert _types(cut)[-3:] == ["error", "finish", "[DONE]"]
    assert "error" not in _types(ended)  # ended within the grace
    assert await _held(redis_client, prefix, user.id) == (0, 0)
    assert sorted(r["estimated"] for r in await _ledger(pool, user.id)) == [False, True]
    lines = service.logs()  # every line is a JSON object
    names = [line.get("event") for line in lines]
    assert names.index("draining") < names.index("stopped")
    outcomes = sorted(line["outcome"] for line in lines if line.get("event") == "turn")
    assert outcomes == ["ok", "shutting_down"]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _workers(pid: int) -> list[int]:
    """uvicorn's worker processes under `pid` (not multiprocessing's resource tracker)."""
    commands = {child: Path(f"/proc/{child}/cmdline").read_bytes() for child in _children(pid)}
    return [
        c
        for c, line in commands.items()
        if b"spawn_main" in line and b"resource_tracker" not in line
    ]


async def test_serve_with_workers_runs_that_many_processes_and_each_drains(
    tmp_path: Path, db: Database, fake: FakeLLM, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    if db.backend != "postgres":
        pytest.skip("a process's signal handling does not depend on the backend")
    user, headers = await make_user("resident")
    home = await seeded_home(pool, user.id, days=0.2, seed=7)
    env = service_env(db.dsn, fake.base_url, WATTWISE_WORKERS="2")
    async with (
        wattwise_serve(tmp_path / "service.log", env, ready_seconds=60) as service,
        httpx.AsyncClient(base_url=service.url, headers=headers, timeout=15) as client,
    ):
        workers = _workers(service.process.pid)
        assert len(workers) == 2, service.log_path.read_text()
        # Streams on both workers (the kernel spreads connections over them); each ends
        # with the drain's own code, which only a worker that drained sends.
        async with (
            client.stream("GET", f"/v1/households/{home}/live/stream") as one,
            httpx.AsyncClient(base_url=service.url, headers=headers, timeout=15) as other,
            other.stream("GET", f"/v1/households/{home}/live/stream") as two,
        ):
            assert one.status_code == two.status_code == 200
            exited = asyncio.ensure_future(service.terminate())
            ends = await asyncio.gather(_live_end(one), _live_end(two))
        await asyncio.wait_for(exited, 15)
    assert [end.json()["code"] for end in ends] == ["shutting_down", "shutting_down"]
    assert not [w for w in workers if _alive(w)]


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()
