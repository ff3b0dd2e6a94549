"""`wattwise demo`: prepare a demo household and a resident who owns it, print a token and
a curl line to try, then serve.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from agent.deps import token_issuer
from agent.settings import Settings
from telemetry import access
from telemetry.db import connect
from telemetry.migrate import migrate
from telemetry.seed import extend_household, seed_demo
from telemetry.synthetic import demo_household

DEMO_EMAIL = "demo@wattwise.local"


@dataclass(frozen=True)
class DemoHome:
    household_id: UUID
    user_id: UUID
    token: str


async def prepare(settings: Settings, *, days: float) -> DemoHome:
    """Idempotent: a second run finds the demo user and household and only issues a token."""
    assert settings.database_url is not None
    conn = await connect(settings.database_url)
    try:
        await migrate(conn)
        async with conn.transaction():
            user = await access.get_user_by_email(conn, DEMO_EMAIL)
            if user is None:
                user = await access.create_user(conn, email=DEMO_EMAIL, role="resident")
            homes = await access.visible_households(conn, user)
            if homes:
                household_id = homes[0].household.id
                added = await extend_household(conn, demo_household(), household_id, seed=1)
                if added:
                    print(f"topped up the demo with {added} new readings", file=sys.stderr)
            else:
                print(f"seeding {days:g} days of demo telemetry...", file=sys.stderr)
                seeded = await seed_demo(conn, days=days)
                household_id = seeded.household.id
                await access.add_member(
                    conn, household_id=household_id, user_id=user.id, role="owner"
                )
    finally:
        await conn.close()
    token = token_issuer(settings).issue(user.id, ttl=timedelta(minutes=settings.token_ttl_minutes))
    return DemoHome(household_id=household_id, user_id=user.id, token=token)


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
    from agent.server import serve
    from agent.widget_routes import DemoPage

    home = asyncio.run(prepare(settings, days=days))
    print(banner(settings, home), flush=True)
    serve(settings, demo=DemoPage(home.household_id, home.token))
