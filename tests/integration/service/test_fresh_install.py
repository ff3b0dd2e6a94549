"""The README's first command, as a newcomer runs it: a clean copy of the checkout (only the
files git tracks), `./scripts/demo` making its own virtualenv with a plain install (no
extras), every `wattwise` command's help, the demo on a free port, /readyz 200, one chat
answered with a kWh figure, and a SIGTERM that leaves no process behind; and the wheel a
plain install builds holds the product's packages and data files, and nothing else.

The working tree is copied rather than cloned so that the test runs what is about to be
committed; in CI the checkout is itself a fresh clone of main.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.server import free_port
from tests.integration.demo_run import chat_text, command_lines

ROOT = Path(__file__).resolve().parents[3]
OUTSIDE = frozenset({"evals", "bench", "tests"})  # run from a checkout, never installed
COMMANDS = [
    [], ["serve"], ["demo"], ["migrate"], ["ask"], ["seed-demo"], ["refresh"],
    ["user", "add"], ["token"], ["household", "add"], ["device", "add"], ["member", "add"],
    ["support", "add"],
]  # fmt: skip


def _clean_copy(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if name.startswith("tests/node/node_modules/") or not source.is_file():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _newcomer_env(data_dir: Path) -> dict[str, str]:
    """The machine's environment without this run's virtualenv or service settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WATTWISE_", "OPENAI_", "PIP_", "PYTHON"))
        and k not in {"DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV"}
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if "/.venv/" not in p + "/"
    )
    env["WATTWISE_DATA_DIR"] = str(data_dir)
    return env


def _processes_under(directory: Path) -> list[int]:
    """Processes whose executable or command line lies under `directory`."""
    return [pid for pid, line in command_lines() if str(directory) in line]


async def _lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    while line := await stream.readline():
        yield line.decode()


@pytest.fixture(scope="module")
def checkout() -> Iterator[Path]:
    # Not under pytest's temporary root: every new pytest session makes that 0700 again,
    # which locks out the embedded PostgreSQL's own (non-root) user.
    root = Path(tempfile.mkdtemp(prefix="wattwise-newcomer-"))
    root.chmod(0o755)
    dest = root / "wattwise"
    _clean_copy(dest)
    yield dest
    shutil.rmtree(root, ignore_errors=True)


async def test_the_readme_demo_command_answers_a_chat_and_stops_clean(checkout: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        "./scripts/demo", "--port", str(port), "--days", "2",
        cwd=checkout, env=_newcomer_env(checkout / "data"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(600):
            async for line in _lines(proc.stdout):
                seen.append(line)
                if "/chat" in line:
                    break
        banner = "".join(seen)
        found = re.search(r"curl -s -H 'Authorization: Bearer ([^']+)' (\S+)/devices", banner)
        assert found, banner
        token, household_url = found.groups()
        assert f"127.0.0.1:{port}" in household_url
        drained = asyncio.ensure_future(_drain(proc.stdout, seen))
        async with httpx.AsyncClient(timeout=60) as client:
            ready = await client.get(f"http://127.0.0.1:{port}/readyz")  # the banner says so
            assert ready.status_code == 200, ready.text
            answer = await chat_text(
                client, household_url, token, "how much energy did I use today?"
            )
        assert re.search(r"\d+(\.\d+)? kWh", answer), answer
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            await proc.wait()
    await drained
    assert _processes_under(checkout / "data") == [], "".join(seen)


def test_every_command_answers_help_on_a_plain_install(checkout: Path) -> None:
    if not (checkout / ".venv/bin/wattwise").exists():  # run alone: make scripts/demo's install
        env = _newcomer_env(checkout / "data")
        venv = ["python3", "-m", "venv", str(checkout / ".venv")]
        subprocess.run(venv, check=True, env=env)
        pip = [str(checkout / ".venv/bin/python"), "-m", "pip", "install", "-q", "-e", "."]
        subprocess.run(pip, cwd=checkout, check=True, env=env)
    for command in COMMANDS:
        done = subprocess.run(
            [str(checkout / ".venv/bin/wattwise"), *command, "--help"],
            cwd=checkout, capture_output=True, text=True, env=_newcomer_env(checkout / "data"),
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)
        assert "usage: wattwise" in done.stdout
    leaked = subprocess.run(
        [str(checkout / ".venv/bin/python"), "-c",
         "import sys, service.cli, service.server, service.demo_command;"
         "print(sorted(m for m in sys.modules if m.split('.')[0] in {'evals', 'bench', 'tests'}))"],
        cwd=checkout, capture_output=True, text=True, check=True,
        env=_newcomer_env(checkout / "data"),
    )  # fmt: skip
    assert leaked.stdout.strip() == "[]"


def test_the_wheel_holds_the_product_and_nothing_else(checkout: Path, tmp_path: Path) -> None:
    """Every top-level package of the checkout is in the wheel, with its data files, except
    what runs only from a checkout (evals, bench, tests)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), "."],
        cwd=checkout, check=True, capture_output=True, env=_newcomer_env(checkout / "data"),
    )  # fmt: skip
    (wheel,) = tmp_path.glob("wattwise-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    product = {p.parent.name for p in checkout.glob("*/__init__.py")} - OUTSIDE
    assert packages == product
    modules = {
        str(p.relative_to(checkout)) for name in product for p in (checkout / name).rglob("*.py")
    }
    assert modules <= set(names)
    migrations = {f"telemetry/migrations/{p.name}" for p in checkout.glob("telemetry/migrations/*")}
    assert migrations
    assert migrations <= set(names)
    assert {"service/static/widget.js", "service/static/widget.css"} <= set(names)


async def _drain(stream: asyncio.StreamReader, seen: list[str]) -> None:
    async for line in _lines(stream):
        seen.append(line)
