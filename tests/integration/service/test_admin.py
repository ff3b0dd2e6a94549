"""The administration API: admins create households, devices and users; bad input gets 422
naming the field, a duplicate device name 409, and nothing is written by a refused call."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.deps import Deps
from tests.integration.conftest import MakeUser

TARIFF: dict[str, Any] = {
    "currency": "EUR",
    "import_price_per_kwh": 0.32,
    "export_price_per_kwh": 0.08,
    "daily_fixed_charge": 0.0,
}


@pytest.fixture
async def admin(make_user: MakeUser) -> dict[str, str]:
    return (await make_user("admin"))[1]


async def test_an_admin_creates_a_household_with_a_time_of_use_tariff(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    tariff = TARIFF | {
        "time_of_use": [
            {"days": ["mon", "tue"], "start": "17:00", "end": "21:00", "import_price_per_kwh": 0.45}
        ]
    }
    body = {"name": "  Lakeside  ", "timezone": "Pacific/Chatham", "tariff": tariff}
    response = await client.post("/v1/households", json=body, headers=admin)
    assert response.status_code == 201
    created = response.json()
    assert created["name"] == "Lakeside"
    assert created["tariff"]["time_of_use"][0]["import_price_per_kwh"] == 0.45
    fetched = await client.get(f"/v1/households/{created['id']}", headers=admin)
    assert fetched.json()["tariff"] == created["tariff"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),
        ({"name": ""}, "name"),
        ({"tariff": TARIFF | {"currency": "euro"}}, "tariff.currency"),
        ({"tariff": TARIFF | {"import_price_per_kwh": -1}}, "tariff.import_price_per_kwh"),
        ({"tariff": TARIFF | {"surprise": 1}}, "tariff.surprise"),
        (
            {
                "tariff": TARIFF
                | {
                    "time_of_use": [
                        {
                            "days": ["mon"],
                            "start": "08:00",
                            "end": "12:00",
                            "import_price_per_kwh": 1,
                        },
                        {
                            "days": ["mon"],
                            "start": "11:00",
                            "end": "13:00",
                            "import_price_per_kwh": 1,
                        },
                    ]
                }
            },
            "tariff",
        ),
        (
            {
                "tariff": TARIFF
                | {
                    "time_of_use": [
                        {
                            "days": ["mon"],
                            "start": "22:00",
                            "end": "06:00",
                            "import_price_per_kwh": 1,
                        }
                    ]
                }
            },
            "tariff.time_of_use.0",
        ),
    ],
    ids=[
        "unknown-zone",
        "not-iana",
        "empty-name",
        "currency",
        "negative-price",
        "extra-field",
        "overlap",
        "crosses-midnight",
    ],
)
async def test_bad_household_input_gets_422_naming_the_field(
    client: httpx.AsyncClient, deps: Deps, admin: dict[str, str], change: dict[str, Any], field: str
) -> None:
    body: dict[str, Any] = {"name": "Home", "timezone": "Europe/Berlin", "tariff": TARIFF}
    body |= change
    response = await client.post("/v1/households", json=body, headers=admin)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in [f["field"] for f in error["fields"]], error
    async with deps.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM households") == 0


async def test_malformed_json_gets_400(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    response = await client.post(
        "/v1/households", content=b"{not json", headers=admin | {"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


async def test_an_oversized_body_gets_413(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    body = {"name": "x" * 70_000, "timezone": "UTC", "tariff": TARIFF}
    response = await client.post("/v1/households", json=body, headers=admin)
    assert response.status_code == 413


async def test_devices_are_created_and_duplicate_names_get_409(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    body = {"name": "Home", "timezone": "Europe/Berlin", "tariff": TARIFF}
    household = (await client.post("/v1/households", json=body, headers=admin)).json()["id"]
    url = f"/v1/households/{household}/devices"
    heater: dict[str, Any] = {
        "name": "Heater",
        "kind": "consumer",
        "controllable": True,
        "max_watts": 2000,
    }
    first = await client.post(url, json=heater, headers=admin)
    assert first.status_code == 201
    assert first.json()["kind"] == "consumer"
    again = await client.post(url, json=heater | {"name": "hEATER"}, headers=admin)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "duplicate_device_name"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": "toaster"}, "kind"),
        ({"max_watts": 0}, "max_watts"),
        ({"max_watts": "Infinity"}, "max_watts"),
        ({"name": "Bad\nname"}, "name"),
    ]
    for bad, field in cases:
        response = await client.post(url, json=heater | {"name": "Other"} | bad, headers=admin)
        assert response.status_code == 422, bad
        assert response.json()["error"]["fields"][0]["field"] == field
    listed = (await client.get(url, headers=admin)).json()["devices"]
    assert [d["name"] for d in listed] == ["Heater"]


async def test_users_are_created_by_admins_only_and_emails_are_unique(
    client: httpx.AsyncClient, make_user: MakeUser, admin: dict[str, str]
) -> None:
    body = {"email": "Ann@Example.test", "role": "resident"}
    assert (await client.post("/v1/users", json=body, headers=admin)).status_code == 201
    again = await client.post("/v1/users", json=body | {"email": "ann@example.TEST"}, headers=admin)
    assert again.status_code == 409
    bad = await client.post("/v1/users", json={"email": "nope", "role": "resident"}, headers=admin)
    assert bad.status_code == 422
    _, support = await make_user("support")
    assert (await client.post("/v1/users", json=body, headers=support)).status_code == 403


async def test_unknown_routes_use_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
