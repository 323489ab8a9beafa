"""Proposals reach the leaders in chat, whatever made them; every step takes a note; a
leader takes ownership; the team's digest offers "Make #N a phenomenon" for the entries it
quotes. Over the fake Telegram Bot API, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.config import Config
from storage import knowledge
from storage.models import AuditEvent, Observation, Phenomenon, Proposal, ProposalEvent
from tests.conftest import FakeClock
from tests.support.escalation_helpers import LEADER_CHAT, TEAM_CHAT, Bot, buttons, rows, texts_to
from tests.support.fake_telegram import FakeTelegram, keyboard
from tests.support.telegram import telegram_config

WORKER, OTHER, LEAD, LEADER = 1401, 1402, 2401, 3401
BODIES = [{"id": "sote", "name": {"fi": "Sote-lautakunta"}, "level": "regional"}]


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[Bot]:
    async with FakeTelegram() as fake:
        driver = Bot(fake, telegram_config(make_config, fake, bodies=BODIES), clock)
        await driver.start()
        try:
            await driver.enrol(WORKER, "worker", name="Maija")
            await driver.enrol(OTHER, "worker", name="Pekka")
            await driver.enrol(LEAD, "lead", name="Liisa")
            await driver.enrol(LEADER, "leader", name="Leena")
            yield driver
        finally:
            await driver.stop()


async def save_with_details(
    bot: Bot, user: int, text: str, escalation: str, **details: str
) -> None:
    """Quick capture, then "More details" -> each of ``details`` (``quote``, ``action``)
    typed -> "Done" -> "Save"."""
    await bot.say(user, text)
    if bot.offers_me_too(user):
        await bot.press_value(user, "new")
    for value in ("theme.housing", "group.youth", "signal.queues", "frequency.recurring"):
        await bot.press_value(user, value)
    await bot.press_value(user, escalation)
    await bot.press_value(user, "details")
    for field, typed in details.items():
        await bot.press_value(user, field)
        await bot.say(user, typed)
    await bot.press_value(user, "done")
    await bot.press_value(user, "save")


def cards(bot: Bot, chat: int, number: int, after: int = 0) -> list[Any]:
    """Messages in ``chat`` (after the mark) carrying proposal ``number``'s move buttons."""
    return [
        c
        for c in bot.fake.sent[after:]
        if bot.fake.is_message_to(c, chat)
        and any(d.startswith(f"kp:mv:{number}:") for d in buttons(c))
    ]


