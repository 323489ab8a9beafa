"""A worker who leaves is refused on Telegram; their entries stay, pseudonymous.

The real bot (PTB Application) runs against the fake Bot API server; the
revocation is the same function ``havainto people revoke`` calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bot.config import Config
from flows.i18n import t
from storage import audit
from storage.admin import revoke_person
from storage.export import iter_records
from storage.models import AuditEvent, Draft, Identity, Observation, Person
from tests.conftest import FakeClock
from tests.fake_telegram import FakeTelegram
from tests.telegram_helpers import TelegramBot


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[TelegramBot]:
    async with FakeTelegram() as fake:
        config = make_config(
            telegram={
                "token": fake.token,
                "base_url": fake.base_url,
                "base_file_url": fake.base_file_url,
                "bot_username": fake.bot_username,
                "poll_timeout": 1,
            }
        )
        harness = TelegramBot(fake, config, clock)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


async def test_revoked_worker_is_refused_and_their_entries_remain(bot: TelegramBot) -> None:
    anna = await bot.enrol(4242)
    # One saved entry: text, then the five quick choices, then save.
    await anna.say("Yömajasta käännytettiin kolme nuorta")
    for _ in range(5):
        await anna.tap(0)
    await anna.tap(0)
    anna.expect(t("fi", "svc.saved", number=1))
    assert len(await bot.rows(Observation)) == 1
    # And a draft in progress when she leaves.
    await anna.say("Toinen havainto kesken")
    assert len(await bot.rows(Draft)) == 1
    [identity] = await bot.rows(Identity, Identity.external_id == "4242")
    [person] = await bot.rows(Person, Person.id == identity.person_id)

    async with bot.rt.db.transaction() as session:
        await revoke_person(session, person.pseudonym, "hr", bot.clock())

    refused = t("fi", "svc.revoked")
    await anna.say("Vielä yksi havainto")
    assert anna.texts == [refused]
    await anna.say("/uusi")
    assert anna.texts == [refused]
    await anna.press("d:8cec75:1:theme.housing", strict=False)  # an old button
    assert refused in anna.texts
    await anna.say("/start")
    assert anna.texts == [t("fi", "svc.not_enrolled")]

    # Nothing new was stored; the draft went with the revocation; the entry stays.
    assert len(await bot.rows(Observation)) == 1
    assert await bot.rows(Draft) == []
    async with bot.rt.db.transaction() as session:
        [record] = [r async for r in iter_records(session)]
    assert record.worker.startswith("p-") and record.worker != person.pseudonym
    assert "4242" not in record.model_dump_json()
    [event] = await bot.rows(AuditEvent, AuditEvent.action == audit.PERSON_REVOKE)
    assert event.actor == "hr"
