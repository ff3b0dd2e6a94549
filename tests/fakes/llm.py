"""A small OpenAI-compatible server on loopback for tests: it answers POST
/v1/chat/completions with scripted replies, in order, and records every request body.

The openai SDK talks through its own HTTP stack, so the provider is faked at the wire,
as a real server would be, not by patching a client library.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.server import serving

# The fake model's prices, per million tokens, for settings that name "fake-model".
FAKE_PRICES = '{"fake-model": {"input": 1, "output": 2, "max_tokens": 300}}'


def sse(*chunks: dict[str, Any]) -> list[bytes]:
    """The events of a streamed completion, then [DONE]."""
    return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake-model",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def says(*sentences: str, prompt: int = 120, completion: int = 30, delay: float = 0.0) -> Reply:
    """A round in which the model answers with these text deltas, then its usage."""
    return Reply(
        sse(
            *(chunk({"content": s}) for s in sentences),
            chunk({}, "stop"),
            usage(prompt, completion),
        ),
        delay=delay,
    )


@dataclass
class Reply:
    events: list[bytes] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0  # before each event
    abort_after: int | None = None  # drop the connection after this many events


class _Abort(Exception):
    """Raised inside a streamed body: uvicorn then drops the connection mid-response."""


@dataclass
class FakeLLM:
    base_url: str
    replies: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    hung_up: int = 0  # streams the client closed before their end


@asynccontextmanager
async def fake_llm() -> AsyncIterator[FakeLLM]:
    fake = FakeLLM("")

    async def completions(request: Request) -> Response:
        fake.requests.append(json.loads(await request.body()))
        reply = fake.replies.pop(0) if fake.replies else Reply(status=500)
        if reply.status != 200:
            return Response(
                json.dumps({"error": {"message": "scripted failure"}}),
                status_code=reply.status,
                media_type="application/json",
            )

        async def body() -> AsyncIterator[bytes]:
            try:
                for n, event in enumerate(reply.events):
                    if reply.abort_after is not None and n >= reply.abort_after:
                        raise _Abort
                    if reply.delay:
                        await asyncio.sleep(reply.delay)
                    yield event
            except (asyncio.CancelledError, GeneratorExit):
                fake.hung_up += 1
                raise

        return StreamingResponse(body(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    async with serving(app) as url:
        fake.base_url = f"{url}/v1"
        yield fake
