"""Migrations: applied once under concurrency, recorded, guarded against edits; the schema
they build refuses non-finite watts and is a hypertable on TimescaleDB."""

from __future__ import annotations

import asyncio
import math
import os
import sys

import asyncpg
import pytest

from telemetry.db import connect
from telemetry.migrate import MigrationError, load_migrations, migrate, pending
from tests.integration.conftest import Database


async def test_two_concurrent_migrations_apply_each_migration_once(empty_db: Database) -> None:
    conns = [await connect(empty_db.dsn) for _ in range(2)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        versions = await conns[0].fetch(
            "SELECT version, count(*) AS n FROM wattwise_migrations GROUP BY version"
        )
    finally:
        for c in conns:
            await c.close()
    applied = sorted(len(r) for r in results)
    assert applied == [0, len(load_migrations())]
    assert {r["version"]: r["n"] for r in versions} == {m.version: 1 for m in load_migrations()}


async def test_two_migrate_processes_started_together_both_succeed(empty_db: Database) -> None:
    env = {**os.environ, "DATABASE_URL": empty_db.dsn, "WATTWISE_ENV": "development"}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service.cli",
            "migrate",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = await asyncio.gather(*(p.communicate() for p in procs))
    assert [p.returncode for p in procs] == [0, 0], outputs
    conn = await connect(empty_db.dsn)
    try:
        count = await conn.fetchval("SELECT count(*) FROM wattwise_migrations")
        assert await pending(conn) == []
    finally:
        await conn.close()
    assert count == len(load_migrations())


async def test_an_edited_migration_stops_migrate(db: Database) -> None:
    conn = await connect(db.dsn)
    try:
        await conn.execute("UPDATE wattwise_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(MigrationError, match="edited"):
            await migrate(conn)
    finally:
        await conn.close()


async def test_a_database_newer_than_the_code_stops_migrate(db: Database) -> None:
    conn = await connect(db.dsn)
    try:
        await conn.execute(
            "INSERT INTO wattwise_migrations (version, name, checksum) VALUES (9999, 'future', 'x')"
        )
        with pytest.raises(MigrationError, match="newer"):
            await migrate(conn)
    finally:
        await conn.close()


async def _device(conn: asyncpg.Connection) -> object:
    household = await conn.fetchval(
        "INSERT INTO households (name, timezone, currency, tariff)"
        " VALUES ('h', 'UTC', 'EUR', '{}') RETURNING id"
    )
    return await conn.fetchval(
        "INSERT INTO devices (household_id, name, kind, max_watts)"
        " VALUES ($1, 'Heater', 'consumer', 3000) RETURNING id",
        household,
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
async def test_the_database_refuses_non_finite_watts(db: Database, value: float) -> None:
    conn = await connect(db.dsn)
    try:
        device = await _device(conn)
        with pytest.raises(asyncpg.CheckViolationError, match="readings_watts_finite"):
            await conn.execute(
                "INSERT INTO readings (device_id, ts, watts) VALUES ($1, now(), $2)",
                device,
                value,
            )
        await conn.execute(
            "INSERT INTO readings (device_id, ts, watts) VALUES ($1, now(), -1.5e300)", device
        )
    finally:
        await conn.close()


async def test_device_names_are_unique_per_household_ignoring_case(db: Database) -> None:
    conn = await connect(db.dsn)
    try:
        device = await _device(conn)
        household = await conn.fetchval("SELECT household_id FROM devices WHERE id = $1", device)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO devices (household_id, name, kind, max_watts)"
                " VALUES ($1, 'HEATER', 'consumer', 1)",
                household,
            )
    finally:
        await conn.close()


async def test_readings_is_a_hypertable_exactly_on_timescaledb(db: Database) -> None:
    conn = await connect(db.dsn)
    try:
        has_tsdb = await conn.fetchval(
            "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"
        )
        if db.backend == "timescaledb":
            assert has_tsdb == 1
            dims = await conn.fetch(
                "SELECT column_name FROM timescaledb_information.dimensions"
                " WHERE hypertable_name = 'readings'"
            )
            assert [d["column_name"] for d in dims] == ["ts"]
        else:
            assert has_tsdb == 0
            kind = await conn.fetchval("SELECT relkind FROM pg_class WHERE relname = 'readings'")
            assert kind == b"r"  # an ordinary table ("char" arrives as bytes)
        device = await _device(conn)
        await conn.execute(
            "INSERT INTO readings (device_id, ts, watts) VALUES ($1, now(), 5)", device
        )
        assert await conn.fetchval("SELECT count(*) FROM readings") == 1
    finally:
        await conn.close()
