"""Bearer tokens: HS256 JWTs issued and verified with PyJWT, and the claims a request keeps.

The token only names the user (`sub`), itself (`jti`) and when it was issued (`iat`); the
role, every household the user may see and whether the token or the user's tokens were
revoked are read from the database on each request (telemetry.access.bearer, in the same
round trip as the user), so revoking takes effect at once in every process. The cache of
verified tokens below holds only what a revocation cannot change (a good signature, the
claims), which is why nothing has to be dropped from it when a token is revoked.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
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
# A token issued before tokens carried a jti is named by its digest instead.
DIGEST_PREFIX = "sha256:"
MAX_JTI_LENGTH = 200


@dataclass(frozen=True)
class Claims:
    """What a verified token says: whose it is, its id, when it was issued and expires."""

    user_id: UUID
    jti: str
    issued_at: datetime
    expires_at: float  # seconds since the epoch, as in `exp`

    @property
    def expires(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, UTC)


def _until_exp(_key: bytes, value: Claims, _now: float) -> float:
    return value.expires_at


def _invalid() -> Unauthorized:
    return Unauthorized("The token is not valid.", code="invalid_token")


class TokenIssuer:
    def __init__(self, *, secret: str, issuer: str, audience: str) -> None:
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self._verified: TLRUCache[bytes, Claims] = TLRUCache(
            maxsize=VERIFIED_TOKENS, ttu=_until_exp, timer=time.time
        )

    def issue(self, user_id: UUID, *, ttl: timedelta, now: datetime | None = None) -> str:
        issued = now or datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "iss": self.issuer,
            "aud": self.audience,
            "jti": uuid.uuid4().hex,
            # Fractional (RFC 7519 allows it): revoking a user's tokens issued before an
            # instant must spare one issued later within the same second.
            "iat": issued.timestamp(),
            "exp": issued + ttl,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> UUID:
        """The user id a valid token names; Unauthorized for anything else."""
        return self.claims(token).user_id

    def claims(self, token: str) -> Claims:
        """The claims of a valid token; Unauthorized for anything else. Whether it was
        revoked is the database's to say (telemetry.access.bearer)."""
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        if known is not None:
            return known
        try:
            decoded = jwt.decode(
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
            raise _invalid() from exc
        jti = decoded.get("jti", DIGEST_PREFIX + digest.hex())
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
            raise _invalid()
        try:
            user_id = UUID(str(decoded["sub"]))
            issued_at = datetime.fromtimestamp(float(decoded["iat"]), UTC)
        except (ValueError, OverflowError, OSError) as exc:
            raise _invalid() from exc
        # PyJWT refuses a token at its exp second; so does the cache.
        claims = Claims(user_id, jti, issued_at, float(decoded["exp"]))
        self._verified[digest] = claims
        return claims


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("Send an Authorization: Bearer <token> header.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <token>'.")
    return token.strip()
