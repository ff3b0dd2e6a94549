"""Consent-gated device commands: a stored proposal, an explicit confirmation, exactly one
command in the household's outbox, and the gateway's acknowledgement.

proposed ──confirm──> confirmed ──> sent ──ack──> acknowledged | failed
    └──> cancelled | expired

At most one proposal waits per device, and at most MAX_PENDING per household: a new one
cancels the household's older one for the same device and, past the cap, its oldest, each
with the event detail saying it was superseded. Proposals are made one at a time per
household (an advisory lock), and a unique index keeps one pending per device whatever
races. A command exists only for an action its proposer confirmed before it expired. The
confirmation locks the action's row and the outbox is unique per action, so confirming
twice, or twenty times at once, yields one command; later confirmations replay it.
Expiry is judged by the database clock, so every process agrees on it.

Every lookup is scoped to the caller: an id that is not theirs (or a household they no
longer see) gets the same NotFound as an id that never existed. Refusals that change the
action (a lapsed proposal becomes expired) commit that change before they are raised; the
functions open their own transaction, which nests as a savepoint in a caller's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast
from uuid import UUID

import asyncpg

from agent.errors import Conflict, FieldError, Forbidden, InvalidRequest, NotFound
from telemetry import access
from telemetry.households import Device
from tools.base import ToolFailure
from tools.catalog import validate_proposal

if TYPE_CHECKING:
    from telemetry.db import Conn

DEFAULT_TTL = timedelta(minutes=5)

Status = Literal["proposed", "confirmed", "sent", "acknowledged", "failed", "cancelled", "expired"]
CommandStatus = Literal["sent", "acknowledged", "failed"]
COMMAND_STATUSES: tuple[CommandStatus, ...] = ("sent", "acknowledged", "failed")
MAX_COMMANDS = 100
# Proposals waiting for consent in one household at once. A proposal waits five minutes by
# default and a person answers the newest: past the cap, the oldest gives way rather than
# the new one being refused (a refusal would block the ask behind stale ones).
MAX_PENDING = 10
MAX_DETAIL = 500

NO_ACTION = "No action with this id is visible to you."
NO_COMMAND = "No command with this id is visible to you."
_ISSUED = ("confirmed", "sent", "acknowledged", "failed")
_INVERSE = {"ON": "OFF", "OFF": "ON"}


class ActionRefused(InvalidRequest):
    """A proposal the server will not store: unknown or uncontrollable device, an
    operation the device does not take, a value out of range."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        fields = (FieldError(field, message),) if field else ()
        super().__init__(message, code=code, fields=fields)


@dataclass(frozen=True)
class Action:
    id: str
    household_id: UUID
    user_id: UUID
    device_id: UUID
    device_name: str
    op: str
    value: str
    command: dict[str, str]
    status: Status
    created_at: datetime
    expires_at: datetime
    undo_of: str | None

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> Action:
        return cls(
            id=row["id"],
            household_id=row["household_id"],
            user_id=row["user_id"],
            device_id=row["device_id"],
            device_name=row["device_name"],
            op=row["op"],
            value=row["value"],
            command=row["command"],
            status=cast(Status, row["status"]),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            undo_of=row["undo_of"],
        )

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "household_id": str(self.household_id),
            "user_id": str(self.user_id),
            "device_id": str(self.device_id),
            "device_name": self.device_name,
            "op": self.op,
            "value": self.value,
            "command": dict(self.command),
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "undo_of": self.undo_of,
        }


@dataclass(frozen=True)
class Confirmed:
    action: Action
    command_id: UUID
    command: dict[str, str]
    replayed: bool  # True when this confirmation replays an earlier one


