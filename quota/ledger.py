"""The usage ledger in PostgreSQL: one row per settled model call, written with group
commit (callers that settle while a write is in flight share the next one), and the sums
the quota counters are rebuilt from."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date
from uuid import UUID

import asyncpg

_INSERT_SQL = """
INSERT INTO usage_ledger (reservation_id, turn_id, user_id, household_id, model,
                          prompt_tokens, completion_tokens, cost_micro, estimated, day, month)
SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::text[],
                     $6::int4[], $7::int4[], $8::int8[], $9::bool[], $10::date[], $11::date[])
ON CONFLICT (reservation_id) DO NOTHING
"""


@dataclass(frozen=True)
class Entry:
    reservation_id: str
    turn_id: str | None
    user_id: UUID
    household_id: UUID | None
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_micro: int
    estimated: bool
    day: date
    month: date


class Ledger:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._pending: list[tuple[Entry, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def append(self, entry: Entry) -> None:
        """Return once the entry is committed. A caller cancelled meanwhile does not stop
        the write: the entry is committed all the same."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Read by the caller, or (if it was cancelled) here, so no error goes unreported.
        future.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        self._pending.append((entry, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await asyncio.shield(future)

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            entries = [e for e, _ in batch]
            try:
                async with self._pool.acquire() as conn:
                    await conn.execute(
                        _INSERT_SQL,
                        [e.reservation_id for e in entries],
                        [e.turn_id for e in entries],
                        [e.user_id for e in entries],
                        [e.household_id for e in entries],
                        [e.model for e in entries],
                        [e.prompt_tokens for e in entries],
                        [e.completion_tokens for e in entries],
                        [e.cost_micro for e in entries],
                        [e.estimated for e in entries],
                        [e.day for e in entries],
                        [e.month for e in entries],
                    )
            except Exception as exc:  # every waiter hears of it; the writer goes on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def user_tokens(
        self, user: UUID, *, day: date | None = None, month: date | None = None
    ) -> int:
        column, value = ("day", day) if day is not None else ("month", month)
        async with self._pool.acquire() as conn:
            total = await conn.fetchval(
                "SELECT coalesce(sum(prompt_tokens::int8 + completion_tokens), 0)"
                f" FROM usage_ledger WHERE user_id = $1 AND {column} = $2",
                user,
                value,
            )
        return int(total)

    async def month_spend(self, month: date) -> int:
        async with self._pool.acquire() as conn:
            total = await conn.fetchval(
                "SELECT coalesce(sum(cost_micro), 0) FROM usage_ledger WHERE month = $1", month
            )
        return int(total)
