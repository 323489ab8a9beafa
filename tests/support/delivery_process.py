"""One bot process for the two-process delivery test (``tests/test_scheduler.py``).

    python -m tests.support.delivery_process CONFIG_JSON NOW_ISO BARRIER_FILE EXPECTED

Builds the real runtime on the given database and fake Bot API (sending only, no
polling), touches ``BARRIER_FILE.<pid>.ready`` and waits until ``BARRIER_FILE``
exists, so that both processes go at the same moment. Then, first, it delivers the
weekly digests of ISO week 2026-W46 at once (both processes race at the ledger),
and second, it runs the real scheduler (its stored runs in the same database, the
weekly job due). It stops once the ledger holds ``EXPECTED`` sent deliveries
(or after 30 s), and prints one JSON line per delivery outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.config import load_config
from bot.delivery import Outcome
from bot.runtime import build_runtime
from bot.runtime.jobs import build_scheduler
from bot.transports.telegram import TelegramTransport
from storage.models import Delivery


def _wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(0.002)  # a tight wait: both processes go within milliseconds


async def main(config_json: str, now_iso: str, barrier: str, expected: int) -> None:
    config = load_config(None, **json.loads(config_json))
    now = datetime.fromisoformat(now_iso)
    runtime = await build_runtime(config, clock=lambda: now, terminal=False)
    for transport in runtime.transports:
        if isinstance(transport, TelegramTransport):
            await transport.app.initialize()  # send only: no polling
    digests = runtime.digests
    assert digests is not None
    outcomes: list[Outcome] = []
    send_weekly = digests.send_weekly

    async def recording(*args: Any, **kwargs: Any) -> list[Outcome]:
        result = await send_weekly(*args, **kwargs)
        outcomes.extend(result)
        return result

    digests.send_weekly = recording  # type: ignore[method-assign]
    await asyncio.to_thread(Path(f"{barrier}.{os.getpid()}.ready").touch)
    await asyncio.to_thread(_wait_for, Path(barrier))
    await digests.send_weekly("2026-W46")
    runtime.scheduler = build_scheduler(runtime)  # stopped by runtime.stop()
    await runtime.scheduler.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        async with runtime.db.transaction() as session:
            sent = (
                await session.execute(
                    select(func.count()).select_from(Delivery).where(Delivery.status == "sent")
                )
            ).scalar_one()
        if sent >= expected:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # a late second run would still show up
    await runtime.stop()
    for outcome in outcomes:
        print(json.dumps({"key": outcome.key, "result": outcome.result}), flush=True)


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    for noisy in ("httpx", "httpcore", "telegram"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