@dataclass(frozen=True)
class Command:
    """A command in the outbox, as the household's gateway sees it."""

    id: UUID
    action_id: str
    device_id: UUID
    command: dict[str, str]
    status: CommandStatus
    detail: str | None
    created_at: datetime
    acknowledged_at: datetime | None

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> Command:
        return cls(
            id=row["id"],
            action_id=row["action_id"],
            device_id=row["device_id"],
            command=row["command"],
            status=cast(CommandStatus, row["status"]),
            detail=row["detail"],
            created_at=row["created_at"],
            acknowledged_at=row["acknowledged_at"],
        )

    def public(self) -> dict[str, Any]:
        ack = self.acknowledged_at
        return {
            "id": str(self.id),
            "action_id": self.action_id,
            "device_id": str(self.device_id),
            "command": dict(self.command),
            "status": self.status,
            "detail": self.detail,
            "created_at": self.created_at.isoformat(),
            "acknowledged_at": ack.isoformat() if ack else None,
        }


_COLUMNS = (
    "a.id, a.household_id, a.user_id, a.device_id, a.device_name, a.op, a.value,"
    " a.command, a.status, a.created_at, a.expires_at, a.undo_of"
)
_COMMAND_COLUMNS = (
    "c.id, c.action_id, a.device_id, c.command, c.status, c.detail, c.created_at, c.acknowledged_at"
)
_RELATION = access.relation_sql("$2", "$3::text")

# The household ($1) if the user ($2, role $3) sees it, and the device ($4) if it is there.
_TARGET_SQL = f"""
SELECT r.relation, d.id, d.household_id, d.name, d.kind, d.controllable, d.max_watts,
       d.created_at
  FROM households h {_RELATION}
  LEFT JOIN devices d ON d.household_id = h.id AND d.id = $4
 WHERE h.id = $1
"""

# The command is built here, from the same values as its columns, in its key order.
_INSERT_SQL = f"""
WITH a AS (
    INSERT INTO actions AS a (id, household_id, user_id, device_id, device_name, op, value,
                              command, expires_at, undo_of)
    VALUES ($1, $2, $3, $4, $5, $6, $7,
            json_build_object('op', $6::text, 'device_name', $5::text, 'value', $7::text),
            now() + $8::interval, $9)
    RETURNING {_COLUMNS}
), e AS (
    INSERT INTO action_events (action_id, status, user_id) SELECT id, 'proposed', user_id FROM a
)
SELECT * FROM a
"""

# One proposer at a time per household ($1), until the transaction ends.
_LOCK_PROPOSALS_SQL = (
    "SELECT pg_advisory_xact_lock(hashtextextended('proposals ' || $1::uuid::text, 0))"
)
SUPERSEDED_DEVICE = "superseded by a newer proposal for this device"
SUPERSEDED_CAP = f"superseded: at most {MAX_PENDING} proposals wait at once in a household"


def _supersede_sql(which: str) -> str:
    """Cancel the household's ($1) pending proposals `which` selects, logging each with
    the new proposer ($2) and the reason ($3)."""
    return f"""
    WITH a AS (
        UPDATE actions AS a SET status = 'cancelled', updated_at = now()
         WHERE a.household_id = $1 AND a.status = 'proposed' AND {which}
        RETURNING a.id
    )
    INSERT INTO action_events (action_id, status, user_id, detail)
    SELECT id, 'cancelled', $2::uuid, $3::text FROM a
    """


_SUPERSEDE_DEVICE_SQL = _supersede_sql("a.device_id = $4")
# All but the newest $4, leaving room for the new one.
_SUPERSEDE_OLDEST_SQL = _supersede_sql(
    """a.id IN (SELECT o.id FROM actions o
                  WHERE o.household_id = $1 AND o.status = 'proposed'
                  ORDER BY o.created_at DESC, o.id DESC OFFSET $4)"""
)

# The caller's own action ($1) in a household they still see.
_OWN_SQL = f"""
SELECT {_COLUMNS}, a.expires_at <= now() AS lapsed
  FROM actions a
  JOIN households h ON h.id = a.household_id {_RELATION}
 WHERE a.id = $1 AND a.user_id = $2
"""
_LOCK_SQL = _OWN_SQL + " FOR UPDATE OF a"
# Read after the lock, in a statement of its own: a statement that waited for the lock
# sees the action as its holder left it, but other tables as they were before the wait.
_COMMAND_ID_SQL = "SELECT id FROM commands WHERE action_id = $1"

