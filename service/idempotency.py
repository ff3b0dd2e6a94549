"""Idempotency-Key handling for the endpoints that change something once (confirm, cancel
and undo an action), over the `idempotency_keys` table, which this module owns.

A key is claimed, the work done and the response stored in one transaction: a crash leaves
neither, and a second request with the same key waits on the claim, then gets the stored
response byte for byte. Refusals (404, 409, ...) are stored like successes; a retry with the
same key gets the same answer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent.errors import FieldError, InvalidRequest, WattwiseError
from telemetry import access

HEADER = "Idempotency-Key"
_KEY = re.compile(r"[!-~]{1,128}")  # visible ASCII

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


Work = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


def key(request: Request, *, required: bool) -> str | None:
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


def _digest(request: Request, body: BaseModel) -> str:
    # The body as validated, so an empty body and {} (or its spacing) ask the same thing.
    asked = f"{request.method}\n{request.url.path}\n{body.model_dump_json()}"
    return hashlib.sha256(asked.encode()).hexdigest()


async def once(
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
