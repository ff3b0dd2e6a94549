"""Routes that end access: removing a member or a support assignment, revoking one token or
all of a user's tokens. Each change is made in PostgreSQL, which every request of every
process consults, then announced through the live hub so open live streams check again at
once (service.live); an announcement that fails leaves the change in force.

Who may do what follows the routes that grant the same access: members and support
assignments are an administrator's (an owner does not administer their household, see
add_member); a token is revoked by its holder, all of a user's tokens by an administrator
or by the user (signing out everywhere).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent.errors import NotFound
from service import requests
from service.auth import Claims
from service.live import Revocation
from telemetry import access

log = logging.getLogger("wattwise.access")


async def remove_member(request: Request, conn: Any, user: access.User) -> Response:
    seen = await requests.visible(conn, user, request, "member.remove")
    requests.require_admin(user)
    target = requests.path_uuid(request, "user_id")
    if target is None or not await access.remove_member(
        conn, household_id=seen.household.id, user_id=target
    ):
        raise NotFound("This user is not bound to this household.", code="not_a_member")
    await _ended(request, Revocation(target, seen.household.id), "member_removed")
    return Response(status_code=204)


async def remove_support(request: Request, conn: Any, user: access.User) -> Response:
    seen = await requests.visible(conn, user, request, "support.remove")
    requests.require_admin(user)
    target = requests.path_uuid(request, "user_id")
    if target is None or not await access.remove_support(
        conn, household_id=seen.household.id, user_id=target
    ):
        raise NotFound("This user is not assigned to this household.", code="not_assigned")
    await _ended(request, Revocation(target, seen.household.id), "support_removed")
    return Response(status_code=204)


async def revoke_token(request: Request, conn: Any, user: access.User) -> Response:
    """The bearer token of this request is refused from now on, everywhere."""
    token: Claims = request.state.token
    await access.revoke_token(conn, jti=token.jti, user_id=user.id, expires_at=token.expires)
    await _ended(request, Revocation(user.id), "token_revoked")
    return JSONResponse(
        {"user_id": str(user.id), "revoked": "token", "expires_at": token.expires.isoformat()}
    )


async def revoke_user_tokens(request: Request, conn: Any, user: access.User) -> Response:
    """Every token of the user issued before now is refused; a token issued later works."""
    target = requests.path_uuid(request, "user_id")
    if target != user.id:
        # Checked before the user is looked up: a non-admin learns nothing of other users.
        requests.require_admin(user)
    after = await access.revoke_tokens_before_now(conn, target) if target else None
    if target is None or after is None:
        raise NotFound("No user with this id.")
    await _ended(request, Revocation(target), "tokens_revoked")
    return JSONResponse({"user_id": str(target), "tokens_valid_after": after.isoformat()})


async def _ended(request: Request, revocation: Revocation, event: str) -> None:
    log.info(
        "%s: user %s%s",
        event.replace("_", " "),
        revocation.user_id,
        f" in household {revocation.household_id}" if revocation.household_id else "",
        extra={"event": event},
    )
    await requests.deps(request).live.revoke(revocation)


def routes() -> list[Route]:
    h = "/v1/households/{household_id}"
    auth = requests.authenticated
    return [
        Route(f"{h}/members/{{user_id}}", auth(remove_member), methods=["DELETE"]),
        Route(f"{h}/support/{{user_id}}", auth(remove_support), methods=["DELETE"]),
        Route("/v1/tokens/revoke", auth(revoke_token), methods=["POST"]),
        Route("/v1/users/{user_id}/revoke-tokens", auth(revoke_user_tokens), methods=["POST"]),
    ]
