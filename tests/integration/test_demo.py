"""The README's first command: `wattwise demo` starts an embedded PostgreSQL, seeds a demo
household, prints a token and a curl line that work, and stops its database on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import httpx

from tests.fakes.server import free_port


async def _read_until(stream: asyncio.StreamReader, marker: str, seconds: float) -> str:
    seen = ""
    async with asyncio.timeout(seconds):
        while marker not in seen:
            line = await stream.readline()
            if not line:
                break
            seen += line.decode()
    return seen


def _postmaster_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_the_demo_serves_a_seeded_household_with_a_working_token(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WATTWISE_", "OPENAI_")) and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env |= {"WATTWISE_DATA_DIR": str(tmp_path / "data"), "WATTWISE_PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent.cli",
        "demo",
        "--days",
        "1",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        banner = await _read_until(proc.stdout, "/devices", 120)
        await _read_until(proc.stderr, "Uvicorn running", 60)
        curl = re.search(r"curl -s -H 'Authorization: Bearer ([^']+)' (\S+)", banner)
        assert curl, banner
        token, url = curl.groups()
        async with httpx.AsyncClient() as client:
            devices = await client.get(url, headers={"Authorization": f"Bearer {token}"})
            ready = await client.get(f"http://127.0.0.1:{port}/readyz")
        assert devices.status_code == 200
        assert {d["name"] for d in devices.json()["devices"]} == {
            "Heat pump",
            "EV charger",
            "Fridge",
            "Dishwasher",
            "Solar inverter",
            "Grid meter",
            "Battery",
        }
        assert ready.json()["status"] == "ready"
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            await proc.wait()
    assert proc.returncode == 0
    assert not _postmaster_running(tmp_path / "data" / "pgdata")
