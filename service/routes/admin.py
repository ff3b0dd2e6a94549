"""Accounts, households and who may see them: the caller (`/v1/me`, `/v1/usage`),
households and their devices, users, members and support assignments, and the routes that
end access: removing a member or a support assignment, revoking one token or all of a
user's tokens.

Ending access is a change in PostgreSQL, which every request of every process consults,
then announced through the live hub so open live streams check again at once
(service.live); an announcement that fails leaves the change in force.

Who may do what: households, devices, users, members and support assignments are an
administrator's (an owner does not administer their household, see add_member); a token is
revoked by its holder, all of a user's tokens by an administrator or by the user (signing
out everywhere). A support user's listing of households is audited.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent.errors import Conflict, FieldError, InvalidRequest, NotFound
from service import requests, schemas
from service.auth import Claims
from service.live import Revocation
from telemetry import access, households

log = logging.getLogger("wattwise.access")


async def me(request: Request, conn: Any, user: access.User) -> Response:
    return JSONResponse(user.public())


async def list_households(request: Request, conn: Any, user: access.User) -> Response:
    seen = await access.visible_households(conn, user)
    for item in seen:
        if item.relation == "support":
            await access.audit(
                conn,
                user_id=user.id,
                household_id=item.household.id,
                action="household.list",
                request_id=request.state.request_id,
            )
    return JSONResponse({"households": [_listed(item) for item in seen]})


def _listed(item: access.Visible) -> dict[str, Any]:
    """A household as GET /v1/households lists it: a gateway, which may read none of a
    household's details, gets the id it posts telemetry for (and lists devices of)."""
    if not requests.may_read(item):
        return {"id": str(item.household.id), "access": item.relation}
    return item.household.public() | {"access": item.relation}


async def create_household(request: Request, conn: Any, user: access.User) -> Response:
    requests.require_admin(user)
    body = await requests.body(request, schemas.HouseholdIn)
    created = await households.create_household(
        conn, name=body.name, timezone=body.timezone, tariff=body.tariff
    )
    return JSONResponse(created.public(), status_code=201)


async def get_household(request: Request, conn: Any, user: access.User) -> Response:
    seen = await requests.readable(conn, user, request, "household.read")
    return JSONResponse(seen.household.public() | {"access": seen.relation})


async def create_device(request: Request, conn: Any, user: access.User) -> Response:
    seen = await requests.visible(conn, user, request, "device.create")
    requests.require_admin(user)
    body = await requests.body(request, schemas.DeviceIn)
    try:
        device = await households.create_device(
            conn,
            household_id=seen.household.id,
            name=body.name,
            kind=body.kind,
            controllable=body.controllable,
            max_watts=body.max_watts,
        )
    except households.InvalidDeviceName as exc:
        # The reason names an invisible character by its code point, never as itself.
        raise InvalidRequest(
            f"This device name is not allowed: {exc.reason}.",
            code="invalid_device_name",
            fields=(FieldError("name", exc.reason),),
        ) from exc
    except households.ConfusableDeviceName as exc:
        raise Conflict(
            f"'{exc.args[0]}' looks like '{exc.existing}', a device of this household; "
            "choose a name that reads differently.",
            code="device_name_confusable",
        ) from exc
    except households.DuplicateDeviceName as exc:
        raise Conflict(
            f"This household already has a device named '{exc.args[0]}' (names ignore case).",
            code="duplicate_device_name",
        ) from exc
    return JSONResponse(device.public(), status_code=201)


async def list_devices(request: Request, conn: Any, user: access.User) -> Response:
    seen = await requests.visible(conn, user, request, "device.list")
    devices = await households.list_devices(conn, seen.household.id)
    return JSONResponse({"devices": [d.public() for d in devices]})


async def create_user(request: Request, conn: Any, user: access.User) -> Response:
    requests.require_admin(user)
    body = await requests.body(request, schemas.UserIn)
    try:
        created = await access.create_user(conn, email=body.email, role=body.role)
    except access.DuplicateEmail as exc:
        raise Conflict("A user with this email exists.", code="duplicate_email") from exc
    return JSONResponse(created.public(), status_code=201)


async def _target_user(conn: Any, user_id: UUID, field: str) -> access.User:
    target = await access.get_user(conn, user_id)
    if target is None:
        raise InvalidRequest(
            "No user with this id.", fields=(FieldError(field, "no user with this id"),)
        )
    return target


async def add_member(request: Request, conn: Any, user: access.User) -> Response:
    seen = await requests.visible(conn, user, request, "member.add")
    requests.require_admin(user)
    body = await requests.body(request, schemas.MemberIn)
    target = await _target_user(conn, body.user_id, "user_id")
    allowed = access.MEMBER_ROLES_BY_USER_ROLE[target.role]
    if body.role not in allowed:
        reason = f"a {target.role} user can be bound as {' or '.join(allowed) or 'nothing'}"
        raise InvalidRequest(
            f"Role '{body.role}' does not fit this user: {reason}.",
            fields=(FieldError("role", reason),),
        )
    await access.add_member(conn, household_id=seen.household.id, user_id=target.id, role=body.role)
    return JSONResponse(
        {"household_id": str(seen.household.id), "user_id": str(target.id), "role": body.role},
        status_code=201,
    )


async def assign_support(request: Request, conn: Any, user: access.User) -> Response:
    seen = await requests.visible(conn, user, request, "support.assign")
    requests.require_admin(user)
    body = await requests.body(request, schemas.SupportIn)
    target = await _target_user(conn, body.user_id, "user_id")
    if target.role != "support":
        raise InvalidRequest(
            "Only a support user can be assigned to a household.",
            fields=(FieldError("user_id", f"the user's role is {target.role}, not support"),),
        )
    await access.assign_support(
        conn, household_id=seen.household.id, user_id=target.id, expires_at=body.expires_at
    )
    return JSONResponse(
        {
            "household_id": str(seen.household.id),
            "user_id": str(target.id),
            "expires_at": body.expires_at.isoformat() if body.expires_at else None,
        },
        status_code=201,
    )


async def usage(request: Request, conn: Any, user: access.User) -> Response:
    """The caller's token use and what remains today and this month; an administrator also
    sees the deployment's spend against its monthly cap."""
    deps = requests.deps(request)
    report = await deps.quota.usage(user.id, spend=user.role == "admin")
    if "monthly_spend" in report:
        report["monthly_spend"]["currency"] = deps.settings.spend_currency
    return JSONResponse(report)


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
