"""Two instances on one bot token, in one process, through the real Telegram transport.

Each "instance" is a runtime of its own (``build_runtime``: its own database engine,
its own PTB application and rate limiter) on one database, sending to the counting
fake Bot API with Telegram's flood limits on (``FakeTelegram(flood_limit=True)``: 429
past 30 messages/s for the token or 20/min for a group). With the shared budget
(``telegram.shared_budget``) their combined burst to a group and to many private chats
gets no 429 and no second holds more than 30 messages; with each instance limiting
only itself (PTB's ``AIORateLimiter``, the old way) the same burst is throttled.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
from telegram.error import RetryAfter

from bot.config import Config
from bot.runtime import build_runtime
from bot.runtime.runtime import Runtime
from bot.transports.telegram import MAX_RETRIES, SharedRateLimiter, TelegramTransport, group_of
from flows.events import Message, Outbound
from tests.support.fake_telegram import FakeTelegram, flood_refusals, slack_needed
from tests.support.telegram import telegram_config

GROUP = -100777


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(flood_limit=True)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def instances(
    make_config: Callable[..., Config], fake: FakeTelegram, shared: bool, count: int = 2
) -> list[Runtime]:
    config = telegram_config(make_config, fake, telegram={"shared_budget": shared})
    runtimes = []
    for _ in range(count):
        runtime = await build_runtime(config, terminal=False)
        transport = runtime.transports[0]
        assert isinstance(transport, TelegramTransport)
        # Sending only: the PTB application is initialised, nobody polls.
        await transport.app.initialize()
        runtimes.append(runtime)
    return runtimes


async def close(runtimes: list[Runtime]) -> None:
    for runtime in runtimes:
        transport = runtime.transports[0]
        assert isinstance(transport, TelegramTransport)
        await transport.app.shutdown()
        await runtime.db.close()


async def burst(runtime: Runtime, name: str, to_group: int, private: int) -> None:
    """``to_group`` messages to the group and one to each of ``private`` private chats,
    all asked for at once, through the router (the transport's ``send_tracked``)."""
    outbounds = [
        Outbound("telegram", str(GROUP), Message(f"{name} group {i}")) for i in range(to_group)
    ]
    outbounds += [
        Outbound("telegram", str(7000 + k), Message(f"{name} private {k}")) for k in range(private)
    ]
    transport = runtime.transports[0]
    await asyncio.gather(*(transport.send_tracked(outbound) for outbound in outbounds))


def texts(fake: FakeTelegram) -> Counter[str]:
    return Counter(call.text or "" for call in fake.sent if call.method == "sendMessage")


def test_group_of_follows_ptb() -> None:
    assert group_of(-1001) == "-1001"
    assert group_of("-1001") == "-1001"
    assert group_of("@channel") == "@channel"
    assert group_of(42) is None
    assert group_of("42") is None


async def test_shared_budget_keeps_two_instances_under_the_limits(
    make_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    runtimes = await instances(make_config, fake, shared=True)
    try:
        for runtime in runtimes:
            transport = runtime.transports[0]
            assert isinstance(transport, TelegramTransport)
            assert isinstance(transport.app.bot.rate_limiter, SharedRateLimiter)
        await asyncio.wait_for(
            asyncio.gather(
                burst(runtimes[0], "a", to_group=10, private=45),
                burst(runtimes[1], "b", to_group=10, private=45),
            ),
            30,
        )
    finally:
        await close(runtimes)
    assert fake.flood_rejections == Counter()
    assert not [call for call in fake.failed if call.status == 429]
    sent = texts(fake)
    expected = {f"{n} group {i}" for n in "ab" for i in range(10)}
    expected |= {f"{n} private {k}" for n in "ab" for k in range(45)}
    assert set(sent) == expected and max(sent.values()) == 1  # nothing lost, nothing twice
    # The fake allows a request 0.1 s of arrival jitter, as Telegram must; the budget's
    # margin (0.1 s) is meant to cover it by itself, so the arrivals pass with none.
    arrivals = [call.time for call in fake.sent if call.method == "sendMessage"]
    assert flood_refusals(arrivals, 30, 1.0) == 0, slack_needed(arrivals, 30, 1.0)
    to_group = [c.time for c in fake.sent if c.method == "sendMessage" and c.chat_id == GROUP]
    assert flood_refusals(to_group, 20, 60.0) == 0, slack_needed(to_group, 20, 60.0)


async def test_without_the_shared_budget_two_instances_are_throttled(
    make_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    """The old way, for contrast: each instance's own limiter lets 30/s through, together
    60/s, and Telegram (the fake) answers 429; PTB's retries still deliver everything."""
    runtimes = await instances(make_config, fake, shared=False)
    try:
        await asyncio.wait_for(
            asyncio.gather(
                burst(runtimes[0], "a", to_group=0, private=45),
                burst(runtimes[1], "b", to_group=0, private=45),
            ),
            60,
        )
    finally:
        await close(runtimes)
    assert fake.flood_rejections["token"] > 0
    assert len(texts(fake)) == 90


@pytest.mark.slow
async def test_shared_budget_holds_a_group_to_twenty_a_minute(
    make_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    """Twelve messages to one group from each instance: twenty go at once (nineteen and
    one 0.1 s later: the margin), the other four one every three seconds (20 a minute)
    instead of meeting a 429."""
    runtimes = await instances(make_config, fake, shared=True)
    try:
        sending = asyncio.gather(
            burst(runtimes[0], "a", to_group=12, private=0),
            burst(runtimes[1], "b", to_group=12, private=0),
        )
        await asyncio.sleep(1.5)
        assert len(texts(fake)) == 20
        await asyncio.wait_for(sending, 30)
    finally:
        await close(runtimes)
    assert fake.flood_rejections == Counter()
    assert len(texts(fake)) == 24
    to_group = sorted(c.time for c in fake.sent if c.method == "sendMessage")
    assert flood_refusals(to_group, 20, 60.0) == 0, slack_needed(to_group, 20, 60.0)
    assert 11.5 < to_group[-1] - to_group[0] < 20  # the 24th at 12.1 s


async def test_shared_limiter_retries_a_429_like_ptb(
    make_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    """A 429 pauses the instance for ``retry_after`` + 0.1 s and the message is sent again
    (PTB's behaviour, kept); past ``MAX_RETRIES`` the error is raised."""
    runtimes = await instances(make_config, fake, shared=True, count=1)
    transport = runtimes[0].transports[0]
    try:
        fake.fail_next("sendMessage", 429, retry_after=1, times=1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await transport.send_tracked(Outbound("telegram", "7001", Message("again")))
        assert loop.time() - started >= 1.1
        assert texts(fake) == Counter({"again": 1})
        fake.fail_next("sendMessage", 429, retry_after=1, times=MAX_RETRIES + 1)
        with pytest.raises(RetryAfter):
            await transport.send_tracked(Outbound("telegram", "7002", Message("given up")))
        assert "given up" not in texts(fake)
    finally:
        await close(runtimes)


def test_shared_budget_default_follows_the_database() -> None:
    from bot.config import load_config

    def config(url: str, **telegram: object) -> Config:
        return load_config(None, database={"url": url}, telegram={"token": "1:x", **telegram})

    assert config("postgresql://db.example.org/havainto").shared_send_budget
    assert config("postgresql+asyncpg://db.example.org/havainto").shared_send_budget
    assert not config("sqlite:///havainto.db").shared_send_budget
    assert config("sqlite:///havainto.db", shared_budget=True).shared_send_budget
    assert not config("postgresql://db/h", shared_budget=False).shared_send_budget


async def test_a_429_to_one_instance_holds_back_the_other(
    make_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    """Instance a is answered 429 retry_after 2: instance b's next message waits for the
    pause too (through the shared budget) instead of meeting the same refusal."""
    runtimes = await instances(make_config, fake, shared=True)
    a, b = (runtime.transports[0] for runtime in runtimes)
    try:
        await b.send_tracked(Outbound("telegram", "7002", Message("before")))
        fake.fail_next("sendMessage", 429, retry_after=2, times=1, chat_id=7001)
        refused = asyncio.create_task(a.send_tracked(Outbound("telegram", "7001", Message("a"))))
        for _ in range(500):  # the 429 was answered ...
            if fake.failed:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # ... and a has stored its pause of 2.1 s
        loop = asyncio.get_running_loop()
        started = loop.time()
        await b.send_tracked(Outbound("telegram", "7002", Message("b")))
        assert loop.time() - started > 1.2
        await asyncio.wait_for(refused, 10)
    finally:
        await close(runtimes)
    assert texts(fake) == Counter({"before": 1, "a": 1, "b": 1})
