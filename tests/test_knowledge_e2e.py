"""The knowledge path end to end over the fake Telegram Bot API, on SQLite and PostgreSQL.

A worker's entry -> the team lead makes it a phenomenon -> two other workers say "me too"
-> a leader adds a proposal, presents it to a configured body, records a decision -> each
of the three workers hears of it in one message, without learning who else reported;
``/missa`` shows the path step by step.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bot.config import Config
from bot.runtime.jobs import job_table
from digests.periods import HELSINKI, week_of
from storage.models import (
    AuditEvent,
    Confirmation,
    Draft,
    Observation,
    Phenomenon,
    PhenomenonLink,
    Proposal,
    ProposalEvent,
)
from tests.conftest import FakeClock
from tests.support.escalation_helpers import LEADER_CHAT, TEAM_CHAT, Bot, buttons, rows, texts_to
from tests.support.fake_telegram import FakeTelegram, keyboard
from tests.support.telegram import telegram_config

WORKER, OTHER, THIRD, LEAD, LEADER, OUTSIDER = 1201, 1202, 1203, 2201, 3201, 1299
NAMES = {WORKER: "Maija", OTHER: "Pekka", THIRD: "Sanna"}
BODIES = [
    {
        "id": "sote-lautakunta",
        "name": {
            "fi": "Sosiaali- ja terveyslautakunta",
            "sv": "Social- och hälsovårdsnämnden",
            "en": "Social and health committee",
        },
        "level": "regional",
    }
]


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[Bot]:
    async with FakeTelegram() as fake:
        config = telegram_config(make_config, fake, bodies=BODIES)
        driver = Bot(fake, config, clock)
        await driver.start()
        try:
            for user, name in NAMES.items():
                await driver.enrol(user, "worker", name=name)
            await driver.enrol(LEAD, "lead", name="Liisa")
            await driver.enrol(LEADER, "leader", name="Leena")
            yield driver
        finally:
            await driver.stop()


def last_text(bot: Bot, chat: int) -> str:
    return texts_to(bot.fake.sent, chat)[-1]


async def test_from_an_entry_to_a_decision_every_worker_hears_once(bot: Bot) -> None:
    await bot.save_entry(
        WORKER, "Nuori aikuinen ilman hätämajoitusta pakkasyönä", "escalation.none"
    )
    [entry] = await rows(bot, Observation)

    # A worker may not make phenomena; the lead may, of their own team's entries.
    await bot.say(WORKER, f"/ilmio {entry.id} Oma ilmiö")
    assert "vastaava" in last_text(bot, WORKER)
    assert await rows(bot, Phenomenon) == []
    await bot.say(LEAD, f"/ilmio {entry.id} Nuoret aikuiset ilman hätämajoitusta pakkasöinä")
    [phenomenon] = await rows(bot, Phenomenon)
    assert f"#{phenomenon.id}" in last_text(bot, LEAD) and f"#{entry.id}" in last_text(bot, LEAD)

    # Two other workers tap "me too": one on the team's weekly digest (last week's, sent
    # this Monday morning), one on the suggestion while typing the same matter anew.
    assert bot.rt.digests is not None
    await bot.rt.digests.send_weekly()
    digest = [c for c in bot.fake.messages_to(TEAM_CHAT) if c.reply_markup][-1]
    assert f"kp:me:{phenomenon.id}" in buttons(digest)
    calls = await bot.press(OTHER, f"kp:me:{phenomenon.id}", chat_id=TEAM_CHAT)
    assert [c.method for c in calls] == ["answerCallbackQuery"]  # to the presser alone
    assert "minäkin" in str(calls[0].params).lower()
    await bot.say(THIRD, "Taas nuori aikuinen ilman hätämajoitusta, pakkasyö ja yömaja täynnä")
    assert "Kuulostaa samalta" in bot.fake.bot_messages(THIRD)[-1]["text"]
    tapped = await bot.press_value(THIRD, f"p{phenomenon.id}")
    assert any("Kirjattu: minäkin" in text for text in texts_to(tapped, THIRD))
    # The recorder cannot count twice; a second tap counts nothing.
    await bot.act(
        lambda: bot.fake.press(OTHER, f"kp:me:{phenomenon.id}", chat_id=TEAM_CHAT, strict=False)
    )
    confirmations = await rows(bot, Confirmation)
    assert sorted(c.person_id for c in confirmations) == sorted(
        {c.person_id for c in confirmations}
    )
    assert len(confirmations) == 2
    assert len(await rows(bot, Observation)) == 1  # a confirmation is not an observation

    # The leader proposes in the leadership channel and moves the proposal there with
    # buttons, a typed day and note for presenting, and one tap + one typed line to decide.
    channel = LEADER_CHAT
    await bot.say(
        LEADER, f"/ehdotus {phenomenon.id} Lisää hätämajoituspaikkoja pakkasöiksi", chat_id=channel
    )
    [proposal] = await rows(bot, Proposal)
    card = bot.fake.messages_to(channel)[-1]
    assert f"kp:mv:{proposal.id}:presented" in buttons(card)
    # the card was shown here, and is not posted to the same channel a second time
    assert sum(f"#{proposal.id} –" in t for t in texts_to(bot.fake.sent, channel)) == 1
    # Only a leader may move it: the lead's press is answered to the lead alone.
    calls = await bot.press(LEAD, f"kp:mv:{proposal.id}:presented", chat_id=channel)
    assert [c.method for c in calls] == ["answerCallbackQuery"]
    assert "johto" in str(calls[0].params)
    await bot.press(LEADER, f"kp:mv:{proposal.id}:presented", chat_id=channel)
    assert "toimielimelle" in last_text(bot, channel)
    await bot.press(LEADER, f"kp:body:{proposal.id}:sote-lautakunta", chat_id=channel)
    assert "päivänä" in last_text(bot, channel)
    await bot.say(LEADER, "32.13.", chat_id=channel)
    assert "tunnistanut" in last_text(bot, channel)
    await bot.say(LEADER, "1.11.2026", chat_id=channel)
    asked = bot.fake.messages_to(channel)[-1]
    assert "muistiinpano" in (asked.text or "") and buttons(asked) == [f"kp:nonote:{proposal.id}"]
    await bot.say(LEADER, "Esittelijänä sosiaalijohtaja", chat_id=channel)
    await bot.press(LEADER, f"kp:mv:{proposal.id}:decided", chat_id=channel)
    assert "päätettiin" in last_text(bot, channel)
    assert buttons(bot.fake.messages_to(channel)[-1]) == []  # a decision is typed, not skipped
    await bot.say(LEADER, "20 lisäpaikkaa tammikuusta alkaen", chat_id=channel)
    [proposal] = await rows(bot, Proposal)
    assert (proposal.status, proposal.body, str(proposal.presented_on)) == (
        "decided",
        "sote-lautakunta",
        "2026-11-01",
    )
    assert proposal.decision == "20 lisäpaikkaa tammikuusta alkaen"
    events = await rows(bot, ProposalEvent)
    assert [(e.status, e.note) for e in events] == [
        ("proposed", None),
        ("presented", "Esittelijänä sosiaalijohtaja"),
        ("decided", "20 lisäpaikkaa tammikuusta alkaen"),
    ]
    assert all(e.actor.startswith("person:") for e in events[1:])

    # The day's news (the scheduled path_news job): one message to each of the three,
    # none to the lead or leader.
    mark = bot.fake.mark()
    assert bot.rt.knowledge is not None
    [news_job] = [job for job in job_table(bot.rt) if job.id == "path_news"]
    assert "hour='15'" in str(news_job.trigger)
    await news_job.run()
    news = bot.fake.sent[mark:]
    assert sorted(int(c.chat_id or 0) for c in news) == sorted(NAMES)
    for call in news:
        text = call.text or ""
        assert "Lisää hätämajoituspaikkoja" in text and "20 lisäpaikkaa" in text
        for name in [*NAMES.values(), "Liisa", "Leena"]:
            assert name not in text
    # Once: the next run tells nothing new.
    assert await bot.rt.knowledge.send_news() == 0

    # /missa shows the recorder the path; another worker's entry is not shown to an outsider.
    await bot.say(WORKER, f"/missa {entry.id}")
    path = last_text(bot, WORKER)
    assert "Päätös tehty" in path and "Sosiaali- ja terveyslautakunta" in path
    assert "Esittelijänä sosiaalijohtaja" in path  # the step's note
    assert "muutama" in path  # two confirmers: "a few", never the exact small count
    assert "20 lisäpaikkaa" in path
    # /omat marks the entry with where it stands now.
    await bot.say(WORKER, "/omat")
    own_line = next(
        line for line in last_text(bot, WORKER).splitlines() if line.startswith(f"#{entry.id}")
    )
    assert "[päätetty]" in own_line
    await bot.say(OTHER, f"/missa {entry.id}")  # a confirmer of its phenomenon sees it too
    assert "Päätös tehty" in last_text(bot, OTHER)
    await bot.enrol(OUTSIDER, "worker", name="Olli")
    await bot.say(OUTSIDER, f"/missa {entry.id}")
    assert "ei löydy" in last_text(bot, OUTSIDER)

    # Next Monday the team's digest of this week says what happened to its observations.
    bot.clock.advance(days=7)  # type: ignore[attr-defined]
    await bot.rt.digests.send_weekly()
    text = "\n".join(texts_to(bot.fake.sent, TEAM_CHAT)[-3:])
    assert "Mitä havainnoillemme tapahtui" in text
    assert f"Ehdotus #{proposal.id} (Päätetty)" in text and "Lisää hätämajoituspaikkoja" in text
    for name in [*NAMES.values(), "Liisa", "Leena"]:
        assert name not in text

    actions = {a.action for a in await rows(bot, AuditEvent)}
    assert {"phenomenon.create", "phenomenon.link", "confirmation.add"} <= actions
    assert {"proposal.create", "proposal.move"} <= actions


async def test_a_me_too_button_in_the_team_chat_answers_the_presser_alone(bot: Bot) -> None:
    await bot.save_entry(WORKER, "Päihdehoidon jono on viikkoja", "escalation.none")
    [entry] = await rows(bot, Observation)
    await bot.say(LEAD, f"/ilmio {entry.id} Päihdehoitoon ei pääse viikkoihin")
    [phenomenon] = await rows(bot, Phenomenon)
    # The weekly digest in the team chat lists the open phenomenon with a "me too" button
    # and says what happened to the team's observations this week.
    week = week_of(bot.clock().astimezone(HELSINKI).date())
    assert bot.rt.digests is not None
    await bot.rt.digests.send_weekly(week)
    digest = [c for c in bot.fake.messages_to(TEAM_CHAT) if c.reply_markup]
    assert digest and f"kp:me:{phenomenon.id}" in buttons(digest[-1])
    text = "\n".join(texts_to(bot.fake.sent, TEAM_CHAT))
    assert "Mitä havainnoillemme tapahtui" in text and "Päihdehoitoon ei pääse" in text
    calls = await bot.press(OTHER, f"kp:me:{phenomenon.id}", chat_id=TEAM_CHAT)
    assert [c.method for c in calls] == ["answerCallbackQuery"]
    assert "minäkin" in str(calls[0].params).lower()
    assert len(await rows(bot, Confirmation)) == 1
    # "We were two": the pair confirms the entry itself, once, and it is counted once.
    await bot.say(THIRD, f"/pari {entry.id}")
    assert "kerran" in last_text(bot, THIRD)
    [_, pair] = await rows(bot, Confirmation)
    assert pair.kind == "pair" and pair.observation_id == entry.id
    assert LEADER_CHAT  # the leadership channel saw nothing of it
    assert texts_to(bot.fake.sent, LEADER_CHAT) == []


async def test_me_too_at_capture_is_one_tap_from_the_suggestion(bot: Bot) -> None:
    await bot.save_entry(
        WORKER, "Nuori aikuinen ilman hätämajoitusta pakkasyönä", "escalation.none"
    )
    [entry] = await rows(bot, Observation)
    await bot.say(LEAD, f"/ilmio {entry.id} Nuoret aikuiset ilman hätämajoitusta pakkasöinä")
    [phenomenon] = await rows(bot, Phenomenon)

    # Another worker types the same matter in other words: before the theme question the
    # bot asks whether it is the same thing.
    await bot.say(OTHER, "Taas nuori aikuinen ilman hätämajoitusta, pakkasyö ja yömaja täynnä")
    asked = bot.fake.bot_messages(OTHER)[-1]
    assert "Kuulostaa samalta" in asked["text"] and f"#{phenomenon.id}" in asked["text"]
    assert "Maija" not in asked["text"] and "Liisa" not in asked["text"]  # never who reported
    labels = [label for row in keyboard(asked) for label, _ in row]
    assert labels[-1] == "Ei, uusi havainto" and all("minäkin" in x for x in labels[:-1])
    # One tap: a confirmation, no new observation, no draft left open.
    mark = bot.fake.mark()
    await bot.press_value(OTHER, f"p{phenomenon.id}")
    reply = texts_to(bot.fake.sent[mark:], OTHER)
    assert any("Kirjattu: minäkin" in text for text in reply)
    [confirmation] = await rows(bot, Confirmation)
    assert confirmation.phenomenon_id == phenomenon.id and confirmation.kind == "me_too"
    assert len(await rows(bot, Observation)) == 1
    assert await rows(bot, Draft) == []
    actions = [a.action for a in await rows(bot, AuditEvent)]
    assert "confirmation.add" in actions

    # A third worker says it is new: the flow goes on to the theme and saves an entry.
    await bot.say(THIRD, "Nuori aikuinen ilman hätämajoitusta pakkasyönä, eri paikassa")
    await bot.press_value(THIRD, "new")
    assert bot.fake.bot_messages(THIRD)[-1]["text"].startswith("Mihin teemaan")
    for value in (
        "theme.housing",
        "group.youth",
        "signal.queues",
        "frequency.recurring",
        "escalation.none",
        "save",
    ):
        await bot.press_value(THIRD, value)
    assert len(await rows(bot, Observation)) == 2
    assert len(await rows(bot, Confirmation)) == 1


async def test_a_leader_makes_and_links_phenomena_from_the_notice_buttons(bot: Bot) -> None:
    await bot.save_entry(WORKER, "Nuori ilman hätämajoitusta pakkasyönä", "escalation.leadership")
    [entry] = await rows(bot, Observation)
    notice = [c for c in bot.fake.messages_to(LEADER_CHAT) if c.reply_markup][-1]
    assert {f"kp:mk:{entry.id}", f"kp:ln:{entry.id}"} <= set(buttons(notice))
    labels = [label for row in keyboard(notice) for label, _ in row]
    assert "Tee ilmiö" in labels and "Liitä ilmiöön" in labels

    # A worker may not (answered to them alone); nothing is asked or stored.
    calls = await bot.press(OTHER, f"kp:mk:{entry.id}", chat_id=LEADER_CHAT)
    assert [c.method for c in calls] == ["answerCallbackQuery"]
    assert "vastaava" in str(calls[0].params)
    await bot.say(OTHER, "Oma ilmiö", chat_id=LEADER_CHAT)
    assert await rows(bot, Phenomenon) == []

    # The leader: one tap and one typed line.
    await bot.press(LEADER, f"kp:mk:{entry.id}", chat_id=LEADER_CHAT)
    assert "nimi" in last_text(bot, LEADER_CHAT)
    await bot.say(LEADER, "Nuoret aikuiset ilman hätämajoitusta pakkasöinä", chat_id=LEADER_CHAT)
    [phenomenon] = await rows(bot, Phenomenon)
    assert phenomenon.title == "Nuoret aikuiset ilman hätämajoitusta pakkasöinä"
    assert f"#{phenomenon.id}" in last_text(bot, LEADER_CHAT)
    # The name is asked once: the next text in the channel makes nothing.
    await bot.say(LEADER, "Kiitos kaikille", chat_id=LEADER_CHAT)
    assert len(await rows(bot, Phenomenon)) == 1

    # A second escalated entry joins it with two taps: "Link to a phenomenon", then which.
    await bot.save_entry(
        OTHER, "Taas nuori ilman hätämajoitusta, yömaja täynnä", "escalation.leadership"
    )
    second = max(e.id for e in await rows(bot, Observation))
    await bot.press(LEADER, f"kp:ln:{second}", chat_id=LEADER_CHAT)
    question = bot.fake.messages_to(LEADER_CHAT)[-1]
    assert buttons(question) == [f"kp:lk:{second}:{phenomenon.id}"]
    await bot.press(LEADER, f"kp:lk:{second}:{phenomenon.id}", chat_id=LEADER_CHAT)
    assert f"#{second}" in last_text(bot, LEADER_CHAT)
    links = await rows(bot, PhenomenonLink)
    assert sorted(link.observation_id for link in links) == [entry.id, second]
    audit = [(a.action, a.actor) for a in await rows(bot, AuditEvent)]
    made = [actor for action, actor in audit if action == "phenomenon.create"]
    linked = [actor for action, actor in audit if action == "phenomenon.link"]
    assert len(made) == 1 and len(linked) == 2 and all(a.startswith("person:") for a in linked)
    # A forged link to a phenomenon that does not exist changes nothing.
    await bot.act(
        lambda: bot.fake.press(LEADER, f"kp:lk:{second}:999", chat_id=LEADER_CHAT, strict=False)
    )
    assert len(await rows(bot, PhenomenonLink)) == 2
