"""The model behind the assistant: any OpenAI-compatible Chat Completions server, through
the openai SDK's async client, streamed, and metered: nothing is sent before the call's
worst case is reserved, and what it used is settled however the stream ends.

One round of a turn: `ChatModel.round()` yields text deltas as they arrive and, at the end,
the tool calls the model asked for (complete, with their JSON arguments) and the usage.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import openai

from quota.guard import metered
from quota.prices import estimate_tokens
from quota.service import QuotaService

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(frozen=True)
class RoundEnd:
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str | None
    usage: tuple[int, int] | None  # prompt, completion tokens as the provider reported them


Event = TextDelta | RoundEnd


@dataclass
class _Partial:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


def prompt_estimate(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> int:
    """A high estimate of the prompt's tokens: its JSON, plus a few per message."""
    return estimate_tokens(json.dumps([messages, tools], ensure_ascii=False)) + 4 * len(messages)


class ChatModel:
    def __init__(self, client: openai.AsyncOpenAI, *, model: str, quota: QuotaService) -> None:
        self.client = client
        self.model = model
        self.quota = quota

    async def round(
        self,
        *,
        user_id: UUID,
        household_id: UUID | None,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        turn_id: str | None = None,
    ) -> AsyncGenerator[Event]:
        """One streamed completion. Raises the quota's refusals before anything is sent."""
        async with metered(
            self.quota,
            user_id=user_id,
            household_id=household_id,
            model=self.model,
            prompt_tokens=prompt_estimate(messages, tools or []),
            max_tokens=max_tokens,
            turn_id=turn_id,
        ) as call:
            call.started()
            stream = await self.client.chat.completions.create(
                model=self.model,
                messages=cast("list[ChatCompletionMessageParam]", messages),
                tools=cast("list[ChatCompletionToolParam]", tools) if tools else openai.omit,
                max_tokens=call.reservation.max_tokens,
                stream=True,
                stream_options={"include_usage": True},
            )
            partial: dict[int, _Partial] = {}
            finish: str | None = None
            usage: tuple[int, int] | None = None
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                        call.used(*usage)
                    for choice in chunk.choices:
                        finish = choice.finish_reason or finish
                        delta = choice.delta
                        if delta.content:
                            call.streamed(delta.content)
                            yield TextDelta(delta.content)
                        for tc in delta.tool_calls or ():
                            p = partial.setdefault(tc.index, _Partial())
                            p.id = tc.id or p.id
                            if tc.function is not None:
                                p.name = tc.function.name or p.name
                                if tc.function.arguments:
                                    call.streamed(tc.function.arguments)
                                    p.arguments.append(tc.function.arguments)
            calls = tuple(
                ToolCall(p.id, p.name, "".join(p.arguments)) for _, p in sorted(partial.items())
            )
            yield RoundEnd(calls, finish, usage)
