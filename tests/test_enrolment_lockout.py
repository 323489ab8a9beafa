"""Guessing invite codes on Telegram: five wrong ones in an hour and the account waits.

The real bot (PTB Application) runs against the fake Bot API server on the test's
clock. Wrong codes of every kind count; during the lockout even a valid code is
refused (and stays valid); other accounts are not affected; the logs say that an
account was locked, never which one, and never a code.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from bot.config import Config
from flows.i18n import t
from storage import enrolment_guard
from storage.admin import revoke_invite
from storage.models import EnrolmentFailure, Identity, Invite
from tests.conftest import FakeClock
from tests.support.fake_telegram import FakeTelegram
from tests.support.telegram import telegram_config
from tests.support.telegram_helpers import TelegramBot


def fi(key: str, **params: object) -> str:
    return t("fi", key, **params)


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[TelegramBot]:
    async with FakeTelegram() as fake:
        config = telegram_config(make_config, fake, username=True)
        harness = TelegramBot(fake, config, clock)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


async def test_five_wrong_codes_lock_the_account_for_15_minutes(
    bot: TelegramBot, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # A used, an expired and a revoked code, besides ones that never existed.
    used = await bot.invite()
    await bot.worker(101).say(f"/start {used}")  # somebody else's enrolment
    expired = await bot.rt.service.create_invite("hki-etsiva", "worker", timedelta(minutes=1))
    clock.advance(minutes=2)
    revoked = await bot.invite()
    async with bot.rt.db.transaction() as session:
        await revoke_invite(session, revoked, "lead", clock())
    valid = await bot.invite()

    mallory = bot.worker(6666)
    wrong = [
        ("EIOLEOLEMASSA", "svc.invite_unknown"),
        (used, "svc.invite_used"),
        (expired, "svc.invite_expired"),
        (revoked, "svc.invite_unknown"),
    ]
    for code, key in wrong:
        await mallory.say(f"/start {code}")
        assert mallory.texts == [fi(key)]
        clock.advance(minutes=5)
    # The fifth within the hour: told why, and that it is time to wait.
    await mallory.say("/start ZZZZZZZZZZ")
    assert mallory.texts == [
        fi("svc.invite_unknown"),
        fi("svc.enrolment_locked", minutes=15),
    ]

    # Now even the valid code is refused, and stays unused.
    await mallory.say(f"/start {valid}")
    assert mallory.texts == [fi("svc.enrolment_locked", minutes=15)]
    clock.advance(minutes=10)
    await mallory.say(f"/start {valid}")
    assert mallory.texts == [fi("svc.enrolment_locked", minutes=5)]
    [invite] = await bot.rows(Invite, Invite.code == valid)
    assert invite.used_at is None
    assert await bot.rows(Identity, Identity.external_id == "6666") == []

    # Another account is not affected.
    other = bot.worker(7777, language_code="sv")
    await other.say(f"/start {await bot.invite()}")
    welcome = t("sv", "svc.welcome", team="Helsingin etsivät")
    assert other.texts == [f"{welcome}\n\n{t('sv', 'svc.area_ask')}"]

    # 15 minutes after the fifth wrong code the valid one is accepted, and the count goes.
    clock.advance(minutes=5)
    await mallory.say(f"/start {valid}")
    welcome = fi("svc.welcome", team="Helsingin etsivät")
    assert mallory.texts == [f"{welcome}\n\n{fi('svc.area_ask')}"]
    assert len(await bot.rows(Identity, Identity.external_id == "6666")) == 1
    assert await bot.rows(EnrolmentFailure, EnrolmentFailure.external_id == "6666") == []

    # The logs say an account was locked, on which transport: not which one, no code.
    lines = [record.getMessage() for record in caplog.records]
    assert "enrolment_locked transport=telegram failures=5 minutes=15" in lines
    assert lines.count("enrolment_refused reason=locked transport=telegram") == 2
    codes = [used, expired, revoked, valid, "EIOLEOLEMASSA", "ZZZZZZZZZZ"]
    for line in lines:
        assert not any(code in line for code in codes), line
    ours = [
        line for r, line in zip(caplog.records, lines, strict=True) if r.name.startswith("havainto")
    ]
    assert not any("6666" in line for line in ours)


async def test_the_lockout_is_in_the_database_for_every_instance(
    bot: TelegramBot, clock: FakeClock
) -> None:
    """The count survives a restart (a second instance reads the same rows), and wrong
    codes spread over more than an hour do not lock."""
    eve = bot.worker(5555, language_code="en")
    for _ in range(4):
        await eve.say("/start NOPE")
        assert eve.texts == [t("en", "svc.invite_unknown")]
    clock.advance(minutes=61)
    await eve.say("/start NOPE")  # the first of the four is over an hour old now
    assert eve.texts == [t("en", "svc.invite_unknown")]

    await bot.restart()
    for _ in range(4):
        await eve.say("/start NOPE")
    assert eve.texts == [t("en", "svc.invite_unknown"), t("en", "svc.enrolment_locked", minutes=15)]
    await eve.say(f"/start {await bot.invite()}")
    assert eve.texts == [t("en", "svc.enrolment_locked", minutes=15)]
    assert len(await bot.rows(EnrolmentFailure)) == 9

    # Rows older than a day go when the next one is written.
    clock.advance(days=1, minutes=1)
    await bot.worker(5556).say("/start NOPE")
    [row] = await bot.rows(EnrolmentFailure)
    assert row.external_id == "5556" and row.failed_at == clock()
    assert enrolment_guard.KEEP == timedelta(days=1)
