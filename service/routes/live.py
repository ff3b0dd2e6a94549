"""GET /v1/households/{id}/live/stream: Server-Sent Events of the household's live power.

The first `live` event is the state now (the JSON of GET /live); each later one is the
state after one or more new readings, at most one every WATTWISE_LIVE_MIN_INTERVAL
seconds, and all that arrived meanwhile folded into it. Every
WATTWISE_LIVE_RESYNC_SECONDS, and whenever the fan-out may have lost updates, the state is
read again from the database and the token and the caller's access are checked again.
Revocations do not wait for that: removing the caller's membership or support assignment,
or revoking the token or all of the user's tokens, has the stream check again at once in
every process (service.live announces them), and the stream ends at its token's own expiry.
The stream ends with an `end` event whose code says why: shutting_down, token_expired,
token_revoked, access_revoked. A client that does not take
an event within WATTWISE_LIVE_SEND_TIMEOUT is dropped (its connection closed, counted in
wattwise_live_dropped_total); what waits for it meanwhile is one update per device.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from agent.errors import Unavailable
from service import logs, requests
from service.auth import Claims
from service.deps import Deps
from service.live import Update
from telemetry import access, live
from telemetry.live import LiveDevice

log = logging.getLogger("wattwise.live")

KEEPALIVE_SECONDS = 15
RECONNECT_MS = 1000  # what a client waits before it reconnects after `end`
# sse-starlette cancels a stream this long after it saw the shutdown; our own `end` event
# (sent when draining starts) goes out well before.
SHUTDOWN_GRACE_SECONDS = 1.0
_ENDINGS = {
    "shutting_down": "The service is restarting; reconnect in a moment.",
    "token_expired": "The token has expired; reconnect with a fresh one.",
    "token_revoked": "The token was revoked; sign in again.",
    "access_revoked": "This household is no longer visible to you.",
}
# A check that could not reach the database is tried again this soon, not at the resync.
RECHECK_RETRY_SECONDS = 1.0


async def live_stream(request: Request) -> Response:
    deps = requests.deps(request)
    token = requests.verify_token(request)
    async with deps.connection() as conn:
        user = await requests.principal(request, conn)
        seen = await requests.readable(conn, user, request, "energy.live_stream")
        if deps.live.subscribers >= deps.settings.live_max_streams:
            raise Unavailable(
                "This server has as many live streams open as it may; try again later.",
                code="too_many_streams",
            )
        devices = await live.devices(conn, seen.household.id)
    return _Droppable(
        deps,
        _events(deps, token, seen.household.id, devices),
        ping=KEEPALIVE_SECONDS,
        send_timeout=deps.settings.live_send_timeout,
        sep="\n",
        headers={"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"},
        shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
    )


class _Droppable(EventSourceResponse):
    """A live stream whose client may be dropped: a send that waits past the send timeout
    ends the response, counted and logged as a drop rather than raised as an error."""

    def __init__(self, deps: Deps, content: AsyncIterator[ServerSentEvent], **kw: Any) -> None:
        super().__init__(content, **kw)
        self.deps = deps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            self.deps.metrics.live_dropped.labels("slow").inc()
            logs.unfinished_on_purpose()  # uvicorn closes the connection
            log.info(
                "live client dropped: it took no event for %g s",
                self.deps.settings.live_send_timeout,
                extra={"event": "live_dropped"},
            )


def _state(household_id: UUID, devices: dict[UUID, LiveDevice], cap: timedelta) -> ServerSentEvent:
    ordered = sorted(devices.values(), key=lambda d: d.name.lower())
    summary = live.summary(household_id, ordered, now=datetime.now(UTC), cap=cap)
    return ServerSentEvent(data=json.dumps(summary), event="live")


def _end(code: str) -> ServerSentEvent:
    return ServerSentEvent(
        data=json.dumps({"code": code, "message": _ENDINGS[code]}), event="end", retry=RECONNECT_MS
    )


def _apply(devices: dict[UUID, LiveDevice], updates: list[Update]) -> bool:
    """Move each device to its newer reading; False when a device is unknown here."""
    known = True
    for u in updates:
        device = devices.get(u.device_id)
        if device is None:
            known = False
        elif device.ts is None or u.ts > device.ts:
            devices[u.device_id] = dataclasses.replace(device, ts=u.ts, watts=u.watts)
    return known


async def _recheck(deps: Deps, token: Claims, household_id: UUID) -> str | None:
    """Why the stream must end now (its token or its access is gone), or None."""
    if time.time() >= token.expires_at:
        return "token_expired"
    async with deps.connection() as conn:
        found = await access.bearer(
            conn, token.user_id, household_id, jti=token.jti, issued_at=token.issued_at
        )
    if found.revoked:
        return "token_revoked"
    if found.user is None or found.visible is None or not requests.may_read(found.visible):
        return "access_revoked"
    return None


async def _reread(deps: Deps, household_id: UUID) -> dict[UUID, LiveDevice]:
    async with deps.connection() as conn:
        return {d.id: d for d in await live.devices(conn, household_id)}


async def _events(
    deps: Deps, token: Claims, household_id: UUID, devices: list[LiveDevice]
) -> AsyncIterator[ServerSentEvent]:
    cap = timedelta(seconds=deps.settings.gap_cap_seconds)
    every = deps.settings.live_resync_seconds
    interval = deps.settings.live_min_interval
    loop = asyncio.get_running_loop()
    expires_at = loop.time() + (token.expires_at - time.time())
    with (
        deps.live.subscribe(household_id, token.user_id) as subscriber,
        deps.metrics.streams.labels("live").track_inprogress(),
    ):
        state = {d.id: d for d in devices}
        yield _state(household_id, state, cap)
        sent, resync_at = loop.time(), loop.time() + every
        while True:
            try:
                async with asyncio.timeout_at(min(resync_at, expires_at)):
                    await subscriber.wake.wait()
            except TimeoutError:
                if loop.time() >= resync_at:
                    subscriber.resync = True
            if (wait := sent + interval - loop.time()) > 0 and not subscriber.urgent.is_set():
                # What arrives meanwhile joins this event; a revocation or the shutdown
                # does not wait for it.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await subscriber.urgent.wait()
            subscriber.urgent.clear()
            if subscriber.closed:
                yield _end("shutting_down")
                return
            if loop.time() >= expires_at:
                yield _end("token_expired")
                return
            news = subscriber.news or subscriber.resync
            resync = not _apply(state, subscriber.take()) or subscriber.resync
            if resync or subscriber.recheck:
                subscriber.resync = subscriber.recheck = False
                try:
                    ended = await _recheck(deps, token, household_id)
                    if ended is not None:
                        yield _end(ended)
                        return
                    if resync:
                        state = await _reread(deps, household_id)
                    resync_at = loop.time() + every
                except (OSError, asyncpg.PostgresError, Unavailable) as exc:
                    log.warning("live stream: the database could not be read again: %s", exc)
                    resync_at = loop.time() + min(every, RECHECK_RETRY_SECONDS)
            if news:
                yield _state(household_id, state, cap)
                sent = loop.time()
