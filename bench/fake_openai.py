"""A minimal OpenAI-compatible Chat Completions server for the chat benchmark: every request
gets the same streamed answer, `--chunks` text chunks `--delay` seconds apart (0: at once),
then the usage and [DONE]. Run as its own process so it does not share the service's or
the load client's CPU time with them.

    .venv/bin/python -m bench.fake_openai --port 9100 [--chunks 8] [--delay 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

WORDS = "Your household's figures are in the summary above and nothing here adds to them. "


def app(chunks: int, delay: float) -> Starlette:
    def event(delta: dict[str, object], finish: str | None = None) -> bytes:
        body = {
            "id": "bench",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "bench-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n".encode()

    usage = {
        "id": "bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "bench-model",
        "choices": [],
        "usage": {"prompt_tokens": 900, "completion_tokens": 20 * chunks, "total_tokens": 0},
    }
    tail = [event({}, "stop"), f"data: {json.dumps(usage)}\n\n".encode(), b"data: [DONE]\n\n"]

    async def completions(request: Request) -> Response:
        await request.body()

        async def body() -> AsyncIterator[bytes]:
            yield event({"role": "assistant", "content": ""})
            for _ in range(chunks):
                if delay:
                    await asyncio.sleep(delay)
                yield event({"content": WORDS})
            for line in tail:
                yield line

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    uvicorn.run(
        app(args.chunks, args.delay),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
