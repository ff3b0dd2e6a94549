"""A short in-process cache of analytics answers, keyed so that it is never wrong: by the
household's data version (bumped by every ingest), the resolved window, and, for a window
that ends now, a two-second time slot.

Closed windows live until a new reading arrives (the TTL, with jitter, only bounds memory
and spreads expiry); open windows (`day`, `month`) for at most two seconds, and the
fresh_as_of they carry still names the newest reading they include.
"""

from __future__ import annotations

import random
import time
from collections.abc import Hashable
from typing import Any

from cachetools import TLRUCache

OPEN_WINDOW_SECONDS = 2.0
CLOSED_WINDOW_SECONDS = 300.0
MAX_ENTRIES = 10_000


def _expiry(key: Hashable, value: tuple[float, Any], now: float) -> float:
    ttl, _ = value
    return now + ttl


class AnswerCache:
    def __init__(self, *, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: TLRUCache[Hashable, tuple[float, Any]] = TLRUCache(
            maxsize=max_entries, ttu=_expiry, timer=time.monotonic
        )

    def get(self, key: Hashable) -> Any:
        found = self._entries.get(key)
        return None if found is None else found[1]

    def put(self, key: Hashable, value: Any, *, open_window: bool) -> None:
        base = OPEN_WINDOW_SECONDS if open_window else CLOSED_WINDOW_SECONDS
        # Jitter spreads the expiry of answers computed together (a dashboard's burst).
        self._entries[key] = (base * random.uniform(0.8, 1.0), value)  # noqa: S311
