"""The chat endpoint's own overhead and its capacity for open streams, against a real
`wattwise serve` process whose model is a local OpenAI-compatible fake (bench.fake_openai,
its own process) that streams at once.

1. Time to first text: from sending POST /v1/households/{id}/chat to receiving the first
   `text-delta` chunk, one turn at a time (an energy question: route, context, quota
   reservation in Redis, the model's stream, sentence verification). Baseline, in the same
   run: the time to the first content chunk asked of the fake directly, the part of that
   figure that is not ours.
2. Concurrent streams: `--streams` turns at once while the fake takes `--stream-seconds` to
   answer each, so all are open together; every one must complete without an error part.
   The service's resident memory before and at the peak gives the memory per stream.

    .venv/bin/python -m bench.chat [--turns 300] [--streams 1000] [--stream-seconds 3]

Needs DATABASE_URL (an admin connection; a scratch database is made and dropped) and
REDIS_URL (quota keys under a scratch prefix, deleted afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import redis.asyncio as aioredis

from bench.service import free_port, percentile, service_process, token
from demo.seed import seed_demo
from evals.scratch import scratch_database
from telemetry.db import connect
from telemetry.migrate import migrate
from telemetry.rollups import refresh_all

QUESTION = "how much energy did I use today?"
PRICES = '{"bench-model": {"input": 0.15, "output": 0.6, "max_tokens": 512}}'


@asynccontextmanager
async def fake_model(chunks: int, delay: float) -> AsyncIterator[str]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.fake_openai",
        "--port",
        str(port),
        "--chunks",
        str(chunks),
        "--delay",
        str(delay),
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    await client.post(f"{url}/chat/completions", json={})
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        yield url
    finally:
        process.terminate()
        await process.wait()


async def prepare(dsn: str, users: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    conn = await connect(dsn)
    try:
        await migrate(conn)
        seeded = await seed_demo(conn, days=2)
        end = datetime.now(UTC)
        await refresh_all(conn, cap=timedelta(minutes=15), now=end)
        ids = [uuid.uuid4() for _ in range(users)]
        await conn.executemany(
            "INSERT INTO users (id, email, role) VALUES ($1, $2, 'resident')",
            [(i, f"bench-{i}@example.test") for i in ids],
        )
        await conn.executemany(
            "INSERT INTO household_members (household_id, user_id, role) VALUES ($1, $2, 'owner')",
            [(seeded.household.id, i) for i in ids],
        )
        return seeded.household.id, ids
    finally:
        await conn.close()


async def first_text(client: httpx.AsyncClient, url: str, bearer: str) -> tuple[float, bool]:
    """Seconds to the first text-delta, and whether the stream then ended cleanly."""
    started = time.perf_counter()
    first = None
    errors = False
    done = False
    async with client.stream(
        "POST",
        url,
        headers={"Authorization": f"Bearer {bearer}"},
        json={"messages": [{"role": "user", "content": QUESTION}]},
    ) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                continue
            kind = json.loads(line[6:])["type"]
            if kind == "text-delta" and first is None:
                first = time.perf_counter() - started
            errors = errors or kind == "error"
    if first is None:
        raise RuntimeError("the stream had no text")
    return first, done and not errors


async def baseline(client: httpx.AsyncClient, model_url: str) -> float:
    started = time.perf_counter()
    async with client.stream(
        "POST",
        f"{model_url}/chat/completions",
        json={"model": "bench-model", "stream": True, "messages": []},
    ) as response:
        async for line in response.aiter_lines():
            if '"content": "Your' in line:
                return time.perf_counter() - started
    raise RuntimeError("the fake sent no content")


def _env(model_url: str, prefix: str) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": model_url,
        "OPENAI_API_KEY": "bench",
        "WATTWISE_MODEL": "bench-model",
        "WATTWISE_MODEL_PRICES": PRICES,
        "WATTWISE_RATE_PER_MINUTE": "600",
        "WATTWISE_RATE_BURST": "100",
        "WATTWISE_QUOTA_PREFIX": prefix,
        "WATTWISE_LOG_LEVEL": "WARNING",
    }


async def overhead(dsn: str, household: uuid.UUID, users: list[uuid.UUID], turns: int) -> None:
    prefix = f"wwbench:{uuid.uuid4().hex[:8]}"
    async with (
        fake_model(chunks=8, delay=0.0) as model_url,
        service_process(dsn, _env(model_url, prefix)) as service,
    ):
        chat = f"{service.url}/v1/households/{household}/chat"
        bearers = [token(u) for u in users]
        ours: list[float] = []
        theirs: list[float] = []
        async with httpx.AsyncClient(timeout=30) as client:
            for i in range(30):  # warm up both
                await first_text(client, chat, bearers[i % len(bearers)])
                await baseline(client, model_url)
            for i in range(turns):
                seconds, ok = await first_text(client, chat, bearers[i % len(bearers)])
                if not ok:
                    raise RuntimeError("a turn ended with an error part")
                ours.append(seconds * 1000)
                theirs.append(await baseline(client, model_url) * 1000)
        await _forget(prefix)
    p50, p95 = percentile(ours, 0.5), percentile(ours, 0.95)
    b50, b95 = percentile(theirs, 0.5), percentile(theirs, 0.95)
    print(f"time to first text, {turns} turns one at a time (ms):")
    print(f"  wattwise chat:        p50 {p50:6.2f}  p95 {p95:6.2f}  (target p95 <= 25)")
    print(f"  the fake model alone: p50 {b50:6.2f}  p95 {b95:6.2f}")
    print(f"  our overhead:         p50 {p50 - b50:6.2f}  p95 {p95 - b95:6.2f}")
    print(f"  ratio to the model alone: p50 {p50 / b50:.1f}x  p95 {p95 / b95:.1f}x")


async def streams(
    dsn: str, household: uuid.UUID, users: list[uuid.UUID], count: int, seconds: float
) -> None:
    prefix = f"wwbench:{uuid.uuid4().hex[:8]}"
    chunks = 10
    async with (
        fake_model(chunks=chunks, delay=seconds / chunks) as model_url,
        service_process(dsn, _env(model_url, prefix)) as service,
    ):
        chat = f"{service.url}/v1/households/{household}/chat"
        limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            await first_text(client, chat, token(users[0]))  # warm
            idle = service.rss_bytes()
            peak = idle
            running = True

            async def sample() -> None:
                nonlocal peak
                while running:
                    peak = max(peak, service.rss_bytes())
                    await asyncio.sleep(0.05)

            sampler = asyncio.create_task(sample())
            started = time.perf_counter()
            results = await asyncio.gather(
                *(first_text(client, chat, token(users[i % len(users)])) for i in range(count)),
                return_exceptions=True,
            )
            elapsed = time.perf_counter() - started
            running = False
            await sampler
        await _forget(prefix)
    failed = [r for r in results if isinstance(r, BaseException) or not r[1]]
    firsts = [r[0] * 1000 for r in results if not isinstance(r, BaseException)]
    print(f"{count} concurrent streams, each answered over {seconds:g} s by the model:")
    print(f"  completed without error: {count - len(failed)} of {count} in {elapsed:.1f} s")
    if firsts:
        p50, p95 = percentile(firsts, 0.5), percentile(firsts, 0.95)
        print(f"  time to first text under this load: p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    print(
        f"  service memory: {idle / 2**20:.1f} MiB idle, {peak / 2**20:.1f} MiB at the peak: "
        f"{(peak - idle) / count / 1024:.1f} KiB per stream"
    )
    for failure in failed[:3]:
        print(f"  failure: {failure!r}")


async def _forget(prefix: str) -> None:
    client = aioredis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def main_async(args: argparse.Namespace) -> None:
    name = f"wattwise_bench_chat_{os.getpid()}"
    async with scratch_database(os.environ["DATABASE_URL"], name) as dsn:
        household, users = await prepare(dsn, max(args.streams, 50))
        await overhead(dsn, household, users, args.turns)
        await streams(dsn, household, users, args.streams, args.stream_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--stream-seconds", type=float, default=3.0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
