"""A real `wattwise serve` process on a free loopback port, for the HTTP benchmarks."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from uuid import UUID

import httpx

from agent.auth import TokenIssuer

SECRET = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"


def token(user_id: UUID) -> str:
    issuer = TokenIssuer(secret=SECRET, issuer="wattwise", audience="wattwise-api")
    return issuer.issue(user_id, ttl=timedelta(hours=1))


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


@asynccontextmanager
async def running_service(dsn: str) -> AsyncIterator[str]:
    """Start the service on `dsn`, yield its base URL, stop it on the way out."""
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
    try:
        url = f"http://127.0.0.1:{port}"
        await _wait_ready(url)
        yield url
    finally:
        server.terminate()
        await server.wait()
