"""HTTP endpoints over telemetry: ingestion (JSON or NDJSON) and the household analytics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent import requests
from agent.errors import Forbidden, InvalidRequest, PayloadTooLarge, Unavailable
from telemetry import access, ingest

NDJSON = "application/x-ndjson"


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(_too_large_bytes())
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(_too_large_bytes())
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large_bytes() -> str:
    mib = ingest.MAX_BODY_BYTES // (1024 * 1024)
    return f"A telemetry request may carry at most {mib} MiB; split the batch. Nothing was stored."


def _readings(body: bytes, content_type: str) -> list[object]:
    if content_type.split(";")[0].strip().lower() == NDJSON:
        items: list[object] = []
        for line in body.split(b"\n"):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except ValueError:
                # Reported at its index like any other bad reading; the rest go on.
                items.append(None)
        return items
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc}") from exc
    readings = document.get("readings") if isinstance(document, dict) else None
    if not isinstance(readings, list):
        raise InvalidRequest(
            f'The body must be {{"readings": [...]}}, or NDJSON with Content-Type {NDJSON}.'
        )
    return readings


async def post_telemetry(request: Request, conn: Any, user: access.User) -> Response:
    if user.role == "support":
        raise Forbidden("Support access is read-only.")
    body = await _read_limited(request, ingest.MAX_BODY_BYTES)
    items = _readings(body, request.headers.get("content-type", "application/json"))
    if len(items) > ingest.MAX_READINGS:
        raise PayloadTooLarge(
            f"A telemetry request may carry at most {ingest.MAX_READINGS} readings; this one has "
            f"{len(items)}. Split the batch. Nothing was stored."
        )
    settings = requests.deps(request).settings
    policy = ingest.Policy(
        now=datetime.now(UTC),
        cap=timedelta(seconds=settings.gap_cap_seconds),
        retention=timedelta(days=settings.raw_retention_days),
    )
    try:
        result = await ingest.store(conn, items, user_id=user.id, role=user.role, policy=policy)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise Unavailable(
            "The database failed while storing this batch; nothing from it was stored. "
            "Resend the same batch: resending is safe.",
            code="database_unavailable",
        ) from exc
    return JSONResponse(result.public())
