"""POST /v1/households/{id}/chat: one turn, streamed as the AI SDK UI message stream.

Everything that can refuse the turn happens before the response starts and is a plain
JSON error: 401 (checked before the body is read), 413 (a body over MAX_BODY_BYTES, too
many or too long messages), 400 (not JSON), 422, 404, 403 (a gateway), then the quota's
402 / 429 / 503. After that, failures are `error` chunks in
the stream. A client that hangs up cancels the turn: the model request is closed and its
quota settled.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response

from agent.errors import FieldError, InvalidRequest, PayloadTooLarge
from agent.turn import Message, Turn
from service import requests, ui_stream
from service.deps import Deps
from telemetry import access

log = logging.getLogger("wattwise.chat")

MAX_MESSAGES = 20
MAX_CHARS = 8000
MAX_BODY_BYTES = 2 * 1024 * 1024
KEEPALIVE_SECONDS = 15
# A turn cut at the drain deadline sends its last parts within this much more time.
DRAIN_MARGIN_SECONDS = 2.0


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    """{"role", "content"}, or an AI SDK UIMessage ({"role", "parts": [{"type": "text",
    "text"}]}) so useChat's default transport works as it is."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["user", "assistant"]
    content: str | None = None
    parts: list[_Part] | None = None

    @model_validator(mode="after")
    def _one_text(self) -> ChatMessageIn:
        if self.content is None and self.parts is None:
            raise ValueError("a message needs content (or text parts)")
        return self

    @property
    def text(self) -> str:
        if self.content is not None:
            return self.content
        return "".join(p.text or "" for p in self.parts or () if p.type == "text")


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    messages: Annotated[list[ChatMessageIn], Field(min_length=1)]
    style: Literal["chat", "voice"] = "chat"


def check_limits(messages: list[Any]) -> None:
    """413 for too many or too long messages, before anything else is looked at."""
    if len(messages) > MAX_MESSAGES:
        raise PayloadTooLarge(
            f"At most {MAX_MESSAGES} messages per request; send the recent history only.",
            code="too_many_messages",
        )
    for i, m in enumerate(messages):
        if isinstance(m, dict) and len(_loose_text(m)) > MAX_CHARS:
            raise PayloadTooLarge(
                f"Message {i} is longer than {MAX_CHARS} characters.", code="message_too_long"
            )


def _loose_text(m: dict[str, Any]) -> str:
    content = m.get("content")
    if isinstance(content, str):
        return content
    parts = m.get("parts")
    if isinstance(parts, list):
        return "".join(
            p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def parse(raw: bytes) -> ChatIn:
    data = requests.document(raw)
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        check_limits(data["messages"])
    return _ends_with_user(requests.validated(ChatIn, data))


def from_messages(messages: list[dict[str, str]]) -> ChatIn:
    """A chat body from another API's user and assistant messages, under the same limits:
    more than MAX_MESSAGES is refused, never cut."""
    check_limits(messages)
    return _ends_with_user(requests.validated(ChatIn, {"messages": messages}))


def _ends_with_user(body: ChatIn) -> ChatIn:
    if body.messages[-1].role != "user":
        raise InvalidRequest(
            "The last message must be the user's.",
            fields=(FieldError(f"messages.{len(body.messages) - 1}.role", "must be user"),),
        )
    return body


async def start_turn(
    request: Request,
    body: ChatIn,
    *,
    style: Literal["chat", "voice"] | None = None,
) -> Turn:
    """Load the token's user, resolve the household in the path, route and reserve:
    everything after the body that may still end in a plain HTTP error."""
    deps = requests.deps(request)
    async with deps.connection() as conn:
        user = await requests.principal(request, conn)
        seen = await requests.readable(conn, user, request, "chat")
    turn = new_turn(request, user, seen, body, style or body.style)
    await turn.prepare()
    return turn


def new_turn(
    request: Request,
    user: access.User,
    seen: access.Visible,
    body: ChatIn,
    style: Literal["chat", "voice"],
) -> Turn:
    return Turn(
        requests.deps(request).turns,
        user=user,
        seen=seen,
        messages=[Message(m.role, m.text) for m in body.messages],
        style=style,
        turn_id=request.state.request_id,
    )


def stream_response(
    deps: Deps, endpoint: str, events: AsyncGenerator[str], **options: Any
) -> Response:
    """A turn's stream, counted among the open streams of `endpoint`; kept open through a
    drain until the turn ends by itself or is cut at the deadline (service.lifecycle), which
    sse-starlette must not pre-empt."""

    async def tracked() -> AsyncIterator[str]:
        with deps.metrics.streams.labels(endpoint).track_inprogress():
            async with aclosing(events):
                async for event in events:
                    yield event

    return EventSourceResponse(
        tracked(),
        ping=KEEPALIVE_SECONDS,
        sep="\n",
        shutdown_grace_period=deps.lifecycle.grace + DRAIN_MARGIN_SECONDS,
        **options,
    )


async def chat(request: Request) -> Response:
    requests.verify_token(request)  # before a byte of the body is read
    body = parse(await requests.read(request, MAX_BODY_BYTES))
    turn = await start_turn(request, body)
    return stream_response(requests.deps(request), "chat", _events(turn), headers=ui_stream.HEADERS)


async def _events(turn: Turn) -> AsyncGenerator[str]:
    try:
        async with aclosing(turn.events()) as events:
            async for chunk in ui_stream.chunks(events, f"msg-{turn.turn_id}"):
                yield ui_stream.encode(chunk)
    except Exception:
        log.exception("turn %s failed", turn.turn_id)
        yield ui_stream.encode(
            {"type": "error", "errorText": "Something went wrong on our side (internal_error)."}
        )
        yield ui_stream.encode({"type": "finish"})
    yield ui_stream.DONE
