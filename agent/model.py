"""What the turn needs of a language model, in types no provider's SDK defines: the
ChatModel protocol, the messages of a conversation, and the events of one round.

A provider's adapter (agent.openai_model) converts these to and from its wire format, so
the turn never sees an SDK. One round streams `TextDelta`s as they arrive and ends with one
`RoundEnd`: the tool calls the model asked for (complete, with their JSON arguments), why
it stopped, and the tokens it used. A provider's failure reaches the turn as `ModelError`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol
from uuid import UUID

from quota.core import Reservation
from tools.base import ToolDefinition


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(frozen=True)
class SystemMessage:
    role: ClassVar[Literal["system"]] = "system"
    content: str


@dataclass(frozen=True)
class UserMessage:
    role: ClassVar[Literal["user"]] = "user"
    content: str


@dataclass(frozen=True)
class AssistantMessage:
    """What the model said: text, tool calls, or both (content None: only tool calls)."""

    role: ClassVar[Literal["assistant"]] = "assistant"
    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class ToolMessage:
    """A tool's result (JSON text) for the call `tool_call_id`."""

    role: ClassVar[Literal["tool"]] = "tool"
    tool_call_id: str
    content: str


ModelMessage = SystemMessage | UserMessage | AssistantMessage | ToolMessage


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class RoundEnd:
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str | None
    usage: tuple[int, int]  # prompt, completion tokens
    estimated: bool = False  # the provider reported no usage: `usage` is the adapter's estimate


RoundEvent = TextDelta | RoundEnd


class ModelError(Exception):
    """The model could not answer: its provider failed, refused or timed out (after the
    adapter's own retries, which happen only before the first token)."""


class ChatModel(Protocol):
    """A metered chat model: nothing is sent before a round's worst case is reserved
    against the quota, and what a round used is settled however it ends."""

    @property
    def name(self) -> str:
        """The model's name, as the quota's prices list it."""
        ...

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
        """Hold a round's worst case now (before a response starts, so that a refusal can
        still be a plain HTTP error); pass it to round(). Raises the quota's refusals."""
        ...

    def round(
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
        """One streamed completion, ending with its RoundEnd. Without a `reservation` one
        is made first, and the quota's refusals are raised before anything is sent; a
        failure of the provider is a ModelError. Closing the generator ends the round
        (its quota settled)."""
        ...
