"""Two bot processes on one token and one PostgreSQL database send a burst at once.

Each process (``tests/support/burst_process.py``) is built as ``havainto run`` builds
it, so the shared send budget is on (the default with PostgreSQL). Both hand ten
messages to the same group and one to each of 45 private chats to their routers at the
same moment; the counting fake Bot API enforces Telegram's flood limits (429 past 30
messages/s for the token or 20/min for a group). It answers no 429, no second holds more
than 30 of their messages together, the group gets its twenty within its minute, and
every message arrives exactly once. A smoke test of seconds: correctness, not timings.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_telegram import FakeTelegram, flood_refusals, slack_needed
from tests.support.telegram import telegram_section

ROOT = Path(__file__).resolve().parent.parent
GROUP = "-100888"
TO_GROUP = 10  # per instance: twenty together, the group's whole minute
PRIVATE = 45  # per instance


@pytest.fixture
def postgresql_url(db_url: str) -> str:
    if not db_url.startswith("postgresql"):
        pytest.skip("several instances share a PostgreSQL database (HAVAINTO_TEST_DATABASE_URL)")
    return db_url


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(flood_limit=True)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def start(config: dict[str, Any], name: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.burst_process",
        json.dumps(config),
        name,
        GROUP,
        str(TO_GROUP),
        str(PRIVATE),
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_two_instances_share_the_send_budget(postgresql_url: str, fake: FakeTelegram) -> None:
    config = {
        "database": {"url": postgresql_url},
        "terminal": {"enabled": "no"},
        "telegram": telegram_section(fake),
    }
    processes: list[asyncio.subprocess.Process] = []
    try:
        # One after the other: two instances starting at the same moment race to sync the
        # configured teams into an empty database (a start-up matter, not this test's).
        for name in ("a", "b"):
            process = await start(config, name)
            processes.append(process)
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line.strip() == b"ready", line
        for process in processes:  # both at once
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        outputs = await asyncio.wait_for(
            asyncio.gather(*(process.communicate() for process in processes)), 60
        )
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        log = stderr.decode("utf-8", "replace")
        assert process.returncode == 0, log[-3000:]
        assert b"done" in stdout
        assert "send_budget shared=yes" in log
        assert " ERROR " not in log and "Traceback" not in log, log[-3000:]
    assert fake.flood_rejections == Counter()
    assert not [call for call in fake.failed if call.status == 429]
    sent = Counter(call.text for call in fake.sent if call.method == "sendMessage")
    expected = {f"{n} group {i}" for n in "ab" for i in range(TO_GROUP)}
    expected |= {f"{n} private {k}" for n in "ab" for k in range(PRIVATE)}
    assert set(sent) == expected and max(sent.values()) == 1  # nothing lost, nothing twice
    # The budget's margin covers the jitter on the way by itself: no slack needed.
    arrivals = [call.time for call in fake.sent if call.method == "sendMessage"]
    assert flood_refusals(arrivals, 30, 1.0) == 0, slack_needed(arrivals, 30, 1.0)
    to_group = [c.time for c in fake.sent if c.method == "sendMessage" and str(c.chat_id) == GROUP]
    assert len(to_group) == 2 * TO_GROUP
    assert flood_refusals(to_group, 20, 60.0) == 0, slack_needed(to_group, 20, 60.0)
