"""Ingest, HTTP path: readings/s posted to POST /v1/telemetry of one service process (the
real `wattwise serve`, refresher included), in 50,000-reading JSON batches from a client
in this process; baseline: the database path (telemetry.ingest.store) on the same rows,
measured in the same run.

    .venv/bin/python -m bench.ingest_http [--readings N] [--clients C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import httpx

from bench.ingest_db import BATCH, prepare
from bench.service import running_service, token
from telemetry import access, ingest
from telemetry.db import connect
from telemetry.migrate import migrate


async def _post_all(url: str, bearer: str, items: list[dict[str, object]], clients: int) -> float:
    """Post the readings in 50,000-reading JSON batches from `clients` connections;
    returns readings/s."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for i in range(0, len(items), BATCH):
        queue.put_nowait(json.dumps({"readings": items[i : i + BATCH]}).encode())
    headers = {"Authorization": f"Bearer {bearer}", "content-type": "application/json"}
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        async with httpx.AsyncClient(timeout=120) as client:
            while not queue.empty():
                body = queue.get_nowait()
                response = await client.post(f"{url}/v1/telemetry", content=body, headers=headers)
                response.raise_for_status()
                accepted += response.json()["accepted"]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    rate = len(items) / (time.perf_counter() - started)
    assert accepted == len(items), (accepted, len(items))
    return rate


async def bench(admin_dsn: str, readings: int, clients: int) -> None:
    name = f"wattwise_bench_http_{os.getpid()}"
    dsn = urlsplit(admin_dsn)._replace(path=f"/{name}").geturl()
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await connect(dsn)
        await migrate(conn)
        items, _ = await prepare(conn, readings * 2)
        user = await access.create_user(conn, email="gw@example.test", role="admin")
        # Baseline: the database path on the first half of the rows.
        db_items = items[:readings]
        policy = ingest.Policy(
            now=datetime.now(UTC), cap=timedelta(minutes=15), retention=timedelta(days=90)
        )
        started = time.perf_counter()
        for i in range(0, len(db_items), BATCH):
            await ingest.store(
                conn, db_items[i : i + BATCH], user_id=user.id, role="admin", policy=policy
            )
        db_rate = len(db_items) / (time.perf_counter() - started)
        await conn.close()
        async with running_service(dsn) as url:
            http_rate = await _post_all(url, token(user.id), items[readings:], clients)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(
        f"ingest_http: {http_rate:,.0f} readings/s with {clients} client(s) "
        f"(baseline: database path {db_rate:,.0f} readings/s, ratio: {http_rate / db_rate:.2f}x)"
        f" over {readings:,} readings"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=300_000)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()
    dsn = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    asyncio.run(bench(dsn, args.readings, args.clients))


if __name__ == "__main__":
    main()
