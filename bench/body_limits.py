"""Hostile uploads against a real `wattwise serve`: a chunked --megabytes POST to
/v1/chat/completions without a token, then with one; prints the server's resident memory
after each (baseline: the idle process) and the status it answered. On the main before
the body limits were enforced while streaming (28e010c), 300 MB without
a token was read whole before its 413: 74 -> 337 MiB here.

    .venv/bin/python -m bench.body_limits [--megabytes 300]

Needs DATABASE_URL (an admin connection; a scratch database is made and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator

import httpx

from bench.service import Service, service_process, token
from evals.scratch import scratch_database
from telemetry import access
from telemetry.db import connect
from telemetry.migrate import migrate

CHUNK = 64 * 1024


async def _upload(service: Service, megabytes: int, headers: dict[str, str]) -> int:
    """The status of the answer (0: the connection closed first)."""

    async def body() -> AsyncIterator[bytes]:
        chunk = b"[" * CHUNK
        for _ in range(megabytes * 2**20 // CHUNK):
            yield chunk

    async with httpx.AsyncClient(timeout=120) as client:
        try:
            response = await client.post(
                f"{service.url}/v1/chat/completions", content=body(), headers=headers
            )
            status = response.status_code
        except httpx.TransportError:
            status = 0  # the server closed the connection after answering
    return status


async def bench(admin_dsn: str, megabytes: int) -> None:
    async with scratch_database(admin_dsn, f"wattwise_bench_limits_{os.getpid()}") as dsn:
        conn = await connect(dsn)
        try:
            await migrate(conn)
            user = await access.create_user(conn, email="bench@example.test", role="resident")
        finally:
            await conn.close()
        async with service_process(dsn) as service:
            idle = service.rss_bytes()
            for name, headers in [
                ("no_token", {}),
                ("token", {"Authorization": f"Bearer {token(user.id)}"}),
            ]:
                status = await _upload(service, megabytes, headers)
                after = service.rss_bytes()
                print(
                    f"body_limits.{name}: {after / 2**20:.1f} MiB resident after a chunked "
                    f"{megabytes} MB POST answered {status} "
                    f"(baseline: idle {idle / 2**20:.1f} MiB, ratio: {after / idle:.2f}x)"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=300)
    args = parser.parse_args()
    dsn = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    asyncio.run(bench(dsn, args.megabytes))


if __name__ == "__main__":
    main()
