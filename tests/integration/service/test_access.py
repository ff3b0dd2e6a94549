"""Household scoping: a household the caller may not see answers exactly like one that
does not exist; support access is assigned, read-only, expiring and audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest

from service.deps import Deps
from tests.integration.conftest import MakeUser

TARIFF = {"currency": "EUR", "import_price_per_kwh": 0.32, "export_price_per_kwh": 0.08}


async def _household(client: httpx.AsyncClient, admin: dict[str, str], name: str) -> str:
    body = {"name": name, "timezone": "Europe/Berlin", "tariff": TARIFF}
    response = await client.post("/v1/households", json=body, headers=admin)
    assert response.status_code == 201, response.text
    household_id: str = response.json()["id"]
    device = {"name": "Heater", "kind": "consumer", "controllable": True, "max_watts": 2000}
    response = await client.post(
        f"/v1/households/{household_id}/devices", json=device, headers=admin
    )
    assert response.status_code == 201, response.text
    return household_id


async def _bind(
    client: httpx.AsyncClient, admin: dict[str, str], household_id: str, path: str, **body: Any
) -> None:
    response = await client.post(f"/v1/households/{household_id}/{path}", json=body, headers=admin)
    assert response.status_code == 201, response.text


@pytest.fixture
async def homes(client: httpx.AsyncClient, make_user: MakeUser) -> dict[str, Any]:
    _, admin = await make_user("admin")
    return {
        "admin": admin,
        "mine": await _household(client, admin, "Mine"),
        "theirs": await _household(client, admin, "Theirs"),
    }


async def test_a_resident_sees_only_their_household_and_others_look_absent(
    client: httpx.AsyncClient, make_user: MakeUser, homes: dict[str, Any]
) -> None:
    resident, headers = await make_user("resident")
    await _bind(
        client, homes["admin"], homes["mine"], "members", user_id=str(resident.id), role="owner"
    )

    listed = (await client.get("/v1/households", headers=headers)).json()["households"]
    assert [h["id"] for h in listed] == [homes["mine"]]
    assert (await client.get(f"/v1/households/{homes['mine']}", headers=headers)).status_code == 200

    for suffix in ("", "/devices"):
        other = await client.get(f"/v1/households/{homes['theirs']}{suffix}", headers=headers)
        made_up = await client.get(f"/v1/households/{uuid4()}{suffix}", headers=headers)
        not_an_id = await client.get(f"/v1/households/not-a-uuid{suffix}", headers=headers)
        assert other.status_code == made_up.status_code == not_an_id.status_code == 404
        assert other.json() == made_up.json() == not_an_id.json()


async def test_a_resident_cannot_administer_even_their_own_household(
    client: httpx.AsyncClient, make_user: MakeUser, homes: dict[str, Any]
) -> None:
    resident, headers = await make_user("resident")
    await _bind(
        client, homes["admin"], homes["mine"], "members", user_id=str(resident.id), role="owner"
    )
    device = {"name": "Kettle", "kind": "consumer", "max_watts": 2000}
    mine = await client.post(
        f"/v1/households/{homes['mine']}/devices", json=device, headers=headers
    )
    theirs = await client.post(
        f"/v1/households/{homes['theirs']}/devices", json=device, headers=headers
    )
    assert mine.status_code == 403
    assert theirs.status_code == 404


async def test_support_sees_assigned_households_only_and_every_access_is_audited(
    client: httpx.AsyncClient, deps: Deps, make_user: MakeUser, homes: dict[str, Any]
) -> None:
    support, headers = await make_user("support")
    await _bind(client, homes["admin"], homes["mine"], "support", user_id=str(support.id))

    listed = (await client.get("/v1/households", headers=headers)).json()["households"]
    assert [(h["id"], h["access"]) for h in listed] == [(homes["mine"], "support")]
    assert (await client.get(f"/v1/households/{homes['mine']}", headers=headers)).status_code == 200
    read = await client.get(
        f"/v1/households/{homes['mine']}/devices", headers=headers | {"X-Request-ID": "req-42"}
    )
    assert read.status_code == 200
    assert read.headers["x-request-id"] == "req-42"
    assert (
        await client.get(f"/v1/households/{homes['theirs']}", headers=headers)
    ).status_code == 404

    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT household_id, action, request_id FROM audit_log WHERE user_id = $1 ORDER BY id",
            support.id,
        )
    assert [(str(r["household_id"]), r["action"]) for r in rows] == [
        (homes["mine"], "household.list"),
        (homes["mine"], "household.read"),
        (homes["mine"], "device.list"),
    ]
    assert rows[-1]["request_id"] == "req-42"


async def test_support_is_read_only(
    client: httpx.AsyncClient, make_user: MakeUser, homes: dict[str, Any]
) -> None:
    support, headers = await make_user("support")
    await _bind(client, homes["admin"], homes["mine"], "support", user_id=str(support.id))
    device = {"name": "Kettle", "kind": "consumer", "max_watts": 2000}
    response = await client.post(
        f"/v1/households/{homes['mine']}/devices", json=device, headers=headers
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_an_expired_support_assignment_gives_no_access(
    client: httpx.AsyncClient, make_user: MakeUser, homes: dict[str, Any]
) -> None:
    support, headers = await make_user("support")
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    await _bind(
        client, homes["admin"], homes["mine"], "support", user_id=str(support.id), expires_at=past
    )
    assert (await client.get(f"/v1/households/{homes['mine']}", headers=headers)).status_code == 404
    assert (await client.get("/v1/households", headers=headers)).json()["households"] == []


async def test_a_gateway_lists_devices_of_its_household_and_nothing_more(
    client: httpx.AsyncClient, make_user: MakeUser, homes: dict[str, Any]
) -> None:
    gateway, headers = await make_user("gateway")
    await _bind(
        client, homes["admin"], homes["mine"], "members", user_id=str(gateway.id), role="gateway"
    )
    devices = await client.get(f"/v1/households/{homes['mine']}/devices", headers=headers)
    assert devices.status_code == 200
    assert [d["name"] for d in devices.json()["devices"]] == ["Heater"]
    assert (await client.get(f"/v1/households/{homes['mine']}", headers=headers)).status_code == 403
    other = await client.get(f"/v1/households/{homes['theirs']}/devices", headers=headers)
    assert other.status_code == 404


async def test_a_resident_cannot_be_bound_as_a_gateway(
    client: httpx.AsyncClient, make_user: MakeUser, homes: dict[str, Any]
) -> None:
    resident, _ = await make_user("resident")
    response = await client.post(
        f"/v1/households/{homes['mine']}/members",
        json={"user_id": str(resident.id), "role": "gateway"},
        headers=homes["admin"],
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "role"


async def test_a_gateway_lists_only_the_ids_of_its_households(
    client: httpx.AsyncClient, make_user: MakeUser, homes: dict[str, Any]
) -> None:
    gateway, headers = await make_user("gateway")
    await _bind(
        client, homes["admin"], homes["mine"], "members", user_id=str(gateway.id), role="gateway"
    )
    listed = (await client.get("/v1/households", headers=headers)).json()["households"]
    # No name, time zone or tariff: what it posts telemetry with is its devices' ids.
    assert listed == [{"id": homes["mine"], "access": "gateway"}]


async def test_an_admin_removes_a_member_and_their_access_ends(
    client: httpx.AsyncClient, make_user: MakeUser, homes: dict[str, Any]
) -> None:
    resident, headers = await make_user("resident")
    member = f"/v1/households/{homes['mine']}/members/{resident.id}"
    await _bind(
        client, homes["admin"], homes["mine"], "members", user_id=str(resident.id), role="member"
    )
    assert (await client.get(f"/v1/households/{homes['mine']}", headers=headers)).status_code == 200
    assert (await client.delete(member, headers=homes["admin"])).status_code == 204
    assert (await client.get(f"/v1/households/{homes['mine']}", headers=headers)).status_code == 404
    assert (await client.get("/v1/households", headers=headers)).json()["households"] == []
    again = await client.delete(member, headers=homes["admin"])
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "not_a_member"


async def test_an_admin_removes_a_support_assignment_and_its_access_ends(
    client: httpx.AsyncClient, make_user: MakeUser, homes: dict[str, Any]
) -> None:
    support, headers = await make_user("support")
    assignment = f"/v1/households/{homes['mine']}/support/{support.id}"
    await _bind(client, homes["admin"], homes["mine"], "support", user_id=str(support.id))
    assert (await client.get(f"/v1/households/{homes['mine']}", headers=headers)).status_code == 200
    assert (await client.delete(assignment, headers=homes["admin"])).status_code == 204
    assert (await client.get(f"/v1/households/{homes['mine']}", headers=headers)).status_code == 404
    again = await client.delete(assignment, headers=homes["admin"])
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "not_assigned"


async def test_only_an_admin_removes_members_or_support_even_of_their_own_household(
    client: httpx.AsyncClient, make_user: MakeUser, homes: dict[str, Any]
) -> None:
    # The same rule as adding them: an owner does not administer their household.
    owner, headers = await make_user("resident")
    other, _ = await make_user("resident")
    support, _ = await make_user("support")
    mine = homes["mine"]
    for user, role in ((owner, "owner"), (other, "member")):
        await _bind(client, homes["admin"], mine, "members", user_id=str(user.id), role=role)
    await _bind(client, homes["admin"], mine, "support", user_id=str(support.id))
    for path in (f"members/{other.id}", f"support/{support.id}", f"members/{owner.id}"):
        response = await client.delete(f"/v1/households/{mine}/{path}", headers=headers)
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "forbidden"


# Every household-scoped route, for the scoping rule below; a new route joins the day it is
# written. Routes that read a body get an empty one: the household is judged first.
_USER = uuid4()
HOUSEHOLD_ROUTES = [
    pytest.param("GET", "", id="household"),
    pytest.param("GET", "/devices", id="devices"),
    pytest.param("POST", "/devices", id="create-device"),
    pytest.param("GET", "/energy?window=day", id="energy"),
    pytest.param("GET", "/energy/series?window=day", id="series"),
    pytest.param("GET", "/top-devices?window=day", id="top-devices"),
    pytest.param("GET", "/live", id="live"),
    pytest.param("GET", "/live/stream", id="live-stream"),
    pytest.param("GET", "/commands", id="commands"),
    pytest.param("POST", "/members", id="add-member"),
    pytest.param("POST", "/support", id="assign-support"),
    pytest.param("DELETE", f"/members/{_USER}", id="remove-member"),
    pytest.param("DELETE", f"/support/{_USER}", id="remove-support"),
]


@pytest.mark.parametrize(("method", "suffix"), HOUSEHOLD_ROUTES)
async def test_every_household_route_answers_an_unseen_household_like_a_made_up_one(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    homes: dict[str, Any],
    method: str,
    suffix: str,
) -> None:
    resident, headers = await make_user("resident")
    await _bind(
        client, homes["admin"], homes["mine"], "members", user_id=str(resident.id), role="owner"
    )
    body: dict[str, Any] | None = {} if method == "POST" else None
    theirs = await client.request(
        method, f"/v1/households/{homes['theirs']}{suffix}", headers=headers, json=body
    )
    made_up = await client.request(
        method, f"/v1/households/{uuid4()}{suffix}", headers=headers, json=body
    )
    assert theirs.status_code == made_up.status_code == 404
    assert theirs.json() == made_up.json()
