"""ScriptedModel: a ChatModel (agent.model) in process, for tests of the turn's loop. Each
round plays the next scripted step (text deltas, a RoundEnd, pauses, a failure) and
records what it was given; `assert_complete()` fails while a step is left unplayed.

It is metered like the real adapter, on the real QuotaService it is given: a round
reserves (or takes the turn's reservation) and is settled with its RoundEnd's usage, or by
the quota's estimate when it ends before one. The OpenAI adapter's own wire is faked
elsewhere (tests.fakes.llm).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from uuid import UUID

from agent.model import ModelError, ModelMessage, RoundEnd, RoundEvent, TextDelta, ToolCall
from quota.core import Reservation
from quota.guard import held
from quota.prices import estimate_tokens
from quota.service import QuotaService
from tools.base import ToolDefinition

# The scripted model's prices, for settings that name "scripted".
SCRIPTED_PRICES = '{"scripted": {"input": 1, "output": 2, "max_tokens": 300}}'


@dataclass(frozen=True)
class Sleep:
    """A pause in the round, before what follows it."""

    seconds: float


@dataclass(frozen=True)
class Fail:
    """The provider fails here (a ModelError)."""

    message: str = "scripted failure"


Step = Sequence[TextDelta | RoundEnd | Sleep | Fail]


@dataclass(frozen=True)
class Given:
    """What one round was sent."""

    messages: tuple[ModelMessage, ...]
    tools: tuple[ToolDefinition, ...] | None


def says(*texts: str, usage: tuple[int, int] = (100, 20)) -> Step:
    """A round that answers with these text deltas."""
    return [*(TextDelta(t) for t in texts), RoundEnd((), "stop", usage)]


def calls(*tool_calls: ToolCall, usage: tuple[int, int] = (100, 10)) -> Step:
    """A round that asks for these tool calls."""
    return [RoundEnd(tool_calls, "tool_calls", usage)]


class ScriptedModel:
    def __init__(self, steps: Sequence[Step], *, quota: QuotaService, name: str = "scripted"):
        self.steps = list(steps)
        self.given: list[Given] = []
        self.quota = quota
        self.name = name

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
        return await self.quota.reserve(
            user_id=user_id,
            household_id=household_id,
            model=self.name,
            prompt_tokens=estimate_tokens(repr((messages, tools))),
            max_tokens=max_tokens,
            turn_id=turn_id,
            rate_limited=False,
        )

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
        self.given.append(Given(tuple(messages), None if tools is None else tuple(tools)))
        if not self.steps:
            raise AssertionError(f"round {len(self.given)} has no scripted step")
        step = self.steps.pop(0)
        if reservation is None:
            reservation = await self.reserve(
                user_id=user_id,
                household_id=household_id,
                messages=messages,
                tools=tools,
                max_tokens=max_tokens,
                turn_id=turn_id,
            )
        async with held(self.quota, reservation) as call:
            call.started()
            for item in step:
                if isinstance(item, Sleep):
                    await asyncio.sleep(item.seconds)
                elif isinstance(item, Fail):
                    raise ModelError(item.message)
                elif isinstance(item, TextDelta):
                    call.streamed(item.text)
                    yield item
                else:
                    call.used(*item.usage)
                    yield item

    def assert_complete(self) -> None:
        assert not self.steps, f"{len(self.steps)} scripted step(s) never played"
