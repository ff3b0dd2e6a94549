"""The OpenAI-compatible face, for voice assistants and generic clients: GET /v1/models and
POST /v1/chat/completions, streamed or not, in the Chat Completions format.

The household comes from the X-Wattwise-Household header or, for a user who sees exactly
one, from the token. Only the client's user and assistant messages are kept (system and
tool messages, and tools, are ignored: the server decides what the model sees). The model
name picks the style: `wattwise` writes for a screen, `wattwise-voice` for speech. A
command the person confirmed travels in a `wattwise` extension field of the chunk (and,
for the screen style, as a fenced JSON block in the text).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent.errors import FieldError, InvalidRequest, NotFound, Unavailable
from agent.events import (
    ActionProposed,
    CommandIssued,
    ContextInfo,
    Failed,
    RouteInfo,
    Text,
    TurnEvent,
    Usage,
    Verification,
)
from agent.turn import Turn
from service import requests
from service.routes import chat as chat_routes
from telemetry import access

MODELS: dict[str, Literal["chat", "voice"]] = {"wattwise": "chat", "wattwise-voice": "voice"}
HOUSEHOLD_HEADER = "x-wattwise-household"


class _ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class _MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[_ContentPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text or "" for p in self.content or () if p.type == "text")


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class CompletionIn(BaseModel):
    model_config = ConfigDict(extra="ignore")  # tools, temperature and the like are ignored
    model: str
    messages: list[_MessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: _StreamOptions | None = None


async def list_models(request: Request) -> Response:
    requests.verify_token(request)
    async with requests.deps(request).connection() as conn:
        await requests.principal(request, conn)  # a revoked token or a deleted user: 401
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "wattwise"}
                for name in MODELS
            ],
        }
    )


def _parse(raw: bytes) -> tuple[CompletionIn, chat_routes.ChatIn]:
    body = requests.validated(CompletionIn, raw)
    # The chat endpoint's rule for both: more than MAX_MESSAGES user and assistant messages
    # is a 413, never silently cut to the last ones.
    kept = [
        {"role": m.role, "content": m.text}
        for m in body.messages
        if m.role in ("user", "assistant") and m.text
    ]
    if body.model not in MODELS:
        raise NotFound(
            f"No model {body.model[:64]!r}; use one of {', '.join(MODELS)}.",
            code="model_not_found",
        )
    if not kept:
        raise InvalidRequest(
            "There is no user or assistant message.",
            fields=(FieldError("messages", "must end with a user message"),),
        )
    return body, chat_routes.from_messages(kept)


async def _household(request: Request, conn: Any, user: access.User) -> access.Visible:
    given = request.headers.get(HOUSEHOLD_HEADER)
    if given is not None:
        try:
            household_id = UUID(given)
        except ValueError:
            household_id = None
        _, seen = (
            await access.user_with_household(conn, user.id, household_id)
            if household_id
            else (None, None)
        )
        request.state.visible = seen
    else:
        options = await access.visible_households(conn, user)
        if len(options) != 1:
            raise InvalidRequest(
                f"You can see {len(options)} households: name one in the "
                "X-Wattwise-Household header.",
                code="household_required",
            )
        request.state.visible = options[0]
    return await requests.readable(conn, user, request, "chat.completions")


async def completions(request: Request) -> Response:
    requests.verify_token(request)  # before a byte of the body is read
    body, chat = _parse(await requests.read(request, chat_routes.MAX_BODY_BYTES))
    deps = requests.deps(request)
    async with deps.connection() as conn:
        user = await requests.principal(request, conn)
        seen = await _household(request, conn, user)
    turn = chat_routes.new_turn(request, user, seen, chat, MODELS[body.model])
    await turn.prepare()
    completion_id = f"chatcmpl-{turn.turn_id}"
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        return chat_routes.stream_response(
            deps,
            "completions",
            _stream(turn, completion_id, body.model, include_usage),
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
    return JSONResponse(await _whole(turn, completion_id, body.model))


def _extension(event: TurnEvent) -> dict[str, Any] | None:
    """wattwise's facts about the turn, for integrations that read them."""
    match event:
        case RouteInfo() | ContextInfo() | Verification():
            name = {RouteInfo: "route", ContextInfo: "context", Verification: "verification"}[
                type(event)
            ]
            return {name: event.public()}
        case ActionProposed(action=action):
            return {"action": action}
        case CommandIssued():
            return {
                "command": event.command,
                "command_id": event.command_id,
                "action_id": event.action_id,
            }
    return None


def _usage(usage: Usage | None) -> dict[str, int]:
    prompt = usage.prompt_tokens if usage else 0
    completion = usage.completion_tokens if usage else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def _stream(
    turn: Turn, completion_id: str, model: str, include_usage: bool
) -> AsyncGenerator[str]:
    created = int(time.time())

    def frame(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return json.dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            },
            ensure_ascii=False,
        )

    yield frame({"role": "assistant", "content": ""})
    usage: Usage | None = None
    async with aclosing(turn.events()) as events:
        async for event in events:
            if isinstance(event, Text):
                yield frame({"content": event.text})
            elif isinstance(event, Usage):
                usage = event
            elif isinstance(event, Failed):
                yield json.dumps({"error": {"code": event.code, "message": event.message}})
                yield "[DONE]"
                return
            elif (extension := _extension(event)) is not None:
                yield frame({}, wattwise=extension)
    yield frame({}, "stop")
    if include_usage:
        yield json.dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": _usage(usage),
            }
        )
    yield "[DONE]"


async def _whole(turn: Turn, completion_id: str, model: str) -> dict[str, Any]:
    text: list[str] = []
    usage: Usage | None = None
    wattwise: dict[str, Any] = {}
    async with aclosing(turn.events()) as events:
        async for event in events:
            if isinstance(event, Text):
                text.append(event.text)
            elif isinstance(event, Usage):
                usage = event
            elif isinstance(event, Failed):
                if event.code == "shutting_down":
                    raise Unavailable(event.message, code=event.code)
                wattwise["error"] = {"code": event.code, "message": event.message}
            elif (extension := _extension(event)) is not None:
                wattwise.update(extension)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(text).strip()},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(usage),
        "wattwise": wattwise,
    }
