"""Analytics: p50/p95 latency of GET /energy for `day`, `week` and `30days` at 32
concurrent clients against one `wattwise serve` process, on a database of H households x
D devices x N days of 1-minute readings (default 10 x 20 x 90, about 26 million); baseline:
the naive query that integrates the raw readings of the same window, measured in the same
run, alone and at the same concurrency (32 connections running it back to back, straight
against PostgreSQL: no HTTP, so the baseline is, if anything, flattered).

    .venv/bin/python -m bench.analytics [--households 10] [--devices 20] [--days 90]
        [--clients 32] [--seconds 10]

The dataset is built once into a database named after its shape and kept for later runs
(`--rebuild` drops it first).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import httpx

from bench.service import percentile, running_service, token
from demo.seed import seed_household
from demo.synthetic import fleet
from telemetry import access, households, queries
from telemetry.db import connect
from telemetry.energy import INTERVALS_SQL
from telemetry.migrate import migrate
from telemetry.rollups import refresh_all
from telemetry.tariff import Tariff
from telemetry.windows import resolve

CAP = timedelta(minutes=15)
WINDOWS = ("day", "week", "30days")

NAIVE_SQL = f"""
WITH ranges AS (
    SELECT id AS device_id, $2::timestamptz AS a, $3::timestamptz AS b
      FROM unnest($1::uuid[]) AS d(id)
), {INTERVALS_SQL}
SELECT device_id,
       sum(GREATEST(watts, 0) * extract(epoch FROM LEAST(t_end, b) - GREATEST(ts, a))::float8)
           / 3600 AS wh_pos
  FROM iv WHERE LEAST(t_end, b) > GREATEST(ts, a) GROUP BY device_id
"""


async def build(dsn: str, households: int, devices: int, days: int) -> None:
    conn = await connect(dsn)
    try:
        await migrate(conn)
        if await conn.fetchval("SELECT count(*) FROM households") == households:
            return
        tariff = Tariff(
            currency="EUR",
            import_price_per_kwh=0.3,
            export_price_per_kwh=0.08,
            daily_fixed_charge=0.4,
        )
        end = datetime.now(UTC)
        for i, spec in enumerate(fleet(households, devices, seed=5)):
            started = time.perf_counter()
            seeded = await seed_household(
                conn, spec, tariff=tariff, days=days, seed=i, end=end, offline_device=None
            )
            print(
                f"  loaded {spec.name} ({spec.timezone}): {seeded.readings:,} readings in "
                f"{time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
        started = time.perf_counter()
        await refresh_all(conn, cap=CAP)
        print(f"  rolled up in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def computed(dsn: str, now: datetime) -> dict[str, float]:
    """Median seconds of the uncached report (telemetry.queries.energy_report) per window."""
    conn = await connect(dsn)
    try:
        homes = [
            h
            for h in [
                await households.get_household(conn, r["id"])
                for r in await conn.fetch("SELECT id FROM households ORDER BY id")
            ]
            if h is not None
        ]
        out = {}
        for name in WINDOWS:
            # Once untimed: a connection's first use of a statement pays for preparing it.
            window = resolve(name, timezone=homes[0].timezone, now=now)
            await queries.energy_report(conn, homes[0], window, now=now, cap=CAP)
            times = []
            for home in homes:
                window = resolve(name, timezone=home.timezone, now=now)
                started = time.perf_counter()
                await queries.energy_report(conn, home, window, now=now, cap=CAP)
                times.append(time.perf_counter() - started)
            out[name] = statistics.median(times)
        return out
    finally:
        await conn.close()


async def _naive_cases(
    conn: asyncpg.Connection, name: str, now: datetime
) -> list[tuple[list[object], datetime, datetime]]:
    """Per household: its device ids and the window's bounds."""
    cases = []
    for home in await conn.fetch("SELECT id, timezone FROM households ORDER BY id"):
        window = resolve(name, timezone=home["timezone"], now=now)
        ids = [
            r["id"]
            for r in await conn.fetch("SELECT id FROM devices WHERE household_id = $1", home["id"])
        ]
        cases.append((ids, window.start, window.end))
    return cases


async def _naive_connection(dsn: str) -> asyncpg.Connection:
    # The baseline gets its best plan: one made for each window's bounds, not the service's
    # generic plans (which would scan every reading for a query written like this).
    return await connect(dsn, plan_cache_mode="auto")


async def naive(dsn: str, now: datetime) -> dict[str, float]:
    """Median seconds of the raw-integration query per window, alone, over 3 households."""
    conn = await _naive_connection(dsn)
    try:
        out = {}
        for name in WINDOWS:
            times = []
            for ids, start, end in (await _naive_cases(conn, name, now))[:3]:
                started = time.perf_counter()
                await conn.fetch(NAIVE_SQL, ids, start, end, now, CAP)
                times.append(time.perf_counter() - started)
            out[name] = statistics.median(times)
        return out
    finally:
        await conn.close()


async def naive_loaded(
    dsn: str, now: datetime, name: str, clients: int, seconds: float
) -> tuple[float, float]:
    """(p50 s, p95 s) of the raw-integration query with `clients` connections running it
    back to back, like the service's clients: at least one query each, for `seconds`."""
    conns = [await _naive_connection(dsn) for _ in range(clients)]
    try:
        cases = await _naive_cases(conns[0], name, now)
        latencies: list[float] = []
        deadline = time.monotonic() + seconds

        async def client(conn: asyncpg.Connection, offset: int) -> None:
            i = offset
            while True:
                ids, start, end = cases[i % len(cases)]
                started = time.perf_counter()
                await conn.fetch(NAIVE_SQL, ids, start, end, now, CAP)
                latencies.append(time.perf_counter() - started)
                i += 1
                if time.monotonic() >= deadline:
                    return

        await asyncio.gather(*(client(c, n) for n, c in enumerate(conns)))
        return percentile(latencies, 0.50), percentile(latencies, 0.95)
    finally:
        for conn in conns:
            await conn.close()


