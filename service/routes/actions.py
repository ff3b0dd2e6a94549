"""HTTP endpoints over agent.actions: confirm, cancel, undo and read an action; the gateway's
outbox and its acknowledgements. Confirm and undo need an Idempotency-Key, cancel takes
one (service.idempotency). The request bodies live here rather than in service.schemas
because no other endpoint takes them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent import actions
from agent.errors import FieldError, Forbidden, InvalidRequest, NotFound
from service import idempotency, requests
from telemetry import access

_STATUSES: dict[str, tuple[actions.CommandStatus, ...]] = {
    "sent": ("sent",),
    "acknowledged": ("acknowledged",),
    "failed": ("failed",),
    "all": actions.COMMAND_STATUSES,
}


class NoBody(BaseModel):
    """Empty, or {}: everything these endpoints need is in the path."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    success: StrictBool
    detail: str | None = Field(None, max_length=actions.MAX_DETAIL)


async def _no_body(request: Request) -> NoBody:
    raw = await requests.read(request, requests.MAX_ADMIN_BODY_BYTES)
    if not raw.strip():
        return NoBody()
    return requests.validated(NoBody, raw)


async def confirm(request: Request, conn: Any, user: access.User) -> Response:
    key = idempotency.key(request, required=True)
    body = await _no_body(request)

    async def work() -> tuple[int, dict[str, Any]]:
        done = await actions.confirm(conn, request.path_params["action_id"], user)
        return 200, {
            "action": done.action.public(),
            "command": done.command,
            "command_id": str(done.command_id),
            "replayed": done.replayed,
        }

    return await idempotency.once(
        request, conn, user, key=key, endpoint="confirm", body=body, work=work
    )


async def cancel(request: Request, conn: Any, user: access.User) -> Response:
    key = idempotency.key(request, required=False)
    body = await _no_body(request)

    async def work() -> tuple[int, dict[str, Any]]:
        action = await actions.cancel(conn, request.path_params["action_id"], user)
        return 200, {"action": action.public()}

    return await idempotency.once(
        request, conn, user, key=key, endpoint="cancel", body=body, work=work
    )


async def undo(request: Request, conn: Any, user: access.User) -> Response:
    key = idempotency.key(request, required=True)
    body = await _no_body(request)
    deps = requests.deps(request)
    ttl = deps.settings.action_ttl_seconds
    # An undo makes a proposal, as a turn does, and takes a slot of the user's rate limit
    # like one (before the idempotency claim: a 429 is not the answer a retry should get).
    await deps.quota.admit(user.id)

    async def work() -> tuple[int, dict[str, Any]]:
        action = await actions.undo(
            conn, request.path_params["action_id"], user, timedelta(seconds=ttl)
        )
        return 201, {"action": action.public()}

    return await idempotency.once(
        request, conn, user, key=key, endpoint="undo", body=body, work=work
    )


async def get_action(request: Request, conn: Any, user: access.User) -> Response:
    action, events = await actions.get(conn, request.path_params["action_id"], user)
    return JSONResponse({"action": action.public(), "events": events})


async def list_commands(request: Request, conn: Any, user: access.User) -> Response:
    seen = await requests.visible(conn, user, request, "command.list")
    if seen.relation not in ("gateway", "admin"):
        raise Forbidden("Only the household's gateway may read its commands.")
    wanted = request.query_params.get("status", "sent")
    statuses = _STATUSES.get(wanted)
    if statuses is None:
        reason = f"one of {', '.join(_STATUSES)}"
        raise InvalidRequest(f"status must be {reason}.", fields=(FieldError("status", reason),))
    found = await actions.commands(conn, seen.household.id, statuses)
    return JSONResponse({"commands": [c.public() for c in found]})


async def acknowledge(request: Request, conn: Any, user: access.User) -> Response:
    command_id = requests.path_uuid(request, "command_id")
    if command_id is None:
        raise NotFound(actions.NO_COMMAND)
    body = await requests.body(request, AckIn)
    command = await actions.acknowledge(
        conn, command_id, user, success=body.success, detail=body.detail
    )
    return JSONResponse(command.public())
