"""The ChatModel (agent.model) over any OpenAI-compatible Chat Completions server, through
the openai SDK's async client, streamed, and metered: nothing is sent before the call's
worst case is reserved, and what it used is settled however the stream ends. The one
module of the product that imports `openai`: it converts the neutral messages and tool
definitions to the wire format, the stream's chunks back to RoundEvents, and the SDK's
failures to ModelError.

One round of a turn: `OpenAIModel.round()` yields text deltas as they arrive and, at the
end, the tool calls the model asked for (complete, with their JSON arguments) and the
usage: the provider's, or (when it reports none) an estimate from what was sent and
streamed.

A caller that goes away before the first token (a hang-up) does not cut the provider's
request: it is read on in the background, for at most `settle_grace` seconds, for the usage
the provider reports at the end, and the round is settled from that, exactly. Only a stream
that does not end in time is closed and settled from the estimate (the ledger row says
`estimated`). Once text has streamed, a hang-up closes the request at once: the person
has seen part of an answer, and the rest would only cost.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import openai
from openai.types.chat import ChatCompletionChunk
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from agent.model import (
    AssistantMessage,
    ModelError,
    ModelMessage,
    RoundEnd,
    RoundEvent,
    TextDelta,
    ToolCall,
    ToolMessage,
)
from quota.core import Reservation
from quota.guard import Call, held
from quota.prices import estimate_tokens
from quota.service import QuotaService
from tools.base import ToolDefinition

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

log = logging.getLogger("wattwise.llm")

Wire = dict[str, Any]


@dataclass
class _Partial:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


def wire_message(m: ModelMessage) -> Wire:
    """A message as Chat Completions takes it."""
    if isinstance(m, ToolMessage):
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
    if isinstance(m, AssistantMessage) and m.tool_calls:
        calls = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
        return {"role": "assistant", "content": m.content, "tool_calls": calls}
    return {"role": m.role, "content": m.content}


def wire_tool(d: ToolDefinition) -> Wire:
    """A tool definition as a strict-mode function."""
    return {
        "type": "function",
        "function": {
            "name": d.name,
            "strict": True,
            "parameters": d.parameters,
            "description": d.description,
        },
    }


def prompt_estimate(messages: Sequence[Wire], tools: Sequence[Wire]) -> int:
    """A high estimate of the prompt's tokens: its JSON, plus a few per message."""
    return estimate_tokens(json.dumps([messages, tools], ensure_ascii=False)) + 4 * len(messages)


def transient(exc: BaseException) -> bool:
    """Worth another attempt, if nothing has streamed yet: the provider could not be
    reached, timed out, was overloaded or failed on its side."""
    return isinstance(
        exc,
        openai.APIConnectionError  # includes APITimeoutError
        | openai.RateLimitError
        | openai.InternalServerError
        | TimeoutError,
    )


def _substantial(chunk: ChatCompletionChunk) -> bool:
    """A chunk that carries something: text, a tool call, usage or an ending (the role-only
    first chunk does not count as the first token)."""
    if chunk.usage is not None:
        return True
    return any(c.finish_reason or c.delta.content or c.delta.tool_calls for c in chunk.choices)


def openai_model(
    *,
    base_url: str | None,
    api_key: str | None,
    model: str,
    quota: QuotaService,
    timeout: float,
    attempts: int,
    first_token_timeout: float,
) -> OpenAIModel:
    """The model `model` at an OpenAI-compatible endpoint (`base_url` None: OpenAI's),
    with a client that leaves every retry to OpenAIModel."""
    client = openai.AsyncOpenAI(
        base_url=base_url,
        api_key=api_key or "unused",
        timeout=timeout,
        max_retries=0,  # OpenAIModel is the one retry layer, and only before the first token
    )
    return OpenAIModel(
        client,
        model=model,
        quota=quota,
        attempts=attempts,
        first_token_timeout=first_token_timeout,
    )


