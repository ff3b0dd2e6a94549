"""Reading Server-Sent Events in tests: from a streamed httpx response, or from the body
messages an ASGI app sent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def parse(text: str) -> list[Event]:
    """The events of a complete SSE text (comments and pings left out)."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event, data = "message", list[str]()
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            out.append(Event(event, "\n".join(data)))
    return out


async def events(response: httpx.Response) -> AsyncIterator[Event]:
    """The events of a streamed response, as they arrive."""
    event, data = "message", list[str]()
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield Event(event, "\n".join(data))
            event, data = "message", list[str]()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