async def test_every_new_proposal_reaches_the_leadership_channel_with_its_buttons(
    bot: Bot,
) -> None:
    # 1. An escalated entry's "proposed action": a proposal, its card to the leaders.
    await save_with_details(
        bot,
        WORKER,
        "Nuori ilman hätämajoitusta pakkasyönä",
        "escalation.leadership",
        action="Lisää hätämajoituspaikkoja pakkasöiksi",
    )
    [entry] = await rows(bot, Observation)
    [first] = await rows(bot, Proposal)
    assert first.observation_id == entry.id
    assert first.text == "Lisää hätämajoituspaikkoja pakkasöiksi"
    [card] = cards(bot, LEADER_CHAT, first.id)
    assert "Lisää hätämajoituspaikkoja" in (card.text or "")
    assert f"kp:own:{first.id}" in buttons(card)
    assert "Maija" not in (card.text or "")
    assert cards(bot, WORKER, first.id) == []  # the worker's chat gets no card

    # 2. A lead proposes in the team chat: the team sees that it was recorded, the
    # leadership channel gets the card with the buttons.
    await bot.say(LEAD, f"/ilmio {entry.id} Hätämajoitus ei riitä pakkasöinä")
    [phenomenon] = await rows(bot, Phenomenon)
    mark = bot.fake.mark()
    await bot.say(LEAD, f"/ehdotus {phenomenon.id} Pakkasyön lisäpaikat", chat_id=TEAM_CHAT)
    second = max(p.id for p in await rows(bot, Proposal))
    assert any("kirjattu" in text for text in texts_to(bot.fake.sent[mark:], TEAM_CHAT))
    assert cards(bot, TEAM_CHAT, second, mark) == []
    assert len(cards(bot, LEADER_CHAT, second, mark)) == 1

    # 3. From the command line (no chat event at all): the proposal_cards job posts it,
    # once.
    async with bot.rt.db.transaction() as session:
        row = await knowledge.create_proposal(
            session,
            text="Yhteinen päivystys sosiaalitoimen kanssa",
            phenomenon_id=phenomenon.id,
            proposer_person_id=None,
            owner_person_id=None,
            actor="cli:admin",
            now=bot.clock(),
        )
        assert row is not None
        third = row.id
    assert bot.rt.knowledge is not None
    mark = bot.fake.mark()
    assert await bot.rt.knowledge.post_cards() == 1
    assert len(cards(bot, LEADER_CHAT, third, mark)) == 1
    assert await bot.rt.knowledge.post_cards() == 0

    # 4. /ehdotus N with no text shows proposal N's card to a leader, wherever asked;
    # a worker and a lead are told who moves proposals.
    mark = bot.fake.mark()
    await bot.say(LEADER, f"/ehdotus {third}")
    assert len(cards(bot, LEADER, third, mark)) == 1
    await bot.say(WORKER, f"/ehdotus {third}")
    await bot.say(LEAD, f"/ehdotus {third}")
    assert cards(bot, WORKER, third, mark) == [] and cards(bot, LEAD, third, mark) == []
    assert "johto" in texts_to(bot.fake.sent, WORKER)[-1]
    await bot.say(LEADER, "/ehdotus 999")
    assert "ei löydy" in texts_to(bot.fake.sent, LEADER)[-1]


async def test_every_step_takes_a_note_and_a_leader_takes_ownership(bot: Bot) -> None:
    await bot.save_entry(WORKER, "Yömaja täynnä jo iltakahdeksalta", "escalation.none")
    [entry] = await rows(bot, Observation)
    await bot.say(LEAD, f"/ilmio {entry.id} Yömajat täynnä")
    [phenomenon] = await rows(bot, Phenomenon)
    await bot.say(LEAD, f"/ehdotus {phenomenon.id} Lisää yöpaikkoja", chat_id=TEAM_CHAT)
    [proposal] = await rows(bot, Proposal)
    assert proposal.owner_person_id is None
    card = cards(bot, LEADER_CHAT, proposal.id)[-1]
    assert "Vastuuhenkilö puuttuu" in (card.text or "")

    # Take ownership: a lead may not (pop-up, nothing changes), the leader may, once.
    calls = await bot.press(LEAD, f"kp:own:{proposal.id}", chat_id=LEADER_CHAT)
    assert [c.method for c in calls] == ["answerCallbackQuery"]
    assert (await rows(bot, Proposal))[0].owner_person_id is None
    await bot.press(LEADER, f"kp:own:{proposal.id}", chat_id=LEADER_CHAT)
    [proposal] = await rows(bot, Proposal)
    assert proposal.owner_person_id is not None
    assert "Vastuussa:" in texts_to(bot.fake.sent, LEADER_CHAT)[-1]
    calls = await bot.press(LEADER, f"kp:own:{proposal.id}", chat_id=LEADER_CHAT)
    assert "jo" in str(calls[0].params)
    owners = [a for a in await rows(bot, AuditEvent) if a.action == "proposal.owner"]
    assert [a.what for a in owners] == [f"proposal #{proposal.id}"]
    assert owners[0].actor.startswith("person:")

    # Presented: body, day, then the note is skipped with one tap.
    await bot.press(LEADER, f"kp:mv:{proposal.id}:presented", chat_id=LEADER_CHAT)
    await bot.press(LEADER, f"kp:body:{proposal.id}:sote", chat_id=LEADER_CHAT)
    await bot.press(LEADER, f"kp:today:{proposal.id}", chat_id=LEADER_CHAT)
    asked = bot.fake.messages_to(LEADER_CHAT)[-1]
    labels = [label for row in keyboard(asked) for label, _ in row]
    assert labels == ["Ei muistiinpanoa"]
    await bot.press(LEADER, f"kp:nonote:{proposal.id}", chat_id=LEADER_CHAT)
    # Rejected after presenting: a typed note is kept with the step.
    await bot.press(LEADER, f"kp:mv:{proposal.id}:rejected", chat_id=LEADER_CHAT)
    assert "muistiinpano" in texts_to(bot.fake.sent, LEADER_CHAT)[-1]
    await bot.say(LEADER, "Ei rahoitusta tälle vuodelle", chat_id=LEADER_CHAT)
    events = await rows(bot, ProposalEvent)
    assert [(e.status, e.note) for e in events] == [
        ("proposed", None),
        ("presented", None),
        ("rejected", "Ei rahoitusta tälle vuodelle"),
    ]
    # /missa shows the closing step with its note; the closed card has no buttons left.
    await bot.say(WORKER, f"/missa {entry.id}")
    path = texts_to(bot.fake.sent, WORKER)[-1]
    assert "Hylätty: Ei rahoitusta tälle vuodelle" in path
    mark = bot.fake.mark()
    await bot.say(LEADER, f"/ehdotus {proposal.id}", chat_id=LEADER_CHAT)
    [shown] = [c for c in bot.fake.sent[mark:] if bot.fake.is_message_to(c, LEADER_CHAT)]
    assert buttons(shown) == [] and "Ei rahoitusta" in (shown.text or "")


