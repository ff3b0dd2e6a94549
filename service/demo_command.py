"""`wattwise demo`: prepare a demo household and a resident who owns it, serve, keep the
household alive with simulated readings while serving, and print a token and a curl line to
try once the server is ready.

The banner waits for the server: it is printed once the socket listens and the rollups are
current, so a /readyz asked after it is 200. The simulator plays the household's gateway
inside the process: every WATTWISE_DEMO_READING_SECONDS the next readings of the synthetic
model that seeded the history are stored as a POST /v1/telemetry's are (store_readings), so
they reach the live streams, the metrics and the rollups.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg

from agent.errors import Unavailable
from demo.seed import extend_household, seed_demo, spec_devices
from demo.synthetic import Continuation, demo_household
from service.deps import Deps, token_issuer
from service.ingest import store_readings
from service.settings import Settings
from telemetry import access, ingest
from telemetry.db import connect
from telemetry.migrate import migrate
from telemetry.rollups import refresh_all

if TYPE_CHECKING:
    from starlette.applications import Starlette


log = logging.getLogger("wattwise.demo")

DEMO_EMAIL = "demo@wattwise.local"
DEMO_SEED = 1
# The simulator's readings are this far apart at most, as the seeded history's are.
MAX_STEP_SECONDS = 60


@dataclass(frozen=True)
class DemoHome:
    household_id: UUID
    user_id: UUID
    token: str
    device_ids: dict[str, UUID]  # by the synthetic model's device key
    newest: datetime | None  # the household's newest reading


async def prepare(settings: Settings, *, days: float) -> DemoHome:
    """Idempotent: a second run finds the demo user and household, tops its telemetry up to
    now and issues a token. The rollups are brought up to date before it returns."""
    assert settings.database_url is not None
    cap = timedelta(seconds=settings.gap_cap_seconds)
    conn = await connect(settings.database_url, statement_timeout="0")
    try:
        await migrate(conn)
        async with conn.transaction():
            user = await access.get_user_by_email(conn, DEMO_EMAIL)
            if user is None:
                user = await access.create_user(conn, email=DEMO_EMAIL, role="resident")
            homes = await access.visible_households(conn, user)
            if homes:
                household_id = homes[0].household.id
                added = await extend_household(
                    conn, demo_household(), household_id, seed=DEMO_SEED, cap=cap
                )
                if added:
                    print(f"topped up the demo with {added} new readings", file=sys.stderr)
            else:
                print(f"seeding {days:g} days of demo telemetry...", file=sys.stderr)
                seeded = await seed_demo(conn, days=days, seed=DEMO_SEED, cap=cap)
                household_id = seeded.household.id
                await access.add_member(
                    conn, household_id=household_id, user_id=user.id, role="owner"
                )
        # Here rather than in the service's first refresh, which runs beside the first
        # requests: until it ends, /readyz says "never refreshed".
        await refresh_all(conn, cap=cap)
        device_ids, newest = await spec_devices(conn, demo_household(), household_id)
    finally:
        await conn.close()
    token = token_issuer(settings).issue(user.id, ttl=timedelta(minutes=settings.token_ttl_minutes))
    return DemoHome(household_id, user.id, token, device_ids, newest)


class Simulator:
    """The demo household's gateway: the model's next readings every `every` seconds."""

    def __init__(self, deps: Deps, home: DemoHome, *, every: float) -> None:
        spec = demo_household()
        # A device the database lacks (renamed by hand) is left out rather than guessed.
        kept = dataclasses.replace(
            spec, devices=tuple(d for d in spec.devices if d.key in home.device_ids)
        )
        # Strictly after the newest stored reading: nothing sent collides with the history.
        start = (home.newest or datetime.now(UTC)).replace(microsecond=0) + timedelta(seconds=1)
        step = max(1, min(MAX_STEP_SECONDS, round(every)))
        self._feed = Continuation(kept, start=start, seed=DEMO_SEED, step_seconds=step)
        self._deps = deps
        self._home = home
        self._every = every
        self._ids = {key: str(device_id) for key, device_id in home.device_ids.items()}
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> int:
        """Send the readings due now; how many were stored."""
        readings = self._feed.due(datetime.now(UTC), limit=ingest.MAX_READINGS)
        if not readings:
            return 0
        items = [
            {"device_id": self._ids[r.device_key], "ts": r.ts.isoformat(), "watts": r.watts}
            for r in readings
        ]
        async with self._deps.connection() as conn:
            result = await store_readings(
                self._deps, conn, items, user_id=self._home.user_id, role="resident"
            )
        return result.accepted

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, Unavailable) as exc:
                # The readings stay due: the next tick sends them with its own.
                log.warning("demo readings not stored: %s", exc)
            await asyncio.sleep(self._every)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="wattwise-demo-simulator")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def banner(settings: Settings, home: DemoHome) -> str:
    base = f"http://{settings.host}:{settings.port}"
    return "\n".join(
        [
            "",
            f"wattwise demo on {base}  (offline narrator, in-memory quotas)",
            f"chat widget: open {base}/ in a browser",
            f"household: {home.household_id}  user: {DEMO_EMAIL}",
            "token:",
            home.token,
            "try:",
            f"  curl -s -H 'Authorization: Bearer {home.token}' "
            f"{base}/v1/households/{home.household_id}/devices",
            f"  curl -s -H 'Authorization: Bearer {home.token}' "
            f"'{base}/v1/households/{home.household_id}/energy?window=day'",
            f"  curl -sN -H 'Authorization: Bearer {home.token}' "
            f"-H 'content-type: application/json' "
            f"{base}/v1/households/{home.household_id}/chat "
            """-d '{"messages": [{"role": "user", "content": "how much did I use today?"}]}'""",
            "",
        ]
    )


def run_demo(settings: Settings, *, days: float) -> None:
    from service.routes.widget import DemoPage
    from service.server import serve

    home = asyncio.run(prepare(settings, days=days))

    @asynccontextmanager
    async def alive(app: Starlette) -> AsyncIterator[None]:
        """While the server listens: the simulator runs, and the banner says so."""
        simulator = None
        if settings.demo_reading_seconds:
            simulator = Simulator(app.state.deps, home, every=settings.demo_reading_seconds)
            simulator.start()
        print(banner(settings, home), flush=True)
        try:
            yield
        finally:
            if simulator is not None:
                await simulator.stop()

    serve(settings, demo=DemoPage(home.household_id, home.token), beside=alive)
