"""The administration CLI: `wattwise user add` then `wattwise token` prints a token, alone on
its line, that the API accepts."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import sys
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx
import pytest
import redis.asyncio as aioredis

from service.ask import ask
from service.settings import Settings
from telemetry.db import connect
from tests.integration.conftest import TEST_SECRET, Database


async def _wattwise(db: Database, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": db.dsn,
        "WATTWISE_JWT_SECRET": TEST_SECRET,
        "WATTWISE_ENV": "development",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_user_add_then_token_authenticates_that_user(
    db: Database, client: httpx.AsyncClient
) -> None:
    code, out, err = await _wattwise(db, "user", "add", "root@example.test", "--role", "admin")
    assert code == 0, err
    user_id = out.strip()
    code, out, err = await _wattwise(db, "token", "--user", "ROOT@example.test")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {lines[0]}"})
    assert response.status_code == 200
    assert response.json()["id"] == user_id
    assert response.json()["role"] == "admin"


async def test_cli_refusals_exit_2_with_one_line(db: Database) -> None:
    code, _, err = await _wattwise(db, "token", "--user", "nobody@example.test")
    assert code == 2
    assert err.strip().splitlines()[-1] == "wattwise: no user with email nobody@example.test"
    code, _, err = await _wattwise(
        db,
        "household",
        "add",
        "--name",
        "H",
        "--timezone",
        "Nowhere/Land",
        "--tariff",
        '{"currency": "EUR", "import_price_per_kwh": 0.3, "export_price_per_kwh": 0}',
    )
    assert code == 2
    assert "timezone" in err


async def test_seed_demo_then_refresh_rolls_the_history_up(db: Database) -> None:
    code, out, err = await _wattwise(db, "seed-demo", "--days", "1")
    assert code == 0, err
    household_id = out.strip()
    code, _, err = await _wattwise(db, "refresh")
    assert code == 0, err
    conn = await connect(db.dsn)
    try:
        rolled = await conn.fetchval(
            "SELECT count(*) FROM rollup_15m r JOIN devices d ON d.id = r.device_id"
            " WHERE d.household_id = $1",
            UUID(household_id),
        )
        dirty_behind = await conn.fetchval(
            "SELECT count(*) FROM rollup_dirty"
            " WHERE from_ts < (SELECT rolled_until FROM rollup_state)"
        )
    finally:
        await conn.close()
    assert rolled > 0
    assert dirty_behind == 0


async def test_ask_streams_an_answer_with_its_route_and_freshness(db: Database) -> None:
    code, out, err = await _wattwise(db, "seed-demo", "--days", "1")
    assert code == 0, err
    household_id = out.strip()
    code, _, err = await _wattwise(db, "user", "add", "me@example.test", "--role", "resident")
    assert code == 0, err
    code, _, err = await _wattwise(
        db, "member", "add", household_id, "me@example.test", "--role", "owner"
    )
    assert code == 0, err
    code, out, err = await _wattwise(
        db, "ask", "how much energy did I use yesterday?", "--as", "me@example.test"
    )
    assert code == 0, err
    assert "[route energy (energy.keyword), window yesterday]" in err
    assert "[fresh as of 20" in err
    assert re.match(r"You used \d+\.\d\d kWh yesterday\. ", out)
    code, _, err = await _wattwise(db, "ask", "hi", "--as", "nobody@example.test")
    assert code == 2
    assert "no user 'nobody@example.test'" in err


async def test_ask_ends_the_answer_line_before_its_notes(db: Database) -> None:
    code, out, err = await _wattwise(db, "seed-demo", "--days", "1")
    assert code == 0, err
    household_id = out.strip()
    await _wattwise(db, "user", "add", "nl@example.test", "--role", "resident")
    await _wattwise(db, "member", "add", household_id, "nl@example.test", "--role", "owner")
    terminal = io.StringIO()  # stdout and stderr on one screen, as a terminal shows them
    settings = Settings(env="development", database_url=db.dsn, jwt_secret=TEST_SECRET)
    why = await ask(
        settings, "how much energy did I use yesterday?", email="nl@example.test",
        household=None, voice=False, out=terminal, err=terminal,
    )  # fmt: skip
    assert why is None
    lines = terminal.getvalue().splitlines()
    answer = [n for n, line in enumerate(lines) if line.startswith("You used")]
    assert answer, lines
    assert all(line.startswith("[") for line in lines[answer[0] + 1 :]), lines
    assert terminal.getvalue().endswith("\n")


async def test_member_remove_support_remove_and_revoke_tokens_end_access_and_announce_it(
    db: Database, client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    if db.backend != "postgres":
        pytest.skip("the CLI's access commands do not depend on the backend")
    tariff = '{"currency": "EUR", "import_price_per_kwh": 0.3, "export_price_per_kwh": 0}'
    household = await _ok(
        db, "household", "add", "--name", "H", "--timezone", "Europe/Berlin", "--tariff", tariff
    )
    await _ok(db, "user", "add", "res@example.test", "--role", "resident")
    await _ok(db, "user", "add", "help@example.test", "--role", "support")
    await _ok(db, "member", "add", household, "res@example.test", "--role", "owner")
    await _ok(db, "support", "add", household, "help@example.test")
    resident = {"Authorization": f"Bearer {await _ok(db, 'token', '--user', 'res@example.test')}"}
    helper = {"Authorization": f"Bearer {await _ok(db, 'token', '--user', 'help@example.test')}"}
    ids = []
    for headers in (resident, helper):
        assert (await client.get(f"/v1/households/{household}", headers=headers)).status_code == 200
        ids.append((await client.get("/v1/me", headers=headers)).json()["id"])
    # The running service's live streams hear of each change on the channel service.live reads
    # (other tests' announcements may pass on it too).
    pubsub = redis_client.pubsub()
    await pubsub.subscribe("ww:q:live:revoked")

    await _ok(db, "member", "remove", household, "res@example.test")
    await _ok(db, "support", "remove", household, "help@example.test")
    for headers in (resident, helper):
        assert (await client.get(f"/v1/households/{household}", headers=headers)).status_code == 404
    assert await _heard(pubsub, ids, 2) == [(ids[0], household), (ids[1], household)]
    code, _, err = await _wattwise(db, "member", "remove", household, "res@example.test")
    assert (code, err.strip()) == (2, "wattwise: res@example.test is not bound to this household")

    after = await _ok(db, "user", "revoke-tokens", "res@example.test")
    assert datetime.fromisoformat(after).tzinfo is not None
    assert (await client.get("/v1/me", headers=resident)).status_code == 401
    later = {"Authorization": f"Bearer {await _ok(db, 'token', '--user', 'res@example.test')}"}
    assert (await client.get("/v1/me", headers=later)).status_code == 200
    assert await _heard(pubsub, ids, 1) == [(ids[0], None)]
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _heard(pubsub: Any, users: list[str], n: int) -> list[tuple[str, str | None]]:
    """The next `n` announcements about `users` on the channel, within 5 s."""
    heard: list[tuple[str, str | None]] = []
    deadline = asyncio.get_running_loop().time() + 5
    while len(heard) < n:
        assert asyncio.get_running_loop().time() < deadline, f"heard {heard} of {n}"
        message = await pubsub.get_message(timeout=1)
        if message is None or message["type"] != "message":
            continue  # the subscription's confirmation, or nothing yet
        data = json.loads(message["data"])
        if data["user_id"] in users:
            heard.append((data["user_id"], data["household_id"]))
    return heard


async def _ok(db: Database, *args: str) -> str:
    """Run the command; it succeeds, and what it printed is its one line."""
    code, out, err = await _wattwise(db, *args)
    assert code == 0, err
    return out.strip()
