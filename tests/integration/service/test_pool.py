"""The service's pooled connections: served in order of asking, and no reset round trip."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random

from service.deps import Deps
from telemetry.db import create_pool
from tests.integration.conftest import Database


async def test_no_request_is_overtaken_while_it_waits_for_a_connection(
    db: Database, deps: Deps
) -> None:
    # 32 callers share 2 connections, each asking again soon after it is done. A caller
    # that gets a connection while one that asked earlier is still waiting has overtaken
    # it; asyncpg's pool queue alone lets that happen, and a request then waits for ever
    # more newcomers.
    pool = await create_pool(db.dsn, min_size=2, max_size=2)
    small = dataclasses.replace(deps, pool=pool)
    arrivals = itertools.count()
    waiting: set[int] = set()
    overtakes = served = 0
    rng = random.Random(7)

    async def caller() -> None:
        nonlocal overtakes, served
        for _ in range(20):
            ticket = next(arrivals)
            waiting.add(ticket)
            async with small.connection() as conn:
                waiting.discard(ticket)
                overtakes += bool(waiting) and min(waiting) < ticket
                served += 1
                await conn.fetchval("SELECT 1")
            await asyncio.sleep(rng.random() / 1000)

    try:
        await asyncio.gather(*(caller() for _ in range(32)))
    finally:
        await pool.close()
    assert served == 640
    assert overtakes == 0


async def test_a_released_connection_keeps_no_open_transaction(db: Database, deps: Deps) -> None:
    # The reset query is skipped; asyncpg's own rollback of a left-open transaction is not.
    pool = await create_pool(db.dsn, max_size=1)
    try:
        small = dataclasses.replace(deps, pool=pool)
        async with small.connection() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TABLE left_open (x int)")
        async with small.connection() as conn:
            assert await conn.fetchval("SELECT to_regclass('left_open')") is None
            assert await conn.fetchval("SELECT current_setting('jit')") == "off"
    finally:
        await pool.close()
