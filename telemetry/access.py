"""Who may see which household: users, memberships, support assignments, token
revocations, and the audit log.

Visibility is decided here and only here, from the database on every call:
  admin     every household
  resident  households where they are an owner or member
  gateway   households it is bound to (membership role 'gateway')
  support   households assigned to them whose assignment has not expired
A household the caller may not see is reported exactly like one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, get_args
from uuid import UUID

import asyncpg

from telemetry.households import HOUSEHOLD_COLUMNS, Household

if TYPE_CHECKING:
    from telemetry.db import Conn

Role = Literal["resident", "support", "gateway", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
MemberRole = Literal["owner", "member", "gateway"]
Relation = Literal["admin", "owner", "member", "gateway", "support"]

# Which membership roles fit which user role: a resident is never bound as a gateway.
MEMBER_ROLES_BY_USER_ROLE: dict[Role, tuple[MemberRole, ...]] = {
    "resident": ("owner", "member"),
    "gateway": ("gateway",),
    "support": (),
    "admin": (),
}


class DuplicateEmail(Exception):
    pass


@dataclass(frozen=True)
class User:
    id: UUID
    email: str
    role: Role
    created_at: datetime

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> User:
        return cls(row["id"], row["email"], row["role"], row["created_at"])

    def public(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "email": self.email,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Visible:
    """A household the caller may see, and why they may."""

    household: Household
    relation: Relation


# One lateral subquery says how ($1 user, $2 role) relates to household h; no row, no access.
def relation_sql(user_id: str, role: str) -> str:
    """One lateral subquery saying how a user relates to household h; no row, no access.

    `user_id` and `role` are SQL expressions: parameters, or columns of a joined users row.
    """
    return f"""
    JOIN LATERAL (
        SELECT 'admin'::text AS relation WHERE {role} = 'admin'
        UNION ALL
        SELECT m.role FROM household_members m
         WHERE m.household_id = h.id AND m.user_id = {user_id}
           AND (({role} = 'resident' AND m.role IN ('owner', 'member'))
             OR ({role} = 'gateway' AND m.role = 'gateway'))
        UNION ALL
        SELECT 'support' FROM support_assignments s
         WHERE {role} = 'support' AND s.household_id = h.id AND s.user_id = {user_id}
           AND (s.expires_at IS NULL OR s.expires_at > now())
        LIMIT 1
    ) r ON true