async def test_the_digest_offers_make_a_phenomenon_for_the_entries_it_quotes(bot: Bot) -> None:
    await save_with_details(
        bot,
        WORKER,
        "Nuori nukkui rappukäytävässä",
        "escalation.none",
        quote="Ei oo mitään paikkaa mihin mennä",
    )
    [entry] = await rows(bot, Observation)
    bot.clock.advance(days=7)  # type: ignore[attr-defined]
    assert bot.rt.digests is not None
    await bot.rt.digests.send_weekly()
    digest = [c for c in bot.fake.messages_to(TEAM_CHAT) if c.reply_markup][-1]
    assert [f"kp:mk:{entry.id}", f"kp:ln:{entry.id}"] == [
        d for d in buttons(digest) if d.endswith(f":{entry.id}")
    ]
    text = "\n".join(texts_to(bot.fake.sent, TEAM_CHAT))
    assert f"#{entry.id} ”Ei oo mitään paikkaa" in text and "Maija" not in text

    # A worker's tap: a pop-up refusal, nothing posted, nothing asked.
    mark = bot.fake.mark()
    calls = await bot.press(WORKER, f"kp:mk:{entry.id}", chat_id=TEAM_CHAT)
    assert [c.method for c in calls] == ["answerCallbackQuery"]
    assert "vastaava" in str(calls[0].params)
    await bot.say(WORKER, "Oma nimi", chat_id=TEAM_CHAT)
    assert texts_to(bot.fake.sent[mark:], TEAM_CHAT) == []
    assert await rows(bot, Phenomenon) == []
    # The lead: one tap, one typed name.
    await bot.press(LEAD, f"kp:mk:{entry.id}", chat_id=TEAM_CHAT)
    assert "nimi" in texts_to(bot.fake.sent, TEAM_CHAT)[-1]
    await bot.say(LEAD, "Rappukäytävissä nukkuvat nuoret", chat_id=TEAM_CHAT)
    [phenomenon] = await rows(bot, Phenomenon)
    assert phenomenon.title == "Rappukäytävissä nukkuvat nuoret"
    assert f"#{phenomenon.id}" in texts_to(bot.fake.sent, TEAM_CHAT)[-1]