_MOVE_SQL = f"""
WITH a AS (
    UPDATE actions AS a SET status = $2, updated_at = now() WHERE a.id = $1
    RETURNING {_COLUMNS}
), e AS (
    INSERT INTO action_events (action_id, status, user_id, detail)
    SELECT id, $2, $3::uuid, $4::text FROM a
)
SELECT * FROM a
"""

# Into the outbox and on to sent, in one statement; the two events keep their order.
_SEND_SQL = f"""
WITH c AS (
    INSERT INTO commands (action_id, household_id, command)
    SELECT id, household_id, command FROM actions WHERE id = $1
    RETURNING id
), e AS (
    INSERT INTO action_events (action_id, status, user_id)
    VALUES ($1, 'confirmed', $2::uuid), ($1, 'sent', NULL)
), a AS (
    UPDATE actions AS a SET status = 'sent', updated_at = now() WHERE a.id = $1
    RETURNING {_COLUMNS}
)
SELECT a.*, c.id AS command_id FROM a, c
"""


def _expire_sql(scope: str) -> str:
    """Mark the lapsed proposals `scope` selects expired, logging each."""
    return f"""
    WITH a AS (
        UPDATE actions AS a SET status = 'expired', updated_at = now()
         WHERE a.status = 'proposed' AND a.expires_at <= now() AND {scope}
        RETURNING a.id
    )
    INSERT INTO action_events (action_id, status) SELECT id, 'expired' FROM a
    """


_EXPIRE_MINE_SQL = _expire_sql("a.household_id = $1 AND a.user_id = $2")
_EXPIRE_HOUSEHOLD_SQL = _expire_sql("a.household_id = $1")
_EXPIRE_ONE_SQL = _expire_sql("a.id = $1 AND (a.user_id = $2 OR $3::text = 'admin')")

_PENDING_SQL = f"""
SELECT {_COLUMNS} FROM actions a
 WHERE a.household_id = $1 AND a.user_id = $2 AND a.status = 'proposed'
   AND a.expires_at > now()
 ORDER BY a.created_at, a.id
"""

# The proposer, or an administrator, in a household they see; the events as JSON.
_GET_SQL = f"""
SELECT {_COLUMNS},
       (SELECT coalesce(json_agg(json_build_object('status', e.status, 'at', e.at,
                                                   'detail', e.detail) ORDER BY e.id), '[]')
          FROM action_events e WHERE e.action_id = a.id) AS events
  FROM actions a
  JOIN households h ON h.id = a.household_id {_RELATION}
 WHERE a.id = $1 AND (a.user_id = $2 OR $3::text = 'admin')
"""

_COMMANDS_SQL = f"""
SELECT {_COMMAND_COLUMNS}
  FROM commands c JOIN actions a ON a.id = c.action_id
 WHERE c.household_id = $1 AND c.status = ANY($2::text[])
 ORDER BY c.created_at, c.id
 LIMIT $3
"""

_COMMAND_LOCK_SQL = f"""
SELECT {_COMMAND_COLUMNS}, r.relation
  FROM commands c
  JOIN actions a ON a.id = c.action_id
  JOIN households h ON h.id = c.household_id {_RELATION}
 WHERE c.id = $1
   FOR UPDATE OF c
"""

_ACK_SQL = """
WITH c AS (
    UPDATE commands SET status = $2, detail = $3, acknowledged_at = now(),
                        acknowledged_by = $4
     WHERE id = $1
    RETURNING id, action_id, command, status, detail, created_at, acknowledged_at
), a AS (
    UPDATE actions SET status = $2, updated_at = now()
     WHERE id = (SELECT action_id FROM c)
    RETURNING id, device_id
), e AS (
    INSERT INTO action_events (action_id, status, user_id, detail)
    SELECT id, $2, $4::uuid, $3::text FROM a
)
SELECT c.*, a.device_id FROM c JOIN a ON a.id = c.action_id
"""


def _may_act(user: access.User) -> None:
    # Support staff read; gateways report and acknowledge. Neither consents for a home.
    if user.role not in ("resident", "admin"):
        raise Forbidden("Only the household's residents may propose or confirm device changes.")


