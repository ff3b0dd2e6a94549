"""Energy integration in SQL, the one place that turns readings into watt-hours.

A reading's watts hold from its timestamp until the device's next reading, at most the gap
cap, and never past `now`. An interval is clipped to the range being integrated, so energy
is split at every bucket and window boundary. Wh = W x s / 3600 in float64.

A window's figure is the sum of rolled-up buckets where they are current (whole days,
whole hours, quarter hours at the edges) and of raw readings everywhere else (the window's
ragged edges, the recent tail, dirty ranges), all read by one statement, so from one
snapshot. Each rollup level and each raw range is read through a LATERAL subquery: one
index range scan per device, whatever the planner estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from telemetry.db import Conn

BUCKET = timedelta(minutes=15)
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
ORIGIN_SQL = "timestamptz '2000-01-01 00:00Z'"

# Intervals of the readings that can reach into the ranges g(device_id, a, b): a reading
# before a - cap is capped before a, and any next reading that ends an interval starting
# before b lies before b + cap. $4 is now, $5 the cap. `capped` marks an interval the cap
# shortened; it is counted at the instant ts + cap.
INTERVALS_SQL = """
iv AS (
    SELECT g.device_id, g.a, g.b, r.ts, r.watts,
           LEAST(coalesce(r.next_ts, $4::timestamptz), r.ts + $5::interval,
                 $4::timestamptz) AS t_end,
           coalesce(r.next_ts, $4::timestamptz) > r.ts + $5::interval AS capped
      FROM ranges g
     CROSS JOIN LATERAL (
           -- Per range, so each is one index range scan, whatever the planner estimates.
           SELECT x.ts, x.watts, lead(x.ts) OVER (ORDER BY x.ts) AS next_ts
             FROM readings x
            WHERE x.device_id = g.device_id
              AND x.ts >= g.a - $5::interval AND x.ts < g.b + $5::interval
           ) r
     WHERE g.a < g.b
)"""

# Every interval piece that falls in a 15-minute bucket, clipped to its range: the one
# splitting rule shared by the refresher and by reads of a series.
PIECES_SQL = f"""
pieces AS (
    SELECT iv.device_id, bk AS bucket,
           iv.watts * extract(epoch FROM LEAST(iv.t_end, bk + interval '15 minutes', iv.b)
                                        - GREATEST(iv.ts, bk, iv.a))::float8 AS wsec
      FROM iv,
           LATERAL generate_series(
               date_bin('15 minutes', GREATEST(iv.ts, iv.a), {ORIGIN_SQL}),
               LEAST(iv.t_end, iv.b) - interval '1 microsecond',
               interval '15 minutes') AS bk
     WHERE LEAST(iv.t_end, iv.b) > GREATEST(iv.ts, iv.a)
)"""

# $1 device ids, $2 window start, $3 window end, $4 now, $5 cap,
# $6 the first bucket boundary at or after the start, $7 the last one at or before the end.
# Per device, buckets in [$6, hi) come from the rollups; hi stops at the watermark and at
# the device's earliest dirty range. The ranges [start, $6) and [hi, end) are read raw.
_PLAN_SQL = f"""
WITH dev AS (
    SELECT d.id AS device_id,
           GREATEST($6::timestamptz, LEAST(
               $7::timestamptz,
               s.rolled_until,
               coalesce((SELECT min(x.from_ts) FROM rollup_dirty x WHERE x.device_id = d.id),
                        'infinity'))) AS hi
      FROM unnest($1::uuid[]) AS d(id), rollup_state s
), ranges AS (
    SELECT device_id, $2::timestamptz AS a, LEAST($6::timestamptz, $3::timestamptz) AS b
      FROM dev
    UNION ALL
    SELECT device_id, GREATEST(hi, LEAST($6::timestamptz, $3::timestamptz)), $3::timestamptz
      FROM dev
), {INTERVALS_SQL}"""

# (rollup level, first bucket, end): the five parts of a device's rolled range, in `spans`.
_LEVEL_PARTS = (
    ("rollup_15m", "s.lo", "s.h_lo"),
    ("rollup_1h", "s.h_lo", "s.d_lo"),
    ("rollup_1d", "s.d_lo", "s.d_hi"),
    ("rollup_1h", "s.d_hi", "s.h_hi"),
    ("rollup_15m", "s.h_hi", "s.hi"),
)
_ROLLED_PARTS = "\n    UNION ALL\n".join(
    f"""    SELECT s.device_id, x.wh_pos, x.wh_neg, x.gaps FROM spans s CROSS JOIN LATERAL (
        SELECT sum(r.wh_pos) AS wh_pos, sum(r.wh_neg) AS wh_neg, sum(r.capped_gaps) AS gaps
          FROM {table} r
         WHERE r.device_id = s.device_id AND r.bucket >= {first} AND r.bucket < {stop}
    ) x"""
    for table, first, stop in _LEVEL_PARTS
)

# Each device's rolled range [lo, hi) splits into quarter hours at its edges, whole hours
# next to them and whole days in the middle: [lo, h_lo) [h_lo, d_lo) [d_lo, d_hi)
# [d_hi, h_hi) [h_hi, hi), any of them possibly empty.
_WINDOW_SQL = f"""{_PLAN_SQL}, lv AS (
    SELECT device_id, $6::timestamptz AS lo, hi,
           LEAST(hi, date_bin('1 hour', $6::timestamptz + interval '1 hour'
                                        - interval '1 microsecond', {ORIGIN_SQL})) AS h_lo,
           date_bin('1 hour', hi, {ORIGIN_SQL}) AS h_floor
      FROM dev
), lv2 AS (
    SELECT device_id, lo, hi, h_lo, GREATEST(h_floor, h_lo) AS h_hi FROM lv
), levels AS (
    SELECT device_id, lo, hi, h_lo, h_hi,
           LEAST(h_hi, date_bin('1 day', h_lo + interval '1 day' - interval '1 microsecond',
                                {ORIGIN_SQL})) AS d_lo,
           date_bin('1 day', h_hi, {ORIGIN_SQL}) AS d_floor
      FROM lv2
), spans AS (
    SELECT device_id, lo, hi, h_lo, h_hi, d_lo, GREATEST(d_floor, d_lo) AS d_hi FROM levels
), rolled_parts AS (
    -- One index range scan per device and level (LATERAL), never a scan of a level.
{_ROLLED_PARTS}
), rolled AS (
    SELECT device_id, sum(wh_pos) AS wh_pos, sum(wh_neg) AS wh_neg, sum(gaps) AS gaps
      FROM rolled_parts GROUP BY device_id
), raw AS (
    SELECT device_id,
           sum(GREATEST(watts, 0)
               * extract(epoch FROM LEAST(t_end, b) - GREATEST(ts, a))::float8) / 3600 AS wh_pos,
           sum(GREATEST(-watts, 0)
               * extract(epoch FROM LEAST(t_end, b) - GREATEST(ts, a))::float8) / 3600 AS wh_neg
      FROM iv
     WHERE LEAST(t_end, b) > GREATEST(ts, a)
     GROUP BY device_id
), raw_gaps AS (
    SELECT device_id, count(*) AS gaps
      FROM iv
     WHERE capped AND ts + $5::interval >= a AND ts + $5::interval < b
     GROUP BY device_id
)
SELECT dev.device_id,
       coalesce(rolled.wh_pos, 0) + coalesce(raw.wh_pos, 0) AS wh_pos,
       coalesce(rolled.wh_neg, 0) + coalesce(raw.wh_neg, 0) AS wh_neg,
       (coalesce(rolled.gaps, 0) + coalesce(raw_gaps.gaps, 0))::int AS gaps
  FROM dev
  LEFT JOIN rolled ON rolled.device_id = dev.device_id
  LEFT JOIN raw ON raw.device_id = dev.device_id
  LEFT JOIN raw_gaps ON raw_gaps.device_id = dev.device_id
