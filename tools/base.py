"""What a tool is: a typed argument model, a typed result model, the branches that may use
it, and an OpenAI function definition in strict mode generated from the argument model.

The model never names the household: the server puts it in the ToolContext from the
authenticated request. Arguments that fail validation come back to the model as a short
structured error it can correct, never as an exception.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import openai
from pydantic import BaseModel, ConfigDict, ValidationError

from telemetry.households import Device, Household

if TYPE_CHECKING:
    from telemetry.db import Conn

Branch = Literal["energy", "cost", "action"]

A = TypeVar("A", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


class Args(BaseModel):
    """Tool arguments: strict types (no "5" for 5), nothing extra, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Result(BaseModel):
    model_config = ConfigDict(frozen=True)

    fresh_as_of: datetime | None


@dataclass(frozen=True)
class ToolContext:
    """Injected by the server: the household the request may see, and nothing else."""

    conn: Conn
    household: Household
    devices: list[Device]
    now: datetime
    cap: timedelta


class ToolFailure(Exception):
    """An argument the server refuses after validation (an unknown device, say)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Tool(Generic[A, R]):
    name: str
    description: str
    args: type[A]
    result: type[R]
    branches: frozenset[Branch]
    run: Callable[[ToolContext, A], Awaitable[R]]

    def definition(self) -> dict[str, Any]:
        """The OpenAI function definition, strict mode (all properties required, no
        additional properties), from the argument model."""
        return dict(
            openai.pydantic_function_tool(self.args, name=self.name, description=self.description)
        )


def error(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def _first_problem(exc: ValidationError) -> tuple[str, str]:
    problem = exc.errors(include_url=False, include_context=False, include_input=False)[0]
    field = ".".join(str(p) for p in problem["loc"]) or "arguments"
    return field, problem["msg"]


async def call(
    tools: dict[str, Tool[Any, Any]], name: str, arguments: str, ctx: ToolContext, branch: Branch
) -> dict[str, Any]:
    """Run the tool `name` with the model's JSON `arguments` for `branch`: its result as
    JSON-ready data, or {"error": {code, message, field}}."""
    tool = tools.get(name)
    if tool is None or branch not in tool.branches:
        return error("unknown_tool", f"No tool {name[:64]!r} is available here.")
    try:
        args = tool.args.model_validate_json(arguments or "{}")
    except ValidationError as exc:
        field, message = _first_problem(exc)
        return error("invalid_arguments", f"{field}: {message}", field)
    try:
        result = await tool.run(ctx, args)
    except ToolFailure as exc:
        return error(exc.code, exc.message, exc.field)
    data: dict[str, Any] = result.model_dump(mode="json")
    return data
