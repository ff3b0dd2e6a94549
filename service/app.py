"""The HTTP application: its one route table (the handlers live in service.routes), the
lifespan that opens and closes the process's dependencies, the request id and access log
(service.observe), and the mapping of domain errors to the one error shape.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent.errors import Unavailable, WattwiseError
from quota.core import QuotaRefused
from service import requests
from service.deps import TRANSIENT_DB_ERRORS, Deps, open_deps
from service.lifecycle import Lifecycle
from service.observe import Observe
from service.routes import actions, admin, chat, health, live, openai, telemetry, widget
from service.settings import Settings
from telemetry.rollups import Refresher

log = logging.getLogger("wattwise.http")


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


def routes(demo: widget.DemoPage | None = None) -> list[Route]:
    """Every route of the service, in one table; with `demo`, the demo page at `/`."""
    auth = requests.authenticated
    h = "/v1/households/{household_id}"
    a = "/v1/actions/{action_id}"
    table = [
        # health and scraping
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/metrics", health.metrics, methods=["GET"]),
        # the caller, households, devices, users, who may see what, and ending access
        Route("/v1/me", auth(admin.me), methods=["GET"]),
        Route("/v1/usage", auth(admin.usage), methods=["GET"]),
        Route("/v1/households", auth(admin.list_households), methods=["GET"]),
        Route("/v1/households", auth(admin.create_household), methods=["POST"]),
        Route(h, auth(admin.get_household), methods=["GET"]),
        Route(f"{h}/devices", auth(admin.list_devices), methods=["GET"]),
        Route(f"{h}/devices", auth(admin.create_device), methods=["POST"]),
        Route(f"{h}/members", auth(admin.add_member), methods=["POST"]),
        Route(f"{h}/members/{{user_id}}", auth(admin.remove_member), methods=["DELETE"]),
        Route(f"{h}/support", auth(admin.assign_support), methods=["POST"]),
        Route(f"{h}/support/{{user_id}}", auth(admin.remove_support), methods=["DELETE"]),
        Route("/v1/users", auth(admin.create_user), methods=["POST"]),
        Route("/v1/tokens/revoke", auth(admin.revoke_token), methods=["POST"]),
        Route(
            "/v1/users/{user_id}/revoke-tokens", auth(admin.revoke_user_tokens), methods=["POST"]
        ),
        # telemetry in, analytics out, live
        Route("/v1/telemetry", auth(telemetry.post_telemetry), methods=["POST"]),
        Route(f"{h}/energy", auth(telemetry.get_energy)),
        Route(f"{h}/energy/series", auth(telemetry.get_series)),
        Route(f"{h}/top-devices", auth(telemetry.get_top_devices)),
        Route(f"{h}/live", auth(telemetry.get_live)),
        Route(f"{h}/live/stream", live.live_stream, methods=["GET"]),
        # the assistant: its own UI stream and the OpenAI-compatible API
        Route(f"{h}/chat", chat.chat, methods=["POST"]),
        Route("/v1/models", openai.list_models, methods=["GET"]),
        Route("/v1/chat/completions", openai.completions, methods=["POST"]),
        # proposals, consent, commands and the gateway's outbox
        Route(a, auth(actions.get_action), methods=["GET"]),
        Route(f"{a}/confirm", auth(actions.confirm), methods=["POST"]),
        Route(f"{a}/cancel", auth(actions.cancel), methods=["POST"]),
        Route(f"{a}/undo", auth(actions.undo), methods=["POST"]),
        Route(f"{h}/commands", auth(actions.list_commands), methods=["GET"]),
        Route("/v1/commands/{command_id}/ack", auth(actions.acknowledge), methods=["POST"]),
        # the chat widget's files
        Route("/widget.js", widget.asset, methods=["GET", "HEAD"]),
        Route("/widget.css", widget.asset, methods=["GET", "HEAD"]),
    ]
    if demo is not None:
        table.append(widget.demo_route(demo))
    return table


def create_app(
    *,
    settings: Settings | None = None,
    deps: Deps | None = None,
    demo: widget.DemoPage | None = None,
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
        routes=routes(demo),
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
