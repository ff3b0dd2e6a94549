"""Authentication's database cost per request: the query that loads the token's user and
the household in the path and says whether the token was revoked (telemetry.access.bearer),
against the query it replaced (access.user_with_household, no revocation check), on one
connection to the real PostgreSQL, with many revocations stored; and the same for a request
with no household in its path (ingest, /v1/me), against the access.get_user it replaced.

    .venv/bin/python -m bench.auth [--calls 5000] [--revoked 20000]

Needs DATABASE_URL (an admin connection; a scratch database is made and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

from bench.service import percentile
from evals.scratch import scratch_database
from telemetry import access, households
from telemetry.db import connect
from telemetry.migrate import migrate
from telemetry.tariff import Tariff

TARIFF = Tariff(currency="EUR", import_price_per_kwh=0.3, export_price_per_kwh=0.08)


async def main_async(args: argparse.Namespace) -> None:
    name = f"wattwise_bench_auth_{os.getpid()}"
    async with scratch_database(os.environ["DATABASE_URL"], name) as dsn:
        conn = await connect(dsn)
        try:
            await migrate(conn)
            user = await access.create_user(conn, email="r@example.test", role="resident")
            home = await households.create_household(
                conn, name="Home", timezone="UTC", tariff=TARIFF
            )
            await access.add_member(conn, household_id=home.id, user_id=user.id, role="owner")
            expires = datetime.now(UTC) + timedelta(hours=1)
            await conn.executemany(
                "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3)",
                [(uuid.uuid4().hex, user.id, expires) for _ in range(args.revoked)],
            )
            await access.revoke_tokens_before_now(conn, user.id)
            await conn.execute("ANALYZE")
            issued, jti = datetime.now(UTC), uuid.uuid4().hex

            async def new() -> None:
                found = await access.bearer(conn, user.id, home.id, jti=jti, issued_at=issued)
                assert found.visible is not None

            async def old() -> None:
                _, seen = await access.user_with_household(conn, user.id, home.id)
                assert seen is not None

            async def new_no_household() -> None:
                found = await access.bearer(conn, user.id, None, jti=jti, issued_at=issued)
                assert found.user is not None

            async def old_no_household() -> None:
                assert await access.get_user(conn, user.id) is not None

            calls = {
                "old": old,
                "new": new,
                "old_no_household": old_no_household,
                "new_no_household": new_no_household,
            }
            timings: dict[str, list[float]] = {}
            for _ in range(2):  # the first round warms the plans and the cache
                timings = {label: [] for label in calls}
                # Interleaved, so a burst of load on the machine falls on every query alike.
                for _ in range(args.calls):
                    for label, call in calls.items():
                        started = time.perf_counter()
                        await call()
                        timings[label].append((time.perf_counter() - started) * 1e6)
        finally:
            await conn.close()
    for suffix, baseline in (("", "without the revocation check"), ("_no_household", "get_user")):
        for q, label in ((0.5, "p50"), (0.99, "p99")):
            new_us = percentile(timings[f"new{suffix}"], q)
            old_us = percentile(timings[f"old{suffix}"], q)
            print(
                f"auth_query{suffix}_{label}: {new_us:.0f} us (baseline: {old_us:.0f} us"
                f" {baseline}, ratio: {new_us / old_us:.2f})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--revoked", type=int, default=20_000)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
