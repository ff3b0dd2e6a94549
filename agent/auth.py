"""Bearer tokens: HS256 JWTs issued and verified with PyJWT, and the request's user.

The token only names the user (`sub`); the role and every household the user may see are
read from the database on each request, so revoking access takes effect at once.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt
from cachetools import TLRUCache

from agent.errors import Unauthorized

ALGORITHM = "HS256"
# An explicit allow-list: `alg: none` and every asymmetric algorithm are refused.
ALLOWED_ALGORITHMS = [ALGORITHM]
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
# Tokens verified recently, by digest: a client sends the same token with every request,
# and checking its signature and claims again each time costs more than the rest of
# authentication. An entry lives until the token's own expiry, never longer.
VERIFIED_TOKENS = 10_000


def _until_exp(_key: bytes, value: tuple[UUID, float], _now: float) -> float:
    return value[1]


class TokenIssuer:
    def __init__(self, *, secret: str, issuer: str, audience: str) -> None:
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self._verified: TLRUCache[bytes, tuple[UUID, float]] = TLRUCache(
            maxsize=VERIFIED_TOKENS, ttu=_until_exp, timer=time.time
        )

    def issue(self, user_id: UUID, *, ttl: timedelta, now: datetime | None = None) -> str:
        issued = now or datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "iss": self.issuer,
            "aud": self.audience,
            "iat": issued,
            "exp": issued + ttl,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> UUID:
        """The user id a valid token names; Unauthorized for anything else."""
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        if known is not None:
            return known[0]
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=ALLOWED_ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The token has expired.", code="token_expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("The token is not valid.", code="invalid_token") from exc
        try:
            user_id = UUID(str(claims["sub"]))
        except ValueError as exc:
            raise Unauthorized("The token is not valid.", code="invalid_token") from exc
        # PyJWT refuses a token at its exp second; so does the cache.
        self._verified[digest] = (user_id, float(claims["exp"]))
        return user_id


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("Send an Authorization: Bearer <token> header.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <token>'.")
    return token.strip()
