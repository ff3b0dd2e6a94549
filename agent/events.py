"""What a turn streams: frozen events in one union, TurnEvent, from the route to the usage.
The wire encoders (service.ui_stream, the OpenAI-compatible route) turn them into chunks;
`public()` is each event's JSON for clients.

A turn's events, in order: RouteInfo; then per step StepStart, ContextInfo (once),
ToolInput/ToolOutput pairs, Text, ActionProposed or CommandIssued, StepEnd; then, for an
answer with figures, Verification; last Usage, or Failed where the turn stopped part-way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from router import Route
from tools import catalog
from tools.windows import WindowArg


@dataclass(frozen=True)
class RouteInfo:
    route: Route
    window: WindowArg | None

    def public(self) -> dict[str, Any]:
        r = self.route
        return {
            "branch": r.branch,
            "rule": r.rule,
            "window": self.window.model_dump(mode="json") if self.window else None,
            "devices": list(r.devices),
            "ambiguous": list(r.ambiguous),
            "action": (
                {"op": r.action.op, "value": r.action.value, "device": r.action.device}
                if r.action
                else None
            ),
        }


@dataclass(frozen=True)
class ContextInfo:
    fresh_as_of: datetime | None
    window: catalog.WindowOut | None
    timezone: str

    def public(self) -> dict[str, Any]:
        return {
            "fresh_as_of": self.fresh_as_of.isoformat() if self.fresh_as_of else None,
            "window": self.window.model_dump(mode="json") if self.window else None,
            "timezone": self.timezone,
        }


@dataclass(frozen=True)
class StepStart:
    pass


@dataclass(frozen=True)
class StepEnd:
    pass


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class ToolInput:
    call_id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ToolOutput:
    call_id: str
    output: dict[str, Any]


@dataclass(frozen=True)
class ActionProposed:
    action: dict[str, Any]


@dataclass(frozen=True)
class CommandIssued:
    action_id: str
    command_id: str
    command: dict[str, str]
    replayed: bool


@dataclass(frozen=True)
class Verification:
    checked: tuple[str, ...]
    replaced: tuple[dict[str, str], ...]
    dropped: tuple[str, ...]
    source: Literal["model", "narrator", "server"]
    degraded: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "verified": True,  # every released sentence passed, or was replaced or dropped
            "source": self.source,
            "numbers_checked": list(self.checked),
            "replaced": list(self.replaced),
            "dropped": list(self.dropped),
            "degraded": self.degraded,
        }


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cost: float
    currency: str
    model: str | None
    remaining: dict[str, Any] | None

    def public(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost": self.cost,
            "currency": self.currency,
            "quota": self.remaining,
        }


@dataclass(frozen=True)
class Failed:
    """The turn stopped part-way, after text had reached the person: `model_failed` (the
    model's provider failed), `turn_deadline` (the turn ran past its deadline) or
    `shutting_down` (cut at the drain deadline)."""

    code: str
    message: str


TurnEvent = (
    RouteInfo
    | ContextInfo
    | StepStart
    | StepEnd
    | Text
    | ToolInput
    | ToolOutput
    | ActionProposed
    | CommandIssued
    | Verification
    | Usage
    | Failed
)
