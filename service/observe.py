"""What every HTTP request leaves behind: its id (accepted from X-Request-ID or made here,
and returned), one structured log line, and its count and latency in the metrics.

The line and the metrics name the route template, never the path, and the household only
once the caller was allowed to see it; they are written when the response ends, so a
stream's line says how long it stayed open.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import logs

if TYPE_CHECKING:
    from service.deps import Deps

log = logging.getLogger("wattwise.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED = "unmatched"
# Probes and scrapes come every few seconds: their successes are logged at DEBUG only.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


def route_template(scope: Scope) -> str:
    """The matched route's path with its parameters named, or "unmatched"."""
    if "endpoint" not in scope:
        return UNMATCHED
    params: dict[str, Any] = scope.get("path_params") or {}
    if not params:
        return str(scope.get("path", ""))
    names = {str(value): name for name, value in params.items()}
    segments = str(scope.get("path", "")).split("/")
    return "/".join(f"{{{names[s]}}}" if s in names else s for s in segments)


class Observe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        reset = logs.current.set(logs.RequestContext(request_id))
        arrived = time.perf_counter()
        started: float | None = None
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = time.perf_counter()
                status = message["status"]
                message.setdefault("headers", []).append(
                    (b"x-request-id", request_id.encode("latin-1"))
                )
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            ended = time.perf_counter()
            route = route_template(scope)
            method = scope["method"]
            latency = (started or ended) - arrived
            app = scope.get("app")
            deps: Deps | None = getattr(app.state, "deps", None) if app is not None else None
            if deps is not None:
                deps.metrics.requests.labels(method, route, str(status)).inc()
                deps.metrics.request_seconds.labels(method, route).observe(latency)
            quiet = route in QUIET_ROUTES and status < 400
            log.log(
                logging.DEBUG if quiet else logging.INFO,
                "%s %s %d",
                method,
                route,
                status,
                extra={
                    "event": "request",
                    "method": method,
                    "route": route,
                    "status": status,
                    "latency_ms": round(latency * 1000, 2),
                    "duration_ms": round((ended - arrived) * 1000, 2),
                },
            )
            logs.current.reset(reset)
