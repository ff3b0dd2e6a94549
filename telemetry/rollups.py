"""Incremental rollups: recompute the 15-minute buckets that new or late readings touched,
advance the watermark, and drop raw readings past their retention.

Ingestion marks dirty ranges; a refresh recomputes only the buckets inside them that have
ended, and keeps the part of a range that lies ahead of the new watermark for the next
refresh. It reads one snapshot (REPEATABLE READ) and deletes only the dirty rows it saw,
so a batch committed meanwhile stays dirty and is picked up next time. Concurrent
refreshers (several processes) queue on an advisory lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg

from telemetry.energy import (
    INTERVALS_SQL,
    ORIGIN_SQL,
    PIECES_SQL,
    ceil_bucket,
    ceil_to,
    floor_bucket,
    floor_to,
)

if TYPE_CHECKING:
    from telemetry.db import Conn

log = logging.getLogger("wattwise.rollups")

REFRESH_LOCK_KEY = 0x726F6C6C7570  # "rollup"
MAX_DIRTY_ROWS = 20_000
# Raw readings are kept a day past the retention, so a recompute at the oldest accepted
# instant (retention + gap cap back) still finds the readings before it.
RETENTION_MARGIN = timedelta(days=1)

_BUCKETS_SQL = f"""
WITH ranges AS (
    SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS g(device_id, a, b)
), {INTERVALS_SQL}, {PIECES_SQL}, energy AS (
    SELECT device_id, bucket,
           sum(GREATEST(wsec, 0)) / 3600 AS wh_pos,
           sum(GREATEST(-wsec, 0)) / 3600 AS wh_neg
      FROM pieces GROUP BY device_id, bucket
), gaps AS (
    SELECT device_id, date_bin('15 minutes', ts + $5::interval, {ORIGIN_SQL}) AS bucket,
           count(*) AS n
      FROM iv
     WHERE capped AND ts + $5::interval >= a AND ts + $5::interval < b
     GROUP BY 1, 2
)
INSERT INTO rollup_15m (device_id, bucket, wh_pos, wh_neg, capped_gaps)
SELECT coalesce(e.device_id, g.device_id), coalesce(e.bucket, g.bucket),
       coalesce(e.wh_pos, 0), coalesce(e.wh_neg, 0), coalesce(g.n, 0)::int
  FROM energy e
  FULL JOIN gaps g ON g.device_id = e.device_id AND g.bucket = e.bucket
"""


# Clears the buckets of one level ({level}, a table name) in the ranges g(device_id, a, b).
_CLEAR_SQL = """
DELETE FROM {level} r
 USING unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS g(device_id, a, b)
 WHERE r.device_id = g.device_id AND r.bucket >= g.a AND r.bucket < g.b
"""

# A coarser level is the sum of the level below over the ranges g(device_id, a, b), which
# are aligned to the coarser bucket; {fine} and {coarse} are table names, {width} its width.
_COARSE_SUM_SQL = f"""
INSERT INTO {{coarse}} (device_id, bucket, wh_pos, wh_neg, capped_gaps)
SELECT f.device_id, date_bin('{{width}}', f.bucket, {ORIGIN_SQL}),
       sum(f.wh_pos), sum(f.wh_neg), sum(f.capped_gaps)
  FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS g(device_id, a, b)
  JOIN {{fine}} f ON f.device_id = g.device_id AND f.bucket >= g.a AND f.bucket < g.b
 GROUP BY 1, 2
