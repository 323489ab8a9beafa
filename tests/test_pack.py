"""The escalation pack of a § 29 notice: its facts, HTML and PDF, and no identities."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.config import Config
from digests.pack import build_pack, render_pack_html
from digests.report import render_pdf
from storage.models import AuditEvent, Observation
from storage.pack import pack_facts
from tests.conftest import FakeClock
from tests.support.datacare_helpers import HETU, add, add_status, observation, seed
from tests.support.db import rows as db_rows
from tests.support.escalation_helpers import LEADER_CHAT, Bot, buttons
from tests.support.fake_telegram import FakeTelegram
from tests.support.telegram import telegram_config

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


async def test_the_pack_tells_what_was_notified_and_done_without_identities(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(regions={"helsinki": "Helsinki"})
    world = await seed(config, NOW)
    anna = world.people["anna"]
    number = await add(
        world,
        "notice",
        observation(
            anna,
            NOW - timedelta(days=20),
            "helsinki",
            escalation="escalation.shl48",
            description=f"Asiakas {HETU} jäi ilman lääkitystä viikonlopuksi",
            action="Viikonlopun lääkejako varmistettava",
        ),
    )
    await add_status(world, number, "acknowledged", NOW - timedelta(days=19))
    await add_status(world, number, "no_action", NOW - timedelta(days=5), "Ei resursseja")
    try:
        async with world.db.snapshot() as session:
            facts = await pack_facts(session, number, config.region_names)
            assert await pack_facts(session, world.observations["housing"], {}) is None
        assert facts is not None and facts.status == "no_action"
        for lang, words in (
            ("fi", ("Epäkohtailmoitus", "valvontalaki 29 §", "Ei resursseja", "Helsinki")),
            ("sv", ("Anmälan om missförhållande", "tillsynslagen 29 §", "Ei resursseja")),
            ("en", ("Notice of a grievance", "Supervision Act § 29", "Ei resursseja")),
        ):
            html = render_pack_html(build_pack(facts, lang, date(2026, 11, 18)))
            for word in words:
                assert word in html, (lang, word)
            assert HETU not in html and anna.pseudonym not in html
            assert "Viikonlopun lääkejako" in html
        pdf = render_pdf(render_pack_html(build_pack(facts, "fi", date(2026, 11, 18))))
        assert pdf.startswith(b"%PDF")
    finally:
        await world.db.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_no_pack_for_a_number_that_is_no_notice(make_config: Callable[..., Config]) -> None:
    world = await seed(make_config(), NOW)
    try:
        async with world.db.snapshot() as session:
            for number in (0, -1, 2**40, 999_999):
                assert await pack_facts(session, number, {}) is None
    finally:
        await world.db.close()


async def test_the_notifier_gets_the_pack_in_chat_and_nobody_else(
    make_config: Callable[..., Config], clock: FakeClock
) -> None:
    async with FakeTelegram() as fake:
        bot = Bot(fake, telegram_config(make_config, fake), clock)
        await bot.start()
        try:
            await bot.enrol(1101, "worker")
            await bot.enrol(1102, "worker")
            await bot.save_entry(1101, "Kotihoito laiminlyöty viikon ajan")
            [entry] = await db_rows(bot.rt.db, Observation)
            calls = await bot.say(1101, f"/paketti {entry.id}")
            [document] = [c for c in calls if c.method == "sendDocument"]
            assert str(document.chat_id) == "1101"
            assert "valvontaviranomaiselle" in (document.params.get("caption") or "")
            refused = await bot.say(1102, f"/paketti {entry.id}")
            assert not [c for c in refused if c.method == "sendDocument"]
            assert "ei ole tekemäsi" in (refused[-1].text or "")
            audits = await db_rows(bot.rt.db, AuditEvent, AuditEvent.action == "escalation.pack")
            assert [a.what for a in audits] == [f"observation #{entry.id}"]
        finally:
            await bot.stop()


async def test_a_notice_not_remedied_offers_its_notifier_the_pack_by_a_button(
    make_config: Callable[..., Config], clock: FakeClock
) -> None:
    async with FakeTelegram() as fake:
        bot = Bot(fake, telegram_config(make_config, fake), clock)
        await bot.start()
        try:
            await bot.enrol(1101, "worker")
            await bot.enrol(3101, "leader")
            await bot.save_entry(1101, "Kotihoito laiminlyöty viikon ajan")
            await bot.save_entry(1101, "Jono päihdehoitoon viikkoja", "escalation.leadership")
            notice, raised = sorted(e.id for e in await db_rows(bot.rt.db, Observation))
            # "No action" on a notice of a grievance: it was not remedied.
            for number in (notice, raised):
                data = f"esc:st:no_action:{number}"
                [posted] = [m for m in fake.bot_messages(LEADER_CHAT) if data in buttons(m)]
                calls = await bot.press(
                    3101, data, chat_id=LEADER_CHAT, message_id=posted["message_id"]
                )
                [prompt] = [c for c in calls if str(c.chat_id) == str(LEADER_CHAT)]
                await bot.press(
                    3101, buttons(prompt)[0], chat_id=LEADER_CHAT, message_id=prompt.message_id
                )
            told = [m for m in fake.bot_messages(1101) if "Ei toimenpiteitä" in m["text"]]
            assert len(told) == 2
            offered = [buttons(m) for m in told]
            assert [f"kp:pack:{notice}"] in offered  # the § 29 notice: one button
            assert all(f"kp:pack:{raised}" not in b for b in offered)  # a raise: none
            [with_offer] = [m for m in told if buttons(m)]
            assert "Lupa- ja valvontavirasto" in with_offer["text"]
            calls = await bot.press(1101, f"kp:pack:{notice}", message_id=with_offer["message_id"])
            [document] = [c for c in calls if c.method == "sendDocument"]
            assert str(document.chat_id) == "1101"
            audits = await db_rows(bot.rt.db, AuditEvent, AuditEvent.action == "escalation.pack")
            assert [a.what for a in audits] == [f"observation #{notice}"]
            # The same button pressed by anybody else gives nothing (a forged press).
            await bot.enrol(1102, "worker")
            calls = await bot.act(lambda: fake.press(1102, f"kp:pack:{notice}", strict=False))
            assert not [c for c in calls if c.method == "sendDocument"]
            assert any("ei ole tekemäsi" in (c.text or "") for c in calls)
            audits = await db_rows(bot.rt.db, AuditEvent, AuditEvent.action == "escalation.pack")
            assert len(audits) == 1
        finally:
            await bot.stop()
