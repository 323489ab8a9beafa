"""A worker who leaves is refused on Telegram; their entries stay, pseudonymous.

The real bot (PTB Application) runs against the fake Bot API server; the
revocation is the same function ``havainto people revoke`` calls. A revoked
account cannot come back with a new invite code; ``havainto people restore``
(run here through Typer's CliRunner) brings it back as the same person.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app as cli_app
from bot.config import Config
from flows.i18n import t
from storage import audit, repo
from storage.admin import revoke_person
from storage.export import iter_records
from storage.models import (
    AuditEvent,
    Draft,
    EnrolmentFailure,
    Identity,
    Invite,
    Observation,
    Person,
)
from tests.conftest import FakeClock
from tests.support.fake_telegram import FakeTelegram
from tests.support.telegram import telegram_config
from tests.support.telegram_helpers import TelegramBot


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
    await anna.say("/start")  # a new code would not help her: she is told so
    assert anna.texts == [t("fi", "svc.revoked_start")]

    # Nothing new was stored; the draft went with the revocation; the entry stays.
    assert len(await bot.rows(Observation)) == 1
    assert await bot.rows(Draft) == []
    async with bot.rt.db.transaction() as session:
        [record] = [r async for r in iter_records(session)]
    assert record.worker.startswith("p-") and record.worker != person.pseudonym
    assert "4242" not in record.model_dump_json()
    [event] = await bot.rows(AuditEvent, AuditEvent.action == audit.PERSON_REVOKE)
    assert event.actor == "hr"


async def havainto(db_url: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    """Run a ``havainto`` command the way an operator types it, on the bot's database."""
    config_file = tmp_path / "havainto.toml"
    config_file.write_text(
        textwrap.dedent(
            f"""
            [database]
            url = "{db_url}"
            [[teams]]
            id = "hki-etsiva"
            name = "Helsingin etsivät"
            region = "helsinki"
            """
        ),
        encoding="utf-8",
    )
    # The CLI runs its own event loop: give it a thread of its own.
    result = await asyncio.to_thread(
        CliRunner().invoke, cli_app, [*args, "--config", str(config_file)]
    )
    return result.exit_code, result.output


async def test_a_revoked_account_stays_revoked_until_an_administrator_restores_it(
    bot: TelegramBot, db_url: str, tmp_path: Path
) -> None:
    anna = await bot.enrol(4242)
    await anna.say("Yömajasta käännytettiin kolme nuorta")
    for _ in range(6):
        await anna.tap(0)
    anna.expect(t("fi", "svc.saved", number=1))
    [identity] = await bot.rows(Identity, Identity.external_id == "4242")
    [person] = await bot.rows(Person, Person.id == identity.person_id)
    async with bot.rt.db.transaction() as session:
        await revoke_person(session, person.pseudonym, "hr", bot.clock())

    # A fresh, valid invite does not bring her back, and is not used up by trying.
    fresh = await bot.invite()
    refused = t("fi", "svc.revoked_start")
    await anna.say(f"/start {fresh}")
    assert anna.texts == [refused]
    await anna.say("/start EIOLEOLEMASSA")
    assert anna.texts == [refused]
    [invite] = await bot.rows(Invite, Invite.code == fresh)
    assert invite.used_at is None and invite.revoked_at is None
    assert [p.id for p in await bot.rows(Person)] == [person.id]
    assert [(i.id, i.person_id) for i in await bot.rows(Identity)] == [(identity.id, person.id)]
    assert await bot.rows(EnrolmentFailure) == []  # her tries are refused, not counted

    # Nor does a code made for her person, on another account: not even from the CLI.
    code, output = await havainto(
        db_url, tmp_path, "invite", "--team", "hki-etsiva", "--person", str(person.id)
    )
    assert code != 0 and "revoked" in output
    async with bot.rt.db.transaction() as session:
        # One made before the refusal existed (or by hand) is refused when redeemed.
        session.add(
            Invite(
                code="PERSONCODE",
                team_id="hki-etsiva",
                role="worker",
                person_id=person.id,
                created_at=bot.clock(),
                expires_at=bot.clock() + timedelta(days=1),
                used_at=None,
                revoked_at=None,
            )
        )
    phone = bot.worker(4343)
    await phone.say("/start PERSONCODE")
    assert phone.texts == [refused]
    [invite] = await bot.rows(Invite, Invite.code == "PERSONCODE")
    assert invite.used_at is None
    assert await bot.rows(Identity, Identity.external_id == "4343") == []

    # The administrator restores her: the same person, pseudonym and entries again.
    code, output = await havainto(
        db_url, tmp_path, "people", "restore", person.pseudonym, "--actor", "admin-anna"
    )
    assert code == 0, output
    assert person.pseudonym in output
    await anna.say("/omat")
    anna.expect("#1")
    await anna.say("Taas mukana")
    # The theme question, offering her previous entry's codes again: her entries are hers.
    (question,) = anna.texts
    assert question.startswith(t("fi", "ask.theme"))
    assert t("fi", "button.same_as_last") in anna.labels()
    async with bot.rt.db.transaction() as session:
        member = await repo.find_member(session, "telegram", "4242")
    assert member is not None and not member.revoked
    assert (member.person_id, member.pseudonym) == (person.id, person.pseudonym)
    assert len(await bot.rows(Person)) == 1
    [invite] = await bot.rows(Invite, Invite.code == fresh)
    assert invite.used_at is None  # still there for somebody else

    [event] = await bot.rows(AuditEvent, AuditEvent.action == audit.PERSON_RESTORE)
    assert event.actor == "admin-anna" and event.at is not None and event.rows == 1
    assert f"person={person.id}" in event.what
    code, output = await havainto(db_url, tmp_path, "people", "restore", person.pseudonym)
    assert code != 0 and "not revoked" in output
