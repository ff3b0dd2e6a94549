"""What the tests of a running `wattwise demo` share: the processes on the machine (by
command line), and one chat question answered as the text of its stream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.sse import events


def command_lines() -> Iterator[tuple[int, str]]:
    """Every process's id and command line (arguments joined by spaces)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # ended meanwhile
        yield int(entry.name), line


async def chat_text(
    client: httpx.AsyncClient, household_url: str, token: str, question: str
) -> str:
    """The answer's text: the text-delta parts of the chat's UI message stream."""
    body = {"messages": [{"role": "user", "content": question}]}
    headers = {"Authorization": f"Bearer {token}"}
    text = []
    async with client.stream("POST", f"{household_url}/chat", json=body, headers=headers) as got:
        assert got.status_code == 200, await got.aread()
        async for event in events(got):
            if event.data.startswith("{") and (part := event.json()).get("type") == "text-delta":
                text.append(part["delta"])
    return "".join(text)