async def _propose(
    conn: Conn,
    *,
    household_id: UUID,
    user: access.User,
    device_id: UUID,
    op: str,
    value: str,
    ttl: timedelta,
    undo_of: str | None = None,
) -> Action:
    _may_act(user)
    if ttl <= timedelta(0):
        raise ValueError("a proposal's ttl must be positive")
    row = await conn.fetchrow(_TARGET_SQL, household_id, user.id, user.role, device_id)
    if row is None:
        raise NotFound("No household with this id is visible to you.")
    if row["id"] is None:
        raise ActionRefused("unknown_device", "This household has no such device.", "device")
    device = Device.from_record(row)
    try:
        value = validate_proposal(device, op, value)
    except ToolFailure as exc:
        raise ActionRefused(exc.code, exc.message, exc.field) from None
    async with conn.transaction():
        # Serialised per household, so concurrent proposals supersede one another in turn
        # instead of racing into the unique index (actions_one_pending_per_device).
        await conn.execute(_LOCK_PROPOSALS_SQL, household_id)
        # Lapsed ones first: they neither count nor block the index.
        await conn.execute(_EXPIRE_HOUSEHOLD_SQL, household_id)
        await conn.execute(
            _SUPERSEDE_DEVICE_SQL, household_id, user.id, SUPERSEDED_DEVICE, device.id
        )
        await conn.execute(
            _SUPERSEDE_OLDEST_SQL, household_id, user.id, SUPERSEDED_CAP, MAX_PENDING - 1
        )
        created = await conn.fetchrow(
            _INSERT_SQL,
            secrets.token_urlsafe(16),
            household_id,
            user.id,
            device.id,
            device.name,
            op,
            value,
            ttl,
            undo_of,
        )
    assert created is not None
    return Action.from_record(created)


async def propose(
    conn: Conn,
    *,
    household_id: UUID,
    user: access.User,
    device: Device,
    op: str,
    value: str,
    ttl: timedelta = DEFAULT_TTL,
) -> Action:
    """Check a change against the device as stored now and store it as a proposal that
    waits `ttl` for its proposer's consent. Raises ActionRefused, Forbidden, NotFound."""
    return await _propose(
        conn,
        household_id=household_id,
        user=user,
        device_id=device.id,
        op=op,
        value=value,
        ttl=ttl,
    )


async def pending(conn: Conn, *, household_id: UUID, user_id: UUID) -> list[Action]:
    """The user's proposals in the household still waiting for an answer, oldest first;
    those that lapsed are marked expired on the way."""
    await conn.execute(_EXPIRE_MINE_SQL, household_id, user_id)
    rows = await conn.fetch(_PENDING_SQL, household_id, user_id)
    return [Action.from_record(r) for r in rows]


async def _locked(conn: Conn, action_id: str, user: access.User) -> tuple[Action, bool]:
    """The caller's action, locked until the transaction ends, and whether it lapsed."""
    row = await conn.fetchrow(_LOCK_SQL, action_id, user.id, user.role)
    if row is None:
        raise NotFound(NO_ACTION)
    return Action.from_record(row), row["lapsed"]


async def _move(
    conn: Conn, action_id: str, status: Status, user_id: UUID | None, detail: str | None = None
) -> Action:
    row = await conn.fetchrow(_MOVE_SQL, action_id, status, user_id, detail)
    assert row is not None
    return Action.from_record(row)


def _ended(status: str) -> Conflict:
    if status == "cancelled":
        return Conflict("This proposal was cancelled.", code="action_cancelled")
    return Conflict("This proposal expired; ask again.", code="action_expired")


