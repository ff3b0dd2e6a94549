"""What every authenticated endpoint does first: parse a JSON body into a pydantic model,
authenticate the bearer token, resolve the household in the path if the caller may see it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from agent import logs
from agent.auth import bearer_token
from agent.deps import Deps, transient_retrying
from agent.errors import (
    FieldError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from telemetry import access

M = TypeVar("M", bound=BaseModel)

MAX_ADMIN_BODY_BYTES = 64 * 1024
READ_ATTEMPTS = 3
NO_HOUSEHOLD = "No household with this id is visible to you."


def deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


async def body(request: Request, model: type[M]) -> M:
    raw = await request.body()
    if len(raw) > MAX_ADMIN_BODY_BYTES:
        raise PayloadTooLarge(f"The body is larger than {MAX_ADMIN_BODY_BYTES} bytes.")
    return validated(model, raw)


def validated(model: type[M], raw: bytes | object) -> M:
    """The JSON body (bytes, or already decoded) as `model`, or a 422 naming every field
    that failed and why."""
    try:
        if isinstance(raw, bytes):
            return model.model_validate_json(raw)
        return model.model_validate(raw)
    except ValidationError as exc:
        fields = tuple(
            FieldError(".".join(str(p) for p in err["loc"]) or "body", err["msg"])
            for err in exc.errors(include_url=False)
        )
        summary = "; ".join(f"{f.field}: {f.reason}" for f in fields[:5])
        raise InvalidRequest(f"The request body is not valid: {summary}", fields=fields) from exc


def path_uuid(request: Request, name: str) -> UUID | None:
    try:
        return UUID(request.path_params[name])
    except ValueError:
        return None


async def visible(conn: Any, user: access.User, request: Request, what: str) -> access.Visible:
    """The household in the path if the caller may see it; support access is audited.

    authenticated() resolved it together with the user, in one query.
    """
    seen: access.Visible | None = request.state.visible
    if seen is None:
        raise NotFound(NO_HOUSEHOLD)
    if seen.relation == "support":
        await access.audit(
            conn,
            user_id=user.id,
            household_id=seen.household.id,
            action=what,
            detail={"method": request.method, "path": request.url.path},
            request_id=request.state.request_id,
        )
    return seen


def may_read(seen: access.Visible) -> bool:
    """Whether the household's data may be read this way: a gateway only lists devices and
    writes telemetry."""
    return seen.relation != "gateway"


async def readable(conn: Any, user: access.User, request: Request, what: str) -> access.Visible:
    """visible(), for reads of a household's data (may_read)."""
    seen = await visible(conn, user, request, what)
    if not may_read(seen):
        raise Forbidden("A gateway may only list devices and write telemetry.")
    return seen


def require_admin(user: access.User) -> None:
    if user.role != "admin":
        raise Forbidden("Only an administrator may do this.")


Handler = Callable[[Request, Any, access.User], Awaitable[Response]]


def token_user(request: Request) -> UUID:
    """The user id of a valid bearer token (checked before any connection is taken)."""
    return deps(request).tokens.verify(bearer_token(request.headers.get("authorization")))


async def principal(request: Request, conn: Any, user_id: UUID) -> access.User:
    """The user `user_id`, and (in request.state.visible) the household in the path if the
    user may see it, in one round trip."""
    if "household_id" in request.path_params:
        household_id = path_uuid(request, "household_id")
        user, seen = (
            await access.user_with_household(conn, user_id, household_id)
            if household_id
            else (await access.get_user(conn, user_id), None)
        )
        request.state.visible = seen
    else:
        user = await access.get_user(conn, user_id)
    if user is None:
        # Same answer as a bad token: a deleted user's token must not tell it existed.
        raise Unauthorized("The token is not valid.", code="invalid_token")
    if (context := logs.current.get()) is not None:
        context.user_id = str(user.id)
        seen = getattr(request.state, "visible", None)
        context.household_id = str(seen.household.id) if seen is not None else None
    return user


def authenticated(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Verify the bearer token, load its user (and the household in the path, if any, in the
    same round trip), then call the handler with a connection.

    A read (GET, HEAD) that fails on a transient database error is run again from the start
    on another connection, at most three times in all, with jittered backoff; writes are
    not, since their first try may have committed."""

    async def once(request: Request, user_id: UUID) -> Response:
        async with deps(request).connection() as conn:
            user = await principal(request, conn, user_id)
            return await handler(request, conn, user)

    async def endpoint(request: Request) -> Response:
        user_id = token_user(request)
        if request.method not in ("GET", "HEAD"):
            return await once(request, user_id)
        retrying = transient_retrying(multiplier=0.05, most=0.5, attempts=READ_ATTEMPTS)
        return await retrying(once, request, user_id)

    return endpoint
