"""What a tool is: a typed argument model, a typed result model, the branches that may use
it, and a definition for the model (name, description, and a JSON schema in the "strict"
form function-calling APIs accept: every property required, nothing else allowed, no
defaults) generated from the argument model.

The model never names the household: the server puts it in the ToolContext from the
authenticated request. Arguments that fail validation come back to the model as a short
structured error it can correct, never as an exception.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

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
    devices: Sequence[Device]
    now: datetime
    cap: timedelta


class ToolFailure(Exception):
    """An argument the server refuses after validation (an unknown device, say)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True, eq=False)
class ToolDefinition:
    """What the model is told about a tool; `parameters` is a strict JSON schema (shared:
    do not mutate)."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Tool(Generic[A, R]):
    name: str
    description: str
    args: type[A]
    result: type[R]
    branches: frozenset[Branch]
    run: Callable[[ToolContext, A], Awaitable[R]]

    def definition(self) -> ToolDefinition:
        return ToolDefinition(self.name, self.description, strict_schema(self.args))


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The argument model's JSON schema in strict form: every object closed
    (additionalProperties false) with all its properties required, no null defaults, and a
    $ref that has sibling keywords inlined."""
    schema = model.model_json_schema()
    return _strict(schema, schema)


def _strict(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    for key in ("$defs", "definitions"):
        for child in node.get(key, {}).values():
            _strict(child, root)
    if node.get("type") == "object" and "additionalProperties" not in node:
        node["additionalProperties"] = False
    if isinstance(properties := node.get("properties"), dict):
        node["required"] = list(properties)
        node["properties"] = {k: _strict(v, root) for k, v in properties.items()}
    if isinstance(items := node.get("items"), dict):
        node["items"] = _strict(items, root)
    if isinstance(variants := node.get("anyOf"), list):
        node["anyOf"] = [_strict(v, root) for v in variants]
    if isinstance(parts := node.get("allOf"), list):
        if len(parts) == 1:
            node.update(_strict(parts[0], root))
            node.pop("allOf")
        else:
            node["allOf"] = [_strict(p, root) for p in parts]
    if "default" in node and node["default"] is None:
        node.pop("default")
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1:
        # A $ref with sibling keywords (a description, say) is not allowed: inline it.
        target: Any = root
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        node.update({**target, **node})
        node.pop("$ref")
        return _strict(node, root)
    return node


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
