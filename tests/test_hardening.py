"""Hardening found by attacking the bot over the Bot API, each point black-box.

The real bot (``bot.runtime.build_runtime``, the real PTB ``Application``) runs against
``tests.support.fake_telegram.FakeTelegram`` over HTTP on 127.0.0.1, on SQLite and PostgreSQL:

* a 5xx on "Saved #N" is retried, and when it outlasts the retries the confirmation
  comes at the worker's next contact; a stale Save press names the saved entry;
* a notice whose post failed is posted again within seconds, and the worker is told
  it went only when it did (and that it is on its way meanwhile);
* refused and repeated presses in a leadership group are answered to the presser
  alone: the group gets no message for them;
* a leader acts only on the notices of the teams they lead;
* a leader's status note and question pass the same identifier guard as a worker's
  entry: a hetu is removed, other identifiers are asked about;
* a text a platform delivers but cannot encode back (a lone surrogate) still gets
  its answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from bot.config import Config
from flows.i18n import t
from storage.models import (
    EscalationEvent,
    HeldText,
    Notification,
    Observation,
    PendingConfirmation,
)
from tests.conftest import FakeClock
from tests.support.escalation_helpers import LEADER_CHAT, Bot, rows, texts_to
from tests.support.fake_telegram import FakeTelegram, SentCall
from tests.support.telegram import telegram_config

WORKER = 1001
LEADER = 2001
VAASA_LEADER = 2002
VAASA_WORKER = 1002
VAASA_CHAT = -2002  # pohjanmaa-ledning (tests.conftest)
HETU = "131052-308T"


def fi(key: str, domain: str = "havainto", **params: Any) -> str:
    return t("fi", key, domain=domain, **params)


FAST = (0.05, 0.1, 0.2)  # the router's retry pauses, shortened for the tests


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[Bot]:
    async with FakeTelegram() as fake:
        driver = Bot(fake, telegram_config(make_config, fake), clock)
        await driver.start()
        driver.rt.router.pauses = FAST
        try:
            await driver.enrol(WORKER, "worker", name="Wilma")
            await driver.enrol(LEADER, "leader", name="Leena")
            yield driver
        finally:
            await driver.stop()


def alerts(calls: list[SentCall]) -> list[str]:
    return [
        str(c.params.get("text"))
        for c in calls
        if c.method == "answerCallbackQuery" and c.params.get("text")
    ]


def group_messages(calls: list[SentCall], chat_id: int) -> list[SentCall]:
    return [
        c
        for c in calls
        if c.method in ("sendMessage", "sendPhoto", "sendDocument")
        and str(c.chat_id) == str(chat_id)
    ]


async def press_stale(bot: Bot, user_id: int, data: str, chat_id: int) -> list[SentCall]:
    """A press on a button that is gone (already used, or copied)."""
    return await bot.act(lambda: bot.fake.press(user_id, data, chat_id=chat_id, strict=False))


async def enrol_in(bot: Bot, user_id: int, team: str, role: str) -> None:
    bot.fake.user(user_id, first_name="Vera", language_code="fi")
    code = await bot.rt.service.create_invite(team, role, timedelta(days=1))
    await bot.act(lambda: bot.fake.send_text(user_id, f"/start {code}"))


# --- the confirmation of a save -------------------------------------------------------


async def test_a_5xx_on_saved_is_retried_and_the_worker_hears(bot: Bot) -> None:
    # The confirmation closes the pressed summary (an edit; a new message when the edit
    # fails): both fail twice, the third try gets through.
    bot.fake.fail_next("editMessageText", 500, times=2)
    bot.fake.fail_next("sendMessage", 500, times=2)
    calls = await bot.save_entry(WORKER, "Yökahvila suljettu", escalation="escalation.none")
    [entry] = await rows(bot, Observation)
    assert any(f"#{entry.id}" in t for t in texts_to(calls, WORKER)), bot.fake.describe()


async def test_saved_goes_alone_when_the_pressed_summary_cannot_be_closed(bot: Bot) -> None:
    # Closing the pressed summary re-sends its text with the answer below; when Telegram
    # refuses that edit (a text that does not render back; found by the fuzz test), the
    # answer comes alone as a new message, the summary loses its buttons, nothing is logged
    # as lost and the confirmation is not kept for the next contact.
    await bot.say(WORKER, "Yökahvila suljettu")
    for value in ("theme.housing", "group.youth", "signal.queues", "frequency.recurring"):
        await bot.press_value(WORKER, value)
    await bot.press_value(WORKER, "escalation.none")
    bot.fake.fail_next(
        "editMessageText", 400, description="Bad Request: can't parse entities: Unsupported"
    )
    calls = await bot.press_value(WORKER, "save")
    [entry] = await rows(bot, Observation)
    sent = [c for c in calls if c.method == "sendMessage" and str(c.chat_id) == str(WORKER)]
    assert [c.text for c in sent] == [t("fi", "svc.saved", number=entry.id)], bot.fake.describe()
    assert [c.method for c in bot.fake.failed] == ["editMessageText"]
    summary = bot.fake.message(WORKER, int(bot.fake.failed[0].params["message_id"]))
    assert not summary.get("reply_markup"), summary
    assert not await rows(bot, PendingConfirmation)


async def test_saved_lost_for_good_is_told_at_the_next_contact(bot: Bot) -> None:
    await bot.say(WORKER, "Yökahvila suljettu taas")
    for value in ("theme.housing", "group.youth", "signal.queues", "frequency.recurring"):
        await bot.press_value(WORKER, value)
    await bot.press_value(WORKER, "escalation.none")
    save = next(
        data
        for message in reversed(bot.fake.bot_messages(WORKER))
        for row in message.get("reply_markup", {}).get("inline_keyboard", [])
        for data in (b.get("callback_data") for b in row)
        if data and data.endswith(":save")
    )
    # Every try of "Saved #N" fails (the edit and the new message it falls back to): the
    # router's retries run out.
    bot.fake.fail_next("editMessageText", 500, times=len(FAST) + 1)
    bot.fake.fail_next("sendMessage", 500, times=len(FAST) + 1)
    calls = await bot.press(WORKER, save)
    [entry] = await rows(bot, Observation)
    assert not any(f"#{entry.id}" in t for t in texts_to(calls, WORKER))
    assert len([c for c in bot.fake.failed if c.method == "sendMessage"]) == len(FAST) + 1

    # The next contact brings the confirmation first, with the time it was saved.
    calls = await bot.say(WORKER, "/omat")
    told = texts_to(calls, WORKER)
    assert told and f"#{entry.id}" in told[0] and "klo" in told[0], told
    # Told once.
    calls = await bot.say(WORKER, "/apua")
    assert not any(f"#{entry.id}" in t and "klo" in t for t in texts_to(calls, WORKER))

    # Pressing Save again: it says the entry is saved, with its number, and saves nothing.
    again = await bot.act(lambda: bot.fake.press(WORKER, save, strict=False))
    assert [a for a in alerts(again) if f"#{entry.id}" in a], alerts(again)
    assert texts_to(again, WORKER) == []
    assert len(await rows(bot, Observation)) == 1


# --- notices to leadership --------------------------------------------------------------


async def test_a_failed_notice_is_posted_again_within_seconds(bot: Bot) -> None:
    desk = bot.rt.escalations
    assert desk is not None
    desk.retry_pauses = (0.5, 1.0, 2.0)
    started = time.monotonic()
    await bot.say(WORKER, "Asumisyksikössä ei ole yöhoitajaa")
    for value in ("theme.housing", "group.youth", "signal.queues", "frequency.recurring"):
        await bot.press_value(WORKER, value)
    await bot.press_value(WORKER, "escalation.shl48")
    # The first post and its retries fail, and the first quick retry too: only the posts
    # to the leadership chat.
    fails = len(FAST) + 2
    bot.fake.fail_next("sendMessage", 500, times=fails, chat_id=LEADER_CHAT)
    calls = await bot.press_value(WORKER, "save")
    [entry] = await rows(bot, Observation)
    worker_texts = texts_to(calls, WORKER)
    assert any(f"#{entry.id}" in t and "matkalla" not in t for t in worker_texts)
    # Not "went to leadership": on its way.
    assert any(
        fi("esc.worker_pending.shl48", "escalation", number=entry.id) == t for t in worker_texts
    )
    assert not any("lähti heti" in t for t in worker_texts)

    # Posted again within seconds, by the quick retries (not the minute-long check).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        [row] = await rows(bot, Notification)
        if row.sent_at is not None:
            break
        await asyncio.sleep(0.1)
    took = time.monotonic() - started
    [row] = await rows(bot, Notification)
    assert row.sent_at is not None, bot.fake.describe()
    print(f"notice through {took:.1f} s after the Save, after {fails} failed posts")
    assert took < 15
    # And now the worker hears it went.
    await asyncio.sleep(0.2)
    went = [
        c.text or ""
        for c in bot.fake.sent
        if str(c.chat_id) == str(WORKER) and "lähti heti" in (c.text or "")
    ]
    assert len(went) == 1, bot.fake.describe()


# --- a quiet leadership group ------------------------------------------------------------


async def test_refused_and_repeated_presses_post_nothing_to_the_group(bot: Bot) -> None:
    await bot.save_entry(WORKER, "Ilmoitus, jota painellaan")
    [entry] = await rows(bot, Observation)
    # A worker presses twenty times in the leaders' group.
    for _ in range(20):
        calls = await bot.press(WORKER, f"esc:ack:{entry.id}", chat_id=LEADER_CHAT)
        assert group_messages(calls, LEADER_CHAT) == []
        assert alerts(calls) == [fi("esc.refused.leaders_only", "escalation")]
    # The leader acknowledges, then presses again nineteen times.
    await bot.press(LEADER, f"esc:ack:{entry.id}", chat_id=LEADER_CHAT)
    for _ in range(19):
        calls = await press_stale(bot, LEADER, f"esc:ack:{entry.id}", LEADER_CHAT)
        assert group_messages(calls, LEADER_CHAT) == []
        assert alerts(calls) == [fi("esc.already_acknowledged", "escalation", number=entry.id)]
    # A forged payload too.
    calls = await press_stale(bot, LEADER, "esc:ack:999999", LEADER_CHAT)
    assert group_messages(calls, LEADER_CHAT) == [] and alerts(calls)
    assert len(await rows(bot, EscalationEvent)) == 1


async def test_twenty_taps_on_one_option_send_no_messages(bot: Bot) -> None:
    await bot.say(WORKER, "Kaksikymmentä napautusta")
    message = bot.fake.bot_messages(WORKER)[-1]
    housing = next(
        b["callback_data"]
        for row in message["reply_markup"]["inline_keyboard"]
        for b in row
        if b["callback_data"].endswith("theme.housing")
    )
    mark = bot.fake.mark()
    ids = [
        bot.fake.press(WORKER, housing, message_id=message["message_id"], strict=False)
        for _ in range(20)
    ]
    async with bot._changed:
        await asyncio.wait_for(
            bot._changed.wait_for(lambda: all(bot.processed[i] >= 1 for i in ids)), 20
        )
    calls = bot.fake.sent[mark:]
    sent = [c for c in calls if c.method == "sendMessage" and str(c.chat_id) == str(WORKER)]
    edits = [c for c in calls if c.method == "editMessageText" and str(c.chat_id) == str(WORKER)]
    assert sent == [], [c.text for c in sent]
    assert [e.text for e in edits] == [fi("ask.group")]
    assert alerts(calls).count(fi("flow.stale_button")) == 19
    # The message on screen is the current step.
    shown = bot.fake.message(WORKER, message["message_id"])
    assert shown["text"] == fi("ask.group")


# --- who may act on a notice ----------------------------------------------------------------


async def test_a_leader_acts_only_on_notices_of_teams_they_lead(bot: Bot) -> None:
    await enrol_in(bot, VAASA_WORKER, "vaasa-uppsok", "worker")
    await enrol_in(bot, VAASA_LEADER, "vaasa-uppsok", "leader")
    await bot.save_entry(VAASA_WORKER, "Ingen jourbostad för unga")
    [entry] = await rows(bot, Observation)
    [notice] = await rows(bot, Notification)
    assert notice.chat_id == str(VAASA_CHAT)
    # The Helsinki leader, present in Ostrobothnia's channel, is refused.
    calls = await bot.press(LEADER, f"esc:ack:{entry.id}", chat_id=VAASA_CHAT)
    assert alerts(calls) == [fi("esc.refused.not_your_team", "escalation")]
    assert group_messages(calls, VAASA_CHAT) == []
    assert await rows(bot, EscalationEvent) == []
    calls = await bot.press(LEADER, f"esc:st:decided:{entry.id}", chat_id=VAASA_CHAT)
    assert alerts(calls) == [fi("esc.refused.not_your_team", "escalation")]
    # Ostrobothnia's own leader may.
    await bot.press(VAASA_LEADER, f"esc:ack:{entry.id}", chat_id=VAASA_CHAT)
    [event] = await rows(bot, EscalationEvent)
    assert event.status == "acknowledged"


# --- leaders' texts pass the same guard ------------------------------------------------------


async def _status_prompt(bot: Bot, number: int) -> SentCall:
    calls = await bot.press(LEADER, f"esc:st:in_progress:{number}", chat_id=LEADER_CHAT)
    [prompt] = group_messages(calls, LEADER_CHAT)
    return prompt


async def test_a_leaders_status_note_never_keeps_a_hetu(bot: Bot) -> None:
    await bot.save_entry(WORKER, "Ilmoitus tilatekstiä varten")
    [entry] = await rows(bot, Observation)
    prompt = await _status_prompt(bot, entry.id)
    calls = await bot.say(
        LEADER,
        f"Selvitetään, asiakas {HETU} ohjattu",
        chat_id=LEADER_CHAT,
        reply_to_message=bot.fake.message(LEADER_CHAT, int(prompt.message_id or 0)),
    )
    [event] = await rows(bot, EscalationEvent, EscalationEvent.status == "in_progress")
    assert event.text is not None and HETU not in event.text and "ohjattu" in event.text
    for call in calls:
        assert HETU not in (call.text or "")
    assert any("ohjattu" in t for t in texts_to(calls, WORKER))
    assert fi("privacy.hetu_removed") in texts_to(calls, LEADER_CHAT)


async def test_a_leaders_phone_number_is_asked_about_in_the_group(bot: Bot) -> None:
    await bot.save_entry(WORKER, "Ilmoitus puhelinnumeroa varten")
    [entry] = await rows(bot, Observation)
    prompt = await _status_prompt(bot, entry.id)
    calls = await bot.say(
        LEADER,
        "Soitin asiakkaalle 040 123 4567",
        chat_id=LEADER_CHAT,
        reply_to_message=bot.fake.message(LEADER_CHAT, int(prompt.message_id or 0)),
    )
    [question] = group_messages(calls, LEADER_CHAT)
    assert fi("privacy.kind.phone") in (question.text or "")
    assert await rows(bot, EscalationEvent, EscalationEvent.status == "in_progress") == []
    assert not texts_to(calls, WORKER)
    [held] = await rows(bot, HeldText)
    remove = f"pv:rm:{held.id}"
    # Nobody else can answer for the leader.
    calls = await press_stale(bot, WORKER, remove, LEADER_CHAT)
    assert alerts(calls) == [fi("flow.stale_button")]
    assert await rows(bot, HeldText) != []
    calls = await bot.press(LEADER, remove, chat_id=LEADER_CHAT)
    [event] = await rows(bot, EscalationEvent, EscalationEvent.status == "in_progress")
    assert event.text is not None and "040" not in event.text and "Soitin" in event.text
    assert any("Soitin" in t and "040" not in t for t in texts_to(calls, WORKER))
    assert await rows(bot, HeldText) == []


async def test_a_leaders_question_to_the_reporter_never_carries_a_hetu(bot: Bot) -> None:
    await bot.save_entry(WORKER, "Ilmoitus kysymystä varten")
    [entry] = await rows(bot, Observation)
    calls = await bot.press(LEADER, f"esc:ask:{entry.id}", chat_id=LEADER_CHAT)
    [prompt] = group_messages(calls, LEADER_CHAT)
    calls = await bot.say(
        LEADER,
        f"Onko {HETU} sama asiakas kuin viime viikolla?",
        chat_id=LEADER_CHAT,
        reply_to_message=bot.fake.message(LEADER_CHAT, int(prompt.message_id or 0)),
    )
    relayed = texts_to(calls, WORKER)
    assert relayed and any("sama asiakas" in t for t in relayed)
    assert not any(HETU in t or "131052" in t for t in relayed)


# --- text a platform cannot encode back ---------------------------------------------------------


async def test_a_lone_surrogate_still_gets_its_summary(bot: Bot) -> None:
    await bot.say(WORKER, "Rikkinäinen merkki \ud800 tekstissä")
    for value in ("theme.housing", "group.youth", "signal.queues", "frequency.recurring"):
        await bot.press_value(WORKER, value)
    calls = await bot.press_value(WORKER, "escalation.none")
    summary = [c for c in calls if "Rikkinäinen merkki" in (c.text or "")]
    assert summary, bot.fake.describe()
    calls = await bot.press_value(WORKER, "save")
    [entry] = await rows(bot, Observation)
    assert entry.description is not None and "\ud800" not in entry.description
    assert any(f"#{entry.id}" in t for t in texts_to(calls, WORKER))
