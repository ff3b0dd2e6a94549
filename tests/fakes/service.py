"""A real `wattwise serve` process on a free loopback port, its stderr (the JSON logs) kept
in a file, for the tests of what only a process shows: signals, several processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import redis_url
from tests.fakes.llm import FAKE_PRICES
from tests.fakes.server import free_port
from tests.integration.conftest import TEST_SECRET


def service_env(database_url: str, model_url: str, **settings: str) -> dict[str, str]:
    """A service on the test database, the test Redis (under a prefix of its own) and a
    fake model at `model_url`, with `settings` on top."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url(),
        "WATTWISE_JWT_SECRET": TEST_SECRET,
        "OPENAI_BASE_URL": model_url,
        "WATTWISE_MODEL": "fake-model",
        "WATTWISE_MODEL_PRICES": FAKE_PRICES,
        "WATTWISE_QUOTA_PREFIX": f"wwtest:{uuid.uuid4().hex[:10]}",
        **settings,
    }


@dataclass
class Service:
    url: str
    process: asyncio.subprocess.Process
    log_path: Path

    def logs(self) -> list[dict[str, Any]]:
        """Every line the process logged, each a JSON object (json.loads fails otherwise)."""
        text = self.log_path.read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    async def terminate(self) -> int:
        """SIGTERM, then the exit status (uvicorn ends by re-raising the signal)."""
        self.process.send_signal(signal.SIGTERM)
        return await self.process.wait()


async def _ready(service: Service, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if service.process.returncode is not None:
                raise RuntimeError(f"the service exited:\n{service.log_path.read_text()}")
            try:
                if (await client.get(f"{service.url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the service did not become ready:\n{service.log_path.read_text()}")


@asynccontextmanager
async def wattwise_serve(
    log_path: Path, env: dict[str, str], *, ready_seconds: float = 30
) -> AsyncIterator[Service]:
    """Start `wattwise serve` with `env` over the environment; stop it on the way out if
    the test did not."""
    port = free_port()
    environment = {
        **os.environ,
        "WATTWISE_ENV": "development",
        "WATTWISE_PORT": str(port),
        "WATTWISE_LOG_FORMAT": "json",
        **env,
    }
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            env=environment,
            stdout=log,
            stderr=log,
        )
    service = Service(f"http://127.0.0.1:{port}", process, log_path)
    try:
        await _ready(service, ready_seconds)
        yield service
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
