"""A scripted OpenAI-compatible model for the eval in CI: it behaves like a model that uses
its tools, and it lies once per answer.

First round (tools offered, no tool result yet): it calls `cost_breakdown` when offered,
else `energy_summary`, for the window the system prompt names. Next round: it answers from
the tool result it was given, then adds a sentence with a number nobody computed, which
the server must replace or drop before anyone reads it; and when the question holds a
quantity ("did the heater use 999 kWh today?") it repeats that as a measurement, which the
server must not pass as verified either.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.llm import chunk, sse, usage
from tests.fakes.server import serving

INVENTED = "Your neighbour used 321.5 kWh in the same period."
# The window the turn's system prompt names, as telemetry calls it -> the tool's name.
_WINDOWS = {
    "day": "today",
    "yesterday": "yesterday",
    "3days": "last_3_days",
    "week": "last_7_days",
    "30days": "last_30_days",
    "month": "this_month",
    "this_week": "this_week",
    "last_week": "last_week",
    "last_month": "last_month",
}
_WINDOW = re.compile(r"The question is about the window '([a-z0-9_]+)'")
# A quantity in the user's question, echoed back as if the meter had measured it.
_TYPED = re.compile(r"\b\d+(?:\.\d+)?\s*(?:kWh|Wh|kW|W)\b", re.IGNORECASE)


def _window(messages: list[dict[str, Any]]) -> dict[str, Any]:
    prompt = " ".join(str(m.get("content")) for m in messages if m["role"] == "system")
    found = _WINDOW.search(prompt)
    name = _WINDOWS.get(found.group(1), "today") if found else "today"
    return {"name": name, "first_date": None, "last_date": None}


def echo(messages: list[dict[str, Any]]) -> str:
    """The user's own quantity stated as a measurement, or nothing."""
    asked = next((str(m["content"]) for m in reversed(messages) if m["role"] == "user"), "")
    found = _TYPED.search(asked)
    return f" Yes, the meter measured {found.group()} in that period." if found else ""


def _answer(result: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    if "error" in result:
        return "I don't know: the figures could not be read."
    if "estimated_cost" in result:
        return (
            f"Your estimated cost is {result['estimated_cost']:.2f} {result['currency']}, "
            f"for {result['import_kwh']:.2f} kWh from the grid. {INVENTED}{echo(messages)}"
        )
    t = result["totals"]
    return (
        f"You used {t['consumption_kwh']:.2f} kWh in that period. From the grid you imported "
        f"{t['grid_import_kwh']:.2f} kWh. {INVENTED}{echo(messages)}"
    )


def reply(body: dict[str, Any]) -> list[bytes]:
    messages = body["messages"]
    tools = [t["function"]["name"] for t in body.get("tools") or ()]
    last = messages[-1]
    if last["role"] != "tool" and tools:
        name = "cost_breakdown" if "cost_breakdown" in tools else "energy_summary"
        arguments = json.dumps({"window": _window(messages)})
        call = {"index": 0, "id": "call_1", "type": "function",
                "function": {"name": name, "arguments": arguments}}  # fmt: skip
        return sse(chunk({"tool_calls": [call]}), chunk({}, "tool_calls"), usage(900, 30))
    text = (
        _answer(json.loads(last["content"]), messages)
        if last["role"] == "tool"
        else "I don't know."
    )
    words = [chunk({"content": w + " "}) for w in text.split(" ")]
    return sse(
        chunk({"role": "assistant", "content": ""}), *words, chunk({}, "stop"), usage(1200, 60)
    )


@asynccontextmanager
async def scripted_model() -> AsyncIterator[str]:
    """Serve the scripted model; yields its base URL (…/v1)."""

    async def completions(request: Request) -> Response:
        events = reply(json.loads(await request.body()))

        async def body() -> AsyncIterator[bytes]:
            for event in events:
                yield event

        return StreamingResponse(body(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    async with serving(app) as url:
        yield f"{url}/v1"
