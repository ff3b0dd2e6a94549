"""Context build: p50/p95 of context.builder.build_context for each household of the
analytics benchmark's dataset (20 devices x 90 days of 1-minute readings each, 10
households); baseline: the same five period reports computed one after another on one
connection, measured in the same run.

    .venv/bin/python -m bench.context [--rounds 20]

Builds the dataset first if bench.analytics has not (it is kept between runs).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from bench.analytics import CAP, dataset
from context.builder import PERIODS, build_context
from quota.prices import estimate_tokens
from telemetry import households, live, queries, windows
from telemetry.db import create_pool


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main_async(args: argparse.Namespace) -> None:
    dsn = await dataset()
    pool = await create_pool(dsn, min_size=6, max_size=6)

    @asynccontextmanager
    async def connect() -> AsyncIterator[Any]:
        async with pool.acquire() as conn:
            yield conn

    try:
        async with pool.acquire() as conn:
            homes = [
                h
                for r in await conn.fetch("SELECT id FROM households ORDER BY id")
                if (h := await households.get_household(conn, r["id"])) is not None
            ]
        built: list[float] = []
        sequential: list[float] = []
        sizes: list[int] = []
        for round_ in range(args.rounds + 1):
            for home in homes:
                now = datetime.now(UTC)
                started = time.perf_counter()
                context = await build_context(
                    connect, home, now=now, cap=CAP, estimate=estimate_tokens
                )
                took = time.perf_counter() - started
                started = time.perf_counter()
                async with pool.acquire() as conn:
                    for _, period in PERIODS:
                        window = windows.resolve(period, timezone=home.timezone, now=now)
                        await queries.energy_report(conn, home, window, now=now, cap=CAP)
                    await live.snapshot(conn, home, now=now, cap=CAP)
                baseline = time.perf_counter() - started
                if round_:  # the first round prepares every connection's statements
                    built.append(took)
                    sequential.append(baseline)
                    sizes.append(context.tokens)
    finally:
        await pool.close()
    p50, p95 = _pct(built, 0.5), _pct(built, 0.95)
    b50, b95 = _pct(sequential, 0.5), _pct(sequential, 0.95)
    print(
        f"context build: p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms over {len(built)} "
        f"builds, {statistics.median(sizes)} estimated tokens (baseline: the same reports one "
        f"after another on one connection p50 {b50 * 1000:.1f} ms, p95 {b95 * 1000:.1f} ms; "
        f"ratio: {b50 / p50:.2f}x at p50)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
