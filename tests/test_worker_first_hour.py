"""A worker's first hour, black box over the fake Telegram Bot API (issue 13, "The worker").

The real bot (``bot.runtime.build_runtime``: service, router, the real PTB Application)
runs against ``tests.support.fake_telegram.FakeTelegram`` over HTTP, on SQLite and
PostgreSQL. Each test plays a worker who meets one of the new steps: the time of an
observation, a text typed while a question is open, drafts kept aside, the default
area, "same as last time", the end-of-shift reminder and ``/omat`` page by page.

The fake clock starts on Monday 23 Nov 2026 at 10:30 in Helsinki (08:30 UTC).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import Config
from flows import capture, commands
from flows.i18n import label, t, tn
from storage import digest_queries
from storage.models import Draft, Identity, KeptDraft, Observation, Person
from tests.conftest import FakeClock
from tests.support.fake_telegram import FakeTelegram, keyboard
from tests.support.telegram import telegram_config
from tests.support.telegram_helpers import TelegramBot, Worker


def fi(key: str, **params: Any) -> str:
    return t("fi", key, **params)


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[TelegramBot]:
    async with FakeTelegram() as fake:
        harness = TelegramBot(fake, telegram_config(make_config, fake), clock)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()
        crashes = [r.getMessage() for r in harness.errors.records]
        assert not crashes, f"the bot logged errors: {crashes}"


async def person_of(bot: TelegramBot, worker: Worker) -> Person:
    (identity,) = await bot.rows(Identity, Identity.external_id == str(worker.user_id))
    (person,) = await bot.rows(Person, Person.id == identity.person_id)
    return person


async def draft_of(bot: TelegramBot, worker: Worker) -> dict[str, Any] | None:
    person = await person_of(bot, worker)
    rows = await bot.rows(Draft, Draft.person_id == person.id)
    return dict(rows[0].state) if rows else None


async def kept_of(bot: TelegramBot, worker: Worker) -> list[dict[str, Any]]:
    person = await person_of(bot, worker)
    return [dict(row.state) for row in await bot.rows(KeptDraft, KeptDraft.person_id == person.id)]


async def to_summary(worker: Worker, text: str | None = None) -> None:
    """The five taps after a text (theme, group, signal, how common, escalation)."""
    if text is not None:
        await worker.say(text)
    for code in ("theme.housing", "group.youth", "signal.queues", "frequency.recurring"):
        await worker.tap(label(code, "fi"))
    await worker.tap(label("escalation.none", "fi"))
    worker.expect(fi("summary.title"))


async def save(worker: Worker) -> int:
    await worker.tap(fi("button.save"))
    match = re.search(r"#(\d+)", worker.answers[0])
    assert match, worker.answers
    return int(match.group(1))


def summary_line(worker: Worker, field: str) -> str:
    text = worker.expect(fi("summary.title")).text or ""
    prefix = fi(f"field.{field}") + ": "
    return next(line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix))


# --- the time of an observation ----------------------------------------------------------


async def test_the_time_is_taken_from_the_first_message_and_changed_in_add_details(
    bot: TelegramBot, clock: FakeClock
) -> None:
    anna = await bot.enrol(1001)
    await anna.tap(fi("button.no_default_area"))

    # Logged on Monday morning about Sunday afternoon: the text keeps every word.
    await to_summary(anna, "Eilen klo 14: yöpaikkaa ei löytynyt kolmelle nuorelle")
    assert summary_line(anna, "when") == "eilen klo 14.00"
    sunday = await save(anna)
    (entry,) = await bot.rows(Observation, Observation.id == sunday)
    assert entry.description == "Eilen klo 14: yöpaikkaa ei löytynyt kolmelle nuorelle"
    assert entry.observed_at == datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # 14:00 EET
    assert entry.recorded_at == clock.now, "the time of saving is kept for audit"

    # Without a time the entry is observed now.
    await to_summary(anna, "Jono päihdehoitoon on kolme kuukautta")
    assert summary_line(anna, "when") == "tänään klo 10.30"

    # Add details -> When: buttons, or a typed time or day.
    await anna.tap(fi("button.details"))
    assert anna.labels()[0] == fi("field.when")
    await anna.tap(fi("field.when"))
    anna.expect(fi("ask.when"))
    assert anna.labels() == [
        fi("button.when_now"),
        fi("button.when_today"),
        fi("button.when_yesterday"),
        fi("button.back"),
    ]
    for typed, refusal in (
        ("tänään klo 18", fi("flow.when_future")),
        ("1.11.", fi("flow.when_too_old", days=7)),
        ("joskus", fi("flow.when_unknown")),
    ):
        await anna.say(typed)
        assert anna.answers[0] == refusal, typed
        anna.expect(fi("ask.when"))
    await anna.say("pe")  # Friday, a day without a time
    anna.expect(fi("ask.details_menu"))
    await anna.tap(fi("button.done"))
    assert summary_line(anna, "when") == "pe 20.11."
    # "klo 23" is still ahead today: last night is meant.
    await anna.tap(fi("button.details"))
    await anna.tap(fi("field.when"))
    await anna.say("klo 23")
    await anna.tap(fi("button.done"))
    assert summary_line(anna, "when") == "eilen klo 23.00"
    await anna.tap(fi("button.details"))
    await anna.tap(fi("field.when"))
    await anna.tap(fi("button.when_yesterday"))
    await anna.tap(fi("button.done"))
    assert summary_line(anna, "when") == "eilen"
    yesterday = await save(anna)
    (entry,) = await bot.rows(Observation, Observation.id == yesterday)
    assert entry.observed_at == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)  # noon, a day only

    # The digests count by the time observed: both are in last week's digest (W47),
    # not in this week's, though both were saved this week.
    async with bot.rt.db.transaction() as session:
        last_week = await digest_queries.weekly_figures(session, "hki-etsiva", "2026-W47")
        this_week = await digest_queries.weekly_figures(session, "hki-etsiva", "2026-W48")
    assert (last_week.total, this_week.total) == (2, 0)


async def test_the_time_in_swedish_and_english(bot: TelegramBot) -> None:
    sara = await bot.enrol(1002, team="vaasa-uppsok", language_code="sv")
    await sara.say("I går kl 9: ingen jourplats för unga")
    await sara.tap(label("theme.housing", "sv"))
    state = await draft_of(bot, sara)
    assert state is not None and state["observed_at"] == "2026-11-22T07:00:00+00:00"
    await sara.say("/språk")
    await sara.tap("English")
    await sara.say("/cancel")
    await sara.say("Yesterday 2pm: the shelter was full")
    state = await draft_of(bot, sara)
    assert state is not None and state["observed_at"] == "2026-11-22T12:00:00+00:00"


# --- a new text while a question is open ----------------------------------------------------


async def test_a_new_text_while_a_question_is_open_is_never_dropped(bot: TelegramBot) -> None:
    anna = await bot.enrol(1001)
    await anna.tap("Kallio")
    await anna.say("Ensimmäinen: asunnottomat nuoret")
    anna.expect(fi("ask.theme"))

    # Another text while the theme question is open: asked where it goes.
    await anna.say("Toinen: lastensuojelun jonot")
    question = anna.expect(
        fi(
            "ask.new_text",
            open="Ensimmäinen: asunnottomat nuoret",
            text="Toinen: lastensuojelun jonot",
        )
    )
    assert [b for row in keyboard(question) for b, _ in row] == [
        fi("button.new_with_text"),
        fi("button.text_as_description"),
        fi("button.forget_text"),
    ]
    await anna.tap(fi("button.new_with_text"))
    assert anna.answers[0] == fi("flow.kept_aside", text="Ensimmäinen: asunnottomat nuoret")
    anna.expect(fi("ask.theme"))
    state = await draft_of(bot, anna)
    assert state is not None and state["description"] == "Toinen: lastensuojelun jonot"
    (kept,) = await kept_of(bot, anna)
    assert (kept["description"], kept["step"]) == ("Ensimmäinen: asunnottomat nuoret", "theme")

    # A third one, at the group question of the second.
    await anna.tap(label("theme.service_access", "fi"))
    await anna.say("Kolmas: ei tulkkia")
    await anna.tap(fi("button.new_with_text"))
    assert len(await kept_of(bot, anna)) == 2

    # Three drafts are open: a fourth text cannot start another, and says why.
    await anna.say("Neljäs: tarkennus kolmanteen")
    question = anna.expect(fi("flow.drafts_full", count=3))
    assert fi("button.new_with_text") not in [b for row in keyboard(question) for b, _ in row]
    await anna.tap(fi("button.text_as_description"))
    anna.expect(fi("ask.theme"))
    state = await draft_of(bot, anna)
    assert state is not None and state["description"] == "Neljäs: tarkennus kolmanteen"

    # "Forget" leaves the draft as it was and asks its question again.
    await anna.say("ok")
    await anna.tap(fi("button.forget_text"))
    assert anna.answers == [fi("flow.text_forgotten"), fi("ask.theme")]
    assert (await draft_of(bot, anna) or {})["description"] == "Neljäs: tarkennus kolmanteen"

    # /omat lists the three open drafts; one is taken up, the open one is kept in its place.
    await anna.say("/omat")
    listing = anna.expect(fi("svc.own_drafts_title"))
    for shown in ("Neljäs", "Ensimmäinen", "Toinen"):
        assert shown in (listing.text or "")
    assert fi("button.own_resume", text="Ensimmäinen: asunnottom…") in anna.labels()
    await anna.tap("Ensimmäinen")
    assert anna.answers[0] == fi("svc.draft_resumed", text="Ensimmäinen: asunnottomat nuoret")
    anna.expect(fi("ask.theme"))
    kept_texts = sorted(k["description"] for k in await kept_of(bot, anna))
    assert kept_texts == ["Neljäs: tarkennus kolmanteen", "Toinen: lastensuojelun jonot"]
    await anna.tap(label("theme.housing", "fi"))
    for code in ("group.youth", "signal.queues", "frequency.recurring", "escalation.none"):
        await anna.tap(label(code, "fi"))
    number = await save(anna)
    # Saved, and told that two are still waiting.
    assert anna.answers == [
        fi("svc.saved", number=number),
        tn("fi", "svc.drafts_waiting", 2),
    ]
    (entry,) = await bot.rows(Observation)
    assert entry.description == "Ensimmäinen: asunnottomat nuoret" and entry.area == "kallio"

    # Every text typed is somewhere: saved, or in a draft.
    dump = await bot.dump_database()
    for text in ("Ensimmäinen", "Toinen", "Neljäs"):
        assert text in dump
    # The kept second draft goes on at the group question where it was left.
    await anna.say("/omat")
    await anna.tap("Toinen")
    anna.expect(fi("ask.group"))

    # Drafts kept aside are erased by retention like open ones (retention.draft_days).
    from bot.datacare import retain

    result = await retain(bot.rt.db, bot.rt.config.retention, bot.clock() + timedelta(days=31))
    assert result.drafts_erased == 2  # the open one and the one kept aside
    assert await kept_of(bot, anna) == [] and await draft_of(bot, anna) is None


async def test_new_while_a_draft_is_open_can_keep_it(bot: TelegramBot) -> None:
    anna = await bot.enrol(1001)
    await anna.say("Ensimmäinen luonnos")
    await anna.say("/uusi")
    assert anna.labels() == [
        fi("button.continue"),
        fi("button.keep_and_new"),
        fi("button.discard"),
    ]
    await anna.tap(fi("button.keep_and_new"))
    kept_aside = fi("flow.kept_aside", text="Ensimmäinen luonnos")
    assert anna.answers == [kept_aside, fi("ask.description")]
    (kept,) = await kept_of(bot, anna)
    assert kept["step"] == "theme"
    # "/uusi with text" while a draft is open does not drop the text either.
    await anna.say("/uusi Toinen teksti")  # the open question asks for a text: this is it
    anna.expect(fi("ask.theme"))
    await anna.say("/uusi Kolmas teksti")
    anna.expect(fi("ask.new_text", open="Toinen teksti", text="Kolmas teksti"))
    await anna.tap(fi("button.text_as_description"))
    anna.expect(fi("ask.theme"))
    assert (await draft_of(bot, anna) or {})["description"] == "Kolmas teksti"
    # Cancelling the open one says that one is still waiting.
    await anna.say("/peru")
    assert anna.answers == [fi("flow.cancelled"), tn("fi", "svc.drafts_waiting", 1)]


# --- the default area ------------------------------------------------------------------------


async def test_a_default_area_is_asked_once_and_changed_with_alue(bot: TelegramBot) -> None:
    worker = bot.worker(1001)
    await worker.say(f"/start {await bot.invite()}")
    welcome = worker.expect(fi("svc.area_ask"))
    assert fi("svc.welcome", team="Helsingin etsivät") in (welcome.text or "")
    assert worker.labels() == ["Kallio", "Itäkeskus", fi("button.no_default_area")]
    await worker.tap("Itäkeskus")
    assert worker.answers == [fi("svc.area_set", area="Itäkeskus")]
    assert (await person_of(bot, worker)).default_area == "itakeskus"

    # Filled into every new entry, and changeable for one entry in Add details.
    await to_summary(worker, "Alueella ei ole nuorisotilaa")
    assert summary_line(worker, "area") == "Itäkeskus"
    first = await save(worker)
    await to_summary(worker, "Tällä kertaa Kalliossa")
    await worker.tap(fi("button.details"))
    await worker.tap(fi("field.area"))
    await worker.tap("Kallio")
    await worker.tap(fi("button.done"))
    second = await save(worker)
    areas = {o.id: o.area for o in await bot.rows(Observation)}
    assert areas == {first: "itakeskus", second: "kallio"}

    # /alue asks again; /alue NAME sets it; sv and en words work too; "pois" clears it.
    await worker.say("/alue")
    worker.expect(fi("svc.area_ask"))
    await worker.say("/alue kallio")
    assert worker.answers == [fi("svc.area_set", area="Kallio")]
    await worker.say("/område Itäkeskus")
    assert worker.answers == [fi("svc.area_set", area="Itäkeskus")]
    await worker.say("/area Espoo")
    assert worker.answers[0] == fi("svc.area_unknown")
    await worker.say("/alue pois")
    assert worker.answers == [fi("svc.area_cleared")]
    await to_summary(worker, "Ilman aluetta")
    assert f"{fi('field.area')}:" not in worker.last_text, "no area, and no hint: chosen so"

    # A team without areas: nothing to ask.
    sara = await bot.enrol(1002, team="vaasa-uppsok", language_code="sv")
    assert t("sv", "svc.area_ask") not in sara.last_text
    await sara.say("/område")
    assert sara.answers == [t("sv", "svc.area_none_configured")]


# --- same as last time -----------------------------------------------------------------------


async def test_same_as_last_time_fills_theme_group_and_signal_in_one_tap(
    bot: TelegramBot,
) -> None:
    anna = await bot.enrol(1001)
    await anna.say("Ensimmäinen havainto")
    assert fi("button.same_as_last") not in anna.labels(), "nothing to repeat yet"
    await anna.tap(label("theme.substance_mental", "fi"))
    for code in ("group.working_age", "signal.criteria", "frequency.single", "escalation.none"):
        await anna.tap(label(code, "fi"))
    await save(anna)

    await anna.say("Sama tilanne toisessa paikassa")
    question = anna.expect(fi("ask.theme"))
    shown = " · ".join(
        label(c, "fi") for c in ("theme.substance_mental", "group.working_age", "signal.criteria")
    )
    assert fi("flow.same_as_last", codes=shown) in (question.text or "")
    await anna.tap(fi("button.same_as_last"))
    anna.expect(fi("ask.frequency"))  # theme, group and signal are filled: one tap
    await anna.tap(label("frequency.recurring", "fi"))
    await anna.tap(label("escalation.none", "fi"))
    # Editable like any answer.
    await anna.tap(fi("button.edit"))
    await anna.tap(fi("field.group"))
    await anna.tap(label("group.youth", "fi"))
    second = await save(anna)
    (entry,) = await bot.rows(Observation, Observation.id == second)
    assert (entry.theme, entry.population_group, entry.signal, entry.frequency) == (
        "theme.substance_mental",
        "group.youth",
        "signal.criteria",
        "frequency.recurring",
    )


# --- the end-of-shift reminder ------------------------------------------------------------


async def test_end_of_shift_reminder_is_opt_in_once_on_working_days(
    bot: TelegramBot, clock: FakeClock
) -> None:
    anna = await bot.enrol(1001)
    service, router = bot.rt.service, bot.rt.router
    await anna.say("/muistutus")
    assert anna.answers == [fi("svc.reminder_status_off", command="muistutus", off="pois")]
    await anna.say("/muistutus 25:00")
    assert anna.answers == [fi("svc.reminder_bad_time", command="muistutus", off="pois")]
    await anna.say("/muistutus 16:00")
    assert anna.answers == [fi("svc.reminder_set", time="16:00", command="muistutus", off="pois")]
    ben = await bot.enrol(1002)  # never asked for one

    async def run_at(local: datetime) -> list[str]:
        clock.now = local.astimezone(UTC)
        mark = bot.fake.mark()
        await router.deliver(await service.remind_shift_end())
        return [c.text or "" for c in bot.fake.sent[mark:] if c.method == "sendMessage"]

    zone = bot.rt.service.zone
    reminder = fi("svc.shift_reminder", command="muistutus", off="pois")
    monday = datetime(2026, 11, 23, 15, 55, tzinfo=zone)
    assert await run_at(monday) == [], "not before the chosen time"
    assert await run_at(monday.replace(hour=16, minute=0)) == [reminder]
    assert await run_at(monday.replace(hour=16, minute=5)) == [], "once a day"
    assert bot.fake.bot_messages(ben.chat_id)[-1]["text"] != reminder

    # Tuesday: something was logged that day, so nothing is asked.
    clock.now = datetime(2026, 11, 24, 9, 0, tzinfo=zone).astimezone(UTC)
    await to_summary(anna, "Aamun havainto")
    await save(anna)
    assert await run_at(datetime(2026, 11, 24, 16, 30, tzinfo=zone)) == []
    # Not on a Saturday, nor on a public holiday (Independence Day falls on a Sunday in
    # 2026: Christmas Eve, a Thursday, is not a working day either).
    assert await run_at(datetime(2026, 11, 28, 16, 30, tzinfo=zone)) == []
    assert await run_at(datetime(2026, 12, 24, 16, 30, tzinfo=zone)) == []
    assert await run_at(datetime(2026, 12, 28, 16, 30, tzinfo=zone)) == [reminder]

    # Swedish and English words turn it off (and on).
    await anna.say("/påminnelse av")
    assert anna.answers == [fi("svc.reminder_off")]
    assert await run_at(datetime(2026, 12, 29, 16, 30, tzinfo=zone)) == []
    await anna.say("/reminder 7.30")
    assert anna.answers == [fi("svc.reminder_set", time="07:30", command="muistutus", off="pois")]
    assert any(job.id == "shift_reminders" for job in _job_table(bot))


def _job_table(bot: TelegramBot) -> list[Any]:
    from bot.runtime.jobs import job_table

    return job_table(bot.rt)


# --- /omat page by page -------------------------------------------------------------------


async def test_own_entries_page_five_at_a_time(bot: TelegramBot, clock: FakeClock) -> None:
    anna = await bot.enrol(1001)
    await anna.tap(fi("button.no_default_area"))
    numbers = []
    for n in range(12):
        clock.advance(minutes=1)
        await to_summary(anna, f"Havainto numero {n + 1}")
        numbers.append(await save(anna))
    newest_first = numbers[::-1]

    await anna.say("/omat")
    first = anna.expect(fi("svc.own_title"))
    listed = [int(n) for n in re.findall(r"^#(\d+)", first.text or "", re.M)]
    assert listed == newest_first[:5]
    labels = anna.labels()
    assert len(labels) == 5 * 2 + 1 and labels[-1] == fi("button.own_more")
    assert labels[:2] == [
        fi("button.own_edit", number=newest_first[0]),
        fi("button.own_withdraw", number=newest_first[0]),
    ]
    await anna.tap(fi("button.own_more"))
    second = anna.expect(fi("svc.own_title"))
    assert [int(n) for n in re.findall(r"^#(\d+)", second.text or "", re.M)] == newest_first[5:10]
    await anna.tap(fi("button.own_more"))
    assert [int(n) for n in re.findall(r"^#(\d+)", anna.last_text, re.M)] == newest_first[10:]
    assert fi("button.own_more") not in anna.labels()
    # The actions of a later page work like those of the first.
    oldest = newest_first[-1]
    await anna.tap(fi("button.own_withdraw", number=oldest))
    await anna.tap(fi("button.yes_withdraw"))
    assert anna.answers == [fi("svc.withdrawn", number=oldest)]
    # Finnish: withdrawing a saved entry is never "Peru", which cancels a draft.
    assert "Peru" not in fi("button.own_withdraw", number=1)


# --- correcting an escalated entry ---------------------------------------------------------

LEADER_CHAT = -2001  # hki-johto, the leadership channel of hki-etsiva (tests.conftest)


async def test_correcting_an_escalated_entry_updates_its_notice(bot: TelegramBot) -> None:
    anna = await bot.enrol(1001)
    await anna.tap("Kallio")
    await anna.say("Asiakas jäi ilman kiireellistä sijoitusta")
    for code in ("theme.violence", "group.children", "signal.no_service", "frequency.single"):
        await anna.tap(label(code, "fi"))
    await anna.tap(label("escalation.shl48", "fi"))
    number = await save(anna)
    [notice] = [
        c for c in bot.fake.sent if c.method == "sendMessage" and str(c.chat_id) == str(LEADER_CHAT)
    ]
    assert "ilman kiireellistä sijoitusta" in (notice.text or "")

    await anna.say("/omat")
    await anna.tap(fi("button.own_edit", number=number))
    await anna.tap(fi("button.edit"))
    await anna.tap(fi("field.description"))
    await anna.say("Lapsi jäi ilman kiireellistä sijoitusta kahdeksi yöksi")
    mark = bot.fake.mark()
    await anna.tap(fi("button.save"))
    # The worker is told once: updated, and the notice shows the correction; no new notice.
    assert anna.answers == [
        fi("svc.updated", number=number),
        t("fi", "esc.worker_updated", "escalation", number=number),
    ]
    to_leaders = [c for c in bot.fake.sent[mark:] if str(c.chat_id) == str(LEADER_CHAT)]
    assert [c.method for c in to_leaders] == ["editMessageText"]
    assert str(to_leaders[0].params["message_id"]) == str(notice.result["message_id"])
    assert "kahdeksi yöksi" in (to_leaders[0].text or "")


# --- the help in the worker's language ------------------------------------------------------


async def test_swedish_help_lists_the_swedish_commands(bot: TelegramBot) -> None:
    sara = await bot.enrol(1002, team="vaasa-uppsok", language_code="sv")
    await sara.say("/hjälp")
    help_text = sara.last_text
    assert help_text == t("sv", "svc.help", **commands.shown("sv"))
    for word in ("/ny", "/mina", "/avbryt", "/område", "/påminnelse", "/språk"):
        assert word in help_text, word
    assert "iakttagelse" in help_text and "observation" not in help_text
    # ...and they all work.
    await sara.say("/ny")
    assert sara.answers == [t("sv", "ask.description")]
    await sara.say("/avbryt")
    assert sara.answers == [t("sv", "flow.cancelled")]
    await sara.say("/mina")
    assert sara.answers == [t("sv", "svc.own_empty")]


def test_when_buttons_and_details_have_texts_in_every_language() -> None:
    for lang in ("fi", "sv", "en"):
        for key in ("ask.when", "field.when", "button.when_now", "button.same_as_last"):
            assert t(lang, key) != key
    assert capture.MAX_OPEN_DRAFTS == 3