"""
_LEVELS = (
    ("rollup_15m", "rollup_1h", "1 hour", timedelta(hours=1)),
    ("rollup_1h", "rollup_1d", "1 day", timedelta(days=1)),
)


def _aligned(
    ranges: list[tuple[UUID, datetime, datetime]], width: timedelta
) -> list[tuple[UUID, datetime, datetime]]:
    """The ranges widened to whole buckets of `width`, merged again so none overlap."""
    return _merge([(d, floor_to(a, width), ceil_to(b, width)) for d, a, b in ranges])


async def _roll_up_coarser(conn: Conn, ranges: list[tuple[UUID, datetime, datetime]]) -> None:
    for fine, coarse, width_sql, width in _LEVELS:
        ranges = _aligned(ranges, width)
        columns = ([r[0] for r in ranges], [r[1] for r in ranges], [r[2] for r in ranges])
        await conn.execute(_CLEAR_SQL.format(level=coarse), *columns)
        await conn.execute(
            _COARSE_SUM_SQL.format(coarse=coarse, fine=fine, width=width_sql), *columns
        )


class CapChanged(RuntimeError):
    """The rollups were computed with another gap cap; `wattwise refresh --rebuild`."""


@dataclass(frozen=True)
class RefreshResult:
    rolled_until: datetime
    ranges: int
    buckets: int
    more: bool


def _merge(spans: list[tuple[UUID, datetime, datetime]]) -> list[tuple[UUID, datetime, datetime]]:
    """Union overlapping or touching ranges per device."""
    merged: list[tuple[UUID, datetime, datetime]] = []
    for device, a, b in sorted(spans):
        if merged and merged[-1][0] == device and a <= merged[-1][2]:
            merged[-1] = (device, merged[-1][1], max(merged[-1][2], b))
        else:
            merged.append((device, a, b))
    return merged


async def refresh(
    conn: Conn, *, cap: timedelta, now: datetime | None = None, limit: int = MAX_DIRTY_ROWS
) -> RefreshResult | None:
    """One refresh step; None when another process holds the refresh lock."""
    async with conn.transaction(isolation="repeatable_read"):
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", REFRESH_LOCK_KEY):
            return None
        state = await conn.fetchrow(
            "SELECT rolled_until, gap_cap_seconds, now() AS db_now FROM rollup_state"
        )
        assert state is not None
        if state["gap_cap_seconds"] not in (None, int(cap.total_seconds())):
            raise CapChanged(
                f"rollups were computed with a {state['gap_cap_seconds']} s gap cap, the "
                f"service now uses {int(cap.total_seconds())} s: run `wattwise refresh --rebuild`"
            )
        at = now or state["db_now"]
        target = floor_bucket(at)
        # Only what lies below the target: a remainder moved to the target by this refresh
        # waits for the next one.
        dirty = await conn.fetch(
            "SELECT id, device_id, from_ts, to_ts FROM rollup_dirty"
            " WHERE from_ts < $1 ORDER BY id LIMIT $2",
            target,
            limit,
        )
        ranges = _merge(
            [(d["device_id"], d["from_ts"], min(ceil_bucket(d["to_ts"]), target)) for d in dirty]
        )
        buckets = "INSERT 0 0"
        if ranges:
            columns = ([r[0] for r in ranges], [r[1] for r in ranges], [r[2] for r in ranges])
            await conn.execute(_CLEAR_SQL.format(level="rollup_15m"), *columns)
            buckets = await conn.execute(_BUCKETS_SQL, *columns, at, cap)
            await _roll_up_coarser(conn, ranges)
        done = [d["id"] for d in dirty if d["to_ts"] <= target]
        ahead = [d["id"] for d in dirty if d["to_ts"] > target]
        await conn.execute("DELETE FROM rollup_dirty WHERE id = ANY($1::bigint[])", done)
        await conn.execute(
            "UPDATE rollup_dirty SET from_ts = GREATEST(from_ts, $2) WHERE id = ANY($1::bigint[])",
            ahead,
            target,
        )
        await conn.execute(
            "UPDATE rollup_state SET rolled_until = GREATEST(rolled_until, $1),"
            " gap_cap_seconds = $2, refreshed_at = $3",
            target,
            int(cap.total_seconds()),
            at,
        )
    return RefreshResult(
        rolled_until=target,
        ranges=len(ranges),
        buckets=int(buckets.split()[-1]),
        more=len(dirty) == limit,
    )


async def refresh_all(conn: Conn, *, cap: timedelta, now: datetime | None = None) -> int:
    """Refresh until no dirty range is left below the watermark; returns buckets written."""
    total = 0
    while True:
        result = await refresh(conn, cap=cap, now=now)
        if result is None:
            return total
        total += result.buckets
        if not result.more:
            return total


async def rebuild(conn: Conn, *, cap: timedelta) -> int:
    """Recompute every bucket that raw readings still cover: after a gap-cap change.

    Buckets older than the oldest raw reading are kept as they are (their readings are past
    retention), so history is never lost, though it keeps the cap it was computed with.
    """
    async with conn.transaction():
        await conn.execute("LOCK TABLE rollup_state")
        for table, width in (
            ("rollup_15m", "15 minutes"),
            ("rollup_1h", "1 hour"),
            ("rollup_1d", "1 day"),
        ):
            await conn.execute(
                f"""
                DELETE FROM {table} r
                 USING (SELECT device_id, date_bin('{width}', min(ts), {ORIGIN_SQL}) AS first
                          FROM readings GROUP BY device_id) f
                 WHERE r.device_id = f.device_id AND r.bucket >= f.first
                """
            )
        await conn.execute("DELETE FROM rollup_dirty")
        await conn.execute(
            f"""
            INSERT INTO rollup_dirty (device_id, from_ts, to_ts)
            SELECT device_id, date_bin('15 minutes', min(ts), {ORIGIN_SQL}), max(ts) + $1::interval
              FROM readings GROUP BY device_id
            """,
            cap,
        )
        await conn.execute(
            "UPDATE rollup_state SET rolled_until = '-infinity', gap_cap_seconds = NULL"
        )
    return await refresh_all(conn, cap=cap)


async def drop_expired(conn: Conn, *, retention: timedelta, now: datetime) -> int:
    """Remove raw readings past the retention (plus a day); rollups are kept.

    drop_chunks on TimescaleDB, batched deletes on plain PostgreSQL.
    """
    cutoff = now - retention - RETENTION_MARGIN
    hypertable = await conn.fetchval(
        "SELECT count(*) > 0 FROM pg_extension WHERE extname = 'timescaledb'"
    )
    removed = 0
    if hypertable:
        dropped = await conn.fetch(
            "SELECT drop_chunks('readings', older_than => $1::timestamptz)", cutoff
        )
        removed += len(dropped)
    while True:
        # On TimescaleDB this clears what the chunk that straddles the cutoff still holds.
        # By key, not ctid: a ctid is only unique within one chunk of a hypertable.
        status = await conn.execute(
            "DELETE FROM readings WHERE (device_id, ts) IN ("
            " SELECT device_id, ts FROM readings WHERE ts < $1 LIMIT 10000)",
            cutoff,
        )
        count = int(status.split()[-1])
        removed += count
        if count == 0:
            break
    await conn.execute("DELETE FROM rejected_readings WHERE ts < $1", cutoff)
    return removed


# Ranges counted at most: a status probe must stay cheap after a large backfill.
MAX_DIRTY_COUNTED = 100_000

_STATUS_SQL = """
SELECT CASE WHEN isfinite(rolled_until)
            THEN extract(epoch FROM now() - rolled_until)::float8 END AS lag,
       extract(epoch FROM now() - refreshed_at)::float8 AS refresh_age
  FROM rollup_state
