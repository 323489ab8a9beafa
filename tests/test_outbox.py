"""The outbox (``storage.outbox``): a handled update's replies are kept in its transaction
until sent, so a process that dies between its commit and its send loses no reply.

In one process, on both backends: replies sent are forgotten; replies whose process
never sent them are sent by another instance once due, once. Across processes: the real
bot (``havainto run``) is SIGKILLed while its reply is on the way; the update comes
again to the next process, which recognises it and does not handle it twice -- and
its outbox job sends the lost reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import Config, load_config
from bot.service import FORGET_AFTER_S, Havainto
from flows.events import (
    Alert,
    Choice,
    CommandIn,
    Document,
    Image,
    Incoming,
    Message,
    Outbound,
    Reprompt,
    TextIn,
)
from flows.i18n import t
from storage import outbox
from storage.db import Database
from storage.models import OutboxEntry
from tests.conftest import TEST_LEADERSHIP, TEST_TEAMS, FakeClock
from tests.support.bot_process import BotProcess, ChatUser
from tests.support.fake_telegram import FakeTelegram
from tests.support.telegram import telegram_section
from tests.support.waiting import wait_until


def test_replies_worth_sending_again_survive_the_round_trip() -> None:
    question = Message("Mikä teema?", ((Choice("Asuminen", "c:1:theme.housing"),),), ref="q")
    outbounds = [
        Outbound("telegram", "42", question, {"track": "saved:7"}),
        Outbound("telegram", "42", Image(b"\x89PNG\x00\xff", "kuva")),
        Outbound("matrix", "!r:x", Document(b"a;b\r\n", "x.csv", "liite", "text/csv")),
        Outbound("telegram", "42", Alert("vanha nappi")),  # belongs to its press: not kept
        Outbound("telegram", "42", Reprompt(question)),  # kept as its message
    ]
    stored = outbox.encode(outbounds)
    assert stored is not None
    assert outbox.decode(stored) == [
        outbounds[0],
        outbounds[1],
        outbounds[2],
        Outbound("telegram", "42", question),
    ]
    assert outbox.encode([Outbound("telegram", "42", Alert("x"))]) is None


def text_from(user: str, event_id: str, text: str) -> Incoming:
    return Incoming("telegram", user, user, TextIn(text), event_id=event_id)


@pytest.fixture
async def two_services(
    make_config: Callable[..., Config], clock: FakeClock
) -> AsyncIterator[tuple[Havainto, Havainto, Database]]:
    config = make_config()
    dbs = [Database(config.database.url) for _ in range(3)]
    first, second = Havainto(config, dbs[0], clock), Havainto(config, dbs[1], clock)
    await first.prepare()
    try:
        yield first, second, dbs[2]
    finally:
        for db in dbs:
            await db.close()


async def kept_rows(db: Database) -> list[str]:
    async with db.transaction() as session:
        return list((await session.execute(select(OutboxEntry.event_id))).scalars())


async def enrolled(service: Havainto, user: str) -> None:
    code = await service.create_invite("hki-etsiva", "worker", timedelta(days=1))
    sent: list[Outbound] = []

    async def deliver(out: list[Outbound]) -> None:
        sent.extend(out)

    await service.handle(
        Incoming("telegram", user, user, CommandIn("start", code)),
        deliver,
    )
    assert sent


async def test_replies_sent_are_forgotten_and_lost_ones_are_sent_by_another_instance(
    two_services: tuple[Havainto, Havainto, Database], clock: FakeClock
) -> None:
    first, second, db = two_services
    await enrolled(first, "501")
    sent: list[Outbound] = []

    async def deliver(out: list[Outbound]) -> None:
        sent.extend(out)

    # Delivered: kept in the transaction, forgotten in the next batch.
    await first.handle(text_from("501", "u1", "Yöpaikat loppuivat"), deliver)
    assert [o.reply.text for o in sent if isinstance(o.reply, Message)] == [t("fi", "ask.theme")]
    assert await kept_rows(db) == ["u1"]
    assert await first.forget_delivered() == 1
    assert await kept_rows(db) == []

    # The process dies while it sends (the send never returns): the reply stays kept.
    async def dies(out: list[Outbound]) -> None:
        await asyncio.Event().wait()

    dying = asyncio.create_task(first.handle(text_from("501", "u2", "/peru"), dies))

    async def kept_u2() -> bool:
        return await kept_rows(db) == ["u2"]

    await wait_until(kept_u2, 10, "the reply kept", every=0.01)
    dying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dying
    assert await first.forget_delivered() == 0

    # The platform sends the update again: the other instance knows it and does nothing.
    again: list[Outbound] = []

    async def collect(out: list[Outbound]) -> None:
        again.extend(out)

    await second.handle(text_from("501", "u2", "/peru"), collect)
    assert again == []
    # Not due yet (the first might still be sending), then due: sent once, forgotten.
    assert await second.resend_lost({"telegram"}, collect) == 0
    clock.advance(seconds=outbox.GRACE.total_seconds())
    assert await second.resend_lost({"telegram"}, collect) == 1
    assert [o.chat_id for o in again] == ["501"] and again[0].reply.text
    assert await kept_rows(db) == []
    assert await second.resend_lost({"telegram"}, collect) == 0
    # An instance without the platform leaves them alone.
    assert await first.resend_lost({"matrix"}, collect) == 0


async def test_a_send_that_fails_is_not_sent_again(
    two_services: tuple[Havainto, Havainto, Database], clock: FakeClock
) -> None:
    first, _, db = two_services
    await enrolled(first, "502")

    async def fails(out: list[Outbound]) -> None:
        raise ConnectionError("the router tried and gave up")

    with pytest.raises(ConnectionError):
        await first.handle(text_from("502", "u3", "Jonot kasvavat"), fails)
    await first.forget_delivered()
    assert await kept_rows(db) == []


# --- across processes: SIGKILL between the commit and the send ----------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.mark.slow
async def test_a_reply_lost_to_sigkill_comes_from_the_next_process(
    fake: FakeTelegram, db_url: str, tmp_path: Path
) -> None:
    config = {
        "database": {"url": db_url, "spool_dir": str(tmp_path / "spool")},
        "telegram": telegram_section(fake),
        "terminal": {"enabled": "no"},
        "teams": TEST_TEAMS,
        "leadership": TEST_LEADERSHIP,
    }
    bot = BotProcess(tmp_path, config)
    db = Database(db_url)
    worker = ChatUser(fake, 7301)
    try:
        await bot.start()
        service = Havainto(load_config(bot.config_path), db)
        code = await service.create_invite("hki-etsiva", "worker", timedelta(days=1))
        mark, _ = worker.say(f"/start {code}")
        await worker.wait_message(mark, "Helsingin etsivät", timeout=30)
        await asyncio.sleep(2 * FORGET_AFTER_S)  # the welcome's kept copy is forgotten

        # The reply is on its way (the request arrived, the fake holds its answer) when
        # the process is killed: the update is committed, the reply never answered.
        fake.delay("sendMessage", 60)
        asked = fake.counts["sendMessage"]
        mark, _ = worker.say("Ensisuojasta käännytettiin kolme nuorta")

        async def on_its_way() -> bool:
            return fake.counts["sendMessage"] > asked

        await wait_until(on_its_way, 30, "the reply on its way", every=0.01)
        await bot.kill()
        fake.delay("sendMessage", 0)
        assert [c for c in worker.bot_messages() if c.index >= mark] == []
        assert await kept_rows(db) != []

        # The next process gets the unconfirmed update again and does not handle it
        # twice; after the outbox's grace its job sends the reply.
        bot = BotProcess(tmp_path, config)
        await bot.start()
        wait = outbox.GRACE.total_seconds() + 25
        reply = await worker.wait_message(mark, t("fi", "ask.theme"), timeout=wait)
        assert reply.text == t("fi", "ask.theme")
        await bot.wait_log("replies_resent transport=telegram count=1")
        await asyncio.sleep(1)
        assert [c.text for c in worker.bot_messages() if c.index >= mark] == [t("fi", "ask.theme")]
        assert "Ensisuojasta" not in bot.log
        assert await bot.terminate() == 0
        assert await kept_rows(db) == []
    finally:
        await bot.kill()
        await db.close()
