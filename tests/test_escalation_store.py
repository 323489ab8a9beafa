"""The escalation desk's host stores what the state machine decided, on SQLite and PostgreSQL.

The real bot on the fake Bot API: before each action the conversation is loaded from
the database (``EscalationDesk.load``) and ``flows.escalation.advance`` is asked what
the action will make of it; after the bot has handled the action for real, the state
loaded again must be that prediction (up to what only the host knows: the ids of new
rows and the message ids of posted prompts).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from bot.config import Config
from flows import escalation as desk
from flows.events import ChoiceIn, Incoming, TextIn
from flows.i18n import t
from storage import repo
from storage.models import EscalationEvent, Observation
from tests.conftest import FakeClock
from tests.support.db import rows
from tests.support.escalation_helpers import LEADER_CHAT, Bot, buttons
from tests.support.fake_telegram import FakeTelegram, SentCall
from tests.support.telegram import telegram_config

WORKER = 1101
LEADER = 3101
ADMIN = 4101


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[Bot]:
    async with FakeTelegram() as fake:
        driver = Bot(fake, telegram_config(make_config, fake), clock)
        await driver.start()
        try:
            await driver.enrol(WORKER, "worker", name="Maija")
            await driver.enrol(LEADER, "leader", name="Leena")
            await driver.enrol(ADMIN, "admin", name="Aino")
            yield driver
        finally:
            await driver.stop()


def comparable(state: desk.Notice | None) -> desk.Notice | None:
    """The state without what only the host fills in: new rows' ids, message ids."""
    if state is None:
        return None
    return replace(
        state,
        windows=tuple(replace(w, id=0, prompt_ref=None) for w in state.windows),
        questions=tuple(replace(q, id=0) for q in state.questions),
    )


class Predict:
    def __init__(self, bot: Bot, number: int) -> None:
        self.bot = bot
        self.number = number
        self.checked = 0

    async def load(self) -> desk.Notice:
        assert self.bot.rt.escalations is not None
        async with self.bot.rt.db.transaction() as session:
            entry = await repo.get_observation(session, self.number)
            assert entry is not None
            return await self.bot.rt.escalations.load(session, entry)

    async def event(self, incoming: Incoming) -> desk.Event:
        """The desk event the host makes of ``incoming``."""
        host = self.bot.rt.escalations
        assert host is not None
        async with self.bot.rt.db.transaction() as session:
            member = await repo.find_member(session, incoming.transport, incoming.user_id)
        place = host._place(incoming, member)
        actor = host._actor(member, place)
        if isinstance(incoming.event, ChoiceIn):
            return desk.Pressed(desk.parse(incoming.event.data), actor, place)
        assert isinstance(incoming.event, TextIn)
        return desk.Typed(incoming.event.text, actor, place, incoming.reply_to)

    async def check(
        self, incoming: Incoming, act: Callable[[], Awaitable[list[SentCall]]]
    ) -> list[SentCall]:
        """Predict, act for real, compare; returns the Bot API calls the action made."""
        host = self.bot.rt.escalations
        assert host is not None
        before = await self.load()
        step = desk.advance(before, await self.event(incoming), self.bot.clock(), host.rules)
        calls = await act()
        assert comparable(await self.load()) == comparable(step.state)
        self.checked += 1
        return calls


def leader_press(data: str, user: int = LEADER) -> Incoming:
    return Incoming("telegram", str(user), str(LEADER_CHAT), ChoiceIn(data), is_private=False)


