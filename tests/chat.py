"""A chat client for tests that keeps its thread as useChat does, and readers of its answers."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx


def chunks_of(response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    out = []
    for line in response.text.splitlines():
        if line.startswith("data: {"):
            out.append(json.loads(line[6:]))
    return out


def said(chunks: list[Any]) -> str:
    return "".join(c["delta"] for c in chunks if c["type"] == "text-delta")


def commands_in(chunks: list[Any]) -> list[Any]:
    return [c["data"] for c in chunks if c["type"] == "data-command"]


async def outbox(pool: asyncpg.Pool, household: uuid.UUID) -> list[Any]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT command FROM commands WHERE household_id = $1", household)
    return [
        json.loads(r["command"]) if isinstance(r["command"], str) else r["command"] for r in rows
    ]


class Chat:
    """A client keeping its thread, as useChat does."""

    def __init__(self, client: httpx.AsyncClient, household: uuid.UUID, headers: dict[str, str]):
        self.client = client
        self.path = f"/v1/households/{household}/chat"
        self.headers = headers
        self.thread: list[dict[str, str]] = []

    async def say(self, text: str, *, keep: bool = True) -> list[Any]:
        asked = {"role": "user", "content": text}
        body = {"messages": [*self.thread, asked]}
        chunks = chunks_of(await self.client.post(self.path, headers=self.headers, json=body))
        if keep:
            self.thread += [asked, {"role": "assistant", "content": said(chunks)}]
        return chunks
