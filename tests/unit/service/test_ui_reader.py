"""tests/ui_reader.py: hand-written UI message streams, served on loopback, read by the AI
SDK's own client code under Node."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from tests.fakes.server import serving
from tests.ui_reader import UIStreamError, aread_ui_stream, read_ui_stream

V1 = {"x-vercel-ai-ui-message-stream": "v1", "cache-control": "no-cache"}

ROUTE = {"tier": "analytics", "reason": "usage question"}
USAGE = {"promptTokens": 120, "completionTokens": 30}
READING = {"kwh": 4.2, "day": "2026-11-22"}

GOOD = [
    {"type": "start", "messageId": "msg-1"},
    {"type": "start-step"},
    {"type": "data-route", "id": "route", "data": ROUTE},
    {"type": "text-start", "id": "t1"},
    {"type": "text-delta", "id": "t1", "delta": "You used "},
    "PING",
    {"type": "text-delta", "id": "t1", "delta": "4.2 kWh "},
    {"type": "text-delta", "id": "t1", "delta": "yesterday."},
    {"type": "text-end", "id": "t1"},
    {
        "type": "tool-input-available",
        "toolCallId": "call-1",
        "toolName": "usage",
        "input": {"day": "2026-11-22"},
    },
    {"type": "tool-output-available", "toolCallId": "call-1", "output": READING},
    {"type": "finish-step"},
    {"type": "data-usage", "data": USAGE},
    {"type": "finish"},
    "DONE",
]


def _sse(events: list[Any]) -> list[bytes]:
    lines = []
    for event in events:
        if event == "PING":
            lines.append(b": ping\r\n\r\n")
        elif event == "DONE":
            lines.append(b"data: [DONE]\r\n\r\n")
        elif isinstance(event, bytes):
            lines.append(event)
        else:
            lines.append(f"data: {json.dumps(event)}\r\n\r\n".encode())
    return lines


def _app(events: list[Any], headers: dict[str, str] | None = None) -> Starlette:
    """POST /chat answers `events` as SSE; the last request's JSON body is in app.state."""

    async def chat(request: Request) -> StreamingResponse:
        request.app.state.body = await request.json()

        async def stream() -> AsyncIterator[bytes]:
            for line in _sse(events):
                yield line

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers=V1 if headers is None else headers
        )

    return Starlette(routes=[Route("/chat", chat, methods=["POST"])])


async def test_a_whole_turn_is_reconstructed_as_the_front_end_shows_it() -> None:
    app = _app(GOOD)
    async with serving(app) as url:
        result = await aread_ui_stream(
            f"{url}/chat", body={"messages": [{"role": "user", "content": "how much?"}]}
        )
    assert app.state.body == {"messages": [{"role": "user", "content": "how much?"}]}
    assert result.status == 200
    assert result.headers["x-vercel-ai-ui-message-stream"] == "v1"
    # Every chunk, in order; the comment and [DONE] are not chunks.
    assert result.chunks == [e for e in GOOD if isinstance(e, dict)]
    assert result.errors == []
    assert result.chat["status"] == "ready"

    message = result.message
    assert message is not None
    assert message["id"] == "msg-1"
    assert message["role"] == "assistant"
    assert [p["type"] for p in message["parts"]] == [
        "step-start",
        "data-route",
        "text",
        "tool-usage",
        "data-usage",
    ]
    assert result.text == "You used 4.2 kWh yesterday."
    assert result.parts("text") == [
        {"type": "text", "text": "You used 4.2 kWh yesterday.", "state": "done"}
    ]
    (tool,) = result.parts("tool-usage")
    assert tool["toolCallId"] == "call-1"
    assert tool["state"] == "output-available"
    assert tool["input"] == {"day": "2026-11-22"}
    assert tool["output"] == READING
    assert result.parts("data-route") == [{"type": "data-route", "id": "route", "data": ROUTE}]
    assert result.parts("data-usage") == [{"type": "data-usage", "data": USAGE}]


async def test_use_chat_builds_its_own_request_body_from_text() -> None:
    app = _app(GOOD)
    async with serving(app) as url:
        result = await aread_ui_stream(f"{url}/chat", text="how much?")
    sent = app.state.body
    assert sent["trigger"] == "submit-message"
    assert [(m["role"], m["parts"]) for m in sent["messages"]] == [
        ("user", [{"type": "text", "text": "how much?"}])
    ]
    assert result.text == "You used 4.2 kWh yesterday."


