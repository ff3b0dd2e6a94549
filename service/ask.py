"""`wattwise ask`: one chat turn in process, printed as it streams."""

from __future__ import annotations

import sys
import uuid
from contextlib import aclosing
from typing import TYPE_CHECKING, TextIO
from uuid import UUID

from agent.events import (
    ActionProposed,
    CommandIssued,
    ContextInfo,
    Failed,
    RouteInfo,
    Text,
    Usage,
    Verification,
)
from agent.turn import Message, Turn
from quota.core import QuotaRefused
from service.deps import open_deps
from service.settings import Settings
from telemetry import access

if TYPE_CHECKING:
    from telemetry.db import Conn


async def ask(
    settings: Settings,
    question: str,
    *,
    email: str,
    household: str | None,
    voice: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> str | None:
    """Answer `question` for the user `email`; None on success, else why not."""
    async with open_deps(settings) as deps:
        async with deps.connection() as conn:
            found = await principal(conn, email, household)
        if isinstance(found, str):
            return found
        user, seen = found
        turn = Turn(
            deps.turns,
            user=user,
            seen=seen,
            messages=[Message("user", question)],
            style="voice" if voice else "chat",
            turn_id=uuid.uuid4().hex,
        )
        refused = await prepare(turn)
        if refused is not None:
            return f"{refused.code}: {refused.message}"
        midline = False  # the answer's last line is not ended yet
        async with aclosing(turn.events()) as events:
            async for event in events:
                if midline and not isinstance(event, Text):
                    # End the answer's line before a note, so the two never share a line
                    # on a terminal that shows both streams.
                    out.write("\n")
                    out.flush()
                    midline = False
                match event:
                    case Text(text=text):
                        out.write(text)
                        out.flush()
                        if text:
                            midline = not text.endswith("\n")
                    case RouteInfo():
                        r = event.public()
                        window = r["window"]["name"] if r["window"] else "-"
                        print(f"[route {r['branch']} ({r['rule']}), window {window}]", file=err)
                    case ContextInfo(fresh_as_of=fresh):
                        print(f"[fresh as of {fresh.isoformat() if fresh else 'never'}]", file=err)
                    case ActionProposed(action=action):
                        expires = action["expires_at"]
                        print(f"[proposal {action['id']}, expires {expires}]", file=err)
                    case CommandIssued(command_id=command_id):
                        print(f"[command {command_id} sent]", file=err)
                    case Verification():
                        v = event.public()
                        print(
                            f"[verified: {len(v['numbers_checked'])} numbers, "
                            f"{len(v['replaced'])} replaced, {len(v['dropped'])} dropped]",
                            file=err,
                        )
                    case Usage():
                        u = event.public()
                        print(f"[tokens {u['total_tokens']}, cost {u['cost']:.6f}]", file=err)
                    case Failed(code=code, message=message):
                        print(f"[error {code}: {message}]", file=err)
        if midline:
            out.write("\n")
    return None


async def prepare(turn: Turn) -> QuotaRefused | None:
    """turn.prepare(); the quota's refusal, if it refused the turn."""
    try:
        await turn.prepare()
    except QuotaRefused as exc:
        return exc
    return None


async def principal(
    conn: Conn, email: str, household: str | None
) -> tuple[access.User, access.Visible] | str:
    """Who asks, and about which household (an id, or None for the user's only one), as a
    turn takes them; else why not."""
    user = await access.get_user_by_email(conn, email)
    if user is None:
        return f"no user {email!r} (run `wattwise demo` or `wattwise user add` first)"
    seen = await _household(conn, user, household)
    return seen if isinstance(seen, str) else (user, seen)


async def _household(conn: Conn, user: access.User, household: str | None) -> access.Visible | str:
    if household is not None:
        try:
            wanted = UUID(household)
        except ValueError:
            return f"{household!r} is not a household id"
        _, seen = await access.user_with_household(conn, user.id, wanted)
        return seen if seen is not None else "no such household visible to this user"
    options = await access.visible_households(conn, user)
    if len(options) != 1:
        return f"the user sees {len(options)} households: pass --household"
    return options[0]
