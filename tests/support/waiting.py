"""Waiting in tests for something another task or process does."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], Awaitable[object]],
    within: float = 15.0,
    what: str = "condition",
    every: float = 0.05,
) -> None:
    """Ask ``condition`` every ``every`` seconds until it is true; fail after ``within``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not met within {within}s")
        await asyncio.sleep(every)
