"""The README's first command: `wattwise demo` starts an embedded PostgreSQL, seeds a demo
household, keeps it alive with simulated readings, prints a token and a curl line that work
once it is ready, and stops its database on every way out (Ctrl-C, SIGTERM, a failed start).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.fakes.server import free_port
from tests.integration.demo_run import chat_text, command_lines

DEMO_DEVICES = {
    "Heat pump",
    "EV charger",
    "Fridge",
    "Dishwasher",
    "Solar inverter",
    "Grid meter",
    "Battery",
}
BANNER_END = "/chat "  # the banner's last curl line


@dataclass
class Demo:
    """A `wattwise demo` process, its output collected line by line as it comes."""

    proc: asyncio.subprocess.Process
    port: int
    pgdata: Path
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def read(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            into.append(line.decode())
            self.changed.set()
        self.changed.set()

    async def printed(self, marker: str, where: str = "out", seconds: float = 180) -> str:
        """Wait until `marker` is among the lines of stdout (or "err"); all of them."""
        lines = self.out if where == "out" else self.err
        async with asyncio.timeout(seconds):
            while not any(marker in line for line in lines):
                if self.proc.returncode is not None:
                    raise AssertionError(f"the demo exited before {marker!r}: {self.err}")
                self.changed.clear()
                await self.changed.wait()
        return "".join(lines)

    def credentials(self) -> tuple[str, str]:
        """The token and the household URL the banner's first curl line uses."""
        found = re.search(
            r"curl -s -H 'Authorization: Bearer ([^']+)' (\S+)/devices", "".join(self.out)
        )
        assert found, self.out
        return found[1], found[2]


def _environment(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WATTWISE_", "OPENAI_")) and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    return env | {"WATTWISE_DATA_DIR": str(data_dir), "WATTWISE_PORT": str(port)} | extra


@asynccontextmanager
async def demo(home: Path, *args: str, port: int | None = None, **env: str) -> AsyncIterator[Demo]:
    port = port or free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "demo", *args,
        env=_environment(home / "data", port, **env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    running = Demo(proc, port, home / "data" / "pgdata")
    readers = [
        asyncio.create_task(running.read(proc.stdout, running.out)),
        asyncio.create_task(running.read(proc.stderr, running.err)),
    ]
    try:
        yield running
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            await proc.wait()
            await asyncio.gather(*readers)


def _postgres_serving(pgdata: Path) -> list[int]:
    """Processes of a PostgreSQL server on `pgdata`: its postmaster (postmaster.pid) and any
    process whose command line names the directory."""
    found: set[int] = set()
    pid_file = pgdata / "postmaster.pid"
    if pid_file.exists():
        found.add(int(pid_file.read_text().splitlines()[0]))
    found.update(pid for pid, line in command_lines() if "postgres" in line and str(pgdata) in line)
    return sorted(pid for pid in found if Path(f"/proc/{pid}").exists())


@pytest.fixture
def home() -> Iterator[Path]:
    """A directory for the demo's data, outside pytest's temporary root: run as root, the
    embedded server runs as another user, who must be able to traverse the path, and every
    pytest session that starts (another engineer's too) makes that root 0700 again."""
    path = Path(tempfile.mkdtemp(prefix="wattwise-demo-"))
    path.chmod(0o755)
    yield path
    # A failing test must not leave its embedded server running on the machine.
    for pid in _postgres_serving(path / "data" / "pgdata"):
        os.kill(pid, signal.SIGTERM)
    shutil.rmtree(path, ignore_errors=True)


async def test_the_demo_serves_a_seeded_household_with_a_working_token(home: Path) -> None:
    async with demo(home, "--days", "1") as running:
        await running.printed(BANNER_END)
        token, household_url = running.credentials()
        async with httpx.AsyncClient() as client:
            devices = await client.get(
                f"{household_url}/devices", headers={"Authorization": f"Bearer {token}"}
            )
        assert devices.status_code == 200
        assert {d["name"] for d in devices.json()["devices"]} == DEMO_DEVICES
    assert running.proc.returncode == 0
    assert _postgres_serving(running.pgdata) == []


async def test_the_demo_is_ready_when_it_prints_its_banner(home: Path) -> None:
    """The banner said "open this" before the server listened and before the first rollup
    refresh: /readyz, asked right after it, was refused or 503 about one run in three."""
    async with demo(home, "--days", "1") as running:
        await running.printed(BANNER_END)
        async with httpx.AsyncClient() as client:
            ready = await client.get(f"{running.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


async def test_a_sigterm_stops_the_demos_embedded_postgres(home: Path) -> None:
    async with demo(home, "--days", "1") as running:
        await running.printed(BANNER_END)
        assert _postgres_serving(running.pgdata) != []
        running.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            await running.proc.wait()
    assert _postgres_serving(running.pgdata) == [], "".join(running.err)


async def test_a_sigterm_while_seeding_stops_the_demos_embedded_postgres(home: Path) -> None:
    async with demo(home, "--days", "30") as running:
        await running.printed("seeding 30 days", where="err")
        running.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            await running.proc.wait()
    assert _postgres_serving(running.pgdata) == [], "".join(running.err)
    assert "token:" not in running.out


async def test_a_demo_after_a_killed_one_still_stops_its_postgres(home: Path) -> None:
    """A SIGKILLed demo stays on the server's list of users; no later demo was ever the
    last one, so none stopped the server."""
    async with demo(home, "--days", "1") as killed:
        await killed.printed(BANNER_END)
        killed.proc.kill()
        await killed.proc.wait()
    assert _postgres_serving(killed.pgdata) != []
    async with demo(home, "--days", "1") as running:
        await running.printed(BANNER_END)
    assert running.proc.returncode == 0
    assert _postgres_serving(running.pgdata) == [], "".join(running.err)


async def test_a_taken_port_stops_the_demos_embedded_postgres(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        async with demo(home, "--days", "1", port=taken.getsockname()[1]) as running:
            async with asyncio.timeout(180):
                await running.proc.wait()
    assert running.proc.returncode != 0
    assert "token:\n" not in running.out, "the banner promised a server that never listened"
    assert _postgres_serving(running.pgdata) == [], "".join(running.err)


async def test_the_demo_household_keeps_producing_readings_while_it_runs(home: Path) -> None:
    """The demo's data stopped at seeding time: minutes later "right now" found no reading."""
    async with demo(home, "--days", "1", WATTWISE_DEMO_READING_SECONDS="1") as running:
        await running.printed(BANNER_END)
        printed_at = datetime.now(UTC)
        token, household_url = running.credentials()
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=60) as client:
            async with asyncio.timeout(60):
                while True:
                    live = (await client.get(f"{household_url}/live", headers=headers)).json()
                    if datetime.fromisoformat(live["fresh_as_of"]) > printed_at:
                        break
                    await asyncio.sleep(0.2)
            answer = await chat_text(
                client, household_url, token, "how much power am I using right now?"
            )
    assert "right now" in answer, answer
    found = re.search(r"as of (\d\d):(\d\d) on (\d+) (\w{3}) \(Europe/Berlin\)", answer)
    assert found, answer
    local = printed_at.astimezone(ZoneInfo("Europe/Berlin"))
    stated = datetime.strptime(
        f"{local.year} {found[3]} {found[4]} {found[1]}:{found[2]}", "%Y %d %b %H:%M"
    )
    assert stated >= local.replace(tzinfo=None, second=0, microsecond=0), answer
