"""The social report's two stages and its schedule: conclusions written on the command
line (``havainto report notes``) and as a reply to the posted report in a leadership
channel; the team report; ``[[reports]]`` delivered once by the scheduler, also after a
restart and with two runtimes on one database. SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from bot.config import Config, load_config
from bot.runtime.jobs import job_table, social_report_job
from storage import audit
from storage.models import AuditEvent, Delivery, ReportNote
from storage.report_notes import REPORT_NOTE
from tests.conftest import FakeClock
from tests.support.datacare_helpers import HETU
from tests.support.db import rows
from tests.support.escalation_helpers import Bot
from tests.support.fake_telegram import FakeTelegram, SentCall
from tests.support.telegram import telegram_config
from tests.test_digest_cli import _toml_value
from tests.test_scheduler import seed_week_47

LEADERS = -2001  # Helsinki's leadership channel (tests/conftest.py)
ORGANISATION = -2000
LEADER = 3101
LEAD = 2101
WORKER = 1101
# Monday 11 January 2027, 09:00 Helsinki: 2026-H2 ended, its week of late entries too.
DUE = datetime(2027, 1, 11, 7, 0, tzinfo=UTC)
REPORTS = [
    {"region": "helsinki", "period": "half-year", "leadership": "hki-johto"},
    {"team": "hki-etsiva", "period": "year", "leadership": "hki-johto", "language": "en"},
]


def flat(output: str) -> str:
    """The output's words, without the frame Rich draws around an error."""
    return " ".join(output.replace("│", " ").replace("╭", " ").replace("╰", " ").split())


async def havainto(*args: str) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), catch_exceptions=False)


