"""The HTTP application: the routes, the administration endpoints and health, the request
id, and the mapping of domain errors to the one error shape.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent.errors import (
    Conflict,
    FieldError,
    InvalidRequest,
    Unavailable,
    WattwiseError,
)
from quota.core import QuotaRefused
from service import metrics, requests, schemas
from service.deps import TRANSIENT_DB_ERRORS, Deps, open_deps
from service.lifecycle import Lifecycle
from service.observe import Observe
from service.routes import actions as action_routes
from service.routes import admin as revocation_routes
from service.routes import chat as chat_routes
from service.routes import live as live_routes
from service.routes import openai as openai_routes
from service.routes import telemetry as telemetry_routes
from service.routes import widget as widget_routes
from service.settings import Settings
from telemetry import access, households
from telemetry.migrate import pending
from telemetry.rollups import Refresher, status

log = logging.getLogger("wattwise.http")

READY_TIMEOUT_SECONDS = 2.0


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


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready: not draining, the database reachable and migrated, the rollups no further
    behind than WATTWISE_READY_MAX_ROLLUP_LAG (0: not checked), and Redis reachable if it
    is configured."""
    deps = requests.deps(request)
    checks: dict[str, str] = {}
    ready = not deps.lifecycle.draining.is_set()
    checks["lifecycle"] = "serving" if ready else "draining"
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), deps.connection() as conn:
            todo = await pending(conn)
            rollups = await status(conn)
        checks["database"] = "ok"
        checks["migrations"] = "current" if not todo else f"{len(todo)} pending"
        ready = ready and not todo
        bound = deps.settings.ready_max_rollup_lag
        if rollups.lag is None:
            checks["rollups"] = "never refreshed"
            ready = ready and not bound
        else:
            behind = bool(bound) and rollups.lag > bound
            checks["rollups"] = f"{'behind' if behind else 'ok'}: lag {rollups.lag:.0f} s" + (
                f" (at most {bound:.0f} s)" if bound else ""
            )
            ready = ready and not behind
    except (OSError, TimeoutError, asyncpg.PostgresError, Unavailable) as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        ready = False
    if deps.redis is None:
        checks["redis"] = "not configured (in-memory quotas)"
    else:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await deps.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # readiness reports every failure; it never raises
            checks["redis"] = f"unreachable: {type(exc).__name__}"
            ready = False
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WattwiseError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _statement_timeout(request: Request, exc: Exception) -> Response:
    seconds = requests.deps(request).settings.db_statement_timeout
    error = Unavailable(
        f"The database took longer than {seconds:g} s and the query was stopped; nothing "
        "was changed. Try a shorter window, or again later.",
        code="timeout",
    )
    return JSONResponse(error.body(), status_code=error.status)


async def _database_down(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
    error = Unavailable(
        "The database cannot be reached right now; try again in a moment.",
        code="database_unavailable",
    )
    return JSONResponse(error.body(), status_code=error.status, headers={"Retry-After": "5"})


async def _quota_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, QuotaRefused)
    body = {"error": {"code": exc.code, "message": exc.message, **exc.details()}}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers or None)


async def usage(request: Request, conn: Any, user: access.User) -> Response:
    """The caller's token use and what remains today and this month; an administrator also
    sees the deployment's spend against its monthly cap."""
    deps = requests.deps(request)
    report = await deps.quota.usage(user.id, spend=user.role == "admin")
    if "monthly_spend" in report:
        report["monthly_spend"]["currency"] = deps.settings.spend_currency
    return JSONResponse(report)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": {"code": code, "message": str(exc.detail)}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    # A bug: Starlette re-raises it after this response, so the server logs its traceback
    # once; the client gets the one error shape, not a plain-text 500.
    error = WattwiseError("Something went wrong on our side.")
    return JSONResponse(error.body(), status_code=error.status)


def routes() -> list[Route]:
    h = "/v1/households/{household_id}"
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics.endpoint, methods=["GET"]),
        Route("/v1/me", requests.authenticated(me), methods=["GET"]),
        Route("/v1/usage", requests.authenticated(usage), methods=["GET"]),
        Route("/v1/households", requests.authenticated(list_households), methods=["GET"]),
        Route("/v1/households", requests.authenticated(create_household), methods=["POST"]),
        Route(h, requests.authenticated(get_household), methods=["GET"]),
        Route(f"{h}/devices", requests.authenticated(list_devices), methods=["GET"]),
        Route(f"{h}/energy", requests.authenticated(telemetry_routes.get_energy)),
        Route(f"{h}/energy/series", requests.authenticated(telemetry_routes.get_series)),
        Route(f"{h}/top-devices", requests.authenticated(telemetry_routes.get_top_devices)),
        Route(f"{h}/live", requests.authenticated(telemetry_routes.get_live)),
        Route(f"{h}/live/stream", live_routes.live_stream, methods=["GET"]),
        Route(f"{h}/chat", chat_routes.chat, methods=["POST"]),
        Route(f"{h}/devices", requests.authenticated(create_device), methods=["POST"]),
        Route(f"{h}/members", requests.authenticated(add_member), methods=["POST"]),
        Route(f"{h}/support", requests.authenticated(assign_support), methods=["POST"]),
        Route("/v1/users", requests.authenticated(create_user), methods=["POST"]),
        Route(
            "/v1/telemetry",
            requests.authenticated(telemetry_routes.post_telemetry),
            methods=["POST"],
        ),
        *openai_routes.routes(),
        *action_routes.routes(),
        *revocation_routes.routes(),
    ]


def create_app(
    *,
    settings: Settings | None = None,
    deps: Deps | None = None,
    demo: widget_routes.DemoPage | None = None,
    lifecycle: Lifecycle | None = None,
) -> Starlette:
    """An app over ready-made deps (tests), or one that opens its own from settings (with
    `lifecycle`, the one the server drains on SIGTERM); with `demo`, it also serves the
    demo page at `/`."""
    if (settings is None) == (deps is None):
        raise ValueError("pass exactly one of settings or deps")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if deps is not None:
            app.state.deps = deps
            deps.lifecycle.bind()
            yield
            return
        assert settings is not None
        async with open_deps(settings, lifecycle) as opened:
            app.state.deps = opened
            opened.lifecycle.bind()
            opened.live.start()
            refresher = Refresher(
                opened.pool,
                cap=timedelta(seconds=settings.gap_cap_seconds),
                retention=timedelta(days=settings.raw_retention_days),
                interval=settings.refresh_seconds,
            )
            refresher.start()
            log.info("serving", extra={"event": "started", "port": settings.port})
            try:
                yield
            finally:
                await refresher.stop()
        log.info("shutdown complete", extra={"event": "stopped"})

    app = Starlette(
        routes=[*routes(), *widget_routes.routes(demo)],
        lifespan=lifespan,
        exception_handlers={
            WattwiseError: _domain_error,
            QuotaRefused: _quota_refused,
            HTTPException: _http_error,
            Exception: _unexpected,
            asyncpg.QueryCanceledError: _statement_timeout,
            **dict.fromkeys(TRANSIENT_DB_ERRORS, _database_down),
        },
    )
    if deps is not None:
        # ASGI transports in tests may not run the lifespan; the deps are ready already.
        app.state.deps = deps
    origins = (settings or deps.settings).cors_origins  # type: ignore[union-attr]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["authorization", "content-type", "x-request-id", "idempotency-key"],
            expose_headers=["x-request-id", "retry-after"],
        )
    app.add_middleware(Observe)
    return app
