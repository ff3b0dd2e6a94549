"""What every endpoint does first: authenticate the bearer token, read the body within its
limit, parse it as JSON into a pydantic model, resolve the household in the path if the
caller may see it.

The order is the defence: the token is checked before a byte of the body is read (no
connection is taken for either), the body is refused by its Content-Length or as soon as
its stream passes the limit, never buffered past it, and JSON is parsed by pydantic-core,
whose depth is bounded, so a hostile body costs at most its limit and ends in a 4xx.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar
from uuid import UUID

import pydantic_core
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from agent.errors import (
    BadRequest,
    FieldError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from service import logs
from service.auth import Claims, bearer_token
from service.deps import Deps, transient_retrying
from telemetry import access

M = TypeVar("M", bound=BaseModel)

MAX_ADMIN_BODY_BYTES = 64 * 1024
# pydantic-core's JSON parser refuses deeper documents (its recursion limit); no body of
# this API nests deeper than 5.
MAX_JSON_DEPTH = 200
READ_ATTEMPTS = 3
NO_HOUSEHOLD = "No household with this id is visible to you."

# Where a body may hold U+0000 or a lone surrogate: only as a \u escape, since raw control
# characters and invalid UTF-8 are not JSON. A match may be an escaped backslash followed
# by "u0000"; the walk then finds nothing, at the cost of one walk.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


def deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


async def read(request: Request, limit: int, *, too_large: str | None = None) -> bytes:
    """The body, at most `limit` bytes: refused by its Content-Length before a byte is read,
    or as soon as the stream passes the limit (chunked or not). Read once per request; a
    later call gets the same bytes."""
    message = too_large or f"The body is larger than {limit} bytes."
    kept: bytes | None = getattr(request.state, "raw_body", None)
    if kept is not None:
        if len(kept) > limit:
            raise PayloadTooLarge(message)
        return kept
    # Leading zeros stripped, so that the digit count can stand for the size before int()
    # (which refuses more than 4,300 digits) is asked.
    declared = request.headers.get("content-length", "").lstrip("0") or "0"
    if (
        declared.isascii()
        and declared.isdigit()
        and (len(declared) > len(str(limit)) or int(declared) > limit)
    ):
        raise PayloadTooLarge(message)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(message)
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest(
            "The client hung up before the body ended.", code="client_disconnected"
        ) from None
    raw = b"".join(chunks)
    request.state.raw_body = raw
    return raw


def document(raw: bytes) -> object:
    """The JSON value of a body. 400 invalid_json if it is not UTF-8 JSON or nests deeper
    than MAX_JSON_DEPTH; 422 invalid_text naming the field if a string holds U+0000 (not
    storable in PostgreSQL text, and no part of a message) or a lone surrogate (not text:
    it cannot be encoded)."""
    try:
        value = pydantic_core.from_json(raw)
    except ValueError as exc:
        # pydantic-core refuses a lone surrogate as bad JSON; say which field instead.
        if _SUSPECT_ESCAPE.search(raw):
            _refuse_bad_text(_lenient(raw))
        reason = str(exc)
        if reason.startswith("recursion limit exceeded"):
            reason = f"nested deeper than {MAX_JSON_DEPTH} levels ({reason})"
        raise BadRequest(f"The body is not valid JSON: {reason}.", code="invalid_json") from None
    if _SUSPECT_ESCAPE.search(raw):
        _refuse_bad_text(value)
    return value


def _lenient(raw: bytes) -> object:
    """The body as Python's json module reads it, lone surrogates and all; None if not even
    that (Python's own recursion limit bounds the depth)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _refuse_bad_text(value: object) -> None:
    """422 invalid_text at the first string (in document order) holding U+0000 or a lone
    surrogate. Iterative: `value` may nest as deep as Python's json module allows."""
    stack: list[tuple[object, tuple[str, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if (found := _NOT_TEXT.search(item)) is not None:
                _invalid_text(path, found.group())
        elif isinstance(item, dict):
            for key in item:
                if (found := _NOT_TEXT.search(key)) is not None:
                    _invalid_text(path, found.group(), key=True)
            stack.extend((v, (*path, str(k))) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((v, (*path, str(i))) for i, v in reversed(list(enumerate(item))))


def _invalid_text(path: tuple[str, ...], char: str, *, key: bool = False) -> NoReturn:
    # The field is named by its path only: the text itself must not be echoed, a lone
    # surrogate cannot even be encoded into the response.
    field = ".".join(path) or "body"
    what = "U+0000 (NUL)" if char == "\x00" else f"a lone surrogate U+{ord(char):04X}"
    reason = f"{'has a key that ' if key else ''}contains {what}, which is not allowed in text"
    raise InvalidRequest(
        f"The request body is not valid: {field} {reason}.",
        code="invalid_text",
        fields=(FieldError(field, reason),),
    )


async def body(request: Request, model: type[M]) -> M:
    """The body (at most MAX_ADMIN_BODY_BYTES) as `model`."""
    return validated(model, await read(request, MAX_ADMIN_BODY_BYTES))


def validated(model: type[M], raw: bytes | object) -> M:
    """The JSON body (bytes, or already decoded by document()) as `model`, or a 422 naming
    every field that failed and why."""
    data = document(raw) if isinstance(raw, bytes) else raw
    try:
        return model.model_validate(data)
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
H = TypeVar("H", bound=Handler)

# Handlers that take a larger body than MAX_ADMIN_BODY_BYTES: (limit, the 413's message).
_BODY_LIMITS: dict[Handler, tuple[int, str | None]] = {}


def body_limit(limit: int, *, too_large: str | None = None) -> Callable[[H], H]:
    """Let an authenticated() handler take a body of up to `limit` bytes."""

    def mark(handler: H) -> H:
        _BODY_LIMITS[handler] = (limit, too_large)
        return handler

    return mark


def verify_token(request: Request) -> Claims:
    """The claims of a valid bearer token (checked before any connection is taken), kept
    in request.state.token for principal()."""
    claims = deps(request).tokens.claims(bearer_token(request.headers.get("authorization")))
    request.state.token = claims
    return claims


async def principal(request: Request, conn: Any) -> access.User:
    """The user of the token verify_token() verified, refused if the token was revoked, and (in
    request.state.visible) the household in the path if the user may see it, in one round
    trip."""
    token: Claims = request.state.token
    household_id = (
        path_uuid(request, "household_id") if "household_id" in request.path_params else None
    )
    found = await access.bearer(
        conn, token.user_id, household_id, jti=token.jti, issued_at=token.issued_at
    )
    user = found.user
    if "household_id" in request.path_params:
        request.state.visible = found.visible
    if user is None:
        # Same answer as a bad token: a deleted user's token must not tell it existed.
        raise Unauthorized("The token is not valid.", code="invalid_token")
    if found.revoked:
        raise Unauthorized("The token was revoked; sign in again.", code="token_revoked")
    if (context := logs.current.get()) is not None:
        context.user_id = str(user.id)
        seen = getattr(request.state, "visible", None)
        context.household_id = str(seen.household.id) if seen is not None else None
    return user


def authenticated(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Verify the bearer token, read the body of a write (within the handler's body_limit)
    before any connection is taken, load the user (and the household in the path, if any,
    in the same round trip), then call the handler with a connection.

    A read (GET, HEAD) that fails on a transient database error is run again from the start
    on another connection, at most three times in all, with jittered backoff; writes are
    not, since their first try may have committed."""

    async def once(request: Request) -> Response:
        async with deps(request).connection() as conn:
            user = await principal(request, conn)
            return await handler(request, conn, user)

    limit, too_large = _BODY_LIMITS.get(handler, (MAX_ADMIN_BODY_BYTES, None))

    async def endpoint(request: Request) -> Response:
        verify_token(request)
        if request.method not in ("GET", "HEAD"):
            # A slow body holds no pooled connection.
            await read(request, limit, too_large=too_large)
            return await once(request)
        retrying = transient_retrying(multiplier=0.05, most=0.5, attempts=READ_ATTEMPTS)
        return await retrying(once, request)

    return endpoint