def write_config(path: Path, db_url: str) -> Path:
    lines = [
        "[database]",
        f"url = {_toml_value(db_url)}",
        "[terminal]",
        'enabled = "no"',
        "[regions]",
        'helsinki = "Helsinki"',
        "[[teams]]",
        'id = "hki-etsiva"',
        'name = "Helsingin etsivät"',
        'region = "helsinki"',
        "[[teams]]",
        'id = "vaasa-uppsok"',
        'name = "Vasa uppsökande"',
        'region = "pohjanmaa"',
        'language = "sv"',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
async def config_file(db_url: str, tmp_path: Path, clock: FakeClock) -> Path:
    path = write_config(tmp_path / "havainto.toml", db_url)
    async with FakeTelegram() as fake:
        driver = Bot(fake, telegram_config(lambda **kw: load_config(path, **kw), fake), clock)
        await driver.start(poll=False)
        await seed_week_47(driver)  # three Helsinki observations in November 2026
        await driver.stop()
    return path


async def db_rows(path: Path, model: type[Any]) -> list[Any]:
    from storage.db import Database

    db = Database(load_config(path).database.url)
    try:
        async with db.transaction() as session:
            return list((await session.execute(select(model).order_by(model.id))).scalars())
    finally:
        await db.close()


async def test_notes_on_the_command_line_are_printed_in_the_region_and_team_reports(
    config_file: Path, tmp_path: Path
) -> None:
    config = ("-c", str(config_file))
    notes = tmp_path / "notes.md"
    notes.write_text(
        "Asunnottomuus näkyi nuorissa.\n\nEsitämme lisää hätämajoitusta.", encoding="utf-8"
    )
    done = await havainto(
        "report", "notes", "--region", "helsinki", "--period", "2026-H2", "--file", str(notes),
        "--actor", "aluejohtaja", *config,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "region:helsinki 2026-H2 (leader)" in done.output
    team_notes = tmp_path / "team.md"
    team_notes.write_text(f"Tiimi näki saman. Asiakas {HETU} mainittiin.", encoding="utf-8")
    done = await havainto(
        "report", "notes", "--team", "hki-etsiva", "--period", "2026-11",
        "--file", str(team_notes), "--actor", "vastaava", *config,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "personal identity code was removed" in done.output
    [region_note, team_note] = await db_rows(config_file, ReportNote)
    assert (region_note.scope_kind, region_note.scope_id, region_note.period) == (
        "region", "helsinki", "2026-H2",
    )  # fmt: skip
    assert (region_note.period_start, region_note.period_end) == (
        date(2026, 7, 1), date(2026, 12, 31),
    )  # fmt: skip
    assert (region_note.author_role, region_note.author, region_note.language) == (
        "leader", "aluejohtaja", "fi",
    )  # fmt: skip
    assert HETU not in team_note.text and "[HETU]" in team_note.text
    assert team_note.author_role == "lead"
    events = [e for e in await db_rows(config_file, AuditEvent) if e.action == REPORT_NOTE]
    assert [e.actor for e in events] == ["aluejohtaja", "vastaava"]
    assert "scope=region:helsinki period=2026-H2 role=leader" in events[0].what

    # The region's half-year report prints both (the team's month lies within it).
    html = tmp_path / "h2.html"
    made = await havainto(
        "report", "--region", "helsinki", "--period", "2026-H2", "--format", "html",
        "--output", str(html), *config,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    page = html.read_text(encoding="utf-8")
    assert "Asunnottomuus näkyi nuorissa." in page and "Tiimi näki saman." in page
    assert "Johto, " in page and "Tiimin vastaava, " in page
    assert "aluejohtaja" not in page and "vastaava" not in page.replace("Tiimin vastaava", "")
    assert "1.7.2026–31.12.2026" in page
    # The team's report: the team's conclusions only, the team's name on it.
    team_html = tmp_path / "team.html"
    made = await havainto(
        "report", "--team", "hki-etsiva", "--period", "2026-11", "--format", "html",
        "--output", str(team_html), *config,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    team_page = team_html.read_text(encoding="utf-8")
    assert "Helsingin etsivät" in team_page and "Tiimi näki saman." in team_page
    assert "Asunnottomuus näkyi nuorissa." not in team_page
    # The whole organisation's: its own conclusions and the regions', not the teams'.
    org_notes = tmp_path / "org.md"
    org_notes.write_text("Koko organisaatio: asunnottomuus on yhteinen huoli.", encoding="utf-8")
    done = await havainto(
        "report", "notes", "--organisation", "--period", "2026", "--file", str(org_notes),
        "--actor", "johtaja", *config,
    )  # fmt: skip
    assert done.exit_code == 0 and "organisation 2026 (admin)" in done.output, done.output
    whole = tmp_path / "whole.html"
    made = await havainto(
        "report", "--organisation", "--period", "2026", "--format", "html",
        "--output", str(whole), *config,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    whole_page = whole.read_text(encoding="utf-8")
    assert "Koko organisaatio: asunnottomuus on yhteinen huoli." in whole_page
    assert "Asunnottomuus näkyi nuorissa." in whole_page and "Tiimi näki saman." not in whole_page
    assert "Ylläpitäjä, " in whole_page
    reports = [e for e in await db_rows(config_file, AuditEvent) if e.action == audit.REPORT]
    assert [e.rows for e in reports] == [3, 3, 3]
    assert "region=helsinki" in reports[0].what and "team=hki-etsiva" in reports[1].what
    assert "scope=organisation" in reports[2].what


async def test_notes_and_report_refuse_what_is_wrong_in_a_few_words(
    config_file: Path, tmp_path: Path
) -> None:
    config = ("-c", str(config_file))
    notes = tmp_path / "n.md"
    notes.write_text("Soita numeroon 040 1234567.", encoding="utf-8")
    for args, said in (
        (("--region", "helsinki", "--period", "2026-H3"), "2026-H1, 2026-H2"),
        (("--region", "lappi", "--period", "2026"), "unknown region 'lappi'"),
        (("--period", "2026"), "one of --region R, --team T or --organisation"),
        (("--team", "hki-etsiva", "--period", "2026", "--role", "worker"), "lead, leader"),
        (("--region", "helsinki", "--period", "2026"), "--allow-identifiers"),
    ):
        result = await havainto("report", "notes", *args, "--file", str(notes), *config)
        assert result.exit_code == 2, (args, result.output)
        assert said in flat(result.output), (args, result.output)
        assert "Traceback" not in result.output
    assert await db_rows(config_file, ReportNote) == []
    out = tmp_path / "r.pdf"
    result = await havainto("report", "--region", "helsinki", "--output", str(out), *config)
    assert result.exit_code == 2 and "--period 2026-H2" in flat(result.output)


# --- the scheduled report and conclusions written as a reply -----------------------------------


@pytest.fixture
async def bot(make_config: Callable[..., Config]) -> AsyncIterator[Bot]:
    clock = FakeClock(DUE)
    async with FakeTelegram() as fake:
        config = telegram_config(
            make_config, fake, reports=REPORTS, regions={"helsinki": "Helsinki"}
        )
        driver = Bot(fake, config, clock)
        await driver.start()
        try:
            await seed_week_47(driver)
            await driver.enrol(LEADER, "leader", name="Leena")
            await driver.enrol(LEAD, "lead", name="Liisa")
            await driver.enrol(WORKER, "worker", name="Ville")
            yield driver
        finally:
            await driver.stop()


def posted(fake: FakeTelegram, chat: int) -> list[SentCall]:
    return [
        c
        for c in fake.sent
        if str(c.chat_id) == str(chat) and c.method in ("sendMessage", "sendDocument")
    ]


async def test_scheduled_reports_are_delivered_once_as_pdf_with_appendix_and_prompt(
    bot: Bot,
) -> None:
    assert "social_reports" in {job.id for job in job_table(bot.rt)}
    await social_report_job(bot.rt)
    calls = posted(bot.fake, LEADERS)
    # The region's half-year (fi), then the team's year (en): a PDF and a prompt each
    # (no escalation in the data, so no appendix).
    assert [c.method for c in calls] == ["sendDocument", "sendMessage"] * 2
    pdf, prompt, team_pdf, team_prompt = calls
    [(name, data)] = [(pdf.filenames[k], v) for k, v in pdf.files.items()]
    assert data.startswith(b"%PDF") and name == "sosiaalinen-raportti-helsinki-2026-H2.pdf"
    assert "Sosiaalinen raportti: Helsinki, 2026-H2" in (pdf.text or "")
    assert "vastauksena tähän viestiin" in (prompt.text or "")
    assert next(iter(team_pdf.filenames.values())) == "social-report-hki-etsiva-2026.pdf"
    assert "Social report: Helsingin etsivät, 2026" in (team_prompt.text or "")
    keys = sorted((d.key, d.status) for d in await rows(bot.rt.db, Delivery))
    assert keys == [
        ("report:region:helsinki:2026-H2:telegram:-2001", "sent"),
        ("report:team:hki-etsiva:2026:telegram:-2001", "sent"),
    ]
    # Again the same day, and every working day after: nothing more.
    await social_report_job(bot.rt)
    assert len(posted(bot.fake, LEADERS)) == 4
    scheduled = [e for e in await rows(bot.rt.db, AuditEvent) if e.action == audit.REPORT]
    assert [e.actor for e in scheduled] == ["scheduler", "scheduler"]


async def test_not_before_due_and_once_across_a_restart(
    make_config: Callable[..., Config],
) -> None:
    clock = FakeClock(DUE - timedelta(days=5))  # Wed 6 Jan: the week of late entries
    async with FakeTelegram() as fake:
        config = telegram_config(make_config, fake, reports=REPORTS[:1])
        for day in range(3):  # 6 Jan (early), then 11 Jan twice with a restart between
            driver = Bot(fake, config, clock)
            await driver.start(poll=False)
            try:
                await social_report_job(driver.rt)
            finally:
                await driver.stop()
            sent = posted(fake, LEADERS)
            assert len(sent) == (0 if day == 0 else 2), day
            clock.now = DUE


async def test_two_runtimes_on_one_database_post_the_report_once(
    make_config: Callable[..., Config],
) -> None:
    clock = FakeClock(DUE)
    async with FakeTelegram() as fake:
        config = telegram_config(make_config, fake, reports=REPORTS[:1])
        drivers = [Bot(fake, config, clock) for _ in range(2)]
        for driver in drivers:
            await driver.start(poll=False)
        try:
            await asyncio.gather(*(social_report_job(d.rt) for d in drivers))
        finally:
            for driver in drivers:
                await driver.stop()
        assert [c.method for c in posted(fake, LEADERS)] == ["sendDocument", "sendMessage"]
        [delivery] = await rows_of(config, Delivery)
        assert (delivery.status, delivery.attempts) == ("sent", 1)


async def rows_of(config: Config, model: type[Any]) -> list[Any]:
    from storage.db import Database

    db = Database(config.database.url)
    try:
        return await rows(db, model)
    finally:
        await db.close()


def pdf_text(pdf: bytes, folder: Path) -> str:
    path = folder / "edited.pdf"
    path.write_bytes(pdf)
    command = ["pdftotext", str(path), "-"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


async def test_a_reply_to_the_posted_report_is_stored_as_its_conclusions(
    bot: Bot, tmp_path: Path
) -> None:
    await social_report_job(bot.rt)
    pdf, prompt, team_pdf, _ = posted(bot.fake, LEADERS)
    text = "Asunnottomuus kasvoi syksyllä.\n\nEsitämme lisää hätämajoitusta."
    calls = await bot.say(
        LEADER,
        text,
        chat_id=LEADERS,
        reply_to_message=bot.fake.message(LEADERS, int(prompt.message_id or 0)),
    )
    [saved] = [c.text or "" for c in calls if str(c.chat_id) == str(LEADERS)]
    assert "Johtopäätökset tallennettu" in saved and "Helsinki, 2026-H2" in saved
    # The edited report follows: the PDF made again with the conclusions in it.
    mark = len(bot.fake.sent)
    await bot.rt.reports.drain()
    [edited] = [c for c in bot.fake.sent[mark:] if c.method == "sendDocument"]
    assert str(edited.chat_id) == str(LEADERS)
    assert "Sosiaalinen raportti johtopäätöksineen: Helsinki, 2026-H2" in (edited.text or "")
    [data] = edited.files.values()
    assert data.startswith(b"%PDF")
    if shutil.which("pdftotext"):
        assert "Asunnottomuus kasvoi syksyllä." in pdf_text(data, tmp_path)
    [note] = await rows(bot.rt.db, ReportNote)
    assert (note.scope_kind, note.scope_id, note.period, note.author_role) == (
        "region", "helsinki", "2026-H2", "leader",
    )  # fmt: skip
    assert note.text == text and note.author.startswith("person:")
    # A lead replies to the team's report (the PDF itself): the team's conclusions.
    calls = await bot.say(
        LEAD,
        "Tiimi näki saman.",
        chat_id=LEADERS,
        reply_to_message=bot.fake.message(LEADERS, int(team_pdf.message_id or 0)),
    )
    await bot.rt.reports.drain()
    notes = await rows(bot.rt.db, ReportNote)
    assert [(n.scope_kind, n.author_role) for n in notes] == [
        ("region", "leader"),
        ("team", "lead"),
    ]
    # A worker, or a lead on the region's report, may not: nothing stored, told alone.
    for who in (WORKER, LEAD):
        calls = await bot.say(
            who,
            "Minunkin mielestäni.",
            chat_id=LEADERS,
            reply_to_message=bot.fake.message(LEADERS, int(pdf.message_id or 0)),
        )
        assert not [c for c in calls if str(c.chat_id) == str(LEADERS)]
        told = [c.text or "" for c in calls if str(c.chat_id) == str(who)]
        assert told and "tiimin vastaava tai alueen johto" in told[0]
    assert len(await rows(bot.rt.db, ReportNote)) == 2
    # A hetu in a reply is removed before anything stores it (the service's guard).
    await bot.say(
        LEADER,
        f"Lisäys: asiakas {HETU} mainittiin.",
        chat_id=LEADERS,
        reply_to_message=bot.fake.message(LEADERS, int(prompt.message_id or 0)),
    )
    await bot.rt.reports.drain()
    guarded = (await rows(bot.rt.db, ReportNote))[-1]
    assert HETU not in guarded.text and "[HETU]" in guarded.text
    # Ordinary talk in the channel is not taken for conclusions.
    assert await bot.say(LEADER, "Hyvää huomenta", chat_id=LEADERS) == []
    events = [e for e in await rows(bot.rt.db, AuditEvent) if e.action == REPORT_NOTE]
    assert len(events) == 3 and all(e.actor.startswith("person:") for e in events)
    # The next report of the region prints them, with the role and the date.
    from bot.reports import gather_figures, report_scope
    from digests.report import build_report, render_html

    cfg = bot.rt.config
    async with bot.rt.db.snapshot() as session:
        figures = await gather_figures(
            session, cfg, report_scope(cfg, region="helsinki"), date(2026, 7, 1),
            date(2026, 12, 31), "fi",
        )  # fmt: skip
    page = render_html(build_report(figures, "fi", DUE.date()))
    assert "<p>Asunnottomuus kasvoi syksyllä.</p><p>Esitämme lisää hätämajoitusta.</p>" in page
    assert "Johto, 11.1.2027" in page
    # The team's conclusions are of the year 2026: in the year's report, not the half-year's.
    assert "Tiimi näki saman." not in page
    async with bot.rt.db.snapshot() as session:
        year = await gather_figures(
            session, cfg, report_scope(cfg, region="helsinki"), date(2026, 1, 1),
            date(2026, 12, 31), "fi",
        )  # fmt: skip
    page = render_html(build_report(year, "fi", DUE.date()))
    assert "Tiimi näki saman." in page and "Tiimin vastaava, 11.1.2027 (jakso 2026)" in page
    assert "Asunnottomuus kasvoi syksyllä." in page


async def test_the_real_scheduler_makes_a_missed_report_once_across_restarts(
    make_config: Callable[..., Config],
) -> None:
    """Down when ``social_reports`` fell due (30 minutes ago, within the grace time): the
    first start makes the report, a second start does not make it again."""
    from zoneinfo import ZoneInfo

    from bot.runtime.jobs import build_scheduler
    from tests.support.scheduling import stored_runs, went_down

    clock = FakeClock(DUE)
    async with FakeTelegram() as fake:
        config = telegram_config(make_config, fake, reports=REPORTS[:1])
        at = (datetime.now(UTC) - timedelta(minutes=30)).replace(second=0, microsecond=0)
        config.schedule.monthly_time = at.astimezone(ZoneInfo(config.timezone)).strftime("%H:%M")
        driver = Bot(fake, config, clock)
        await driver.start(poll=False)
        try:
            await went_down(driver.rt, {"social_reports": at})
        finally:
            await driver.stop()
        for restart in range(2):
            driver = Bot(fake, config, clock)
            await driver.start(poll=False)
            try:
                scheduler = build_scheduler(driver.rt)
                driver.rt.scheduler = scheduler
                await scheduler.start()
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 30
                while restart == 0 and len(posted(fake, LEADERS)) < 2:
                    assert loop.time() < deadline, fake.describe()
                    await asyncio.sleep(0.1)
                if restart == 1:
                    await asyncio.sleep(1.0)  # a second start must not post again
                assert await driver.rt.jobs.wait_idle(30)
                stored = (await stored_runs(driver.rt.db))["social_reports"]
                assert stored.next_run_time is not None and stored.next_run_time > at
            finally:
                await driver.stop()
        assert [c.method for c in posted(fake, LEADERS)] == ["sendDocument", "sendMessage"]
