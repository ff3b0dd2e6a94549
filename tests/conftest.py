"""Shared test configuration: which servers the suite runs against, and the header that
says so (names and versions) at the top of every run."""

from __future__ import annotations

import asyncio
import os

import asyncpg
import pytest
import redis.asyncio as aioredis

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def backend_dsns() -> dict[str, str | None]:
    """Backend name -> admin DSN (one allowed to CREATE DATABASE), None if not configured."""
    return {
        "postgres": os.environ.get("DATABASE_URL") or DEFAULT_POSTGRES,
        "timescaledb": os.environ.get("WATTWISE_TEST_TIMESCALE_URL") or None,
    }


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS


async def _describe() -> list[str]:
    lines = []
    for name, dsn in backend_dsns().items():
        if dsn is None:
            lines.append(f"{name}: not configured (WATTWISE_TEST_TIMESCALE_URL)")
            continue
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
            try:
                version = await conn.fetchval("SHOW server_version")
                tsdb = await conn.fetchval(
                    "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
                )
            finally:
                await conn.close()
            extra = f", TimescaleDB {tsdb} available" if tsdb else ""
            lines.append(f"{name}: PostgreSQL {version}{extra} at {dsn}")
        except (OSError, asyncpg.PostgresError) as exc:
            lines.append(f"{name}: unreachable at {dsn} ({exc})")
    client = aioredis.Redis.from_url(redis_url())
    try:
        info = await client.info("server")
        lines.append(f"redis: Redis {info['redis_version']} at {redis_url()}")
    except (OSError, aioredis.RedisError) as exc:
        lines.append(f"redis: unreachable at {redis_url()} ({exc})")
    finally:
        await client.aclose()
    return lines


def pytest_report_header(config: pytest.Config) -> list[str]:
    return ["servers:", *("  " + line for line in asyncio.run(_describe()))]