async def test_what_is_stored_is_what_advance_decided(bot: Bot, clock: FakeClock) -> None:
    await bot.save_entry(WORKER, "Yöpaikkoja ei ollut yhdellekään nuorelle")
    [entry] = await rows(bot.rt.db, Observation)
    number = entry.id
    predict = Predict(bot, number)
    state = await predict.load()
    assert (state.status, state.acknowledged, len(state.posts)) == ("open", None, 1)
    assert state.posts[0].ref is not None and state.posts[0].sent_at is not None

    # A status with a note, as a reply to its prompt.
    data = f"esc:st:in_progress:{number}"
    calls = await predict.check(
        in_channel(LEADER, ChoiceIn(data)), lambda: bot.press(LEADER, data, chat_id=LEADER_CHAT)
    )
    [prompt] = [c for c in calls if str(c.chat_id) == str(LEADER_CHAT)]
    clock.advance(minutes=2)
    note = "Selvitämme asian tällä viikolla"
    await predict.check(
        in_channel(LEADER, TextIn(note), reply_to=str(prompt.message_id)),
        lambda: bot.say(LEADER, note, chat_id=LEADER_CHAT, reply_to_message=replied(bot, prompt)),
    )
    state = await predict.load()
    assert (state.status, state.status_text) == ("in_progress", note)
    assert state.acknowledged is not None and state.windows == ()

    # Acknowledging now: acknowledged already (the status did it), nothing changes.
    data = f"esc:ack:{number}"  # no longer on the notice: a stale press
    await predict.check(
        in_channel(ADMIN, ChoiceIn(data)),
        lambda: bot.act(lambda: bot.fake.press(ADMIN, data, chat_id=LEADER_CHAT, strict=False)),
    )

    # A question to the reporter, and the reporter's answer.
    data = f"esc:ask:{number}"
    calls = await predict.check(
        in_channel(LEADER, ChoiceIn(data)), lambda: bot.press(LEADER, data, chat_id=LEADER_CHAT)
    )
    [prompt] = [c for c in calls if str(c.chat_id) == str(LEADER_CHAT)]
    question = "Onko tämä toistunut?"
    calls = await predict.check(
        in_channel(LEADER, TextIn(question), reply_to=str(prompt.message_id)),
        lambda: bot.say(
            LEADER, question, chat_id=LEADER_CHAT, reply_to_message=replied(bot, prompt)
        ),
    )
    [to_worker] = [c for c in calls if str(c.chat_id) == str(WORKER)]
    [answer_button] = buttons(to_worker)
    await predict.check(
        Incoming("telegram", str(WORKER), str(WORKER), ChoiceIn(answer_button)),
        lambda: bot.press(WORKER, answer_button, message_id=to_worker.message_id),
    )
    assert [w.kind for w in (await predict.load()).windows] == ["answer"]
    answer = "Kyllä, kahdesti"
    await predict.check(
        Incoming("telegram", str(WORKER), str(WORKER), TextIn(answer)),
        lambda: bot.say(WORKER, answer),
    )
    assert (await predict.load()).windows == ()
    assert predict.checked == 7


def replied(bot: Bot, call: SentCall) -> dict[str, Any]:
    """The bot's message as a reply names it (Telegram ``reply_to_message``)."""
    return bot.fake.message(LEADER_CHAT, int(call.message_id or 0))


def in_channel(user: int, event: ChoiceIn | TextIn, reply_to: str | None = None) -> Incoming:
    return Incoming(
        "telegram", str(user), str(LEADER_CHAT), event, is_private=False, reply_to=reply_to
    )


async def test_reminders_are_stored_as_decided(bot: Bot, clock: FakeClock) -> None:
    await bot.save_entry(WORKER, "Asumisyksikössä ei ole yöhoitajaa")
    [entry] = await rows(bot.rt.db, Observation)
    predict = Predict(bot, entry.id)
    desk_host = bot.rt.escalations
    assert desk_host is not None
    tick = desk.Tick(frozenset(bot.rt.router.transports))
    for hours, reminded in ((23, 0), (1.01, 1), (0, 1), (24, 2)):
        clock.advance(hours=hours)
        before = await predict.load()
        predicted = desk.advance(before, tick, clock.now, desk_host.rules).state
        await desk_host.check()
        after = await predict.load()
        assert after == predicted
        assert after.posts[0].reminders == reminded


async def test_two_leaders_acknowledging_at_once_store_one_acknowledgement(
    bot: Bot, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The second press loses the claim, is asked again on the stored state and answered
    "acknowledged already". On PostgreSQL the two transactions overlap for real: the
    second one reads before the first commits and waits on its update."""
    await bot.save_entry(WORKER, "Kaksi johtajaa kuittaa yhtä aikaa")
    [entry] = await rows(bot.rt.db, Observation)
    host = bot.rt.escalations
    assert host is not None
    predict = Predict(bot, entry.id)
    data = f"esc:ack:{entry.id}"
    first_event = await predict.event(in_channel(LEADER, ChoiceIn(data)))
    second_event = await predict.event(in_channel(ADMIN, ChoiceIn(data)))

    async def second() -> list[Any]:
        async with bot.rt.db.transaction() as session:
            return await host.run(session, entry.id, second_event, clock.now) or []

    async with bot.rt.db.transaction() as session:
        first = await host.run(session, entry.id, first_event, clock.now)
        racing = asyncio.create_task(second())
        await asyncio.sleep(0.3)  # the second reads and waits on the first's row lock
    second_out = await racing
    assert first is not None and any(o.meta.get("edit") for o in first)
    assert [o.reply.text for o in second_out] == [
        t("fi", "esc.already_acknowledged", domain="escalation", number=entry.id)
    ]
    [event] = await rows(bot.rt.db, EscalationEvent)
    assert event.status == "acknowledged"
    state = await predict.load()
    assert state.acknowledged is not None
    if bot.rt.db.dialect == "postgresql":
        assert "escalation_race_lost" in caplog.text
