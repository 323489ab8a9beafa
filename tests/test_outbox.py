"""The outbox (``storage.outbox``): a private chat's update whose answer is committed is
noted in its transaction until the answer is sent, so a process that dies between its
commit and its send leaves no worker without an answer.

In one process, on both backends: answers sent are forgotten; an answer whose process
never sent it comes from another instance once due, once, built from what the database
holds then (a lost line, the draft's question). Across processes: the real bot
(``havainto run``) is SIGKILLed while the answer to Save is on the way; the press comes
again to the next process, which recognises it and does not save twice -- and its
outbox job sends the entry's confirmation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import Config, load_config
from bot.service import Havainto
from flows.events import (
    Alert,
    CommandIn,
    Incoming,
    Message,
    Outbound,
    TextIn,
)
from flows.i18n import t
from storage import outbox
from storage.db import Database
from storage.models import Observation, OutboxEntry
from tests.conftest import FakeClock
from tests.support.bot_process import BotProcess, ChatUser
from tests.support.db import count
from tests.support.fake_telegram import FakeTelegram
from tests.support.waiting import wait_until
from tests.test_faults import STEPS, process_config

#: The methods that carry a private chat's answer (held back by the fake while "killed").
HELD = ("sendMessage", "editMessageText", "editMessageReplyMarkup")


def test_only_an_answer_in_a_private_chat_is_owed() -> None:
    private = Incoming("telegram", "42", "42", TextIn("x"), event_id="7")
    group = Incoming("telegram", "42", "-100", TextIn("x"), is_private=False, event_id="8")
    question = Outbound("telegram", "42", Message("Mikä teema?"))
    saved = Outbound("telegram", "42", Message("Tallennettu #9"), {"track": "saved:9"})
    assert outbox.owes_answer(private, [question])
    assert not outbox.owes_answer(private, [Outbound("telegram", "42", Alert("vanha nappi"))])
    assert not outbox.owes_answer(private, [])
    assert not outbox.owes_answer(group, [Outbound("telegram", "-100", Message("ilmoitus"))])
    assert outbox.saved_entry([question, saved]) == 9
    assert outbox.saved_entry([question]) is None


async def test_the_note_holds_no_text(db_url: str) -> None:
    """What a worker typed may be quoted in an answer (the summary before saving); the
    outbox keeps who is owed an answer, never its text: a cancelled draft leaves none."""
    from sqlalchemy import inspect

    db = Database(db_url)
    try:
        await db.upgrade()
        async with db.engine.connect() as conn:
            columns = await conn.run_sync(
                lambda c: {
                    col["name"]: str(col["type"]) for col in inspect(c).get_columns("outbox")
                }
            )
    finally:
        await db.close()
    assert set(columns) == {"transport", "event_id", "user_id", "chat_id", "saved_id", "due_at"}


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


async def test_answers_sent_are_forgotten_and_lost_ones_come_from_another_instance(
    two_services: tuple[Havainto, Havainto, Database], clock: FakeClock
) -> None:
    first, second, db = two_services
    await enrolled(first, "501")
    sent: list[Outbound] = []

    async def deliver(out: list[Outbound]) -> None:
        sent.extend(out)

    # Delivered: noted in the transaction, forgotten in the next batch.
    await first.handle(text_from("501", "u1", "Yöpaikat loppuivat"), deliver)
    assert [o.reply.text for o in sent if isinstance(o.reply, Message)] == [t("fi", "ask.theme")]
    assert await kept_rows(db) == ["u1"]
    assert await first.forget_delivered() == 1
    assert await kept_rows(db) == []

    async def dies(out: list[Outbound]) -> None:
        await asyncio.Event().wait()

    async def dying(incoming: Incoming) -> None:
        """The process dies while it sends the answer (the send never returns)."""
        event_id = incoming.event_id
        task = asyncio.create_task(first.handle(incoming, dies))

        async def noted() -> bool:
            return event_id in await kept_rows(db)

        await wait_until(noted, 10, "the answer noted", every=0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await first.forget_delivered() == 0

    again: list[Outbound] = []

    async def collect(out: list[Outbound]) -> None:
        again.extend(out)

    # /peru's answer is lost, and the draft is gone: the worker is told an answer got lost.
    cancel = Incoming("telegram", "501", "501", CommandIn("peru"), event_id="u2")
    await dying(cancel)
    # The platform sends the update again: the other instance knows it and does nothing.
    await second.handle(cancel, collect)
    assert again == []
    # Not due yet (the first might still be sending), then due: answered once, forgotten.
    assert await second.resend_lost({"telegram"}, collect) == 0
    clock.advance(seconds=outbox.GRACE.total_seconds())
    assert await second.resend_lost({"telegram"}, collect) == 1
    assert [(o.chat_id, o.reply.text) for o in again] == [("501", t("fi", "svc.reply_lost"))]
    assert await kept_rows(db) == []
    assert await second.resend_lost({"telegram"}, collect) == 0

    # A new text's question is lost: the answer is the question the draft is on now.
    again.clear()
    await dying(text_from("501", "u3", "Jonot kasvavat taas"))
    clock.advance(seconds=outbox.GRACE.total_seconds())
    # An instance without the platform leaves it alone; one with it answers.
    assert await first.resend_lost({"matrix"}, collect) == 0
    assert await second.resend_lost({"telegram"}, collect) == 1
    [answer] = again
    assert isinstance(answer.reply, Message) and answer.reply.text == t("fi", "ask.theme")
    assert answer.reply.choices  # with its buttons


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
    config = process_config(fake, db_url, tmp_path)
    bot = BotProcess(tmp_path, config)
    db = Database(db_url)
    worker = ChatUser(fake, 7301)
    try:
        await bot.start()
        service = Havainto(load_config(bot.config_path), db)
        code = await service.create_invite("hki-etsiva", "worker", timedelta(days=1))
        mark, _ = worker.say(f"/start {code}")
        await worker.wait_message(mark, "Helsingin etsivät", timeout=30)

        mark, _ = worker.say("Ensisuojasta käännytettiin kolme nuorta")
        await worker.wait_message(mark, t("fi", "ask.theme"), timeout=30)
        for value in STEPS:
            _, update_id = worker.tap_value(value)
            await worker.wait_press_done(update_id, timeout=30)

        # The earlier steps' answers were delivered and forgotten (the service forgets them
        # in a batch within FORGET_AFTER_S; a process killed before that sends them again,
        # by design): only the Save's answer is unconfirmed when the process dies.
        async def forgotten() -> bool:
            return await kept_rows(db) == []

        await wait_until(forgotten, 30, "the earlier answers forgotten", every=0.05)
        # Save is pressed; the entry is committed and its answer is on the way (the fake
        # holds every reply) when the process is killed.
        for method in HELD:
            fake.delay(method, 60)
        mark, _ = worker.tap_value("save")

        async def committed() -> bool:
            return await count(db, Observation) == 1

        await wait_until(committed, 30, "the entry saved", every=0.01)
        await asyncio.sleep(0.3)  # the answer's request is under way
        await bot.kill()
        for method in HELD:
            fake.delay(method, 0)
        assert [c for c in worker.bot_messages() if c.index >= mark] == []
        assert await kept_rows(db) != []

        # The next process gets the unconfirmed press again and does not save twice;
        # after the outbox's grace its job sends the entry's confirmation.
        bot = BotProcess(tmp_path, config)
        await bot.start()
        wait = outbox.GRACE.total_seconds() + 25
        late = t("fi", "svc.saved_late", number=1, day="", time="").split(" ")[0]
        answer = await worker.wait_message(mark, late, timeout=wait)
        assert answer.text is not None and answer.text.startswith("Havainto #1 tallentui")
        await bot.wait_log("replies_resent transport=telegram count=1")
        await asyncio.sleep(1)
        after = [c.text for c in worker.bot_messages() if c.index >= mark and c.text]
        assert after == [answer.text], after
        assert await count(db, Observation) == 1
        assert "Ensisuojasta" not in bot.log
        assert await bot.terminate() == 0
        assert await kept_rows(db) == []
    finally:
        await bot.kill()
        await db.close()
