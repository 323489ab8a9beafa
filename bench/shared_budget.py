"""One bot token, one or two instances: the send rate and Telegram's windows, budget on/off.

    .venv/bin/python -m bench.shared_budget [--private 60] [--to-group 10] [--pg-url URL]

For each of one and two instances, with the shared send budget on and off
(``[telegram] shared_budget``), on a fresh PostgreSQL database: each instance is a
child process built as ``havainto run`` builds it (``tests/support/burst_process.py``)
that hands ``--to-group`` messages to one group chat and one message to each of
``--private`` private chats to its router at once. The counting fake Bot API enforces
Telegram's flood limits (429 past 30 messages/s per token or 20/min per group, with a
0.1 s jitter allowance) and records when each message arrived.

Printed per run: messages delivered of those asked for, the achieved rate (delivered ÷
seconds from the start signal to the last delivery), the most messages that arrived in
any 1 s window and to the group in any 60 s window (for a leaky bucket of 30 a burst
and a second's refill can both fall in one second), the arrival jitter Telegram's model
would have had to allow for none to be refused (``slack_needed``: 0 when the arrivals fit
the buckets exactly; the fake allows 0.1 s, the budget keeps a margin of 0.1 s), and the
429s the fake answered (each one is retried by the limiter after ``retry_after``; none is
lost).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_PG_URL, fresh_database, print_header
from storage.db import Database
from tests.support.fake_telegram import FakeTelegram, most_in_window, slack_needed
from tests.support.telegram import telegram_section

ROOT = Path(__file__).resolve().parent.parent
GROUP = "-100999"


async def run_once(
    pg_url: str, instances: int, shared: bool, private: int, to_group: int
) -> dict[str, Any]:
    fake = FakeTelegram(flood_limit=True)
    await fake.start()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            async with fresh_database("postgresql", Path(workdir), pg_url) as db_url:
                config = {
                    "database": {"url": db_url},
                    "terminal": {"enabled": "no"},
                    "telegram": telegram_section(fake, shared_budget=shared),
                }
                # Migrated before the instances start (they would race to migrate it).
                db = Database(db_url)
                await db.upgrade(statistics=False)
                await db.close()
                return await _burst(fake, config, instances, private, to_group)
    finally:
        await fake.stop()


async def _burst(
    fake: FakeTelegram, config: dict[str, Any], instances: int, private: int, to_group: int
) -> dict[str, Any]:
    processes: list[asyncio.subprocess.Process] = []
    try:
        for index in range(instances):
            # One after the other: instances starting at once race to sync the teams.
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.support.burst_process",
                json.dumps(config),
                chr(ord("a") + index),
                GROUP,
                str(to_group),
                str(private),
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            processes.append(process)
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 120)
            if line.strip() != b"ready":
                assert process.stderr is not None
                log = (await process.stderr.read()).decode("utf-8", "replace")
                raise RuntimeError(f"an instance did not start:\n{log[-3000:]}")
        started = time.monotonic()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), 300)
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    delivered = [call for call in fake.sent if call.method == "sendMessage"]
    arrivals = [call.time for call in delivered]
    to_the_group = [call.time for call in delivered if str(call.chat_id) == GROUP]
    seconds = max(arrivals) - started if arrivals else float("nan")
    return {
        "asked": instances * (private + to_group),
        "delivered": len(delivered),
        "distinct": len({call.text for call in delivered}),
        "seconds": seconds,
        "rate": len(delivered) / seconds if arrivals else 0.0,
        "max_1s": most_in_window(arrivals, 1.0),
        "max_group_60s": most_in_window(to_the_group, 60.0),
        "slack_ms": 1000
        * max(slack_needed(arrivals, 30, 1.0), slack_needed(to_the_group, 20, 60.0)),
        "rejected_token": fake.flood_rejections["token"],
        "rejected_group": fake.flood_rejections["group"],
        "failed_exit": sum(1 for p in processes if p.returncode != 0),
    }


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--private", type=int, default=60, help="private chats per instance")
    parser.add_argument("--to-group", type=int, default=10, help="group messages per instance")
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args(argv)
    print_header(
        "One token, several instances: the shared send budget",
        "python -m bench.shared_budget " + " ".join(argv if argv is not None else sys.argv[1:]),
    )
    print(
        f"Each instance: {args.to_group} messages to one group and 1 to each of "
        f"{args.private} private chats, all at once. Telegram allows 30/s per token, "
        "20/min per group.\n"
    )
    print(
        "| instances | budget | delivered / asked | seconds | sends/s | max in 1 s "
        "| max to the group in 60 s | jitter needed ms | 429 token / group |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for instances in args.instances:
        for shared in (True, False):
            figures = await run_once(args.pg_url, instances, shared, args.private, args.to_group)
            print(
                f"| {instances} | {'shared' if shared else 'per instance'} "
                f"| {figures['delivered']} / {figures['asked']} "
                f"({figures['distinct']} distinct) | {figures['seconds']:.2f} "
                f"| {figures['rate']:.1f} | {figures['max_1s']} | {figures['max_group_60s']} "
                f"| {figures['slack_ms']:.0f} "
                f"| {figures['rejected_token']} / {figures['rejected_group']} |",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
