"""Readings into the database the way the service stores them, for every way in: POST
/v1/telemetry and the demo's simulated gateway."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from telemetry import ingest

if TYPE_CHECKING:
    from service.deps import Deps
    from telemetry.db import Conn


async def store_readings(
    deps: Deps, conn: Conn, items: Sequence[object], *, user_id: UUID, role: str
) -> ingest.IngestResult:
    """ingest.store under the service's policy, then what the process does with a stored
    batch: the live streams hear of it, the metrics count it. POST /v1/telemetry and the
    demo's simulated gateway (service.demo_command) both store this way."""
    settings = deps.settings
    policy = ingest.Policy(
        now=datetime.now(UTC),
        cap=timedelta(seconds=settings.gap_cap_seconds),
        retention=timedelta(days=settings.raw_retention_days),
    )
    result = await ingest.store(conn, items, user_id=user_id, role=role, policy=policy)
    # Committed: the live streams may hear of it now. publish() never waits.
    deps.live.publish(result.latest)
    deps.metrics.ingested(result)
    return result
