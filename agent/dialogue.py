"""Dialogue state: what each answer left the conversation in, so that the next message is read
against it ("and the week before?", "the hall one", "yes").

The server keeps no thread. A client sends the thread with every message (the AI SDK sends
the whole of it, the OpenAI endpoint's callers too), and the server recognises its own last
answer in it: after each complete answer it records the state that answer left under `key`,
the SHA-256 of the answer's text and of the message it answered (each with its whitespace
collapsed, so a client that joins text parts differently still matches). The next turn looks
that key up among the records of the same household and user only. So the state is the same
in every process and after a restart, a thread the server never answered has no state (its
follow-ups are read on their own words and its "yes" confirms nothing), and no client can
bring another household's or another person's state by copying its text.

A proposal binds to the answer that showed it: "yes" confirms the proposal whose id the
previous answer recorded, never whatever else is pending for the person, and after any
other answer a bare "yes" confirms nothing. Records older than RETENTION are deleted as new
ones are written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from telemetry.db import Conn

RETENTION = timedelta(days=30)
VERSION = 1


class Said(Protocol):
    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...


@dataclass(frozen=True)
class Span:
    """A window as local dates, both included, and the tool window name it was asked as."""

    name: str
    first: date
    last: date

    def public(self) -> dict[str, str]:
        return {"name": self.name, "first": self.first.isoformat(), "last": self.last.isoformat()}

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Span:
        return cls(raw["name"], date.fromisoformat(raw["first"]), date.fromisoformat(raw["last"]))


@dataclass(frozen=True)
class Asked:
    """A request that waits for the person to say which device: the order or the question,
    and the devices the answer offered (empty: any)."""

    branch: str
    candidates: tuple[str, ...] = ()
    op: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class State:
    branch: str
    rule: str
    window: Span | None = None
    compared: Span | None = None  # the second window of a comparison
    devices: tuple[str, ...] = ()
    proposal: str | None = None  # the id of the proposal this answer showed
    asked: Asked | None = None  # this answer asked which device

    def dump(self) -> str:
        raw = asdict(self)
        raw["v"] = VERSION
        raw["window"] = self.window.public() if self.window else None
        raw["compared"] = self.compared.public() if self.compared else None
        return json.dumps(raw, separators=(",", ":"))

    @classmethod
    def load(cls, raw: dict[str, Any]) -> State | None:
        """The state a record holds; None for one of another version."""
        if raw.get("v") != VERSION:
            return None
        asked = raw.get("asked")
        return cls(
            branch=raw["branch"],
            rule=raw["rule"],
            window=Span.parse(raw["window"]) if raw.get("window") else None,
            compared=Span.parse(raw["compared"]) if raw.get("compared") else None,
            devices=tuple(raw.get("devices") or ()),
            proposal=raw.get("proposal"),
            asked=Asked(
                asked["branch"], tuple(asked["candidates"]), asked.get("op"), asked.get("value")
            )
            if asked
            else None,
        )


def _normal(text: str) -> str:
    return " ".join(text.split())


def key(question: str, answer: str) -> bytes:
    """The record key of `answer`, given to `question`."""
    joined = f"{_normal(question)}\n\x00\n{_normal(answer)}"
    return hashlib.sha256(joined.encode()).digest()


def previous_exchange(messages: Sequence[Said]) -> tuple[str, str] | None:
    """The answer the thread's new message follows, and the message that answer answered;
    None unless the thread ends user, assistant, user."""
    if len(messages) < 3:
        return None
    question, answer = messages[-3], messages[-2]
    if question.role != "user" or answer.role != "assistant":
        return None
    return question.content, answer.content


async def recall(
    conn: Conn, *, household_id: UUID, user_id: UUID, messages: Sequence[Said]
) -> State | None:
    """The state the thread's last answer left, if the server recorded that answer for this
    household and user."""
    pair = previous_exchange(messages)
    if pair is None:
        return None
    raw = await conn.fetchval(
        """
        SELECT state FROM dialogue_turns
         WHERE household_id = $1 AND user_id = $2 AND key = $3
         ORDER BY created_at DESC
         LIMIT 1
        """,
        household_id,
        user_id,
        key(*pair),
    )
    if raw is None:
        return None
    return State.load(json.loads(raw) if isinstance(raw, str) else raw)


async def record(
    conn: Conn,
    *,
    turn_id: str,
    household_id: UUID,
    user_id: UUID,
    question: str,
    answer: str,
    state: State,
) -> None:
    """Keep the state `answer` left, and drop this person's records past RETENTION."""
    await conn.execute(
        """
        WITH gone AS (
            DELETE FROM dialogue_turns
             WHERE household_id = $2 AND user_id = $3 AND created_at < now() - $6::interval
        )
        INSERT INTO dialogue_turns (turn_id, household_id, user_id, key, state)
        VALUES ($1, $2, $3, $4, $5::jsonb)
        ON CONFLICT (turn_id) DO NOTHING
        """,
        turn_id,
        household_id,
        user_id,
        key(question, answer),
        state.dump(),
        RETENTION,
    )
