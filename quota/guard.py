"""One model call, metered: reserved before it starts, settled or released on every way
out of it, whatever that way is.

    async with metered(quota, user_id=..., household_id=..., model=..., prompt_tokens=...,
                       max_tokens=...) as call:
        call.started()                      # the request went to the provider
        async for chunk in stream:
            call.streamed(chunk.text)
        call.used(prompt_tokens, completion_tokens)   # the provider's usage, if it came

On the way out: reported usage is settled; without it, a call that started is settled with
an estimate (the reserved prompt plus what streamed); one that never started is released.
A caller that may still learn the usage after it left (the provider's stream read on after
a hang-up) hands that work over with `call.settles_after(work)`: the settlement then runs in
the background once the work has ended, so the caller's way out is not held up by it (a turn
cut at the shutdown deadline still ends at once); the work must end by itself within a
bounded time.
This runs on success, on an exception, on cancellation (CancelledError is not an
Exception), and when the generator around it is closed; it is shielded, so a second
cancellation cannot interrupt it half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from quota.core import Reservation
from quota.prices import estimate_tokens
from quota.service import QuotaService

log = logging.getLogger("wattwise.quota")


@dataclass
class Call:
    reservation: Reservation
    _started: bool = False
    _usage: tuple[int, int] | None = None
    _streamed: list[str] = field(default_factory=list)
    _late: asyncio.Future[None] | None = None

    def settles_after(self, work: Coroutine[Any, Any, None]) -> None:
        """Settle once `work` (which may still call used() and streamed()) has ended."""
        self._late = asyncio.ensure_future(work)

    def started(self) -> None:
        self._started = True

    def streamed(self, text: str) -> None:
        self._started = True
        self._streamed.append(text)

    def used(self, prompt_tokens: int, completion_tokens: int) -> None:
        self._usage = (prompt_tokens, completion_tokens)


async def _close(quota: QuotaService, call: Call) -> None:
    r = call.reservation
    try:
        if call._late is not None:
            # Bounded by its owner; whatever it learned is settled below.
            with contextlib.suppress(Exception):
                await call._late
        if call._usage is not None:
            await quota.settle(r, prompt_tokens=call._usage[0], completion_tokens=call._usage[1])
        elif call._started:
            streamed = estimate_tokens("".join(call._streamed))
            await quota.settle(
                r, prompt_tokens=r.prompt_tokens, completion_tokens=streamed, estimated=True
            )
        else:
            await quota.release(r)
    except Exception:
        # The reservation then lapses at the end of its lease; the call is in the ledger if
        # it was settled that far.
        log.exception("could not close reservation %s", r.id)


@asynccontextmanager
async def metered(
    quota: QuotaService,
    *,
    user_id: UUID,
    household_id: UUID | None,
    model: str,
    prompt_tokens: int,
    max_tokens: int | None = None,
    turn_id: str | None = None,
) -> AsyncIterator[Call]:
    reservation = await quota.reserve(
        user_id=user_id,
        household_id=household_id,
        model=model,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        turn_id=turn_id,
    )
    async with held(quota, reservation) as call:
        yield call


@asynccontextmanager
async def held(quota: QuotaService, reservation: Reservation) -> AsyncIterator[Call]:
    """A call over a reservation made earlier (before a response started, say): settled or
    released on the way out exactly like metered()."""
    call = Call(reservation)
    reservation.owned = True
    try:
        yield call
    finally:
        closing = asyncio.ensure_future(_close(quota, call))
        if call._late is None:
            await asyncio.shield(closing)
        else:
            _settling.add(closing)
            closing.add_done_callback(_settling.discard)


# Settlements that wait for late work run on their own: kept here, or the loop may collect
# them (and the late work they hold).
_settling: set[asyncio.Future[None]] = set()
