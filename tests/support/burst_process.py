"""One Havainto instance in a child process that sends a burst, for
``tests/test_two_instances_budget.py`` and ``bench/shared_budget.py``.

    python -m tests.support.burst_process CONFIG_JSON NAME GROUP_CHAT TO_GROUP PRIVATE

Builds the runtime as ``havainto run`` does (``build_runtime``: migrations, the
transports from the registry, the shared send budget when the config turns it on),
initialises the Telegram application without polling, prints ``ready`` and waits for
a line on stdin. Then it hands ``TO_GROUP`` messages to ``GROUP_CHAT`` and one message
to each of ``PRIVATE`` private chats (7000, 7001, ...) to the router all at once, as
replies and digests of many workers would be, prints ``done SECONDS`` and exits (1 if a
send failed). Texts are ``NAME group N`` and ``NAME private N``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time

from bot.config import load_config
from bot.runtime import build_runtime
from flows.events import Message, Outbound


async def main(config_json: str, name: str, group: str, to_group: int, private: int) -> int:
    config = load_config(None, **json.loads(config_json))
    runtime = await build_runtime(config, terminal=False)
    transport = runtime.transports[0]
    app = getattr(transport, "app")  # noqa: B009 - the Telegram transport's PTB application
    await app.initialize()
    outbounds = [Outbound("telegram", group, Message(f"{name} group {i}")) for i in range(to_group)]
    outbounds += [
        Outbound("telegram", str(7000 + k), Message(f"{name} private {k}")) for k in range(private)
    ]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    started = time.monotonic()
    results = await asyncio.gather(
        *(runtime.router.deliver([outbound]) for outbound in outbounds), return_exceptions=True
    )
    print(f"done {time.monotonic() - started:.3f}", flush=True)
    await app.shutdown()
    await runtime.db.close()
    return 1 if any(isinstance(result, BaseException) for result in results) else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("httpx", "httpcore", "apscheduler", "telegram", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    name, group, to_group, private = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    sys.exit(asyncio.run(main(sys.argv[1], name, group, int(to_group), int(private))))
