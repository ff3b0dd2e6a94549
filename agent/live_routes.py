"""GET /v1/households/{id}/live/stream: Server-Sent Events of the household's live power.

The first `live` event is the state now (the JSON of GET /live); each later one is the
state after one or more new readings, several coalesced into one when they come faster
than the client reads. Every WATTWISE_LIVE_RESYNC_SECONDS, and whenever the fan-out may
have lost updates, the state is read again from the database and the token and the
caller's access are checked again, so a stream outlives neither by more than that. The
stream ends with an `end` event whose code says why: shutting_down, too_slow (the client
stopped reading and its buffer filled), token_expired, access_revoked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from agent import requests
from agent.auth import bearer_token
from agent.deps import Deps
from agent.errors import Unauthorized, Unavailable
from agent.live import Subscriber, Update
from telemetry import access, live
from telemetry.live import LiveDevice

log = logging.getLogger("wattwise.live")

KEEPALIVE_SECONDS = 15
COALESCE = 64  # buffered items folded into one event at most
RECONNECT_MS = 1000  # what a client waits before it reconnects after `end`
# sse-starlette cancels a stream this long after it saw the shutdown; our own `end` event
# (sent when draining starts) goes out well before.
SHUTDOWN_GRACE_SECONDS = 1.0
_ENDINGS = {
    "shutting_down": "The service is restarting; reconnect in a moment.",
    "too_slow": "The stream fell too far behind and was closed; reconnect to resume.",
    "token_expired": "The token has expired; reconnect with a fresh one.",
    "access_revoked": "This household is no longer visible to you.",
}


async def live_stream(request: Request) -> Response:
    deps = requests.deps(request)
    token = bearer_token(request.headers.get("authorization"))
    user_id = requests.token_user(request)
    async with deps.connection() as conn:
        user = await requests.principal(request, conn, user_id)
        seen = await requests.readable(conn, user, request, "energy.live_stream")
        devices = await live.devices(conn, seen.household.id)
    if deps.live.subscribers >= deps.settings.live_max_streams:
        raise Unavailable(
            "This server has as many live streams open as it may; try again later.",
            code="too_many_streams",
        )
    return EventSourceResponse(
        _events(deps, token, user.id, seen.household.id, devices),
        ping=KEEPALIVE_SECONDS,
        send_timeout=deps.settings.live_send_timeout,
        sep="\n",
        headers={"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"},
        shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
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


async def _next(subscriber: Subscriber, until: float) -> list[list[Update] | str]:
    """What the buffer holds, waiting for at least one item until loop time `until`
    ("resync" when that passes first)."""
    try:
        async with asyncio.timeout_at(until):
            first = await subscriber.queue.get()
    except TimeoutError:
        return ["resync"]
    items: list[list[Update] | str] = [first]
    while len(items) < COALESCE and not subscriber.queue.empty():
        items.append(subscriber.queue.get_nowait())
    return items


async def _recheck(deps: Deps, token: str, user_id: UUID, household_id: UUID) -> str | None:
    """Why the stream must end now (its token or its access is gone), or None."""
    try:
        deps.tokens.verify(token)
    except Unauthorized:
        return "token_expired"
    async with deps.connection() as conn:
        user, seen = await access.user_with_household(conn, user_id, household_id)
    if user is None or seen is None or seen.relation == "gateway":
        return "access_revoked"
    return None


async def _reread(deps: Deps, household_id: UUID) -> dict[UUID, LiveDevice]:
    async with deps.connection() as conn:
        return {d.id: d for d in await live.devices(conn, household_id)}


async def _events(
    deps: Deps, token: str, user_id: UUID, household_id: UUID, devices: list[LiveDevice]
) -> AsyncIterator[ServerSentEvent]:
    cap = timedelta(seconds=deps.settings.gap_cap_seconds)
    every = deps.settings.live_resync_seconds
    loop = asyncio.get_running_loop()
    with (
        deps.live.subscribe(household_id) as subscriber,
        deps.metrics.streams.labels("live").track_inprogress(),
    ):
        state = {d.id: d for d in devices}
        yield _state(household_id, state, cap)
        resync_at = loop.time() + every
        while True:
            items = await _next(subscriber, resync_at)
            if subscriber.dropped:
                yield _end("too_slow")
                return
            resync = False
            for item in items:
                if item == "closed":
                    yield _end("shutting_down")
                    return
                if item == "resync":
                    resync = True
                elif isinstance(item, list):
                    resync = not _apply(state, item) or resync
            if resync:
                try:
                    ended = await _recheck(deps, token, user_id, household_id)
                    if ended is not None:
                        yield _end(ended)
                        return
                    state = await _reread(deps, household_id)
                except (OSError, asyncpg.PostgresError, Unavailable) as exc:
                    log.warning("live stream: the database could not be read again: %s", exc)
                resync_at = loop.time() + every
            yield _state(household_id, state, cap)
