"""HTTP endpoints over agent.actions: confirm, cancel, undo and read an action; the gateway's
outbox and its acknowledgements; and Idempotency-Key handling for the action endpoints.

An Idempotency-Key is claimed, the work done and the response stored in one transaction:
a crash leaves neither, and a second request with the same key waits on the claim, then
gets the stored response byte for byte. Refusals (404, 409, ...) are stored like
successes; a retry with the same key gets the same answer. The request bodies live here
rather than in service.schemas because no other endpoint takes them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent import actions
from agent.errors import FieldError, Forbidden, InvalidRequest, NotFound, WattwiseError
from service import requests
from telemetry import access

HEADER = "Idempotency-Key"
_KEY = re.compile(r"[!-~]{1,128}")  # visible ASCII
_STATUSES: dict[str, tuple[actions.CommandStatus, ...]] = {
    "sent": ("sent",),
    "acknowledged": ("acknowledged",),
    "failed": ("failed",),
    "all": actions.COMMAND_STATUSES,
}

# Two statements, not one: a statement's snapshot predates its wait on a concurrent claim
# of the same key, so only a second statement sees the row that claim committed.
_CLAIM_SQL = """
INSERT INTO idempotency_keys (user_id, key, endpoint, action_id, request_hash)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id, key) DO NOTHING
RETURNING true
"""
_STORED_SQL = """
SELECT request_hash, status_code, response::text AS response
  FROM idempotency_keys WHERE user_id = $1 AND key = $2
"""
_COMPLETE_SQL = """
UPDATE idempotency_keys SET status_code = $3, response = $4::text::json
 WHERE user_id = $1 AND key = $2
"""


class NoBody(BaseModel):
    """Empty, or {}: everything these endpoints need is in the path."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    success: StrictBool
    detail: str | None = Field(None, max_length=actions.MAX_DETAIL)


Work = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


def _key(request: Request, *, required: bool) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        if not required:
            return None
        raise InvalidRequest(
            f"This request needs an {HEADER} header: any 1 to 128 visible ASCII characters, "
            "the same on every retry of it.",
            code="idempotency_key_required",
            fields=(FieldError(HEADER, "required"),),
        )
    if not _KEY.fullmatch(key):
        raise InvalidRequest(
            f"The {HEADER} header must be 1 to 128 visible ASCII characters.",
            code="invalid_idempotency_key",
            fields=(FieldError(HEADER, "1 to 128 visible ASCII characters"),),
        )
    return key


async def _no_body(request: Request) -> NoBody:
    raw = await requests.read(request, requests.MAX_ADMIN_BODY_BYTES)
    if not raw.strip():
        return NoBody()
    return requests.validated(NoBody, raw)


def _digest(request: Request, body: BaseModel) -> str:
    # The body as validated, so an empty body and {} (or its spacing) ask the same thing.
    asked = f"{request.method}\n{request.url.path}\n{body.model_dump_json()}"
    return hashlib.sha256(asked.encode()).hexdigest()


async def _once(
    request: Request,
    conn: Any,
    user: access.User,
    *,
    key: str | None,
    endpoint: str,
    body: BaseModel,
    work: Work,
) -> Response:
    """Run `work` once per (user, key): a retry gets the first response, verbatim."""
    if key is None:
        status, payload = await work()
        return JSONResponse(payload, status_code=status)
    action_id = request.path_params["action_id"]
    digest = _digest(request, body)
    async with conn.transaction():
        claimed = await conn.fetchval(_CLAIM_SQL, user.id, key, endpoint, action_id, digest)
        if not claimed:
            stored = await conn.fetchrow(_STORED_SQL, user.id, key)
            if stored["request_hash"] != digest:
                raise InvalidRequest(
                    f"This {HEADER} was used for a different request; use a new key.",
                    code="idempotency_key_reused",
                    fields=(FieldError(HEADER, "used for a different request"),),
                )
            return Response(
                stored["response"],
                status_code=stored["status_code"],
                media_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        try:
            status, payload = await work()
        except WattwiseError as exc:
            if exc.status >= 500:
                raise  # not an answer to keep: the retry should try again
            status, payload = exc.status, exc.body()
        response = JSONResponse(payload, status_code=status)
        await conn.execute(_COMPLETE_SQL, user.id, key, status, bytes(response.body).decode())
    return response


async def confirm(request: Request, conn: Any, user: access.User) -> Response:
    key = _key(request, required=True)
    body = await _no_body(request)

    async def work() -> tuple[int, dict[str, Any]]:
        done = await actions.confirm(conn, request.path_params["action_id"], user)
        return 200, {
            "action": done.action.public(),
            "command": done.command,
            "command_id": str(done.command_id),
            "replayed": done.replayed,
        }

    return await _once(request, conn, user, key=key, endpoint="confirm", body=body, work=work)


async def cancel(request: Request, conn: Any, user: access.User) -> Response:
    key = _key(request, required=False)
    body = await _no_body(request)

    async def work() -> tuple[int, dict[str, Any]]:
        action = await actions.cancel(conn, request.path_params["action_id"], user)
        return 200, {"action": action.public()}

    return await _once(request, conn, user, key=key, endpoint="cancel", body=body, work=work)


async def undo(request: Request, conn: Any, user: access.User) -> Response:
    key = _key(request, required=True)
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

    return await _once(request, conn, user, key=key, endpoint="undo", body=body, work=work)


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


def routes() -> list[Route]:
    a = "/v1/actions/{action_id}"
    auth = requests.authenticated
    return [
        Route(a, auth(get_action), methods=["GET"]),
        Route(f"{a}/confirm", auth(confirm), methods=["POST"]),
        Route(f"{a}/cancel", auth(cancel), methods=["POST"]),
        Route(f"{a}/undo", auth(undo), methods=["POST"]),
        Route("/v1/households/{household_id}/commands", auth(list_commands), methods=["GET"]),
        Route("/v1/commands/{command_id}/ack", auth(acknowledge), methods=["POST"]),
    ]
