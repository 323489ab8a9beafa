"""Names, addresses, dates of birth and plates in a worker's text, black-box on Telegram.

The real bot (``bot.runtime.build_runtime`` with the real PTB ``Application``) runs
against ``tests.support.fake_telegram.FakeTelegram`` over HTTP, on SQLite and, with
``HAVAINTO_TEST_DATABASE_URL``, on PostgreSQL. A worker's text with a personal name and
a street address is held and the worker asked, in their language, which kinds were
found; "Remove" puts placeholders in the worker's language in their place, and neither
the name nor the address reaches the database; "Keep" keeps the text as typed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.config import Config
from flows.i18n import t, tn
from storage.models import Draft, HeldText, Identity
from tests.conftest import FakeClock
from tests.support.fake_telegram import FakeTelegram
from tests.support.telegram import telegram_config
from tests.support.telegram_helpers import TelegramBot, Worker


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[TelegramBot]:
    async with FakeTelegram() as fake:
        harness = TelegramBot(fake, telegram_config(make_config, fake, username=True), clock)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()
        crashes = [r.getMessage() for r in harness.errors.records]
        assert not crashes, f"the bot logged errors: {crashes}"


async def description_of(bot: TelegramBot, worker: Worker) -> Any:
    [identity] = await bot.rows(Identity, Identity.external_id == str(worker.user_id))
    [draft] = await bot.rows(Draft, Draft.person_id == identity.person_id)
    return draft.state["description"]


def found(lang: str, *kinds: str) -> str:
    shown = ", ".join(t(lang, f"privacy.kind.{kind}") for kind in kinds)
    return tn(lang, "privacy.found", len(kinds), kinds=shown)


def guard_buttons(lang: str) -> list[str]:
    return [
        t(lang, k) for k in ("button.remove_identifiers", "button.keep_text", "button.edit_text")
    ]


async def test_a_name_and_an_address_are_asked_about_and_removed_in_finnish(
    bot: TelegramBot,
) -> None:
    worker = await bot.enrol(1001)
    await worker.say(
        "Tapasin Mikon Kalliossa, hän asuu osoitteessa Hämeentie 12 B 34 eikä saa yöpaikkaa"
    )
    worker.expect(found("fi", "address", "name"))
    assert worker.labels() == guard_buttons("fi")
    [held] = await bot.rows(HeldText)
    assert "Mikon" in held.text  # held, not yet taken in

    await worker.tap(t("fi", "button.remove_identifiers"))
    worker.expect(t("fi", "ask.theme"))
    assert await description_of(bot, worker) == (
        "Tapasin [NIMI] Kalliossa, hän asuu osoitteessa [OSOITE] eikä saa yöpaikkaa"
    )
    assert await bot.rows(HeldText) == []
    dump = await bot.dump_database()
    for secret in ("Mikon", "Hämeentie 12", "12 B 34"):
        assert secret not in dump, f"{secret!r} is stored"


async def test_a_name_and_an_address_are_asked_about_and_removed_in_swedish(
    bot: TelegramBot,
) -> None:
    worker = await bot.enrol(1002, language_code="sv")
    worker.lang = "sv"
    await worker.say("Vi träffade Erik Johansson på Storgatan 5, han har ingen bostad")
    worker.expect(found("sv", "address", "name"))
    assert worker.labels() == guard_buttons("sv")

    await worker.tap(t("sv", "button.remove_identifiers"))
    worker.expect(t("sv", "ask.theme"))
    assert await description_of(bot, worker) == (
        "Vi träffade [NAMN] på [ADRESS], han har ingen bostad"
    )
    dump = await bot.dump_database()
    for secret in ("Erik", "Johansson", "Storgatan 5"):
        assert secret not in dump, f"{secret!r} is stored"


async def test_a_birth_date_and_a_plate_are_asked_about_and_kept_when_chosen(
    bot: TelegramBot,
) -> None:
    worker = await bot.enrol(1003)
    text = "Nuori (s. 12.3.2007) nukkuu autossa ABC-123 Kontulan parkkipaikalla"
    await worker.say(text)
    worker.expect(found("fi", "birth_date", "plate"))
    await worker.tap(t("fi", "button.keep_text"))
    worker.expect(t("fi", "ask.theme"))
    assert await description_of(bot, worker) == text


async def test_place_and_service_names_are_not_asked_about(bot: TelegramBot) -> None:
    worker = await bot.enrol(1004)
    await worker.say(
        "Toivo on vähissä: Wilman kautta ei vastata, ja Kalliossa sekä Itäkeskuksessa "
        "jonot Kelaan ovat viikkojen mittaiset"
    )
    assert worker.texts == [t("fi", "ask.theme")]
    assert await bot.rows(HeldText) == []


async def test_an_identifier_after_a_long_unknown_command_is_asked_about(
    bot: TelegramBot,
) -> None:
    # Found by the fuzz test (seed 220655570): a name over 64 characters after the slash
    # did not fit the held text's row on PostgreSQL, and the worker got the error reply.
    worker = await bot.enrol(1005)
    name = "x" * 150
    await worker.say(f"/{name} joku@example.org")
    assert worker.labels() == guard_buttons("fi")
    [held] = await bot.rows(HeldText)
    assert held.command == name