"""

# The same figure per 15-minute bucket (a bucket cut by the window's edge keys on its start).
_SERIES_SQL = f"""{_PLAN_SQL}, {PIECES_SQL}, parts AS (
    SELECT dev.device_id, r.bucket, r.wh_pos, r.wh_neg
      FROM dev CROSS JOIN LATERAL (
           SELECT q.bucket, q.wh_pos, q.wh_neg FROM rollup_15m q
            WHERE q.device_id = dev.device_id AND q.bucket >= $6 AND q.bucket < dev.hi
           ) r
    UNION ALL
    SELECT device_id, bucket, sum(GREATEST(wsec, 0)) / 3600, sum(GREATEST(-wsec, 0)) / 3600
      FROM pieces GROUP BY device_id, bucket
)
SELECT device_id, bucket, sum(wh_pos) AS wh_pos, sum(wh_neg) AS wh_neg
  FROM parts GROUP BY device_id, bucket ORDER BY device_id, bucket
"""


@dataclass(frozen=True)
class DeviceEnergy:
    """Energy of one device over a range: the positive and the negative part, both >= 0."""

    wh_pos: float
    wh_neg: float
    capped_gaps: int


def floor_to(ts: datetime, width: timedelta) -> datetime:
    return ts - (ts - _EPOCH) % width


def ceil_to(ts: datetime, width: timedelta) -> datetime:
    floor = floor_to(ts, width)
    return floor if floor == ts else floor + width


def floor_bucket(ts: datetime) -> datetime:
    return floor_to(ts, BUCKET)


def ceil_bucket(ts: datetime) -> datetime:
    return ceil_to(ts, BUCKET)


async def device_energy(
    conn: Conn,
    device_ids: list[UUID],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    cap: timedelta,
) -> dict[UUID, DeviceEnergy]:
    """Energy of each device over [start, end), current to `now`."""
    rows = await conn.fetch(
        _WINDOW_SQL, device_ids, start, end, now, cap, *_bounds(start, end, now)
    )
    # + 0.0 turns the -0.0 that GREATEST(-0.0, 0) can give into 0.0.
    return {
        r["device_id"]: DeviceEnergy(r["wh_pos"] + 0.0, r["wh_neg"] + 0.0, r["gaps"]) for r in rows
    }


@dataclass(frozen=True)
class BucketEnergy:
    bucket: datetime
    wh_pos: float
    wh_neg: float


def _bounds(start: datetime, end: datetime, now: datetime) -> tuple[datetime, datetime]:
    return ceil_bucket(start), floor_bucket(min(end, now))


async def bucket_energy(
    conn: Conn,
    device_ids: list[UUID],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    cap: timedelta,
) -> dict[UUID, list[BucketEnergy]]:
    """Energy of each device per 15-minute bucket of [start, end), buckets in order; a
    bucket with no energy is absent."""
    rows = await conn.fetch(
        _SERIES_SQL, device_ids, start, end, now, cap, *_bounds(start, end, now)
    )
    series: dict[UUID, list[BucketEnergy]] = {d: [] for d in device_ids}
    for r in rows:
        series[r["device_id"]].append(
            BucketEnergy(r["bucket"], r["wh_pos"] + 0.0, r["wh_neg"] + 0.0)
        )
    return series
