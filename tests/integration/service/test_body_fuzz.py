"""The public POST routes fuzzed with hostile bodies (tests.hostile), with and without a
token, through the in-process app: never a 5xx, every refusal in the one error shape, and
no error logged with a traceback. A fixed seed; bench.fuzz_bodies runs longer."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.hostile import Target, alarming, make_target, probes, problem
from tests.integration.conftest import MakeUser

EXAMPLES = 800  # about 10 s here; bench.fuzz_bodies runs more


@pytest.fixture
async def target(pool: asyncpg.Pool, make_user: MakeUser) -> Target:
    _, admin = await make_user("admin")
    resident, resident_headers = await make_user("resident")
    gateway, gateway_headers = await make_user("gateway")
    headers = {"admin": admin, "resident": resident_headers, "gateway": gateway_headers}
    async with pool.acquire() as conn:
        return await make_target(conn, resident=resident.id, gateway=gateway.id, headers=headers)


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_hostile_bodies_never_get_a_5xx_or_a_traceback(
    client: httpx.AsyncClient,
    target: Target,
    caplog: pytest.LogCaptureFixture,
    data: st.DataObject,
) -> None:
    probe = data.draw(probes(target))
    caplog.clear()
    response = await client.post(probe.path, content=probe.content, headers=probe.headers(target))
    assert problem(response) is None, (probe.route, probe.who, probe.content[:300])
    # What the run covered, shown by --hypothesis-show-statistics.
    code = response.json()["error"]["code"] if response.status_code >= 400 else ""
    event(f"{probe.route} {response.status_code} {code}".strip())
    logged = [r.getMessage() for r in caplog.records if alarming(r)]
    assert logged == [], (probe.route, probe.content[:300])
