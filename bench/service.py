"""A real `wattwise serve` process on a free loopback port, for the HTTP benchmarks."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import httpx

from service.auth import TokenIssuer

SECRET = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"


def token(user_id: UUID) -> str:
    issuer = TokenIssuer(secret=SECRET, issuer="wattwise", audience="wattwise-api")
    return issuer.issue(user_id, ttl=timedelta(hours=1))


def percentile(values: list[float], q: float) -> float:
    """The value below which a share `q` of `values` lies (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
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


@dataclass(frozen=True)
class Service:
    url: str
    pid: int

    def rss_bytes(self) -> int:
        """The process's resident memory now."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


@asynccontextmanager
async def running_service(dsn: str) -> AsyncIterator[str]:
    """Start the service on `dsn`, yield its base URL, stop it on the way out."""
    async with service_process(dsn) as service:
        yield service.url


@asynccontextmanager
async def service_process(dsn: str, env: dict[str, str] | None = None) -> AsyncIterator[Service]:
    """Start the service on `dsn` with extra environment `env`; yields its URL and pid."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": dsn,
        "WATTWISE_JWT_SECRET": SECRET,
        "WATTWISE_PORT": str(port),
        "WATTWISE_ENV": "development",
        **(env or {}),
    }
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        "serve",
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await _wait_ready(url)
        yield Service(url, server.pid)
    finally:
        server.terminate()
        await server.wait()