"""


@dataclass(frozen=True)
class RollupStatus:
    """How far the rollups are behind: `lag` is the age of the newest rolled-up bucket's
    end (None before the first refresh), `refresh_age` the time since the last refresh."""

    lag: float | None
    refresh_age: float | None


async def status(conn: Conn) -> RollupStatus:
    row = await conn.fetchrow(_STATUS_SQL)
    assert row is not None
    return RollupStatus(row["lag"], row["refresh_age"])


async def dirty_ranges(conn: Conn) -> int:
    """Ranges waiting for a refresh, counted up to MAX_DIRTY_COUNTED."""
    count: int = await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM rollup_dirty LIMIT {MAX_DIRTY_COUNTED}) d"
    )
    return count


class Refresher:
    """The background task of a service process: refresh every `interval` seconds."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        cap: timedelta,
        retention: timedelta,
        interval: float,
    ) -> None:
        self._pool = pool
        self._cap = cap
        self._retention = retention
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._expired_at: datetime | None = None

    async def run_once(self) -> None:
        async with self._pool.acquire() as conn:
            # Maintenance, not a request: a backlog after downtime may take longer than a
            # request's statement_timeout. RESET brings back the pool's value afterwards.
            await conn.execute("SET statement_timeout = 0")
            try:
                await refresh_all(conn, cap=self._cap)
                now = await conn.fetchval("SELECT now()")
                if self._expired_at is None or now - self._expired_at > timedelta(hours=1):
                    await drop_expired(conn, retention=self._retention, now=now)
                    self._expired_at = now
            finally:
                await conn.execute("RESET statement_timeout")

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except (OSError, asyncpg.PostgresError, CapChanged) as exc:
                # A database hiccup must not end the loop; the next round retries.
                log.warning("rollup refresh failed: %s", exc)
            await asyncio.sleep(self._interval)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="wattwise-refresher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
