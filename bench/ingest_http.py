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
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import httpx

from agent.auth import TokenIssuer
from bench.ingest_db import BATCH, prepare
from telemetry import access, ingest
from telemetry.db import connect
from telemetry.migrate import migrate

SECRET = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait_ready(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the service did not become ready")


async def bench(admin_dsn: str, readings: int, clients: int) -> None:
    name = f"wattwise_bench_http_{os.getpid()}"
    dsn = urlsplit(admin_dsn)._replace(path=f"/{name}").geturl()
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    server = None
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

        port = _free_port()
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "WATTWISE_JWT_SECRET": SECRET,
            "WATTWISE_PORT": str(port),
            "WATTWISE_ENV": "development",
        }
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent.cli",
            "serve",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        await _wait_ready(url)
        token = TokenIssuer(secret=SECRET, issuer="wattwise", audience="wattwise-api").issue(
            user.id, ttl=timedelta(hours=1)
        )
        http_items = items[readings:]
        bodies = [
            json.dumps({"readings": http_items[i : i + BATCH]}).encode()
            for i in range(0, len(http_items), BATCH)
        ]
        headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for body in bodies:
            queue.put_nowait(body)
        accepted = 0

        async def worker() -> None:
            nonlocal accepted
            async with httpx.AsyncClient(timeout=120) as client:
                while not queue.empty():
                    body = queue.get_nowait()
                    response = await client.post(
                        f"{url}/v1/telemetry", content=body, headers=headers
                    )
                    response.raise_for_status()
                    accepted += response.json()["accepted"]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        http_rate = len(http_items) / (time.perf_counter() - started)
        assert accepted == len(http_items), (accepted, len(http_items))
    finally:
        if server is not None:
            server.terminate()
            await server.wait()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(
        f"ingest_http: {http_rate:,.0f} readings/s with {clients} client(s) "
        f"(baseline: database path {db_rate:,.0f} readings/s, ratio: {http_rate / db_rate:.2f}x)"
        f" over {len(http_items):,} readings"
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
