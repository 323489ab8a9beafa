"""End to end on Telegram: the real bot, a fake Bot API server, a real database.

Each test starts ``bot.runtime.build_runtime`` (service, router and the real PTB
``Application`` with long polling) against ``tests.support.fake_telegram.FakeTelegram``
on 127.0.0.1 and plays workers through ``tests.support.telegram_helpers.Worker``. It
checks what the fake recorded (what a phone would show) and the rows in the
database, on SQLite and, with ``HAVAINTO_TEST_DATABASE_URL``, on PostgreSQL.

Run with ``-s`` to see the measured bot reply times of the full-flow test.

Language at enrolment (decided here, see ``test_language_hint_at_enrolment``):
the greeting and the stored language follow the Telegram client's
``language_code`` when it is one of ours (fi, sv, en) and are Finnish
otherwise. A Swedish-speaking worker has a right to be served in Swedish, and
``/kieli`` switches at any time; Finnish is the default, as the issue says.
"""

from __future__ import annotations

import asyncio
import logging
import re
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from bot.cli import app as cli_app
from bot.config import Config
from flows import commands
from flows.capture import FLOW_VERSION, MAX_TEXT
from flows.i18n import label, t
from flows.taxonomy import TAXONOMY_VERSION
from storage.models import Draft, Identity, Invite, Observation, Person, ProcessedEvent
from tests.conftest import FakeClock
from tests.support.fake_telegram import FakeTelegram, keyboard
from tests.support.telegram import telegram_config
from tests.support.telegram_helpers import TelegramBot, Worker


def fi(key: str, **params: Any) -> str:
    return t("fi", key, **params)


def first_welcome(lang: str, team: str = "Helsingin etsivät") -> str:
    """The greeting at enrolment into a team with areas: it asks the usual area once."""
    return f"{t(lang, 'svc.welcome', team=team)}\n\n{t(lang, 'svc.area_ask')}"


THEME = {code: label(code, "fi") for code in ("theme.housing", "theme.income")}
HETU = "131052-308T"


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
        crashes = [r.getMessage() for r in harness.errors.records]
        assert not crashes, f"the bot logged errors: {crashes}"


# --- small helpers ----------------------------------------------------------------------


async def person_of(bot: TelegramBot, worker: Worker) -> Person:
    identities = await bot.rows(Identity, Identity.external_id == str(worker.user_id))
    assert len(identities) == 1
    (person,) = await bot.rows(Person, Person.id == identities[0].person_id)
    return person


async def draft_of(bot: TelegramBot, worker: Worker) -> dict[str, Any] | None:
    person = await person_of(bot, worker)
    rows = await bot.rows(Draft, Draft.person_id == person.id)
    return dict(rows[0].state) if rows else None


async def step_of(bot: TelegramBot, worker: Worker) -> object:
    state = await draft_of(bot, worker)
    return None if state is None else state["step"]


async def quick_entry(worker: Worker, text: str, escalation: str = "escalation.none") -> int:
    """One text and six taps; returns the saved entry's number."""
    lang = worker.lang
    await worker.say(text)
    await worker.new_if_asked()
    for code in ("theme.housing", "group.youth", "signal.queues", "frequency.recurring"):
        await worker.tap(label(code, lang))
    await worker.tap(label(escalation, lang))
    await worker.tap(t(lang, "button.save"))
    match = re.search(r"#(\d+)", worker.last_text)
    assert match, worker.answers
    return int(match.group(1))


# --- enrolment ------------------------------------------------------------------------


async def test_enrolment_with_cli_invite_and_deep_link(
    bot: TelegramBot, clock: FakeClock, db_url: str, tmp_path: Path
) -> None:
    clock.now = datetime.now(UTC)  # the CLI dates its invite by the wall clock
    stranger = bot.worker(500)

    # Not enrolled: one polite answer, whatever is sent, and nothing is stored.
    actions: list[Callable[[], Awaitable[object]]] = [
        lambda: stranger.say("Asiakas nukkui rappukäytävässä"),
        lambda: stranger.say("/uusi"),
        lambda: stranger.say("/start"),
        lambda: stranger.send_media("photo", caption="kuvateksti"),
    ]
    for action in actions:
        await action()
        assert stranger.answers == [fi("svc.not_enrolled")]
    assert await bot.rows(Person) == []
    assert await bot.rows(Identity) == []
    assert await bot.rows(Draft) == []
    assert await bot.rows(Observation) == []
    assert await bot.rows(ProcessedEvent) == []
    dump = await bot.dump_database()
    assert "rappukäytävä" not in dump and "kuvateksti" not in dump

    # The team lead runs `havainto invite`; the code is the last line, with a deep link.
    config_file = tmp_path / "havainto.toml"
    config_file.write_text(
        textwrap.dedent(
            f"""
            [database]
            url = "{db_url}"
            [telegram]
            bot_username = "{bot.fake.bot_username}"
            [[teams]]
            id = "hki-etsiva"
            name = "Helsingin etsivät"
            region = "helsinki"
            """
        ),
        encoding="utf-8",
    )
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli_app,
        ["invite", "--team", "hki-etsiva", "--role", "worker", "--config", str(config_file)],
    )
    assert result.exit_code == 0, result.output
    code = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r"[A-Z2-9]{10}", code)
    assert f"https://t.me/{bot.fake.bot_username}?start={code}" in result.output

    # Opening the deep link sends "/start CODE": a Finnish greeting with the team's name.
    await stranger.say(f"/start {code}")
    assert stranger.answers == [first_welcome("fi")]
    (person,) = await bot.rows(Person)
    assert (person.team_id, person.role, person.language) == ("hki-etsiva", "worker", "fi")
    assert re.fullmatch(r"w-[0-9a-f]{8}", person.pseudonym)
    assert person.created_at.tzinfo is not None and person.revoked_at is None
    (identity,) = await bot.rows(Identity)
    assert (identity.transport, identity.external_id, identity.chat_id) == (
        "telegram",
        "500",
        "500",
    )
    (invite,) = await bot.rows(Invite)
    assert invite.used_at is not None

    # Tapping the link again greets again; it does not call a valid member's code "used".
    await stranger.say(f"/start {code}")
    assert stranger.answers == [fi("svc.welcome", team="Helsingin etsivät")]
    await stranger.say("/start")
    assert stranger.answers == [fi("svc.welcome", team="Helsingin etsivät")]

    # The code was single use; wrong and expired codes are told apart.
    other = bot.worker(501)
    await other.say(f"/start {code}")
    assert other.answers == [fi("svc.invite_used")]
    await other.say("/start EIOLEOLEMASSA")
    assert other.answers == [fi("svc.invite_unknown")]
    short = await bot.rt.service.create_invite("vaasa-uppsok", "worker", timedelta(hours=1))
    clock.advance(hours=2)
    await other.say(f"/start {short}")
    assert other.answers == [fi("svc.invite_expired")]
    assert len(await bot.rows(Person)) == 1

    # Codes are forgiving about case and separators typed by hand.
    fresh = await bot.invite("vaasa-uppsok")
    await other.say(f"/start {fresh[:5].lower()}-{fresh[5:].lower()}")
    assert other.answers == [fi("svc.welcome", team="Vasa uppsökande")]