class OpenAIModel:
    """One model on one OpenAI-compatible endpoint (a ChatModel). The client should have
    max_retries=0: this class is the one retry layer, and it retries only before the first
    token, because after that the person has already seen part of the answer."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        model: str,
        quota: QuotaService,
        attempts: int = 3,
        first_token_timeout: float = 20.0,
        settle_grace: float = 5.0,
    ) -> None:
        self.client = client
        self.name = model
        self.quota = quota
        self.attempts = attempts
        self.first_token_timeout = first_token_timeout
        self.settle_grace = settle_grace

    async def reserve(
        self,
        *,
        user_id: UUID,
        household_id: UUID | None,
        messages: Sequence[ModelMessage],
        tools: Sequence[ToolDefinition] | None = None,
        max_tokens: int | None = None,
        turn_id: str | None = None,
    ) -> Reservation:
        """Hold the round's worst case now (before a response starts, so a refusal can still
        be a plain HTTP error); pass it to round(). It takes no slot of the user's rate
        limit: a round belongs to a turn, which took its slot (QuotaService.admit)."""
        wire = [wire_message(m) for m in messages]
        return await self._reserve(
            user_id, household_id, wire, [wire_tool(t) for t in tools or ()], max_tokens, turn_id
        )

    async def _reserve(
        self,
        user_id: UUID,
        household_id: UUID | None,
        messages: list[Wire],
        tools: list[Wire],
        max_tokens: int | None,
        turn_id: str | None,
    ) -> Reservation:
        return await self.quota.reserve(
            user_id=user_id,
            household_id=household_id,
            model=self.name,
            prompt_tokens=prompt_estimate(messages, tools),
            max_tokens=max_tokens,
            turn_id=turn_id,
            rate_limited=False,
        )

    async def aclose(self) -> None:
        await self.client.close()

    async def round(
        self,
        *,
        user_id: UUID,
        household_id: UUID | None,
        messages: Sequence[ModelMessage],
        tools: Sequence[ToolDefinition] | None = None,
        max_tokens: int | None = None,
        turn_id: str | None = None,
        reservation: Reservation | None = None,
    ) -> AsyncGenerator[RoundEvent]:
        """One streamed completion. Without a `reservation`, one is made first (see
        reserve()), and the quota's refusals are raised before anything is sent. The SDK's
        failures (and a first token that never came) are raised as ModelError."""
        wire = [wire_message(m) for m in messages]
        wire_tools = [wire_tool(t) for t in tools or ()]
        if reservation is None:
            reservation = await self._reserve(
                user_id, household_id, wire, wire_tools, max_tokens, turn_id
            )
        try:
            # aclosing: closing this generator closes the stream's at once, so the round is
            # settled then, not when the inner generator is collected.
            async with aclosing(self._stream(wire, wire_tools or None, reservation)) as stream:
                async for event in stream:
                    yield event
        except (openai.OpenAIError, TimeoutError) as exc:
            raise ModelError(f"{type(exc).__name__}: {exc}") from exc

    async def _stream(
        self, messages: list[Wire], tools: list[Wire] | None, reservation: Reservation
    ) -> AsyncGenerator[RoundEvent]:
        async with held(self.quota, reservation) as call:
            gone = asyncio.Event()
            # In a task of its own, so that a hang-up (this generator cancelled) does not
            # cancel the request the provider is already working on.
            opening = asyncio.ensure_future(
                self._open(messages, tools, reservation.max_tokens, call, gone)
            )
            try:
                stream, head = await asyncio.shield(opening)
            except asyncio.CancelledError:
                gone.set()  # no further attempt starts
                call.settles_after(self._read_on(opening, call))
                raise
            partial: dict[int, _Partial] = {}
            finish: str | None = None
            usage: tuple[int, int] | None = None
            text: list[str] = []
            async with stream:
                async for chunk in _chain(head, stream):
                    if chunk.usage is not None:
                        usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                        call.used(*usage)
                    for choice in chunk.choices:
                        finish = choice.finish_reason or finish
                        delta = choice.delta
                        if delta.content:
                            call.streamed(delta.content)
                            text.append(delta.content)
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
            if usage is not None:
                yield RoundEnd(calls, finish, usage)
            else:
                said = "".join(text) + "".join(c.arguments for c in calls)
                estimate = (estimate_tokens(json.dumps(messages)), estimate_tokens(said))
                yield RoundEnd(calls, finish, estimate, estimated=True)

    async def _read_on(
        self,
        opening: asyncio.Future[
            tuple[openai.AsyncStream[ChatCompletionChunk], list[ChatCompletionChunk]]
        ],
        call: Call,
    ) -> None:
        """After a hang-up before the first token: the stream read to its end, discarding
        the text but noting the provider's usage (and, should it not come, what streamed, for
        the estimate), for at most settle_grace seconds; then the request is closed."""
        try:
            async with asyncio.timeout(self.settle_grace):
                # Cancelled at the deadline, so is the request (awaiting a task cancels it).
                stream, head = await opening
                async with stream:
                    async for chunk in _chain(head, stream):
                        _note(chunk, call)
        except Exception as exc:  # the estimate then; the provider's failure is not ours
            log.info("no usage after a hang-up (%s): settled by estimate", type(exc).__name__)

    async def _open(
        self,
        messages: list[Wire],
        tools: list[Wire] | None,
        max_tokens: int,
        call: Call,
        gone: asyncio.Event | None = None,
    ) -> tuple[openai.AsyncStream[ChatCompletionChunk], list[ChatCompletionChunk]]:
        """Start the stream and read up to its first substantial chunk, retrying (bounded,
        jittered) while nothing has arrived: a failed or silent attempt is discarded. No
        attempt starts once `gone` is set (the caller hung up)."""
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.1),
            retry=retry_if_exception(transient),
            reraise=True,
        ):
            with attempt:
                if gone is not None and gone.is_set():
                    raise _Abandoned
                call.started()
                async with asyncio.timeout(self.first_token_timeout):
                    stream = await self.client.chat.completions.create(
                        model=self.name,
                        messages=cast("list[ChatCompletionMessageParam]", messages),
                        tools=cast("list[ChatCompletionToolParam]", tools)
                        if tools
                        else openai.omit,
                        max_tokens=max_tokens,
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                    head: list[ChatCompletionChunk] = []
                    try:
                        async for chunk in stream:
                            head.append(chunk)
                            if _substantial(chunk):
                                break
                    except BaseException:
                        await stream.close()
                        raise
                return stream, head
        raise AssertionError("unreachable: tenacity reraises the last failure")


class _Abandoned(Exception):
    """The caller hung up before this attempt would have started."""


def _note(chunk: ChatCompletionChunk, call: Call) -> None:
    """What a chunk read after a hang-up tells the settlement."""
    if chunk.usage is not None:
        call.used(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
    for choice in chunk.choices:
        if choice.delta.content:
            call.streamed(choice.delta.content)
        for tc in choice.delta.tool_calls or ():
            if tc.function is not None and tc.function.arguments:
                call.streamed(tc.function.arguments)


async def _chain(
    head: list[ChatCompletionChunk], rest: openai.AsyncStream[ChatCompletionChunk]
) -> AsyncIterator[ChatCompletionChunk]:
    for chunk in head:
        yield chunk
    async for chunk in rest:
        yield chunk
