"""Device names that look like another device's, hide characters, or break the consent
text's JSON block (issue 16, item 10): refused on creation, through the API and the CLI,
and an older name stored before the rule still cannot break the block."""

from __future__ import annotations

import json
import re
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.conftest import Database, MakeUser
from tests.integration.homes import seeded_home
from tests.integration.service.test_admin import TARIFF
from tests.integration.service.test_cli import _wattwise


@pytest.fixture
async def devices_url(client: httpx.AsyncClient, admin: dict[str, str]) -> str:
    body = {"name": "Home", "timezone": "Europe/Berlin", "tariff": TARIFF}
    household = (await client.post("/v1/households", json=body, headers=admin)).json()["id"]
    url = f"/v1/households/{household}/devices"
    for name in ("Heater", "ECO pump", "Fridge 1"):
        created = await client.post(url, json=_device(name), headers=admin)
        assert created.status_code == 201, created.text
    return url


@pytest.fixture
async def admin(make_user: MakeUser) -> dict[str, str]:
    return (await make_user("admin"))[1]


def _device(name: str) -> dict[str, Any]:
    return {"name": name, "kind": "consumer", "controllable": True, "max_watts": 2000}


@pytest.mark.parametrize(
    ("name", "code"),
    [
        pytest.param("Heater\u200b", "invalid_device_name", id="zero-width-space"),
        pytest.param("\u2060Heater", "invalid_device_name", id="word-joiner"),
        pytest.param("Heater\u202e", "invalid_device_name", id="right-to-left-override"),
        pytest.param("\u2067Heater\u2069", "invalid_device_name", id="bidi-isolate"),
        pytest.param("Heat\u034fer", "invalid_device_name", id="combining-grapheme-joiner"),
        pytest.param("Heater\ue000", "invalid_device_name", id="private-use"),
        pytest.param("Heater\u2028", "invalid_device_name", id="line-separator"),
        pytest.param("\u041d\u0435\u0430ter", "invalid_device_name", id="cyrillic-in-latin"),
        pytest.param("H\u03b5ater", "invalid_device_name", id="greek-in-latin"),
        pytest.param('Heater```"}', "invalid_device_name", id="triple-backticks"),
        pytest.param("\u0415\u0421\u041e pump", "device_name_confusable", id="cyrillic-word"),
        pytest.param("\uff28eater", "duplicate_device_name", id="fullwidth-is-nfkc-heater"),
        pytest.param("Fridge l", "device_name_confusable", id="digit-one-as-l"),
        pytest.param("ECO  pump", "duplicate_device_name", id="double-space-is-the-same-name"),
    ],
)
async def test_a_look_alike_device_name_is_refused_with_its_code(
    client: httpx.AsyncClient, admin: dict[str, str], devices_url: str, name: str, code: str
) -> None:
    response = await client.post(devices_url, json=_device(name), headers=admin)
    assert response.json()["error"]["code"] == code, response.text
    assert response.status_code == (422 if code == "invalid_device_name" else 409)
    listed = (await client.get(devices_url, headers=admin)).json()["devices"]
    assert sorted(d["name"] for d in listed) == ["ECO pump", "Fridge 1", "Heater"]


@pytest.mark.parametrize(
    "name",
    ["Обогреватель", "Chauffe-eau", "Wärmepumpe", "Θερμοσίφωνας", "床暖房", "Heater 2"],
)
async def test_a_name_in_any_one_script_is_accepted(
    client: httpx.AsyncClient, admin: dict[str, str], devices_url: str, name: str
) -> None:
    response = await client.post(devices_url, json=_device(name), headers=admin)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name


async def test_a_name_is_stored_nfkc_normalised(
    client: httpx.AsyncClient, admin: dict[str, str], devices_url: str
) -> None:
    response = await client.post(devices_url, json=_device("Wa\u0308rme\u00a0pumpe"), headers=admin)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Wärme pumpe"


async def test_the_cli_refuses_a_look_alike_with_one_line(db: Database) -> None:
    code, out, err = await _wattwise(
        db, "household", "add", "--name", "H", "--timezone", "UTC", "--tariff",
        '{"currency": "EUR", "import_price_per_kwh": 0.3, "export_price_per_kwh": 0}',
    )  # fmt: skip
    assert code == 0, err
    household = out.strip()
    add = ("device", "add", household, "--kind", "consumer", "--max-watts", "60")
    code, _, err = await _wattwise(db, *add, "--name", "ECO pump")
    assert code == 0, err
    code, _, err = await _wattwise(db, *add, "--name", "Heater\u200b")
    assert code == 2
    assert "invisible" in err.strip().splitlines()[-1]
    code, _, err = await _wattwise(db, *add, "--name", "\u0415\u0421\u041e pump")
    assert code == 2
    assert "looks like" in err.strip().splitlines()[-1]


async def test_a_stored_name_with_backticks_cannot_break_the_consent_json(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    user, headers = await make_user("resident")
    home = await seeded_home(pool, user.id, days=0.2, seed=5)
    name = 'Porch lamp ````"} ```'  # stored before names were checked
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO devices (household_id, name, kind, controllable, max_watts)"
            " VALUES ($1, $2, 'consumer', true, 60)",
            home,
            name,
        )
    chat = f"/v1/households/{home}/chat"
    thread: list[dict[str, str]] = []
    for text in ("turn off the porch lamp", "yes"):
        thread.append({"role": "user", "content": text})
        response = await client.post(chat, headers=headers, json={"messages": thread})
        assert response.status_code == 200, response.text
        said = [
            json.loads(line[6:])
            for line in response.text.splitlines()
            if line.startswith("data: {")
        ]
        text = "".join(d["delta"] for d in said if d["type"] == "text-delta")
        thread.append({"role": "assistant", "content": text})
    deltas = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")
    ]
    text = "".join(d["delta"] for d in deltas if d["type"] == "text-delta")
    [command] = [d["data"]["command"] for d in deltas if d["type"] == "data-command"]
    assert command["device_name"] == name
    fence = re.search(r"^(`{3,})json\n(.*?)\n\1$", text, re.MULTILINE | re.DOTALL)
    assert fence is not None, text
    assert len(fence.group(1)) > 4  # longer than any backtick run in the block
    assert json.loads(fence.group(2)) == command
