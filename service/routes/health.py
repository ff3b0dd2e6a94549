"""Health and scraping: liveness, readiness (what a load balancer or an orchestrator asks
before it sends traffic) and the Prometheus metrics."""

from __future__ import annotations

import asyncio
import hmac

import asyncpg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent.errors import Unauthorized, Unavailable
from service import requests
from service.auth import bearer_token
from telemetry.migrate import pending
from telemetry.rollups import status

READY_TIMEOUT_SECONDS = 2.0


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


async def metrics(request: Request) -> Response:
    """GET /metrics; with WATTWISE_METRICS_TOKEN set, only for `Authorization: Bearer
    <that token>`."""
    deps = requests.deps(request)
    expected = deps.settings.metrics_token
    if expected is not None:
        try:
            given = bearer_token(request.headers.get("authorization"))
        except Unauthorized:
            given = ""
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise Unauthorized("GET /metrics needs the metrics token.", code="invalid_token")
    await deps.metrics.sample(deps.pool, deps.connection)
    return Response(generate_latest(deps.metrics.registry), media_type=CONTENT_TYPE_LATEST)