"""


_RELATION_SQL = relation_sql("$1", "$2::text")


def _user_with_household_sql(*columns: str) -> str:
    """The user $1 and, in the same round trip, the household $2 if they may see it (and
    `columns` of the user's row): what every household-scoped request needs first."""
    more = "".join(f"{c}, " for c in columns)
    return f"""
SELECT u.id AS user_id, u.email, u.role, u.created_at AS user_created_at, {more}hv.*
  FROM users u
  LEFT JOIN LATERAL (
      SELECT {HOUSEHOLD_COLUMNS}, r.relation
        FROM households h {relation_sql("u.id", "u.role")}
       WHERE h.id = $2
  ) hv ON true
 WHERE u.id = $1
"""


_USER_WITH_HOUSEHOLD_SQL = _user_with_household_sql()


async def visible_households(conn: Conn, user: User) -> list[Visible]:
    rows = await conn.fetch(
        f"SELECT {HOUSEHOLD_COLUMNS}, r.relation FROM households h {_RELATION_SQL}"
        " ORDER BY h.name, h.id",
        user.id,
        user.role,
    )
    return [Visible(Household.from_record(r), r["relation"]) for r in rows]


async def user_with_household(
    conn: Conn, user_id: UUID, household_id: UUID
) -> tuple[User | None, Visible | None]:
    row = await conn.fetchrow(_USER_WITH_HOUSEHOLD_SQL, user_id, household_id)
    return _user_and_visible(row)


def _user_and_visible(row: asyncpg.Record | None) -> tuple[User | None, Visible | None]:
    if row is None:
        return None, None
    user = User(row["user_id"], row["email"], row["role"], row["user_created_at"])
    if row["relation"] is None:
        return user, None
    return user, Visible(Household.from_record(row), row["relation"])


@dataclass(frozen=True)
class Bearer:
    """What a request's token gives: its user (None: no longer exists), whether the token
    was revoked, and the household in the path if the user may see it."""

    user: User | None
    revoked: bool
    visible: Visible | None


def _revoked_sql(jti: str, issued_at: str) -> str:
    """Whether the token (parameters `jti`, `issued_at`) of user u was revoked: one
    primary-key probe and one column of the user's row."""
    return f"""(u.tokens_valid_after IS NOT NULL AND {issued_at}::timestamptz < u.tokens_valid_after
        OR EXISTS (SELECT 1 FROM revoked_tokens t WHERE t.jti = {jti})) AS revoked"""


# What _USER_WITH_HOUSEHOLD_SQL reads and whether the token ($3 jti, $4 iat) was revoked, in
# the round trip every request makes anyway; with no household in the path (ingest,
# /v1/me), the user's row alone, as get_user read it before.
_BEARER_SQL = _user_with_household_sql(_revoked_sql("$3", "$4"))
_BEARER_NO_HOUSEHOLD_SQL = f"""
SELECT u.id AS user_id, u.email, u.role, u.created_at AS user_created_at,
       {_revoked_sql("$2", "$3")}, NULL::text AS relation
  FROM users u
 WHERE u.id = $1
"""


async def bearer(
    conn: Conn, user_id: UUID, household_id: UUID | None, *, jti: str, issued_at: datetime
) -> Bearer:
    """The user a token names, whether the token was revoked, and the household in the path
    (None: no household asked for) if the user may see it."""
    if household_id is None:
        row = await conn.fetchrow(_BEARER_NO_HOUSEHOLD_SQL, user_id, jti, issued_at)
    else:
        row = await conn.fetchrow(_BEARER_SQL, user_id, household_id, jti, issued_at)
    user, visible = _user_and_visible(row)
    return Bearer(user, bool(row is not None and row["revoked"]), visible)


async def revoke_token(conn: Conn, *, jti: str, user_id: UUID, expires_at: datetime) -> None:
    """Refuse the token `jti` from now on. Rows of tokens that expired on their own are
    purged here, so the table holds only revocations that still matter."""
    await conn.execute(
        """
        WITH purged AS (DELETE FROM revoked_tokens WHERE expires_at < now())
        INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3)
        ON CONFLICT (jti) DO NOTHING
        """,
        jti,
        user_id,
        expires_at,
    )


async def revoke_tokens_before_now(conn: Conn, user_id: UUID) -> datetime | None:
    """Refuse every token of the user issued before now (a later one still works); the
    instant, or None when there is no such user. The instant never moves back."""
    found: datetime | None = await conn.fetchval(
        "UPDATE users SET tokens_valid_after = GREATEST(tokens_valid_after, now())"
        " WHERE id = $1 RETURNING tokens_valid_after",
        user_id,
    )
    return found


async def create_user(conn: Conn, *, email: str, role: Role) -> User:
    try:
        row = await conn.fetchrow(
            "INSERT INTO users (email, role) VALUES ($1, $2) RETURNING id, email, role, created_at",
            email,
            role,
        )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateEmail(email) from exc
    assert row is not None
    return User.from_record(row)


async def get_user(conn: Conn, user_id: UUID) -> User | None:
    row = await conn.fetchrow(
        "SELECT id, email, role, created_at FROM users WHERE id = $1", user_id
    )
    return User.from_record(row) if row else None


async def get_user_by_email(conn: Conn, email: str) -> User | None:
    row = await conn.fetchrow(
        "SELECT id, email, role, created_at FROM users WHERE lower(email) = lower($1)", email
    )
    return User.from_record(row) if row else None


async def add_member(conn: Conn, *, household_id: UUID, user_id: UUID, role: MemberRole) -> None:
    """Bind a user to a household; a second call changes the membership role."""
    await conn.execute(
        """
        INSERT INTO household_members (household_id, user_id, role) VALUES ($1, $2, $3)
        ON CONFLICT (household_id, user_id) DO UPDATE SET role = EXCLUDED.role
        """,
        household_id,
        user_id,
        role,
    )


async def remove_member(conn: Conn, *, household_id: UUID, user_id: UUID) -> bool:
    """Unbind a user (owner, member or gateway) from a household; False if not bound."""
    removed = await conn.fetchval(
        "DELETE FROM household_members WHERE household_id = $1 AND user_id = $2 RETURNING 1",
        household_id,
        user_id,
    )
    return removed is not None


async def remove_support(conn: Conn, *, household_id: UUID, user_id: UUID) -> bool:
    """End a support assignment at once; False if there was none."""
    removed = await conn.fetchval(
        "DELETE FROM support_assignments WHERE household_id = $1 AND user_id = $2 RETURNING 1",
        household_id,
        user_id,
    )
    return removed is not None


async def assign_support(
    conn: Conn, *, household_id: UUID, user_id: UUID, expires_at: datetime | None
) -> None:
    """Assign a support user to a household; a second call replaces the expiry."""
    await conn.execute(
        """
        INSERT INTO support_assignments (household_id, user_id, expires_at) VALUES ($1, $2, $3)
        ON CONFLICT (household_id, user_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
        """,
        household_id,
        user_id,
        expires_at,
    )


async def audit(
    conn: Conn,
    *,
    user_id: UUID | None,
    household_id: UUID | None,
    action: str,
    detail: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (user_id, household_id, action, detail, request_id)"
        " VALUES ($1, $2, $3, $4, $5)",
        user_id,
        household_id,
        action,
        detail or {},
        request_id,
    )
