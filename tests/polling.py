"""Waiting in tests for a state the code under test reaches on its own time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(check: Callable[[], object], seconds: float = 5, what: str = "") -> None:
    """Return once `check()` is true; fail after `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {seconds:g} s: {what or check}")
        await asyncio.sleep(0.02)
