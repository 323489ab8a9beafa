"""SHL § 48 end to end over the fake Telegram server, on SQLite and PostgreSQL.

A worker saves a § 48 entry; the leadership channel gets the notice at once;
leaders (and only leaders) acknowledge, set statuses with a text and ask the
reporter a question; the worker hears every step in their private chat;
reminders come every 24 h until acknowledged; the channel never learns who the
reporter is; every change is in ``escalation_events`` with who and when.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.config import Config
from flows.events import Alert, ChoiceIn, Incoming, Message
from storage.models import EscalationEvent, Notification, Observation, Person, Relay
from tests.conftest import FakeClock
from tests.support.escalation_helpers import LEADER_CHAT, Bot, buttons, rows, texts_to
from tests.support.fake_telegram import FakeTelegram
from tests.support.telegram import telegram_config

# Behaviour that does not depend on the database runs on SQLite only (a faster suite).
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

WORKER = 1101
LEADER = 3101
LEAD = 2101
WORKER_NAME = "Maija"
DESCRIPTION = "Asumispalvelussa nuori jätettiin ilman lääkitystä viikonlopuksi"


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[Bot]:
    async with FakeTelegram() as fake:
        driver = Bot(fake, telegram_config(make_config, fake), clock)
        await driver.start()
        try:
            await driver.enrol(WORKER, "worker", name=WORKER_NAME)
            await driver.enrol(LEADER, "leader", name="Leena")
            yield driver
        finally:
            await driver.stop()


async def save_shl48(bot: Bot) -> tuple[int, list[Any]]:
    calls = await bot.save_entry(WORKER, DESCRIPTION)
    [entry] = await rows(bot, Observation)
    assert entry.escalation == "escalation.shl48"
    return entry.id, calls


async def test_shl48_reaches_the_leaders_at_once_without_the_reporter(bot: Bot) -> None:
    number, calls = await save_shl48(bot)
    # The notice went out while the Save was being handled: at once, not on a schedule.
    [notice] = [c for c in calls if str(c.chat_id) == str(LEADER_CHAT)]
    latency = notice.time - bot.pushed_at
    print(f"§ 29 notice in the leaders' chat {latency * 1000:.0f} ms after the Save tap")
    assert latency < 5.0
    assert notice.method == "sendMessage"
    assert f"#{number}" in (notice.text or "") and "valvontalaki 29 §" in (notice.text or "")
    assert "Helsingin etsivät" in (notice.text or "")
    assert "Asuminen" in (notice.text or "") and DESCRIPTION in (notice.text or "")
    assert buttons(notice) == [
        f"esc:ack:{number}",
        f"esc:st:in_progress:{number}",
        f"esc:st:decided:{number}",
        f"esc:st:no_action:{number}",
        f"esc:st:not_remedied:{number}",  # only under a notice of a grievance
        f"esc:ask:{number}",
        f"kp:mk:{number}",  # "Make a phenomenon" / "Link to a phenomenon" (bot.knowledge)
        f"kp:ln:{number}",
    ]
    # Not the reporter: no pseudonym, no Telegram id, no name.
    [person] = await rows(bot, Person, Person.role == "worker")
    for secret in (person.pseudonym, str(WORKER), WORKER_NAME):
        assert secret not in (notice.text or "")
    # The worker is told where it went.
    worker_texts = texts_to(calls, WORKER)
    assert any(f"#{number}" in text and "johdolle" in text for text in worker_texts)
    # The notice row remembers the message id, for editing it later.
    [row] = await rows(bot, Notification)
    assert row.sent_at is not None and row.message_ref == str(notice.message_id)
    assert (row.transport, row.chat_id, row.channel) == ("telegram", str(LEADER_CHAT), "hki-johto")


async def test_leader_acknowledges_and_the_worker_is_told(bot: Bot, clock: FakeClock) -> None:
    number, _ = await save_shl48(bot)
    clock.advance(minutes=7)
    calls = await bot.press(LEADER, f"esc:ack:{number}", chat_id=LEADER_CHAT)
    [edit] = [c for c in calls if c.method == "editMessageText"]
    assert str(edit.chat_id) == str(LEADER_CHAT)
    assert "Kuitattu: johtaja" in (edit.text or "")
    assert f"esc:ack:{number}" not in buttons(edit)  # the status buttons stay
    assert f"esc:st:decided:{number}" in buttons(edit)
    [told] = texts_to(calls, WORKER)
    assert f"kuittasi ilmoituksesi #{number}" in told
    [event] = await rows(bot, EscalationEvent)
    [leader] = await rows(bot, Person, Person.role == "leader")
    assert (event.status, event.actor_person_id, event.created_at) == (
        "acknowledged",
        leader.id,
        clock.now,
    )
    # A second press (another leader, or a double tap) changes nothing.
    again = await bot.press(LEADER, f"esc:st:decided:{number}", chat_id=LEADER_CHAT)
    assert not any(c.method == "editMessageText" for c in again)
    assert len(await rows(bot, EscalationEvent)) == 1


async def test_worker_and_unenrolled_presses_are_refused(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    number, _ = await save_shl48(bot)
    await bot.enrol(LEAD, "lead")
    for user in (WORKER, LEAD, 9999):  # the reporter, a team lead, a stranger in the group
        calls = await bot.press(user, f"esc:ack:{number}", chat_id=LEADER_CHAT)
        # Answered to the presser alone: nothing is posted to the leaders' channel.
        assert texts_to(calls, LEADER_CHAT) == []
        [refusal] = [str(c.params.get("text")) for c in calls if c.method == "answerCallbackQuery"]
        assert "Vain johtajat" in refusal
        assert not any(c.method == "editMessageText" for c in calls)
        assert not texts_to(calls, WORKER)
    assert await rows(bot, EscalationEvent) == []
    [row] = await rows(bot, Notification)
    assert row.acknowledged_at is None
    assert "escalation_refused" in caplog.text and DESCRIPTION not in caplog.text


async def test_reminders_every_24_hours_stop_after_acknowledgement(
    bot: Bot, clock: FakeClock
) -> None:
    number, _ = await save_shl48(bot)
    desk = bot.rt.escalations
    assert desk is not None
    mark = bot.fake.mark()
    clock.advance(hours=23)
    assert await desk.check() == 0
    clock.advance(hours=1, seconds=1)
    assert await desk.check() == 1
    assert await desk.check() == 0  # not twice for the same 24 h
    [reminder] = texts_to(bot.fake.sent[mark:], LEADER_CHAT)
    assert "Muistutus" in reminder and f"#{number}" in reminder
    clock.advance(hours=24)
    assert await desk.check() == 1
    await bot.press(LEADER, f"esc:ack:{number}", chat_id=LEADER_CHAT)
    mark = bot.fake.mark()
    clock.advance(hours=72)
    assert await desk.check() == 0
    assert texts_to(bot.fake.sent[mark:], LEADER_CHAT) == []
    [row] = await rows(bot, Notification)
    assert row.reminders == 2


async def test_no_measure_in_fourteen_days_tells_the_leaders_and_the_notifier_once(
    bot: Bot, clock: FakeClock
) -> None:
    number, _ = await save_shl48(bot)
    desk = bot.rt.escalations
    assert desk is not None
    await bot.press(LEADER, f"esc:ack:{number}", chat_id=LEADER_CHAT)
    mark = bot.fake.mark()
    clock.advance(days=13, hours=23)
    assert await desk.check() == 0
    clock.advance(hours=1)
    assert await desk.check() == 2  # one to the channel, one to the notifier
    [to_leaders] = texts_to(bot.fake.sent[mark:], LEADER_CHAT)
    assert f"#{number}" in to_leaders and "14 päivässä" in to_leaders
    [to_notifier] = [c for c in bot.fake.sent[mark:] if str(c.chat_id) == str(WORKER)]
    assert "kuittasi" in (to_notifier.text or "") and WORKER_NAME not in to_leaders
    assert buttons(to_notifier) == [f"kp:pack:{number}"]
    # Once, even as time goes on; the stored claim says so.
    clock.advance(days=5)
    assert await desk.check() == 0
    [row] = await rows(bot, Notification)
    assert row.measures_reminded_at is not None
    # A measure recorded in time means no such reminder at all.
    await bot.save_entry(WORKER, "Toinen ilmoitus: yöhoito laiminlyöty")
    second = max(e.id for e in await rows(bot, Observation))
    calls = await bot.press(LEADER, f"esc:st:in_progress:{second}", chat_id=LEADER_CHAT)
    [prompt] = [c for c in calls if str(c.chat_id) == str(LEADER_CHAT)]
    [without] = buttons(prompt)
    await bot.press(LEADER, without, chat_id=LEADER_CHAT, message_id=prompt.message_id)
    clock.advance(days=15)
    mark = bot.fake.mark()
    await desk.check()
    assert not [t for t in texts_to(bot.fake.sent[mark:], LEADER_CHAT) if f"#{second}" in t]


async def test_status_with_text_reaches_the_worker(bot: Bot, clock: FakeClock) -> None:
    number, _ = await save_shl48(bot)
    calls = await bot.press(LEADER, f"esc:st:in_progress:{number}", chat_id=LEADER_CHAT)
    [prompt] = [c for c in calls if str(c.chat_id) == str(LEADER_CHAT)]
    assert "vastaamalla tähän viestiin" in (prompt.text or "")
    assert texts_to(calls, WORKER) == []  # nothing yet: the text comes first
    # An ordinary message in the channel is not taken as the answer.
    chatter = await bot.say(LEADER, "Katsotaan tätä huomenna", chat_id=LEADER_CHAT)
    assert chatter == []
    clock.advance(minutes=3)
    answer = "Selvitämme asian palveluntuottajan kanssa tällä viikolla"
    calls = await bot.say(
        LEADER,
        answer,
        chat_id=LEADER_CHAT,
        reply_to_message=bot.fake.message(LEADER_CHAT, int(prompt.message_id or 0)),
    )
    [told] = texts_to(calls, WORKER)
    assert f"#{number}" in told and "Käsittelyssä" in told and answer in told
    assert any("Käsittelyssä" in t for t in texts_to(calls, LEADER_CHAT))
    [notice_row] = await rows(bot, Notification)
    [edit] = [
        c
        for c in calls
        if c.method == "editMessageText" and str(c.message_id) == notice_row.message_ref
    ]
    assert "Tila: Käsittelyssä" in (edit.text or "") and answer in (edit.text or "")
    # The prompt is closed: its "Without text" button is gone.
    [closed] = [
        c for c in calls if c.method == "editMessageText" and c.message_id == prompt.message_id
    ]
    assert buttons(closed) == [] and "Käsittelyssä" in (closed.text or "")
    # A status is an acknowledgement too: no reminders after it.
    [notice] = await rows(bot, Notification)
    assert notice.acknowledged_at == clock.now
    # "Without text" on a second status.
    calls = await bot.press(LEADER, f"esc:st:decided:{number}", chat_id=LEADER_CHAT)
    [prompt] = [c for c in calls if str(c.chat_id) == str(LEADER_CHAT)]
    [without] = buttons(prompt)
    calls = await bot.press(LEADER, without, chat_id=LEADER_CHAT, message_id=prompt.message_id)
    [told] = texts_to(calls, WORKER)
    assert "Päätetty" in told and "Perustelu" not in told
    # The audit trail: who, when, what.
    [leader] = await rows(bot, Person, Person.role == "leader")
    events = sorted(await rows(bot, EscalationEvent), key=lambda e: e.id)
    assert [(e.status, e.text, e.actor_person_id) for e in events] == [
        ("in_progress", answer, leader.id),
        ("decided", None, leader.id),
    ]
    assert all(e.created_at == clock.now for e in events)


async def test_ask_the_reporter_without_revealing_them(bot: Bot) -> None:
    number, _ = await save_shl48(bot)
    calls = await bot.press(LEADER, f"esc:ask:{number}", chat_id=LEADER_CHAT)
    [prompt] = [c for c in calls if str(c.chat_id) == str(LEADER_CHAT)]
    question = "Onko tilanne toistunut aiemmin samassa yksikössä?"
    calls = await bot.say(
        LEADER,
        question,
        chat_id=LEADER_CHAT,
        reply_to_message=bot.fake.message(LEADER_CHAT, int(prompt.message_id or 0)),
    )
    [asked] = [c for c in calls if str(c.chat_id) == str(WORKER)]
    assert question in (asked.text or "") and f"#{number}" in (asked.text or "")
    [answer_button] = buttons(asked)
    calls = await bot.press(WORKER, answer_button, message_id=asked.message_id)
    assert any("seuraavana viestinä" in t for t in texts_to(calls, WORKER))
    # An answer with a phone number is held, and the worker asked, before the channel
    # sees anything; the worker rewrites it.
    calls = await bot.say(WORKER, "Soita ohjaajalle 040 123 4567")
    assert texts_to(calls, LEADER_CHAT) == []
    [held] = [c for c in calls if str(c.chat_id) == str(WORKER)]
    assert "tunnistetieto" in (held.text or "")
    rewrite = next(b for b in buttons(held) if b.startswith("pv:drop:"))
    calls = await bot.press(WORKER, rewrite, message_id=held.message_id)
    assert texts_to(calls, LEADER_CHAT) == []
    answer = "Kyllä, sama tapahtui kaksi viikkoa sitten toisen nuoren kohdalla"
    calls = await bot.say(WORKER, answer)
    [relayed] = texts_to(calls, LEADER_CHAT)
    assert answer in relayed and f"#{number}" in relayed
    # The worker's next text is an observation again, not an answer.
    calls = await bot.say(WORKER, "Uusi havainto")
    assert texts_to(calls, LEADER_CHAT) == []
    # Whatever reached the channel: no pseudonym, no Telegram id, no name of the reporter.
    [person] = await rows(bot, Person, Person.role == "worker")
    channel_texts = " ".join(c.text or "" for c in bot.fake.messages_to(LEADER_CHAT))
    for secret in (person.pseudonym, str(WORKER), WORKER_NAME):
        assert secret not in channel_texts
    relays = sorted(await rows(bot, Relay), key=lambda r: r.id)
    assert [(r.kind, r.answered_at is not None) for r in relays] == [
        ("question", True),
        ("answer", True),
    ]


@sqlite_only
async def test_leadership_entry_gets_status_buttons_but_no_reminders(
    bot: Bot, clock: FakeClock
) -> None:
    calls = await bot.save_entry(
        WORKER, "Jonot päihdepalveluun ovat kuukauden mittaiset", "escalation.leadership"
    )
    [notice] = [c for c in calls if str(c.chat_id) == str(LEADER_CHAT)]
    assert "Nosto johdolle" in (notice.text or "")
    assert any(data.startswith("esc:st:decided:") for data in buttons(notice))
    clock.advance(hours=49)
    assert bot.rt.escalations is not None
    assert await bot.rt.escalations.check() == 0


async def test_a_notice_that_failed_is_posted_again(bot: Bot, clock: FakeClock) -> None:
    await bot.say(WORKER, DESCRIPTION)
    for value in ("theme.housing", "group.youth", "signal.queues", "frequency.recurring"):
        await bot.press_value(WORKER, value)
    await bot.press_value(WORKER, "escalation.shl48")
    # The notice fails (Bot API 502) through the router's retries and the quick ones.
    bot.rt.router.pauses = (0.01, 0.01, 0.01)
    assert bot.rt.escalations is not None
    bot.rt.escalations.retry_pauses = ()
    bot.fake.fail_next("sendMessage", 502, times=4, chat_id=LEADER_CHAT)
    await bot.press_value(WORKER, "save")
    [row] = await rows(bot, Notification)
    assert row.sent_at is None and row.claimed_at is None  # released for anyone to post
    mark = bot.fake.mark()
    assert await bot.rt.escalations.check() == 1
    [notice] = [c for c in bot.fake.sent[mark:] if str(c.chat_id) == str(LEADER_CHAT)]
    assert "valvontalaki 29 §" in (notice.text or "")
    [row] = await rows(bot, Notification)
    assert row.sent_at is not None and row.message_ref == str(notice.message_id)
    clock.advance(minutes=3)
    assert await bot.rt.escalations.check() == 0


@sqlite_only
async def test_previews_for_team_leads_and_leaders_only(bot: Bot) -> None:
    await bot.save_entry(WORKER, DESCRIPTION)
    await bot.enrol(LEAD, "lead")
    calls = await bot.say(LEAD, "/viikko")
    texts = texts_to(calls, LEAD)
    assert "Esikatselu" in texts[0]
    assert "Viikkokooste" in texts[1] and "Helsingin etsivät" in texts[1]
    assert any(c.method == "sendPhoto" for c in calls)  # the chart of the week so far
    assert texts_to(calls, -1001) == []  # a preview is not posted to the team chat
    refused = texts_to(await bot.say(WORKER, "/viikko"), WORKER)
    assert refused == [refused[0]] and "tiiminvetäjille" in refused[0]
    calls = await bot.say(LEADER, "/kuukausi")
    assert any("Kuukausikooste" in text for text in texts_to(calls, LEADER))
    refused = texts_to(await bot.say(LEAD, "/kuukausi"), LEAD)
    assert len(refused) == 1 and "johtajille" in refused[0]


@sqlite_only
async def test_a_correction_to_shl48_is_notified_once(bot: Bot) -> None:
    await bot.save_entry(WORKER, DESCRIPTION, "escalation.none")
    [entry] = await rows(bot, Observation)
    assert await rows(bot, Notification) == []
    await bot.say(WORKER, "/omat")
    await bot.press(WORKER, f"own:edit:{entry.id}")
    for value in ("edit", "escalation", "escalation.shl48"):
        await bot.press_value(WORKER, value)
    calls = await bot.press_value(WORKER, "save")
    [notice] = texts_to(calls, LEADER_CHAT)
    assert f"#{entry.id}" in notice and "valvontalaki 29 §" in notice
    # Correcting it once more (still § 48) posts nothing new.
    await bot.say(WORKER, "/omat")
    await bot.press(WORKER, f"own:edit:{entry.id}")
    calls = await bot.press_value(WORKER, "save")
    # No new notice: the posted one is brought up to date (an edit), nothing is sent anew.
    posted = [
        c for c in calls if str(c.chat_id) == str(LEADER_CHAT) and c.method != "editMessageText"
    ]
    assert posted == []
    assert len(await rows(bot, Notification)) == 1


@sqlite_only
async def test_a_press_in_another_channel_is_refused(bot: Bot) -> None:
    number, _ = await save_shl48(bot)
    other_channel = "-2002"  # Österbottens ledning: not responsible for hki-etsiva
    out = await bot.rt.service.handle(
        Incoming(
            "telegram",
            str(LEADER),
            other_channel,
            ChoiceIn(f"esc:ack:{number}"),
            is_private=False,
            event_id="forged-1",
        )
    )
    # Said to the presser alone (a pop-up on Telegram), nothing to the channel.
    assert [o.reply.text for o in out if isinstance(o.reply, Alert)] == [
        "Tätä ilmoitusta käsitellään toisessa johdon kanavassa."
    ]
    assert not [o for o in out if isinstance(o.reply, Message)]
    assert await rows(bot, EscalationEvent) == []


@sqlite_only
async def test_the_same_status_twice_edits_nothing_and_posts_no_copy(bot: Bot) -> None:
    number, _ = await save_shl48(bot)
    for _ in range(2):
        calls = await bot.press(LEADER, f"esc:st:decided:{number}", chat_id=LEADER_CHAT)
        [prompt] = [c for c in calls if str(c.chat_id) == str(LEADER_CHAT)]
        [without] = buttons(prompt)
        calls = await bot.press(LEADER, without, chat_id=LEADER_CHAT, message_id=prompt.message_id)
    # The second identical status leaves the notice as it is ("message is not modified"):
    # no second copy of the notice is posted instead.
    posted = [c for c in calls if c.method == "sendMessage" and str(c.chat_id) == str(LEADER_CHAT)]
    assert not any("valvontalaki 29 §" in (c.text or "") for c in posted)
    assert [e.status for e in await rows(bot, EscalationEvent)] == ["decided", "decided"]