async def test_language_hint_at_enrolment(bot: TelegramBot) -> None:
    """Finnish by default; a Swedish or English Telegram client is served in its language."""
    swede = bot.worker(600, language_code="sv")
    await swede.say("hej")
    assert swede.answers == [t("sv", "svc.not_enrolled")]
    await swede.say(f"/start {await bot.invite()}")
    assert swede.answers == [first_welcome("sv")]
    assert (await person_of(bot, swede)).language == "sv"

    german = bot.worker(601, language_code="de")
    await german.say(f"/start {await bot.invite()}")
    assert german.answers == [first_welcome("fi")]
    assert (await person_of(bot, german)).language == "fi"

    nobody = bot.worker(602, language_code=None)
    await nobody.say(f"/start {await bot.invite()}")
    assert nobody.answers == [first_welcome("fi")]

    # The stored language wins over the client's afterwards: the Swede logs in Swedish.
    swede.lang = "sv"
    number = await quick_entry(swede, "Kön till missbrukarvården är tre månader")
    assert swede.answers[-1] == t("sv", "svc.saved", number=number)
    (entry,) = await bot.rows(Observation)
    assert entry.language == "sv"


async def test_team_leads_and_leaders_can_log_too(bot: TelegramBot) -> None:
    for user_id, team, role in (
        (701, "hki-etsiva", "lead"),
        (702, "hki-etsiva", "leader"),
        (703, "vaasa-uppsok", "worker"),
    ):
        person = await bot.enrol(user_id, team=team, role=role)
        await quick_entry(person, f"Havainto roolista {role}")
    entries = {e.description: e for e in await bot.rows(Observation)}
    assert entries["Havainto roolista lead"].team_id == "hki-etsiva"
    assert entries["Havainto roolista leader"].region == "helsinki"
    assert entries["Havainto roolista worker"].team_id == "vaasa-uppsok"
    assert entries["Havainto roolista worker"].region == "pohjanmaa"
    roles = sorted(p.role for p in await bot.rows(Person))
    assert roles == ["lead", "leader", "worker"]


# --- the capture flow -------------------------------------------------------------------


