"""A household with synthetic telemetry up to a few minutes ago, rolled up, owned by a
given user: what the chat, completion and lifecycle tests ask about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from demo.seed import seed_household
from demo.synthetic import demo_household
from telemetry import access
from telemetry.rollups import refresh_all
from telemetry.tariff import Tariff

TARIFF = Tariff(currency="EUR", import_price_per_kwh=0.3, export_price_per_kwh=0.08)


async def seeded_home(pool: asyncpg.Pool, owner: UUID, *, days: float, seed: int) -> UUID:
    """The demo household's devices with `days` of telemetry ending five minutes ago."""
    end = (datetime.now(UTC) - timedelta(minutes=5)).replace(second=0, microsecond=0)
    async with pool.acquire() as conn:
        seeded = await seed_household(
            conn, demo_household(), tariff=TARIFF, days=days, seed=seed, end=end
        )
        await refresh_all(conn, cap=timedelta(minutes=15), now=end)
        await access.add_member(conn, household_id=seeded.household.id, user_id=owner, role="owner")
    return seeded.household.id