async def load(
    url: str, token: str, homes: list[str], window: str, clients: int, seconds: float
) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}"}

    async def client(offset: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            i = offset
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = await http.get(
                    f"/v1/households/{homes[i % len(homes)]}/energy", params={"window": window}
                )
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
                i += 1

    await asyncio.gather(*(client(c) for c in range(clients)))
    return latencies


_WRK_SCRIPT = """
local homes = {%(homes)s}
local i = 0
request = function()
  i = i + 1
  local path = "/v1/households/" .. homes[(i %% #homes) + 1] .. "/energy?window=%(window)s"
  return wrk.format("GET", path, {["Authorization"] = "Bearer %(token)s"})
end
done = function(summary, latency, requests)
  io.write(string.format("WRK %%f %%f %%f\\n", latency:percentile(50) / 1e6,
    latency:percentile(95) / 1e6, summary.requests / (summary.duration / 1e6)))
end
"""


def wrk(
    url: str, token: str, homes: list[str], window: str, clients: int, seconds: float
) -> tuple[float, float, float]:
    """(p50 s, p95 s, req/s) from wrk, a load generator in C that leaves the CPU to the
    server; the Python client would take a core of the two this machine has."""
    script = _WRK_SCRIPT % {
        "homes": ",".join(f'"{h}"' for h in homes),
        "window": window,
        "token": token,
    }
    binary = shutil.which("wrk")
    assert binary is not None
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as f:
        f.write(script)
        f.flush()
        out = subprocess.run(
            [
                binary,
                f"-t{min(2, clients)}",
                f"-c{clients}",
                f"-d{seconds:.0f}s",
                "-s",
                f.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    p50, p95, rate = (float(v) for v in line.split()[1:])
    return p50, p95, rate


async def dataset(
    households: int = 10, devices: int = 20, days: int = 90, *, rebuild: bool = False
) -> str:
    """The DSN of the benchmark database of this shape, created and loaded if need be."""
    admin_dsn = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"wattwise_bench_analytics_{households}x{devices}x{days}"
    dsn = urlsplit(admin_dsn)._replace(path=f"/{name}").geturl()
    admin = await asyncpg.connect(admin_dsn)
    try:
        if rebuild:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await build(dsn, households, devices, days)
    return dsn


async def main_async(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    dsn = await dataset(args.households, args.devices, args.days, rebuild=args.rebuild)
    conn = await connect(dsn)
    readings = await conn.fetchval("SELECT count(*) FROM readings")
    user = await access.get_user_by_email(conn, "bench@example.test") or await access.create_user(
        conn, email="bench@example.test", role="admin"
    )
    homes = [str(r["id"]) for r in await conn.fetch("SELECT id FROM households ORDER BY id")]
    await conn.close()
    print(
        f"dataset: {len(homes)} households, {readings:,} readings "
        f"(ready in {time.perf_counter() - started:.0f} s)",
        file=sys.stderr,
    )
    baseline = await naive(dsn, datetime.now(UTC))
    uncached = await computed(dsn, datetime.now(UTC))
    for window in WINDOWS:
        ms, naive_ms = uncached[window] * 1000, baseline[window] * 1000
        print(
            f"energy[{window}] computed: p50 {ms:.1f} ms uncached, in process (baseline: naive "
            f"raw integration {naive_ms:.1f} ms, ratio: {naive_ms / ms:.1f}x)"
        )

    async with running_service(dsn) as url:
        bearer = token(user.id)
        await load(url, bearer, homes, "day", args.clients, 2)  # warm-up
        use_wrk = shutil.which("wrk") is not None
        print(f"load generator: {'wrk' if use_wrk else 'httpx (install wrk for a fairer one)'}")
        loaded: dict[str, tuple[float, float, float]] = {}
        for window in WINDOWS:
            if use_wrk:
                single, _, _ = wrk(url, bearer, homes, window, 1, 3)
                p50, p95, rate = wrk(url, bearer, homes, window, args.clients, args.seconds)
            else:
                single = percentile(await load(url, bearer, homes, window, 1, 3), 0.50)
                latencies = await load(url, bearer, homes, window, args.clients, args.seconds)
                p50, p95 = percentile(latencies, 0.50), percentile(latencies, 0.95)
                rate = len(latencies) / args.seconds
            naive_ms = baseline[window] * 1000
            print(
                f"energy[{window}] alone: p50 {single * 1000:.1f} ms at 1 client (baseline: "
                f"naive raw integration {naive_ms:.1f} ms, "
                f"ratio: {naive_ms / (single * 1000):.1f}x)"
            )
            loaded[window] = (p50, p95, rate)
    # The naive query under the same load, once the service is stopped: 32 connections
    # running it back to back, as the 32 clients did the endpoint.
    for window in WINDOWS:
        p50, p95, rate = loaded[window]
        n50, n95 = await naive_loaded(dsn, datetime.now(UTC), window, args.clients, args.seconds)
        print(
            f"energy[{window}]: p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms at "
            f"{args.clients} clients, {rate:.0f} req/s (baseline: naive raw integration at "
            f"{args.clients} clients p50 {n50 * 1000:.0f} ms, p95 {n95 * 1000:.0f} ms, "
            f"ratio: {n50 / p50:.1f}x at p50, {n95 / p95:.1f}x at p95)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=10)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rebuild", action="store_true")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
