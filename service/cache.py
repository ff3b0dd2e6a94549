"""A short in-process cache of analytics answers, keyed so that it is never wrong: by the
household's data version (bumped by every ingest), the resolved window, and, for a window
that ends now, a two-second time slot.

Closed windows live until a new reading arrives (the TTL, with jitter, only bounds memory
and spreads expiry); open windows (`day`, `month`) for at most two seconds, and the
fresh_as_of they carry still names the newest reading they include.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from cachetools import TLRUCache

T = TypeVar("T")

OPEN_WINDOW_SECONDS = 2.0
CLOSED_WINDOW_SECONDS = 300.0
MAX_ENTRIES = 10_000


class _Abandoned(Exception):
    """The request computing an answer others wait for failed or was cancelled."""


def _expiry(key: Hashable, value: tuple[float, Any], now: float) -> float:
    ttl, _ = value
    return now + ttl


class AnswerCache:
    def __init__(self, *, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: TLRUCache[Hashable, tuple[float, Any]] = TLRUCache(
            maxsize=max_entries, ttu=_expiry, timer=time.monotonic
        )
        self._computing: dict[Hashable, asyncio.Future[Any]] = {}

    async def get_or_compute(
        self, key: Hashable, compute: Callable[[], Awaitable[T]], *, open_window: bool
    ) -> T:
        """The cached answer, or one computation shared by every request that misses at
        once: when an open window's slot turns over, thirty clients wait for one query
        instead of running thirty.

        The computation runs in the first request, on its own connection. If that request
        fails or is cancelled (its client went away), the waiters do not inherit its fate:
        they try again, and one of them computes.
        """
        while True:
            found = self.get(key)
            if found is not None:
                return found  # type: ignore[no-any-return]
            pending = self._computing.get(key)
            if pending is None:
                break
            try:
                return await asyncio.shield(pending)
            except _Abandoned:
                continue
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._computing[key] = future
        try:
            value = await compute()
        except BaseException:
            future.set_exception(_Abandoned())
            future.exception()  # retrieved here, so an unawaited future is not logged
            raise
        finally:
            del self._computing[key]
        self.put(key, value, open_window=open_window)
        future.set_result(value)
        return value

    def get(self, key: Hashable) -> Any:
        found = self._entries.get(key)
        return None if found is None else found[1]

    def put(self, key: Hashable, value: Any, *, open_window: bool) -> None:
        base = OPEN_WINDOW_SECONDS if open_window else CLOSED_WINDOW_SECONDS
        # Jitter spreads the expiry of answers computed together (a dashboard's burst).
        self._entries[key] = (base * random.uniform(0.8, 1.0), value)  # noqa: S311
