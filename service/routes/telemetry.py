"""HTTP endpoints over telemetry: ingestion (JSON or NDJSON) and the household analytics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast, get_args

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent.errors import (
    FieldError,
    Forbidden,
    InvalidRequest,
    PayloadTooLarge,
    Unavailable,
    WattwiseError,
)
from service import ingest as service_ingest
from service import requests
from service.cache import OPEN_WINDOW_SECONDS
from telemetry import access, households, ingest, live, queries, windows
from telemetry.windows import Window

if TYPE_CHECKING:
    pass

NDJSON = "application/x-ndjson"
MAX_TOP_DEVICES = 20
MAX_SERIES_BUCKETS = 3000


def _too_many(count: str) -> str:
    return (
        f"A telemetry request may carry at most {ingest.MAX_READINGS} readings; this one has "
        f"{count}. Split the batch. Nothing was stored."
    )


def _too_large_bytes() -> str:
    mib = ingest.MAX_BODY_BYTES // (1024 * 1024)
    return f"A telemetry request may carry at most {mib} MiB; split the batch. Nothing was stored."


def _readings(body: bytes, content_type: str) -> list[object]:
    if content_type.split(";")[0].strip().lower() == NDJSON:
        items: list[object] = []
        for line in body.split(b"\n"):
            if not line.strip():
                continue
            if len(items) == ingest.MAX_READINGS:
                raise PayloadTooLarge(_too_many(f"more than {ingest.MAX_READINGS}"))
            try:
                items.append(requests.document(line))
            except WattwiseError as exc:
                # Reported at its index like any other bad reading; the rest go on.
                items.append(ingest.Unreadable(exc.code, exc.message))
        return items
    document = requests.document(body)
    readings = document.get("readings") if isinstance(document, dict) else None
    if not isinstance(readings, list):
        raise InvalidRequest(
            f'The body must be {{"readings": [...]}}, or NDJSON with Content-Type {NDJSON}.'
        )
    return readings


@requests.body_limit(ingest.MAX_BODY_BYTES, too_large=_too_large_bytes())
async def post_telemetry(request: Request, conn: Any, user: access.User) -> Response:
    if user.role == "support":
        raise Forbidden("Support access is read-only.")
    body = await requests.read(request, ingest.MAX_BODY_BYTES, too_large=_too_large_bytes())
    items = _readings(body, request.headers.get("content-type", "application/json"))
    if len(items) > ingest.MAX_READINGS:
        raise PayloadTooLarge(_too_many(str(len(items))))
    deps = requests.deps(request)
    try:
        result = await service_ingest.store_readings(
            deps, conn, items, user_id=user.id, role=user.role
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise Unavailable(
            "The database failed while storing this batch; nothing from it was stored. "
            "Resend the same batch: resending is safe.",
            code="database_unavailable",
        ) from exc
    return JSONResponse(result.public())


def _cap(request: Request) -> timedelta:
    return timedelta(seconds=requests.deps(request).settings.gap_cap_seconds)


def _window(request: Request, household: households.Household, now: datetime) -> Window:
    params = request.query_params
    tz = params.get("tz") or household.timezone
    name = params.get("window")
    if name is None and "start" not in params and "end" not in params:
        name = "day"
    try:
        return windows.resolve(
            name, timezone=tz, now=now, start=params.get("start"), end=params.get("end")
        )
    except windows.WindowError as exc:
        field = {"invalid_timezone": "tz"}.get(exc.code, "window")
        raise InvalidRequest(
            exc.message, code=exc.code, fields=(FieldError(field, exc.message),)
        ) from exc


@dataclass(frozen=True)
class _Answer:
    report: queries.EnergyReport
    body: bytes  # the /energy response, serialised once


async def _answer(
    request: Request, conn: Any, household: households.Household, now: datetime
) -> _Answer:
    """The window's report, from the answer cache when the household's data is unchanged."""
    window = _window(request, household, now)
    answers = requests.deps(request).answers
    open_window = window.end >= now
    key = (
        "energy",
        household.id,
        household.data_version,
        window.name,
        window.timezone,
        window.start,
        int(now.timestamp() / OPEN_WINDOW_SECONDS) if open_window else window.end,
    )

    async def compute() -> _Answer:
        report = await queries.energy_report(conn, household, window, now=now, cap=_cap(request))
        return _Answer(report, bytes(JSONResponse(report.public()).body))

    return await answers.get_or_compute(key, compute, open_window=open_window)


async def get_energy(request: Request, conn: Any, user: access.User) -> Response:
    seen = await requests.readable(conn, user, request, "energy.read")
    answer = await _answer(request, conn, seen.household, datetime.now(UTC))
    return Response(answer.body, media_type="application/json")


async def get_series(request: Request, conn: Any, user: access.User) -> Response:
    seen = await requests.readable(conn, user, request, "energy.series")
    now = datetime.now(UTC)
    window = _window(request, seen.household, now)
    raw_step = request.query_params.get("step", "1h")
    if raw_step not in get_args(windows.Step):
        reason = "step must be 15m, 1h or 1d"
        raise InvalidRequest(reason, fields=(FieldError("step", reason),))
    step = cast("windows.Step", raw_step)
    if windows.most_buckets(window, step) > MAX_SERIES_BUCKETS + 2:
        reason = f"at most {MAX_SERIES_BUCKETS} buckets; use a larger step or a shorter window"
        raise InvalidRequest(reason, fields=(FieldError("step", reason),))
    edges = windows.series_edges(window, step)
    buckets = await queries.energy_series(
        conn, seen.household, window, edges, now=now, cap=_cap(request)
    )
    fresh = await queries.fresh_as_of(
        conn, await households.list_devices(conn, seen.household.id), window
    )
    return JSONResponse(
        {
            "household_id": str(seen.household.id),
            "window": queries.window_public(window),
            "step": step,
            "fresh_as_of": fresh.isoformat() if fresh else None,
            "buckets": buckets,
        }
    )


async def get_top_devices(request: Request, conn: Any, user: access.User) -> Response:
    seen = await requests.readable(conn, user, request, "energy.top_devices")
    raw_limit = request.query_params.get("limit", "5")
    # isascii(): "²".isdigit() is true, but int() refuses it.
    if (
        not (raw_limit.isascii() and raw_limit.isdigit())
        or not 1 <= int(raw_limit) <= MAX_TOP_DEVICES
    ):
        reason = f"limit must be a whole number from 1 to {MAX_TOP_DEVICES}"
        raise InvalidRequest(reason, fields=(FieldError("limit", reason),))
    report = (await _answer(request, conn, seen.household, datetime.now(UTC))).report
    window = report.window
    consuming = [d for d in report.devices if d.device.kind in queries.CONSUMING]
    return JSONResponse(
        {
            "household_id": str(seen.household.id),
            "window": queries.window_public(window),
            "fresh_as_of": report.fresh_as_of.isoformat() if report.fresh_as_of else None,
            "consumption_kwh": report.totals.consumption_kwh,
            "devices": [d.public() for d in consuming[: int(raw_limit)]],
        }
    )


async def get_live(request: Request, conn: Any, user: access.User) -> Response:
    seen = await requests.readable(conn, user, request, "energy.live")
    now = datetime.now(UTC)
    return JSONResponse(await live.snapshot(conn, seen.household, now=now, cap=_cap(request)))
