"""The process after startup: serving, then draining from SIGTERM until a deadline.

While draining, running turns go on until the deadline (WATTWISE_SHUTDOWN_GRACE_SECONDS
after the signal). A turn still running then is cut where it waits: its model request is
closed, its quota settled, and its stream ends with an error part. Live streams end at
once, since they never end on their own. uvicorn stops accepting connections at the
signal and waits somewhat longer than the deadline before it cancels what is left
(service.server), so the cut happens here, where a last part can still be sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import TypeVar

log = logging.getLogger("wattwise.lifecycle")

T = TypeVar("T")


class Lifecycle:
    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.draining = asyncio.Event()
        self._deadline: float | None = None  # loop time
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: set[asyncio.Timeout] = set()
        self.on_drain: list[Callable[[], None]] = []  # called once, when draining starts

    def bind(self) -> None:
        """Remember the running loop, for drain_threadsafe(); called at startup."""
        self._loop = asyncio.get_running_loop()

    def drain(self) -> None:
        """Start draining: the deadline is `grace` seconds from now. Idempotent."""
        if self.draining.is_set():
            return
        self._deadline = asyncio.get_running_loop().time() + self.grace
        self.draining.set()
        for timeout in self._waiting:
            timeout.reschedule(self._deadline)
        for callback in self.on_drain:
            callback()
        log.info(
            "draining",
            extra={"event": "draining", "grace_seconds": self.grace, "turns": len(self._waiting)},
        )

    def drain_threadsafe(self) -> None:
        """drain(), from a signal handler or another thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.drain)

    async def bounded(
        self, source: AsyncGenerator[T], farewell: Callable[[], T]
    ) -> AsyncGenerator[T]:
        """`source`'s items until it ends, or until the drain deadline passes: then `source`
        is cancelled where it waits (so its own cleanup runs) and `farewell()` is the last
        item. The deadline only ever covers the wait for the next item, never a yield."""
        async with aclosing(source):
            while True:
                try:
                    async with asyncio.timeout_at(self._deadline) as timeout:
                        self._waiting.add(timeout)
                        try:
                            item = await anext(source)
                        finally:
                            self._waiting.discard(timeout)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if not timeout.expired():
                        raise  # the source's own timeout, not the deadline
                    yield farewell()
                    return
                yield item
