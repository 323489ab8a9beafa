"""Counting the events being handled right now, so a shutdown can wait for them.

A transport wraps "handle the event and send the replies" in ``track()``; on
SIGTERM the runtime first stops taking new updates, then ``wait_idle`` lets the
ones already taken finish (bounded), and only then closes transports and the
database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class InFlight:
    """A counter of running units of work with a wait-until-zero."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        self.count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:  # noqa: ASYNC109 - bounded by design
        """Wait until nothing is in flight; False when ``timeout`` seconds passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