async def test_full_flow_with_details_and_edit(bot: TelegramBot, clock: FakeClock) -> None:
    anna = await bot.enrol(1001)
    bot.latencies.clear()
    description = "Nuoret eivät pääse päihdepalveluihin ilman lähetettä"

    await anna.say("/uusi")
    assert anna.answers == [fi("ask.description")]
    assert await step_of(bot, anna) == "description"

    await anna.say(description)
    question = anna.expect(fi("ask.theme"))
    assert [label for row in keyboard(question) for label, _ in row] == [
        label(code, "fi") for code in _codes("theme")
    ]
    state = await draft_of(bot, anna)
    assert state is not None and state["description"] == description
    assert state["step"] == "theme"

    steps = [
        ("theme.substance_mental", "ask.group", "group"),
        ("group.youth", "ask.signal", "signal"),
        ("signal.criteria", "ask.frequency", "frequency"),
        ("frequency.growing", "ask.escalation", "escalation"),
        ("escalation.leadership", "summary.title", "summary"),
    ]
    for code, next_question, next_step in steps:
        await anna.tap(label(code, "fi"))
        anna.expect(fi(next_question))
        state = await draft_of(bot, anna)
        assert state is not None and state["step"] == next_step
        assert code in state.values(), "the answer is in the stored draft at once"

    summary = anna.expect(fi("summary.title"))
    assert description in (summary.text or "")
    assert label("signal.criteria", "fi") in (summary.text or "")
    assert [label for row in keyboard(summary) for label, _ in row] == [
        fi("button.save"),
        fi("button.edit"),
        fi("button.details"),
        fi("button.cancel"),
    ]

    # Add details: area from the team's list, the client's words, an action, good practice.
    await anna.tap(fi("button.details"))
    anna.expect(fi("ask.details_menu"))
    await anna.tap(fi("field.area"))
    anna.expect(fi("ask.area"))
    assert anna.labels() == ["Kallio", "Itäkeskus", fi("button.no_area"), fi("button.back")]
    await anna.tap("Kallio")
    await anna.tap(fi("field.quote"))
    anna.expect(fi("ask.quote"))
    await anna.say("Kukaan ei kysy, mitä minä tarvitsen")
    await anna.tap(fi("field.action"))
    await anna.say("Matalan kynnyksen vastaanotto iltaisin")
    await anna.tap(fi("field.polarity"))
    await anna.tap(label("polarity.good_practice", "fi"))
    anna.expect(fi("ask.details_menu"))
    await anna.tap(fi("button.done"))
    summary = anna.expect(fi("summary.title"))
    for shown in ("Kallio", "Kukaan ei kysy", "Matalan kynnyksen", "Hyvä käytäntö"):
        assert shown in (summary.text or "")

    # Edit: jump back to the theme, change it, land on the summary again.
    await anna.tap(fi("button.edit"))
    anna.expect(fi("ask.edit_menu"))
    await anna.tap(fi("field.theme"))
    anna.expect(fi("ask.theme"))
    assert fi("button.back") in anna.labels()
    await anna.tap(THEME["theme.income"])
    assert THEME["theme.income"] in anna.expect(fi("summary.title")).text  # type: ignore[operator]
    # ...or look at a step and go back without changing it.
    await anna.tap(fi("button.edit"))
    await anna.tap(fi("field.group"))
    await anna.tap(fi("button.back"))
    anna.expect(fi("summary.title"))

    clock.advance(minutes=3)
    await anna.tap(fi("button.save"))
    (entry,) = await bot.rows(Observation)
    # (An escalated entry may be followed by a note on where it went.)
    assert anna.answers[0] == fi("svc.saved", number=entry.id)
    person = await person_of(bot, anna)
    assert entry.person_id == person.id and re.fullmatch(r"w-[0-9a-f]{8}", person.pseudonym)
    stored = [str(getattr(entry, column.name)) for column in Observation.__table__.columns]
    assert str(anna.user_id) not in stored, "the observation names no Telegram account"
    assert (entry.team_id, entry.region, entry.area) == ("hki-etsiva", "helsinki", "kallio")
    assert entry.description == description
    assert entry.quote == "Kukaan ei kysy, mitä minä tarvitsen"
    assert entry.action == "Matalan kynnyksen vastaanotto iltaisin"
    assert (entry.theme, entry.population_group, entry.signal) == (
        "theme.income",
        "group.youth",
        "signal.criteria",
    )
    assert (entry.frequency, entry.escalation, entry.polarity) == (
        "frequency.growing",
        "escalation.leadership",
        "polarity.good_practice",
    )
    assert (entry.transport, entry.language) == ("telegram", "fi")
    assert (entry.flow_version, entry.taxonomy_version) == (FLOW_VERSION, TAXONOMY_VERSION)
    for moment in (entry.observed_at, entry.recorded_at, entry.updated_at):
        assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0)
    # Observed when the draft was started, recorded when saved.
    assert entry.recorded_at == clock.now
    assert entry.observed_at == clock.now - timedelta(minutes=3)
    assert entry.withdrawn_at is None
    assert await bot.rows(Draft) == []

    report = bot.latency_report()
    print(f"\n[full flow] interactions={anna.actions}; {report}")
    median = sorted(bot.latencies)[len(bot.latencies) // 2]
    assert median < 1.0, report


async def test_quick_capture_is_one_text_and_six_taps(bot: TelegramBot) -> None:
    anna = await bot.enrol(1001)
    number = await quick_entry(anna, "Yöpaikkaa ei löytynyt kolmelle nuorelle")
    assert anna.actions == 7, "one text message and six taps make a complete entry"
    assert anna.answers == [fi("svc.saved", number=number)]
    (entry,) = await bot.rows(Observation)
    assert entry.id == number
    assert (entry.theme, entry.population_group, entry.signal, entry.frequency) == (
        "theme.housing",
        "group.youth",
        "signal.queues",
        "frequency.recurring",
    )
    assert (entry.escalation, entry.polarity, entry.area) == (
        "escalation.none",
        "polarity.problem",
        None,
    )

    # A command with text after it is quick capture too.
    await anna.say("/uusi Jonot ovat pitkät")
    anna.expect(fi("ask.theme"))
    state = await draft_of(bot, anna)
    assert state is not None and state["description"] == "Jonot ovat pitkät"
    await anna.tap(0)  # the first button: a tap by position works as well
    state = await draft_of(bot, anna)
    assert state is not None and (state["theme"], state["step"]) == ("theme.housing", "group")


async def test_new_while_draft_open_asks_continue_or_discard(bot: TelegramBot) -> None:
    anna = await bot.enrol(1001)
    await anna.say("Ensimmäinen luonnos")
    await anna.tap(THEME["theme.housing"])
    first = await draft_of(bot, anna)
    assert first is not None and first["step"] == "group"

    for alias in ("/uusi", "/new", "/ny"):
        await anna.say(alias)
        anna.expect(fi("ask.resume"))
        assert anna.labels() == [
            fi("button.continue"),
            fi("button.keep_and_new"),
            fi("button.discard"),
        ]
    await anna.tap(fi("button.continue"))
    anna.expect(fi("ask.group"))
    state = await draft_of(bot, anna)
    assert state is not None
    assert (state["step"], state["description"], state["theme"]) == (
        "group",
        "Ensimmäinen luonnos",
        "theme.housing",
    )

    await anna.say("/uusi")
    await anna.tap(fi("button.discard"))
    assert anna.answers == [fi("flow.discarded"), fi("ask.description")]
    state = await draft_of(bot, anna)
    assert state is not None
    assert (state["step"], state["description"], state["theme"]) == ("description", None, None)
    assert state["key"] != first["key"], "buttons of the discarded draft are dead"


async def test_cancel_with_command_and_button(bot: TelegramBot) -> None:
    anna = await bot.enrol(1001)
    await anna.say("/peru")
    assert anna.answers == [fi("flow.nothing_to_cancel")]

    await anna.say("Peruttava havainto")
    await anna.say("/peru")
    assert anna.answers == [fi("flow.cancelled")]
    assert await draft_of(bot, anna) is None

    await quick_entry_until_summary(anna, "Toinen peruttava")
    await anna.tap(fi("button.cancel"))
    assert anna.answers == [fi("flow.cancelled")]
    assert await draft_of(bot, anna) is None
    assert await bot.rows(Observation) == []
    dump = await bot.dump_database()
    assert "peruttava" not in dump.lower()


async def quick_entry_until_summary(worker: Worker, text: str) -> None:
    await worker.say(text)
    await worker.new_if_asked()
    for code in ("theme.housing", "group.youth", "signal.queues", "frequency.single"):
        await worker.tap(label(code, "fi"))
    await worker.tap(label("escalation.none", "fi"))
    worker.expect(fi("summary.title"))


async def test_restart_mid_flow_resumes_where_the_worker_was(bot: TelegramBot) -> None:
    anna = await bot.enrol(1001)
    await anna.say("Kirjaus ennen uudelleenkäynnistystä")
    theme_message, _ = anna.current_keyboard()
    stale_theme = anna.data_for(THEME["theme.housing"])
    await anna.tap(THEME["theme.housing"])
    before = await draft_of(bot, anna)
    assert before is not None and before["step"] == "group"

    await bot.restart()  # a new Application, a new engine, the same database

    assert await draft_of(bot, anna) == before
    # The group question sent before the restart is still the current step: its buttons work.
    await anna.tap(label("group.older", "fi"))
    anna.expect(fi("ask.signal"))
    # A button of an older step does not.
    await anna.press(stale_theme, message_id=theme_message, strict=False)
    # Answered to Anna alone; her screen already shows the current question.
    assert anna.answers == [] and anna.alerts == [fi("flow.stale_button")]

    await bot.restart()
    await anna.say("/apua")
    assert anna.answers == [fi("svc.help", **commands.shown("fi")), fi("ask.signal")]
    await anna.tap(label("signal.mismatch", "fi"))
    await anna.tap(label("frequency.new", "fi"))
    await anna.tap(label("escalation.none", "fi"))
    await anna.tap(fi("button.save"))
    (entry,) = await bot.rows(Observation)
    assert entry.description == "Kirjaus ennen uudelleenkäynnistystä"
    assert (entry.theme, entry.population_group, entry.signal) == (
        "theme.housing",
        "group.older",
        "signal.mismatch",
    )


async def test_idle_draft_reminded_once_and_still_resumes(
    bot: TelegramBot, clock: FakeClock
) -> None:
    anna = await bot.enrol(1001)
    await anna.say("Jäi kesken")
    await anna.tap(THEME["theme.housing"])
    service, router = bot.rt.service, bot.rt.router

    clock.advance(hours=11, minutes=59)
    assert await service.remind_idle_drafts() == []

    clock.advance(minutes=2)
    mark = bot.fake.mark()
    outbound = await service.remind_idle_drafts()
    await router.deliver(outbound)
    sent = [c for c in bot.fake.sent[mark:] if c.method == "sendMessage"]
    assert [str(c.chat_id) for c in sent] == [str(anna.chat_id)] * 2
    assert [c.text for c in sent] == [fi("svc.draft_reminder"), fi("ask.group")]
    assert keyboard(sent[1]), "the reminder repeats the open question with its buttons"

    # Called again (next scheduler run, or a second instance): nothing more.
    assert await service.remind_idle_drafts() == []
    clock.advance(hours=30)
    assert await service.remind_idle_drafts() == []

    state = await draft_of(bot, anna)
    assert state is not None and state["step"] == "group", "an idle draft is kept"
    await anna.tap(label("group.children", "fi"))
    anna.expect(fi("ask.signal"))
    (row,) = await bot.rows(Draft)
    assert row.reminded_at is None, "a draft in use again may be reminded again later"


async def test_duplicate_updates_are_processed_once(bot: TelegramBot) -> None:
    newcomer = bot.worker(1001)
    await newcomer.say(f"/start {await bot.invite()}")
    start_update = newcomer.last_update_id
    assert await newcomer.redeliver(start_update) == []
    anna = newcomer

    await anna.say("Kahdesti toimitettu viesti")
    assert await anna.redeliver(anna.last_update_id) == []
    state = await draft_of(bot, anna)
    assert state is not None and state["step"] == "theme"
    seq = state["seq"]

    await anna.tap(THEME["theme.housing"])
    assert await anna.redeliver(anna.last_update_id) == []
    state = await draft_of(bot, anna)
    assert state is not None and (state["step"], state["seq"]) == ("group", seq + 1)

    for code in ("group.youth", "signal.queues", "frequency.single", "escalation.none"):
        await anna.tap(label(code, "fi"))
    await anna.tap(fi("button.save"))
    save_update = anna.last_update_id
    assert await anna.redeliver(save_update) == []
    assert await anna.redeliver(save_update) == []
    assert len(await bot.rows(Observation)) == 1
    saved = [c for c in bot.fake.messages_to(anna.chat_id) if "#" in (c.text or "")]
    assert len(saved) == 1
    assert bot.processed[save_update] == 3


async def test_forged_and_stale_buttons_are_refused_and_logged(
    bot: TelegramBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    anna = await bot.enrol(1001)
    ben = await bot.enrol(1002)
    anna_text = "Annan salainen havaintoteksti"
    ben_text = "Benin oma havaintoteksti"
    await anna.say(anna_text)
    anna_theme = anna.data_for(THEME["theme.housing"])
    await ben.say(ben_text)
    anna_before, ben_before = await draft_of(bot, anna), await draft_of(bot, ben)
    caplog.clear()

    # Ben presses Anna's button (callback data copied from her chat).
    await ben.press(anna_theme, strict=False)
    assert ben.answers == [] and ben.alerts == [fi("flow.stale_button")]
    assert await draft_of(bot, anna) == anna_before
    assert await draft_of(bot, ben) == ben_before
    refusals = [r for r in caplog.records if "choice_refused" in r.getMessage()]
    assert refusals, [r.getMessage() for r in caplog.records]

    # Made-up payloads.
    for forged in ("d:zzzzzz:1:theme.housing", "theme.housing", "own:del:x", "lang:xx"):
        await ben.press(forged, strict=False)
        assert ben.alerts == [fi("flow.stale_button")], forged
        assert ben.answers == [], forged
    assert await draft_of(bot, ben) == ben_before

    # Anna's own button of a step she already answered.
    theme_message, _ = anna.current_keyboard()
    await anna.tap(THEME["theme.housing"])
    await anna.press(
        anna_theme.replace("theme.housing", "theme.income"),
        message_id=theme_message,
        strict=False,
    )
    assert anna.answers == [] and anna.alerts == [fi("flow.stale_button")]
    state = await draft_of(bot, anna)
    assert state is not None and (state["step"], state["theme"]) == ("group", "theme.housing")

    # Ben tries to withdraw or correct Anna's saved entry.
    await anna.say("/peru")
    number = await quick_entry(anna, anna_text)
    for action in ("del", "delyes", "edit"):
        await ben.press(f"own:{action}:{number}", strict=False)
        assert ben.answers == [] and ben.alerts == [fi("svc.not_yours")]
    (entry,) = await bot.rows(Observation)
    assert entry.withdrawn_at is None and entry.description == anna_text

    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("havainto"))
    for secret in (anna_text, ben_text, "salainen", bot.fake.token, "Testi"):
        assert secret not in logged, f"{secret!r} leaked into the logs"


# --- bad input ------------------------------------------------------------------------


async def test_group_chats_are_refused(bot: TelegramBot) -> None:
    anna = await bot.enrol(1001)
    in_team_chat = Worker(bot, anna.user_id, chat_id=-1001)
    await in_team_chat.say("/uusi")
    assert in_team_chat.answers == [fi("svc.private_only")]
    await in_team_chat.say("Tämä on tiimin keskustelua, ei havainto")
    assert in_team_chat.answers == []
    await in_team_chat.send_media("sticker")
    assert in_team_chat.answers == []
    assert len(bot.fake.messages_to(anna.chat_id)) == 1, "only the welcome went to her chat"
    assert await bot.rows(Draft) == []

    stranger = Worker(bot, 1500, chat_id=-1001)
    code = await bot.invite()
    await stranger.say(f"/start {code}")
    assert stranger.answers == [fi("svc.private_only")]
    (invite,) = await bot.rows(Invite, Invite.code == code)
    assert invite.used_at is None, "a code shown in a group is not spent"
    assert len(await bot.rows(Person)) == 1
    assert "tiimin keskustelua" not in await bot.dump_database()


async def test_text_limits_empty_emoji_and_rtl(bot: TelegramBot) -> None:
    anna = await bot.enrol(1001)

    # Too long without a draft: asked to shorten, nothing stored.
    await anna.say("x" * (MAX_TEXT + 1))
    assert anna.answers == [fi("flow.too_long", length=MAX_TEXT + 1, limit=MAX_TEXT)]
    assert await draft_of(bot, anna) is None

    # Too long inside a draft: the draft keeps what it had.
    await anna.say("Lyhyt kuvaus")
    await anna.tap(THEME["theme.housing"])
    await anna.say("/uusi")
    await anna.tap(fi("button.continue"))
    await quick_to_summary_from_group(anna)
    await anna.tap(fi("button.details"))
    await anna.tap(fi("field.quote"))
    before = await draft_of(bot, anna)
    await anna.say("y" * 4096)
    assert anna.answers == [fi("flow.too_long", length=4096, limit=MAX_TEXT), fi("ask.quote")]
    assert await draft_of(bot, anna) == before
    await anna.tap(fi("button.back"))
    await anna.tap(fi("button.done"))
    await anna.tap(fi("button.cancel"))

    # Empty and whitespace-only texts.
    for blank in (" ", "\n\t \u00a0"):
        await anna.say(blank)
        assert anna.answers == [fi("flow.empty_text")]
    assert await draft_of(bot, anna) is None

    # Exactly the limit is fine, and the long summary still arrives with its buttons.
    await anna.say("z" * MAX_TEXT)
    anna.expect(fi("ask.theme"))
    await anna.tap(THEME["theme.housing"])
    await quick_to_summary_from_group(anna)
    assert "".join(anna.answers).count("z") == MAX_TEXT
    assert anna.labels()[0] == fi("button.save")
    await anna.tap(fi("button.cancel"))

    # Emoji, combined emoji, Arabic and Hebrew are stored exactly as typed.
    text = "Perhe 👨‍👩‍👧 nukkuu autossa 🚗; äiti sanoi: «لا يوجد مكان» — אין מקום 🇫🇮"
    quote = "\u200fמה אני אמור לעשות?\u200f 🙏🏽"
    await anna.say(text)
    await anna.tap(THEME["theme.housing"])
    await quick_to_summary_from_group(anna)
    assert text in anna.expect(fi("summary.title")).text  # type: ignore[operator]
    await anna.tap(fi("button.details"))
    await anna.tap(fi("field.quote"))
    await anna.say(quote)
    await anna.tap(fi("button.done"))
    await anna.tap(fi("button.save"))
    (entry,) = await bot.rows(Observation)
    assert entry.description == text
    assert entry.quote == quote


async def quick_to_summary_from_group(worker: Worker) -> None:
    for code in ("group.working_age", "signal.no_service", "frequency.single", "escalation.none"):
        await worker.tap(label(code, "fi"))
    worker.expect(fi("summary.title"))


async def test_edits_unknown_commands_and_media(bot: TelegramBot) -> None:
    anna = await bot.enrol(1001)
    await anna.say("Alkuperäinen teksti")
    original = anna.last_user_message_id()
    before = await draft_of(bot, anna)

    await anna.edit(original, "Muokattu teksti")
    assert anna.answers == [fi("flow.edit_ignored"), fi("ask.theme")]
    assert await draft_of(bot, anna) == before

    for command in ("/tuntematon", "/UUSI2", "/omat_kaikki"):
        await anna.say(command)
        shown = commands.shown("fi")
        assert anna.answers == [fi("svc.unknown_command", **shown), fi("ask.theme")], command
    assert await draft_of(bot, anna) == before

    for kind, extra in (
        ("voice", {}),
        ("photo", {"caption": "Kuvateksti asiakkaasta"}),
        ("document", {"caption": "Liite", "file_name": "lausunto.pdf"}),
        ("sticker", {}),
    ):
        await anna.send_media(kind, **extra)
        assert anna.answers == [fi("flow.media_refused"), fi("ask.theme")], kind
    assert await draft_of(bot, anna) == before
    assert bot.fake.counts["getFile"] == 0, "media is never downloaded"

    await anna.say("/peru")
    await anna.send_media("voice")
    assert anna.answers == [fi("flow.media_refused")]
    assert await draft_of(bot, anna) is None
    dump = await bot.dump_database()
    assert "Muokattu" not in dump and "Kuvateksti" not in dump and "lausunto" not in dump


async def test_revoked_worker_is_refused(bot: TelegramBot) -> None:
    anna = await bot.enrol(1001)
    await anna.say("Kesken jäänyt")
    person = await person_of(bot, anna)
    async with bot.rt.db.transaction() as session:
        await session.execute(
            update(Person).where(Person.id == person.id).values(revoked_at=bot.clock())
        )
    before = await draft_of(bot, anna)

    attempts: list[Callable[[], Awaitable[object]]] = [
        lambda: anna.say("Uusi havainto"),
        lambda: anna.say("/uusi"),
        lambda: anna.say("/omat"),
        lambda: anna.tap(THEME["theme.housing"]),
        lambda: anna.say("/start"),
    ]
    for action in attempts:
        await action()
        assert anna.answers[0] in (fi("svc.revoked"), fi("svc.revoked_start"))
        assert len(anna.answers) == 1
    assert await draft_of(bot, anna) == before
    assert await bot.rows(Observation) == []
    assert "Uusi havainto" not in await bot.dump_database()

    # A new invite does not bring her back (only `havainto people restore` does), and
    # is not used up by trying.
    code = await bot.invite()
    await anna.say(f"/start {code}")
    assert anna.answers == [fi("svc.revoked_start")]
    (invite,) = await bot.rows(Invite, Invite.code == code)
    assert invite.used_at is None
    assert [p.id for p in await bot.rows(Person)] == [person.id]


# --- privacy ----------------------------------------------------------------------------


async def test_privacy_guard(bot: TelegramBot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    anna = await bot.enrol(1001)

    # A hetu is removed before anything is stored, and the worker is told.
    await anna.say(f"Asiakas {HETU} kertoi, että asunto meni alta")
    assert anna.answers == [fi("privacy.hetu_removed"), fi("ask.theme")]
    state = await draft_of(bot, anna)
    assert state is not None and HETU not in str(state["description"])
    assert "asunto meni alta" in str(state["description"])
    assert HETU not in await bot.dump_database()

    await anna.tap(THEME["theme.housing"])
    await quick_to_summary_from_group(anna)

    # A phone number in the client's words: told which kind, removal offered and taken.
    await anna.tap(fi("button.details"))
    await anna.tap(fi("field.quote"))
    await anna.say("Soittakaa minulle numeroon 040 123 4567")
    kinds = fi("privacy.kind.phone")
    anna.expect(fi("privacy.found", kinds=kinds))
    assert anna.labels() == [
        fi("button.remove_identifiers"),
        fi("button.keep_text"),
        fi("button.edit_text"),
    ]
    await anna.tap(fi("button.remove_identifiers"))
    anna.expect(fi("ask.details_menu"))

    # An e-mail address in the proposed action: the worker rewrites it instead.
    await anna.tap(fi("field.action"))
    await anna.say("Ohjaus osoitteeseen matti.meikalainen@example.com")
    anna.expect(fi("privacy.found", kinds=fi("privacy.kind.email")))
    await anna.tap(fi("button.edit_text"))
    anna.expect(fi("privacy.dropped"))
    anna.expect(fi("ask.action"))
    state = await draft_of(bot, anna)
    assert state is not None and state["action"] is None
    await anna.say("Ohjaus sosiaalipäivystykseen")
    await anna.tap(fi("button.done"))
    await anna.tap(fi("button.save"))

    (entry,) = await bot.rows(Observation)
    assert entry.description is not None and "asunto meni alta" in entry.description
    assert entry.quote is not None and "040" not in entry.quote
    assert entry.quote.startswith("Soittakaa minulle numeroon")
    assert entry.action == "Ohjaus sosiaalipäivystykseen"

    # An IBAN (quick capture) is recognised by kind too.
    await anna.say("Vuokra maksettiin tilille FI21 1234 5600 0007 85 väärin")
    anna.expect(fi("privacy.found", kinds=fi("privacy.kind.iban")))
    await anna.say("/peru")

    dump = await bot.dump_database()
    for secret in (HETU, HETU.replace("-", ""), "123 4567", "meikalainen", "5600 0007"):
        assert secret not in dump, f"{secret!r} is stored"
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("havainto"))
    assert HETU not in logged and "asunto" not in logged


async def test_shared_location_is_coarsened(bot: TelegramBot) -> None:
    anna = await bot.enrol(1001)
    await anna.send_location(60.1843, 24.9499)
    assert anna.answers == [fi("flow.location_without_draft")]

    await anna.say("Telttamajoitus puistossa")
    # Near a configured area: mapped to it; the open question stays.
    await anna.send_location(60.18571, 24.95213)
    assert anna.answers == [fi("flow.location_coarsened", area="Kallio"), fi("ask.theme")]
    state = await draft_of(bot, anna)
    assert state is not None and (state["area"], state["step"]) == ("kallio", "theme")

    # Far from every area: a grid cell of about 1 km, never the point itself.
    await anna.send_location(61.497812, 23.761043)
    state = await draft_of(bot, anna)
    assert state is not None and state["area"] == "geo:61.50,23.76"
    anna.expect(fi("flow.area_grid", cell="61.50,23.76"))

    # A live location keeps sending edits: they are ignored quietly.
    await anna.send_location(60.2101, 25.0810)
    live = anna.last_user_message_id()
    anna.expect("Itäkeskus")
    message = bot.fake.message(anna.chat_id, live)
    message["location"] = {"latitude": 60.2111, "longitude": 25.0822, "live_period": 900}
    message["edit_date"] = message["date"] + 30
    await anna.push({"edited_message": message})
    assert anna.answers == []
    state = await draft_of(bot, anna)
    assert state is not None and state["area"] == "itakeskus"

    # At the area step a location answers it.
    await anna.tap(THEME["theme.housing"])
    await quick_to_summary_from_group(anna)
    await anna.tap(fi("button.details"))
    await anna.tap(fi("field.area"))
    await anna.send_location(61.497812, 23.761043)
    anna.expect(fi("ask.details_menu"))
    await anna.tap(fi("button.done"))
    await anna.tap(fi("button.save"))
    (entry,) = await bot.rows(Observation)
    assert entry.area == "geo:61.50,23.76"
    dump = await bot.dump_database()
    for exact in ("61.4978", "23.761", "60.1857", "24.952", "60.211", "25.08"):
        assert exact not in dump


# --- own entries, language, help --------------------------------------------------------


async def test_own_entries_correct_and_withdraw_within_24_hours(
    bot: TelegramBot, clock: FakeClock
) -> None:
    anna = await bot.enrol(1001)
    await anna.say("/omat")
    assert anna.answers == [fi("svc.own_empty")]
    first = await quick_entry(anna, "Ensimmäinen tallennettu")
    clock.advance(minutes=5)
    second = await quick_entry(anna, "Toinen tallennettu")

    await anna.say("/omat")
    listing = anna.expect(fi("svc.own_title"))
    assert "Ensimmäinen tallennettu" in (listing.text or "")
    assert "Toinen tallennettu" in (listing.text or "")
    assert (listing.text or "").index(f"#{second}") < (listing.text or "").index(f"#{first}")
    assert fi("button.own_edit", number=first) in anna.labels()

    # Correct the first: it opens at the summary with its values.
    await anna.tap(fi("button.own_edit", number=first))
    assert "Ensimmäinen tallennettu" in anna.expect(fi("summary.title")).text  # type: ignore[operator]
    await anna.tap(fi("button.edit"))
    await anna.tap(fi("field.theme"))
    await anna.tap(THEME["theme.income"])
    clock.advance(minutes=1)
    await anna.tap(fi("button.save"))
    assert anna.answers == [fi("svc.updated", number=first)]
    entries = {e.id: e for e in await bot.rows(Observation)}
    assert len(entries) == 2
    assert entries[first].theme == "theme.income"
    assert entries[first].population_group == "group.youth"
    assert entries[first].updated_at == clock.now
    assert entries[first].updated_at > entries[first].recorded_at

    # Withdraw the second, after a confirmation.
    await anna.say("/omat")
    await anna.tap(fi("button.own_withdraw", number=second))
    anna.expect(fi("svc.withdraw_confirm", number=second))
    await anna.tap(fi("button.no"))
    assert anna.answers == [fi("svc.kept", number=second)]
    await anna.say("/omat")
    await anna.tap(fi("button.own_withdraw", number=second))
    await anna.tap(fi("button.yes_withdraw"))
    assert anna.answers == [fi("svc.withdrawn", number=second)]
    (withdrawn,) = await bot.rows(Observation, Observation.id == second)
    assert withdrawn.withdrawn_at == clock.now
    await anna.say("/omat")
    assert "Toinen tallennettu" not in anna.last_text

    # Over 24 hours later: listed, but no longer changeable.
    await anna.tap(fi("button.own_edit", number=first))  # a correction opened in time...
    clock.advance(hours=25)
    await anna.say("/omat")
    assert "Ensimmäinen tallennettu" in anna.last_text
    await anna.say("/peru")
    for action in ("edit", "del", "delyes"):
        await anna.press(f"own:{action}:{first}", strict=False)
        assert anna.answers == [fi("svc.too_old", number=first, hours="24")], action
    (entry,) = await bot.rows(Observation, Observation.id == first)
    assert entry.withdrawn_at is None and entry.theme == "theme.income"


async def test_correction_saved_after_the_window_is_refused(
    bot: TelegramBot, clock: FakeClock
) -> None:
    anna = await bot.enrol(1001)
    number = await quick_entry(anna, "Korjattava myöhään")
    clock.advance(hours=23)
    await anna.say("/omat")
    await anna.tap(fi("button.own_edit", number=number))
    await anna.tap(fi("button.edit"))
    await anna.tap(fi("field.theme"))
    await anna.tap(THEME["theme.income"])
    clock.advance(hours=2)
    await anna.tap(fi("button.save"))
    assert anna.answers == [fi("svc.too_old", number=number, hours="24")]
    (entry,) = await bot.rows(Observation)
    assert entry.theme == "theme.housing"
    assert await draft_of(bot, anna) is None


async def test_help_and_language(bot: TelegramBot) -> None:
    anna = await bot.enrol(1001)
    await anna.say("/apua")
    assert anna.answers == [fi("svc.help", **commands.shown("fi"))]
    # Six lines: the fifth names the notice of a grievance with its old name (SHL 48 §).
    assert len(anna.last_text.splitlines()) == 6
    assert "ent. SHL 48 §" in anna.last_text

    await anna.say("/kieli")
    anna.expect(fi("svc.language_ask"))
    assert anna.labels() == ["Suomi", "Svenska", "English"]
    await anna.tap("Svenska")
    assert anna.answers == [t("sv", "svc.language_set")]
    assert (await person_of(bot, anna)).language == "sv"
    await anna.say("/hjälp")
    assert anna.answers == [t("sv", "svc.help", **commands.shown("sv"))]
    assert len(anna.last_text.splitlines()) == 6

    await anna.say("Svensk text")
    anna.expect(t("sv", "ask.theme"))
    await anna.say("/language")
    await anna.tap("English")
    assert anna.answers == [t("en", "svc.language_set"), t("en", "ask.theme")]
    assert len(t("en", "svc.help").splitlines()) == 6


def _codes(dimension: str) -> tuple[str, ...]:
    from flows.taxonomy import DIMENSIONS

    return DIMENSIONS[dimension].codes


# --- concurrency and downtime ----------------------------------------------------------


async def test_double_tap_and_two_workers_at_once(bot: TelegramBot) -> None:
    anna = await bot.enrol(1001)
    ben = await bot.enrol(1002)
    await anna.say("Annan havainto samaan aikaan")
    await ben.say("Benin havainto samaan aikaan")
    anna_housing = anna.data_for(THEME["theme.housing"])
    ben_income = ben.data_for(THEME["theme.income"])
    fake = bot.fake

    # Anna taps the same button twice before the bot answers; Ben taps at the same moment.
    mark = fake.mark()
    first = fake.press(anna.user_id, anna_housing)
    second = fake.press(anna.user_id, anna_housing, strict=False)
    other = fake.press(ben.user_id, ben_income)
    for update_id in (first, second, other):
        await bot.wait_processed(update_id)

    anna_state, ben_state = await draft_of(bot, anna), await draft_of(bot, ben)
    assert anna_state is not None and ben_state is not None
    assert (anna_state["step"], anna_state["theme"]) == ("group", "theme.housing")
    assert (ben_state["step"], ben_state["theme"]) == ("group", "theme.income")
    to_anna = [
        c.text
        for c in fake.sent[mark:]
        if c.method in ("sendMessage", "editMessageText") and str(c.chat_id) == "1001"
    ]
    # The answer (edited into the pressed question), then the repeat as a new message.
    # The answer is edited into the pressed question; the repeat changes nothing in the
    # chat (it is answered to Anna alone) and never overtakes the answer.
    assert to_anna == [fi("ask.group")], to_anna
    answers = [c.params.get("text") for c in fake.sent[mark:] if c.method == "answerCallbackQuery"]
    assert fi("flow.stale_button") in answers, answers


async def test_messages_sent_while_the_bot_is_down_are_not_lost(bot: TelegramBot) -> None:
    anna = await bot.enrol(1001)
    await anna.say("Ennen katkosta")
    await bot.stop()

    # Telegram keeps updates until the bot fetches them again.
    tap = bot.fake.press(anna.user_id, anna.data_for(THEME["theme.housing"]))
    await bot.start()
    await bot.wait_processed(tap)
    state = await draft_of(bot, anna)
    assert state is not None and (state["step"], state["theme"]) == ("group", "theme.housing")
    group_question = bot.fake.messages_to(anna.chat_id)[-1]
    assert group_question.text == fi("ask.group") and keyboard(group_question)


async def test_a_reply_lost_to_a_telegram_error_is_recovered_by_the_next_tap(
    bot: TelegramBot,
) -> None:
    anna = await bot.enrol(1001)
    await anna.say("Vastaus katoaa matkalla")
    # The next question replaces the pressed one; when that edit fails it is sent as
    # a new message: both fail here.
    bot.fake.fail_next("editMessageText", 502, description="Bad Gateway")
    # 5xx answers are retried: this one outlasts the retries.
    bot.fake.fail_next("sendMessage", 502, description="Bad Gateway", times=4)
    await anna.tap(THEME["theme.housing"])
    assert anna.replies == [] and bot.fake.failed, "the group question was lost"
    assert [r.getMessage().split()[0] for r in bot.errors.records] == ["delivery_failed"]
    bot.errors.records.clear()
    state = await draft_of(bot, anna)
    assert state is not None and state["step"] == "group", "the answer itself was kept"

    # The worker taps again on what they still see: told so, and the open question takes
    # the place of the stale one.
    await anna.tap(THEME["theme.housing"])
    assert anna.answers == [fi("ask.group")] and anna.alerts == [fi("flow.stale_button")]
    await anna.tap(label("group.youth", "fi"))
    anna.expect(fi("ask.signal"))