async def confirm(conn: Conn, action_id: str, user: access.User) -> Confirmed:
    """The proposer's consent: the first one puts the command in the outbox and marks the
    action sent; any later one replays that command."""
    _may_act(user)
    async with conn.transaction():
        action, lapsed = await _locked(conn, action_id, user)
        status = action.status
        if status in _ISSUED:
            command_id = await conn.fetchval(_COMMAND_ID_SQL, action_id)
            assert command_id is not None
            return Confirmed(action, command_id, action.command, replayed=True)
        if status == "proposed" and not lapsed:
            sent = await conn.fetchrow(_SEND_SQL, action_id, user.id)
            assert sent is not None
            action = Action.from_record(sent)
            return Confirmed(action, sent["command_id"], action.command, replayed=False)
        if status == "proposed":
            await _move(conn, action_id, "expired", None)
            status = "expired"
    raise _ended(status)  # after the commit: the expiry is kept


async def cancel(conn: Conn, action_id: str, user: access.User) -> Action:
    """The proposer's no. Cancelling again returns the cancelled action; a command that
    was sent cannot be called back (undo proposes its inverse)."""
    _may_act(user)
    async with conn.transaction():
        action, lapsed = await _locked(conn, action_id, user)
        status = action.status
        if status == "proposed" and not lapsed:
            return await _move(conn, action_id, "cancelled", user.id)
        if status == "cancelled":
            return action
        if status in _ISSUED:
            raise Conflict("The command was already sent; undo it instead.", code="already_sent")
        if status == "proposed":
            await _move(conn, action_id, "expired", None)
    raise _ended("expired")  # after the commit: the expiry is kept


async def undo(
    conn: Conn, action_id: str, user: access.User, ttl: timedelta = DEFAULT_TTL
) -> Action:
    """A new proposal, the inverse of a sent SET_POWER command; it needs its own consent."""
    _may_act(user)
    row = await conn.fetchrow(_OWN_SQL, action_id, user.id, user.role)
    if row is None:
        raise NotFound(NO_ACTION)
    original = Action.from_record(row)
    if original.op != "SET_POWER":
        raise Conflict(f"A {original.op} command has no inverse.", code="not_undoable")
    if original.status not in ("sent", "acknowledged"):
        raise Conflict("Only a command that was sent can be undone.", code="not_undoable")
    return await _propose(
        conn,
        household_id=original.household_id,
        user=user,
        device_id=original.device_id,
        op=original.op,
        value=_INVERSE[original.value],
        ttl=ttl,
        undo_of=original.id,
    )


async def get(conn: Conn, action_id: str, user: access.User) -> tuple[Action, list[dict[str, Any]]]:
    """The action and its events (status, at, detail), oldest first, for its proposer or
    an administrator."""
    await conn.execute(_EXPIRE_ONE_SQL, action_id, user.id, user.role)
    row = await conn.fetchrow(_GET_SQL, action_id, user.id, user.role)
    if row is None:
        raise NotFound(NO_ACTION)
    return Action.from_record(row), list(row["events"])


async def commands(
    conn: Conn, household_id: UUID, statuses: tuple[CommandStatus, ...] = ("sent",)
) -> list[Command]:
    """The household's commands in these states, oldest first, at most MAX_COMMANDS.
    Unscoped: the caller has established that the gateway or admin sees the household."""
    rows = await conn.fetch(_COMMANDS_SQL, household_id, list(statuses), MAX_COMMANDS)
    return [Command.from_record(r) for r in rows]


async def acknowledge(
    conn: Conn, command_id: UUID, user: access.User, *, success: bool, detail: str | None
) -> Command:
    """The gateway's report: sent -> acknowledged or failed, and the action with it. The
    same report again is a no-op; the opposite one is a Conflict."""
    outcome: CommandStatus = "acknowledged" if success else "failed"
    async with conn.transaction():
        row = await conn.fetchrow(_COMMAND_LOCK_SQL, command_id, user.id, user.role)
        if row is None:
            raise NotFound(NO_COMMAND)
        if row["relation"] not in ("gateway", "admin"):
            raise Forbidden("Only the household's gateway may acknowledge its commands.")
        if row["status"] == outcome:
            return Command.from_record(row)
        if row["status"] != "sent":
            raise Conflict(
                f"The command was already reported {row['status']}.", code="already_acknowledged"
            )
        acked = await conn.fetchrow(_ACK_SQL, command_id, outcome, detail, user.id)
    assert acked is not None
    return Command.from_record(acked)
