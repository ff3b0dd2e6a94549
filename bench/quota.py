"""Quota: reserve+settle pairs per second and their latency against the real Redis (the
two Lua scripts of quota.redis_store), from P client processes with C concurrent callers
each; baseline: the same number of plain round trips (a pair of PINGs), measured in the
same run with the same processes and concurrency.

    .venv/bin/python -m bench.quota [--processes 2] [--concurrency 8] [--seconds 5]
        [--redis redis://127.0.0.1:6379/0]

Each caller reserves for its own users (so no budget or rate limit refuses it), settles at
once with a random usage, and records the pair's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import secrets
import statistics
import time
import uuid

import redis.asyncio as aioredis

from quota.core import Limits, NeedsLoad, Reserved
from quota.redis_store import RedisStore, connect

LIMITS = Limits(10**12, 10**12, 10**15, rate_per_minute=1_000_000, burst=1_000_000)


async def _run(url: str, prefix: str, mode: str, concurrency: int, seconds: float) -> list[float]:
    client = connect(url, max_connections=concurrency)
    store = RedisStore(client, prefix=prefix)
    latencies: list[float] = []
    rng = random.Random(os.getpid())
    users = [uuid.uuid4() for _ in range(64)]
    await client.ping()
    deadline = time.monotonic() + seconds

    async def caller() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            if mode == "quota":
                rid, user = secrets.token_hex(12), rng.choice(users)
                reply = await store.reserve(
                    user=user, rid=rid, tokens=1200, cost=900, limits=LIMITS
                )
                if isinstance(reply, NeedsLoad):  # a counter's first use: nothing to rebuild
                    for scope in reply.missing:
                        await store.load(user=user, periods=reply.periods, scope=scope, used=0)
                    continue
                assert isinstance(reply, Reserved), reply
                await store.settle(
                    rid=rid,
                    keys=reply.keys,
                    held=(1200, 900),
                    tokens=rng.randrange(200, 1200),
                    cost=500,
                )
            else:
                await client.ping()
                await client.ping()
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    await client.aclose()
    return latencies


def _worker(args: tuple[str, str, str, int, float]) -> list[float]:
    return asyncio.run(_run(*args))


def measure(
    url: str, prefix: str, mode: str, processes: int, concurrency: int, seconds: float
) -> tuple[float, float, float]:
    """(pairs/s, p50 s, p99 s)"""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_worker, [(url, prefix, mode, concurrency, seconds)] * processes)
    latencies = sorted(x for r in results for x in r)
    return (
        len(latencies) / seconds,
        statistics.median(latencies),
        latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    )


async def _cleanup(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=10_000)]
    for i in range(0, len(keys), 10_000):
        await client.delete(*keys[i : i + 10_000])
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    prefix = f"wwbench:{uuid.uuid4().hex[:8]}"
    try:
        base = measure(args.redis, prefix, "ping", args.processes, args.concurrency, args.seconds)
        pairs = measure(args.redis, prefix, "quota", args.processes, args.concurrency, args.seconds)
    finally:
        asyncio.run(_cleanup(args.redis, prefix))
    print(
        f"quota reserve+settle: {pairs[0]:,.0f} pairs/s, p50 {pairs[1] * 1000:.2f} ms, "
        f"p99 {pairs[2] * 1000:.2f} ms with {args.processes} processes x {args.concurrency} "
        f"callers (baseline: two PINGs {base[0]:,.0f} pairs/s, p99 {base[2] * 1000:.2f} ms; "
        f"ratio: {pairs[0] / base[0]:.2f}x the rate)"
    )


if __name__ == "__main__":
    main()
