"""Bearer tokens: only a well-formed, signed, current HS256 token for our issuer and
audience naming an existing user gets in; everything else is 401 with the same shape."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import jwt
import pytest

from service.deps import Deps
from tests.integration.conftest import TEST_SECRET, MakeUser


def _b64(data: dict[str, object]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(deps: Deps, sub: str, **overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": sub,
        "iss": deps.settings.jwt_issuer,
        "aud": deps.settings.jwt_audience,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


async def test_a_valid_token_authenticates_its_user(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user, headers = await make_user("resident")
    response = await client.get("/v1/me", headers=headers)
    assert response.status_code == 200
    assert response.json()["id"] == str(user.id)
    assert response.json()["role"] == "resident"


@pytest.mark.parametrize(
    "forge",
    [
        "alg_none",
        "wrong_audience",
        "wrong_issuer",
        "expired",
        "forged_signature",
        "no_exp",
        "hs512",
        "garbage",
    ],
)
async def test_bad_tokens_get_401(
    client: httpx.AsyncClient, deps: Deps, make_user: MakeUser, forge: str
) -> None:
    user, _ = await make_user("admin")
    sub = str(user.id)
    if forge == "alg_none":
        token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(deps, sub))}."
    elif forge == "wrong_audience":
        token = jwt.encode(_claims(deps, sub, aud="someone-else"), TEST_SECRET, "HS256")
    elif forge == "wrong_issuer":
        token = jwt.encode(_claims(deps, sub, iss="evil"), TEST_SECRET, "HS256")
    elif forge == "expired":
        past = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp())
        token = jwt.encode(_claims(deps, sub, exp=past), TEST_SECRET, "HS256")
    elif forge == "forged_signature":
        token = jwt.encode(_claims(deps, sub), "another-secret-of-enough-length-0123", "HS256")
    elif forge == "no_exp":
        token = jwt.encode(_claims(deps, sub, exp=None), TEST_SECRET, "HS256")
    elif forge == "hs512":
        token = jwt.encode(_claims(deps, sub), TEST_SECRET, "HS512")
    else:
        token = "not.a.token"
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["code"] in {"invalid_token", "token_expired"}
    assert response.headers["www-authenticate"] == "Bearer"
    if forge == "expired":
        assert body["error"]["code"] == "token_expired"


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer", "Bearer  "])
async def test_missing_or_malformed_authorization_gets_401(
    client: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = await client.get("/v1/households", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_a_token_for_a_deleted_user_gets_401(
    client: httpx.AsyncClient, deps: Deps, make_user: MakeUser
) -> None:
    user, headers = await make_user("resident")
    async with deps.pool.acquire() as conn:
        await conn.execute("DELETE FROM users WHERE id = $1", user.id)
    response = await client.get("/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


async def test_the_role_comes_from_the_database_not_the_token(
    client: httpx.AsyncClient, deps: Deps, make_user: MakeUser
) -> None:
    user, headers = await make_user("resident")
    claims = _claims(deps, str(user.id), role="admin")
    forged_role = {"Authorization": f"Bearer {jwt.encode(claims, TEST_SECRET, 'HS256')}"}
    body = {"email": "x@example.test", "role": "admin"}
    assert (await client.post("/v1/users", json=body, headers=forged_role)).status_code == 403
    async with deps.pool.acquire() as conn:
        await conn.execute("UPDATE users SET role = 'admin' WHERE id = $1", user.id)
    assert (await client.post("/v1/users", json=body, headers=headers)).status_code == 201


async def test_a_token_that_was_accepted_is_refused_once_it_expires(
    client: httpx.AsyncClient, deps: Deps, make_user: MakeUser
) -> None:
    # Verified tokens are remembered; the memory must end at the token's own expiry.
    user, _ = await make_user("resident")
    exp = int(datetime.now(UTC).timestamp()) + 2
    token = jwt.encode(_claims(deps, str(user.id), exp=exp), TEST_SECRET, "HS256")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/me", headers=headers)).status_code == 200
    assert (await client.get("/v1/me", headers=headers)).status_code == 200
    await asyncio.sleep(max(0.0, exp - datetime.now(UTC).timestamp()) + 0.05)
    response = await client.get("/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"


async def test_a_revoked_token_gets_401_token_revoked(
    client: httpx.AsyncClient, deps: Deps, make_user: MakeUser
) -> None:
    user, headers = await make_user("resident")
    other = {"Authorization": f"Bearer {deps.tokens.issue(user.id, ttl=timedelta(minutes=5))}"}
    assert (await client.get("/v1/me", headers=headers)).status_code == 200
    revoked = await client.post("/v1/tokens/revoke", headers=headers)
    assert revoked.status_code == 200
    assert revoked.json()["user_id"] == str(user.id)
    response = await client.get("/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_revoked"
    assert response.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/v1/me", headers=other)).status_code == 200
    models = await client.get("/v1/models", headers=headers)  # a route with no data of its own
    assert models.status_code == 401
    assert models.json()["error"]["code"] == "token_revoked"
    assert (await client.get("/v1/models", headers=other)).status_code == 200


async def test_a_token_without_a_jti_can_be_revoked_too(
    client: httpx.AsyncClient, deps: Deps, make_user: MakeUser
) -> None:
    # Tokens issued before tokens carried a jti are revoked by their digest.
    user, _ = await make_user("resident")
    token = jwt.encode(_claims(deps, str(user.id)), TEST_SECRET, "HS256")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.post("/v1/tokens/revoke", headers=headers)).status_code == 200
    response = await client.get("/v1/me", headers=headers)
    assert response.json()["error"]["code"] == "token_revoked"


async def test_revoking_a_users_tokens_spares_the_tokens_issued_after(
    client: httpx.AsyncClient, deps: Deps, make_user: MakeUser
) -> None:
    _, admin = await make_user("admin")
    user, headers = await make_user("resident")
    revoked = await client.post(f"/v1/users/{user.id}/revoke-tokens", headers=admin)
    assert revoked.status_code == 200
    assert revoked.json()["user_id"] == str(user.id)
    assert (await client.get("/v1/me", headers=headers)).json()["error"]["code"] == "token_revoked"
    fresh = {"Authorization": f"Bearer {deps.tokens.issue(user.id, ttl=timedelta(minutes=5))}"}
    assert (await client.get("/v1/me", headers=fresh)).status_code == 200
    assert (await client.get("/v1/me", headers=admin)).status_code == 200


async def test_a_user_may_revoke_their_own_tokens_but_only_an_admin_anyone_elses(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    _, admin = await make_user("admin")
    user, headers = await make_user("resident")
    other, other_headers = await make_user("resident")
    refused = await client.post(f"/v1/users/{other.id}/revoke-tokens", headers=headers)
    assert refused.status_code == 403
    # A user who does not exist looks the same to a non-admin; an admin learns it.
    made_up = await client.post(f"/v1/users/{uuid4()}/revoke-tokens", headers=headers)
    assert made_up.status_code == 403
    missing = await client.post(f"/v1/users/{uuid4()}/revoke-tokens", headers=admin)
    assert missing.status_code == 404
    assert (await client.get("/v1/me", headers=other_headers)).status_code == 200
    mine = await client.post(f"/v1/users/{user.id}/revoke-tokens", headers=headers)
    assert mine.status_code == 200
    assert (await client.get("/v1/me", headers=headers)).status_code == 401


async def test_issued_tokens_carry_a_unique_jti(deps: Deps, make_user: MakeUser) -> None:
    user, _ = await make_user("resident")
    issued = [deps.tokens.issue(user.id, ttl=timedelta(minutes=5)) for _ in range(2)]
    claims = [jwt.decode(t, options={"verify_signature": False}) for t in issued]
    assert all(c["jti"] for c in claims)
    assert claims[0]["jti"] != claims[1]["jti"]
