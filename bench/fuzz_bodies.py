"""Request-body fuzz, the long run: --examples hostile bodies (tests.hostile) against the
public POST routes of the in-process app over a scratch database, with and without a token;
prints how many ran, how many got a 5xx, how many answers were otherwise wrong (an error
outside the one error shape), and how many ERROR or traceback log records appeared.
The test suite runs the same strategies with a fixed seed (tests/integration/service/
test_body_fuzz.py).

    .venv/bin/python -m bench.fuzz_bodies [--examples 5000] [--seed 0]

Needs DATABASE_URL (an admin connection; a scratch database is made and dropped) and
REDIS_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import os
import time
from datetime import timedelta

import asyncpg
import httpx
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from bench.service import SECRET
from evals.scratch import scratch_database
from quota.redis_store import connect as redis_connect
from service.app import create_app
from service.auth import TokenIssuer
from service.deps import build_deps
from service.settings import Settings
from telemetry import access
from telemetry.db import connect, create_pool
from telemetry.migrate import migrate
from tests.hostile import Target, alarming, make_target, probes, problem


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if alarming(record):
            self.records.append(record)


def run(examples: int, chosen_seed: int) -> None:
    loop = asyncio.new_event_loop()
    admin_dsn = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    scratch = scratch_database(admin_dsn, f"wattwise_bench_fuzz_{os.getpid()}")
    dsn = loop.run_until_complete(scratch.__aenter__())
    try:
        conn = loop.run_until_complete(connect(dsn))
        loop.run_until_complete(migrate(conn))
        loop.run_until_complete(conn.close())
        pool = loop.run_until_complete(create_pool(dsn, max_size=4))
        redis = redis_connect(redis_url)
        deps = build_deps(
            Settings(env="development", database_url=dsn, jwt_secret=SECRET), pool, redis
        )
        target = loop.run_until_complete(_target(pool, deps.tokens))
        transport = httpx.ASGITransport(app=create_app(deps=deps), raise_app_exceptions=False)
        client = httpx.AsyncClient(transport=transport, base_url="http://wattwise.test")
        counter = _Counter()
        logging.getLogger().addHandler(counter)
        statuses: collections.Counter[int] = collections.Counter()
        problems: list[str] = []

        @settings(
            max_examples=examples,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @seed(chosen_seed)
        @given(data=st.data())
        def one(data: st.DataObject) -> None:
            probe = data.draw(probes(target))
            response = loop.run_until_complete(
                client.post(probe.path, content=probe.content, headers=probe.headers(target))
            )
            statuses[response.status_code] += 1
            if (wrong := problem(response)) is not None:
                problems.append(f"{probe.route} {probe.who}: {wrong}")

        started = time.perf_counter()
        one()
        took = time.perf_counter() - started
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(deps.live.close())
        loop.run_until_complete(pool.close())
        loop.run_until_complete(redis.aclose())
    finally:
        loop.run_until_complete(scratch.__aexit__(None, None, None))
        loop.close()
    ran = sum(statuses.values())
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    print(f"fuzz_bodies.examples: {ran} requests (seed {chosen_seed}, {ran / took:.0f}/s)")
    print(f"fuzz_bodies.5xx: {server_errors} responses")
    print(f"fuzz_bodies.problems: {len(problems)} answers (5xx included)")
    print(f"fuzz_bodies.error_logs: {len(counter.records)} records")
    print("fuzz_bodies.statuses: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    for line in problems[:10]:
        print(f"  {line}")


async def _target(pool: asyncpg.Pool, tokens: TokenIssuer) -> Target:
    async with pool.acquire() as conn:
        users = {
            role: await access.create_user(conn, email=f"{role}@bench.test", role=role)
            for role in ("admin", "resident", "gateway")
        }
        headers = {
            role: {"Authorization": f"Bearer {tokens.issue(user.id, ttl=timedelta(hours=1))}"}
            for role, user in users.items()
        }
        return await make_target(
            conn, resident=users["resident"].id, gateway=users["gateway"].id, headers=headers
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run(args.examples, args.seed)


if __name__ == "__main__":
    main()