async def test_a_data_part_with_a_known_id_is_replaced_where_it_stands() -> None:
    events = [
        {"type": "start"},
        {"type": "data-route", "id": "r", "data": {"tier": "chat"}},
        {"type": "text-start", "id": "t"},
        {"type": "text-delta", "id": "t", "delta": "hi"},
        {"type": "text-end", "id": "t"},
        {"type": "data-route", "id": "r", "data": {"tier": "analytics"}},
        {"type": "data-route", "id": "other", "data": {"tier": "voice"}},
        {"type": "data-usage", "data": {"n": 1}, "transient": True},
        {"type": "finish"},
    ]
    async with serving(_app(events)) as url:
        result = await aread_ui_stream(f"{url}/chat", body={})
    assert result.message is not None
    assert result.message["parts"] == [
        {"type": "data-route", "id": "r", "data": {"tier": "analytics"}},
        {"type": "text", "text": "hi", "state": "done"},
        {"type": "data-route", "id": "other", "data": {"tier": "voice"}},
    ]


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"type": "text-delta", "delta": "no id"}, ["id"]),
        ({"type": "data-route", "id": "r"}, ["data"]),
        ({"type": "wattwise-route", "data": {}}, ["type"]),
    ],
    ids=["text-delta-without-id", "data-without-data", "unknown-type"],
)
async def test_a_chunk_outside_the_schema_fails_the_read(
    bad: dict[str, Any], where: list[str]
) -> None:
    events = [
        {"type": "start"},
        {"type": "text-start", "id": "t"},
        {"type": "text-delta", "id": "t", "delta": "before "},
        bad,
        {"type": "text-delta", "id": "t", "delta": "after"},
        {"type": "text-end", "id": "t"},
        {"type": "finish"},
        "DONE",
    ]
    async with serving(_app(events)) as url:
        with pytest.raises(UIStreamError, match="parse") as raised:
            await aread_ui_stream(f"{url}/chat", body={})
        result = await aread_ui_stream(f"{url}/chat", body={}, check=False)
    assert raised.value.result.errors == result.errors
    parse_errors = [e for e in result.errors if e["source"] == "parse"]
    assert len(parse_errors) == 1
    assert parse_errors[0]["event"] == 3
    assert parse_errors[0]["value"] == bad
    assert parse_errors[0]["name"] == "AI_TypeValidationError"
    assert [i["path"] for i in parse_errors[0]["issues"]] == [where]
    # useChat stops at the invalid chunk: its error, and the text before it only.
    assert result.chat["status"] == "error"
    assert any(e["source"] == "chat" for e in result.errors)
    assert result.text == "before "
    # The chunk list still has every valid chunk the server sent.
    assert len(result.chunks) == 6


async def test_a_chunk_the_front_end_cannot_apply_fails_the_read() -> None:
    events = [
        {"type": "start"},
        {"type": "text-delta", "id": "never-started", "delta": "x"},
        {"type": "finish"},
    ]
    async with serving(_app(events)) as url:
        result = await aread_ui_stream(f"{url}/chat", body={}, check=False)
    assert not [e for e in result.errors if e["source"] == "parse"]
    (failure,) = result.errors
    assert failure["source"] == "chat"
    assert failure["name"] == "TypeError"


async def test_not_json_fails_the_read() -> None:
    events = [{"type": "start"}, b"data: {not json\n\n", {"type": "finish"}]
    async with serving(_app(events)) as url:
        result = await aread_ui_stream(f"{url}/chat", body={}, check=False)
    parse = [e for e in result.errors if e["source"] == "parse"]
    assert [(e["name"], e["text"]) for e in parse] == [("AI_JSONParseError", "{not json")]


async def test_an_error_chunk_is_surfaced_and_is_not_a_failure() -> None:
    events = [
        {"type": "start", "messageId": "m"},
        {"type": "text-start", "id": "t"},
        {"type": "text-delta", "id": "t", "delta": "Partial"},
        {"type": "error", "errorText": "The model is unavailable."},
        {"type": "finish"},
        "DONE",
    ]
    async with serving(_app(events)) as url:
        result = await aread_ui_stream(f"{url}/chat", body={})
    assert result.errors == [
        {"source": "error-chunk", "name": "Error", "message": "The model is unavailable."}
    ]
    assert result.chat["status"] == "error"
    assert result.text == "Partial"
    assert result.chunks[-2:] == [
        {"type": "error", "errorText": "The model is unavailable."},
        {"type": "finish"},
    ]


async def test_a_response_without_the_protocol_header_fails_the_read() -> None:
    async with serving(_app(GOOD, headers={})) as url:
        with pytest.raises(UIStreamError, match="x-vercel-ai-ui-message-stream"):
            await aread_ui_stream(f"{url}/chat", body={})


async def test_a_non_2xx_status_fails_the_read_with_its_body() -> None:
    async def refuse(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b'{"error": "quota"}'

        return StreamingResponse(body(), status_code=429, media_type="application/json")

    app = Starlette(routes=[Route("/chat", refuse, methods=["POST"])])
    async with serving(app) as url:
        with pytest.raises(UIStreamError) as raised:
            await aread_ui_stream(f"{url}/chat", body={})
    result = raised.value.result
    assert result.status == 429
    assert result.errors[0] == {
        "source": "http",
        "message": "HTTP status 429",
        "body": '{"error": "quota"}',
    }
    assert result.message is None


async def test_a_stream_that_never_ends_fails_the_read_at_the_deadline() -> None:
    async def hang(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for line in _sse([{"type": "start"}, {"type": "text-start", "id": "t"}]):
                yield line
            await asyncio.Event().wait()  # until the client hangs up

        return StreamingResponse(body(), media_type="text/event-stream", headers=V1)

    app = Starlette(routes=[Route("/chat", hang, methods=["POST"])])
    async with serving(app) as url:
        started = time.monotonic()
        with pytest.raises(UIStreamError, match="timeout") as raised:
            await aread_ui_stream(f"{url}/chat", body={}, read_timeout=1.0)
        assert time.monotonic() - started < 10
    assert raised.value.result.chunks == [{"type": "start"}, {"type": "text-start", "id": "t"}]


async def test_the_blocking_reader_reads_the_same() -> None:
    async with serving(_app(GOOD)) as url:
        result = await asyncio.to_thread(read_ui_stream, f"{url}/chat", body={})
    assert result.text == "You used 4.2 kWh yesterday."
    assert len(result.chunks) == 13
