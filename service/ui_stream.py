"""A turn's events as the Vercel AI SDK UI message stream, protocol v1: the chunks an
AI SDK front end (`useChat`, `readUIMessageStream`) reconstructs a message from, sent as
Server-Sent Events `data: {json}` and ended by `data: [DONE]`.

Standard chunks carry the text (text-start / text-delta / text-end), the tool calls
(tool-input-available, tool-output-available), the steps and errors. wattwise's own facts
travel as `data-*` chunks: data-route, data-context, data-action, data-command,
data-verification and data-usage. A chunk has the fields the protocol defines (the AI
SDK's reader tolerates more, but requires these). A text part never spans a step: useChat
closes open text parts at finish-step.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from agent.events import (
    ActionProposed,
    CommandIssued,
    ContextInfo,
    Failed,
    RouteInfo,
    StepEnd,
    StepStart,
    Text,
    ToolInput,
    ToolOutput,
    TurnEvent,
    Usage,
    Verification,
)

HEADERS = {
    "x-vercel-ai-ui-message-stream": "v1",
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",  # proxies must pass each event on at once
}
DONE = "[DONE]"


async def chunks(
    events: AsyncIterator[TurnEvent], message_id: str
) -> AsyncIterator[dict[str, Any]]:
    """The UI message chunks of a turn, from `start` to `finish`."""
    yield {"type": "start", "messageId": message_id}
    text_id: str | None = None
    texts = 0
    async for event in events:
        if text_id is not None and not isinstance(event, Text):
            yield {"type": "text-end", "id": text_id}
            text_id = None
        match event:
            case Text(text=text):
                if text_id is None:
                    texts += 1
                    text_id = f"{message_id}-t{texts}"
                    yield {"type": "text-start", "id": text_id}
                yield {"type": "text-delta", "id": text_id, "delta": text}
            case StepStart():
                yield {"type": "start-step"}
            case StepEnd():
                yield {"type": "finish-step"}
            case RouteInfo():
                yield {"type": "data-route", "data": event.public()}
            case ContextInfo():
                yield {"type": "data-context", "data": event.public()}
            case ToolInput(call_id=call_id, name=name, input=arguments):
                yield {
                    "type": "tool-input-available",
                    "toolCallId": call_id,
                    "toolName": name,
                    "input": arguments,
                }
            case ToolOutput(call_id=call_id, output=output):
                yield {"type": "tool-output-available", "toolCallId": call_id, "output": output}
            case ActionProposed(action=action):
                yield {"type": "data-action", "id": action["id"], "data": action}
            case CommandIssued():
                yield {
                    "type": "data-command",
                    "id": event.command_id,
                    "data": {
                        "action_id": event.action_id,
                        "command_id": event.command_id,
                        "command": event.command,
                        "status": "sent",
                        "replayed": event.replayed,
                    },
                }
            case Verification():
                yield {"type": "data-verification", "data": event.public()}
            case Usage():
                yield {"type": "data-usage", "data": event.public()}
            case Failed(code=code, message=message):
                yield {"type": "error", "errorText": f"{message} ({code})"}
    if text_id is not None:
        yield {"type": "text-end", "id": text_id}
    yield {"type": "finish"}


def encode(chunk: dict[str, Any]) -> str:
    """One chunk as the `data:` of an event (sse-starlette adds the framing)."""
    return json.dumps(chunk, ensure_ascii=False, separators=(",", ":"), default=str)
