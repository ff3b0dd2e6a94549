"""Ingest, database path: readings/s through telemetry.ingest.store (checks, insert, hot
table, dirty ranges, in 50,000-reading batches) against a plain COPY of the same rows into
a bare table with the same columns and primary key (a hypertable too where readings is
one), measured in the same run.

    .venv/bin/python -m bench.ingest_db [--readings N] [--dsn ADMIN_DSN ...]

Each DSN names a server where the script may create and drop a scratch database; by default
DATABASE_URL (or 127.0.0.1:5432) and WATTWISE_TEST_TIMESCALE_URL when set.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg

from demo.synthetic import fleet, generate
from telemetry import access, households, ingest
from telemetry.db import connect
from telemetry.migrate import migrate
from telemetry.tariff import Tariff

BATCH = 50_000


def _db(dsn: str, name: str) -> str:
    return urlsplit(dsn)._replace(path=f"/{name}").geturl()


async def prepare(
    conn: asyncpg.Connection, readings: int
) -> tuple[list[dict[str, object]], list[tuple[UUID, datetime, float]]]:
    spec = fleet(1, 20, seed=11)[0]
    tariff = Tariff(currency="EUR", import_price_per_kwh=0.3, export_price_per_kwh=0.1)
    home = await households.create_household(
        conn, name="bench", timezone=spec.timezone, tariff=tariff
    )
    ids = {}
    for d in spec.devices:
        device = await households.create_device(
            conn,
            household_id=home.id,
            name=d.name,
            kind=d.kind,
            controllable=d.controllable,
            max_watts=d.max_watts,
        )
        ids[d.key] = device.id
    minutes = readings / len(spec.devices)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes + 10)
    generated = list(
        itertools.islice(
            generate(
                spec,
                start=start,
                days=minutes / 1440 + 0.01,
                seed=3,
                gaps=False,
                shuffle_arrivals=False,
            ),
            readings,
        )
    )
    items = [
        {"device_id": str(ids[r.device_key]), "ts": r.ts.isoformat(), "watts": r.watts}
        for r in generated
    ]
    rows = [(ids[r.device_key], r.ts, r.watts) for r in generated]
    return items, rows


async def bench(admin_dsn: str, label: str, readings: int) -> None:
    name = f"wattwise_bench_{os.getpid()}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await connect(_db(admin_dsn, name))
        try:
            await migrate(conn)
            items, rows = await prepare(conn, readings)
            admin_user = await access.create_user(conn, email="bench@example.test", role="admin")
            await conn.execute(
                "CREATE TABLE bare (device_id uuid, ts timestamptz, watts float8,"
                " PRIMARY KEY (device_id, ts))"
            )
            # Equivalent storage: where readings is a hypertable, so is the bare table.
            if await conn.fetchval(
                "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"
            ):
                await conn.execute(
                    "SELECT create_hypertable('bare', by_range('ts', INTERVAL '1 day'))"
                )
            policy = ingest.Policy(
                now=datetime.now(UTC), cap=timedelta(minutes=15), retention=timedelta(days=90)
            )
            # Batch by batch, the baseline then wattwise, so both run under the same
            # conditions (the machine's other load, the server's checkpoints).
            await conn.execute("CHECKPOINT")
            copy_seconds = ingest_seconds = 0.0
            accepted = 0
            for i in range(0, len(rows), BATCH):
                started = time.perf_counter()
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "bare", records=rows[i : i + BATCH], columns=["device_id", "ts", "watts"]
                    )
                copy_seconds += time.perf_counter() - started
                started = time.perf_counter()
                result = await ingest.store(
                    conn, items[i : i + BATCH], user_id=admin_user.id, role="admin", policy=policy
                )
                ingest_seconds += time.perf_counter() - started
                accepted += result.accepted
            copy_rate = len(rows) / copy_seconds
            ingest_rate = len(items) / ingest_seconds
            assert accepted == len(items), (accepted, len(items))
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(
        f"ingest_db[{label}]: {ingest_rate:,.0f} readings/s "
        f"(baseline: bare COPY {copy_rate:,.0f} readings/s, ratio: {ingest_rate / copy_rate:.2f}x)"
        f" over {len(items):,} readings"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=500_000)
    parser.add_argument("--dsn", action="append", default=None)
    args = parser.parse_args()
    targets = [
        (
            "postgres",
            os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        )
    ]
    if os.environ.get("WATTWISE_TEST_TIMESCALE_URL"):
        targets.append(("timescaledb", os.environ["WATTWISE_TEST_TIMESCALE_URL"]))
    if args.dsn:
        targets = [(f"dsn{i}", d) for i, d in enumerate(args.dsn)]
    for label, dsn in targets:
        asyncio.run(bench(dsn, label, args.readings))


if __name__ == "__main__":
    main()
