"""Scheduled delivery: the weekly job on a fake clock; a missed run after a restart,
within and beyond the grace time; a restart keeping or replacing the stored run; the
runs carried over from APScheduler's old job store; the ledger; Telegram 429/5xx; two
runtimes (in one process, and two processes on PostgreSQL) on one database.

The digests go to the fake Telegram Bot API over real HTTP; the bot's clock is a
``FakeClock``; APScheduler itself runs on real time, with the stored runs
(``scheduled_runs``) in the test database.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from bot.config import Config, load_config
from bot.inflight import InFlight
from bot.runtime.jobs import build_scheduler, job_table, weekly_digest_job
from bot.runtime.scheduler import JobScheduler, ScheduledJob, trigger_text
from storage import ledger, repo, schedule
from storage.db import Database, create_engine, normalise_url, upgrade_schema
from storage.models import Delivery
from storage.schedule import StoredRun
from tests.conftest import TEST_LEADERSHIP, TEST_TEAMS, FakeClock
from tests.support.datacare_helpers import observation
from tests.support.escalation_helpers import TEAM_CHAT, Bot
from tests.support.fake_telegram import FakeTelegram, SentCall
from tests.support.scheduling import stored_runs, went_down
from tests.support.telegram import telegram_config, telegram_section
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
SWEDISH_TEAM_CHAT = -1002
FAST_RETRIES = {"send_retries": 2, "send_retry_seconds": 0.01}


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
def config(make_config: Callable[..., Config], fake: FakeTelegram) -> Config:
    return telegram_config(make_config, fake, schedule=FAST_RETRIES)


@pytest.fixture
async def bot(fake: FakeTelegram, config: Config, clock: FakeClock) -> AsyncIterator[Bot]:
    driver = Bot(fake, config, clock)
    await driver.start(poll=False)
    try:
        await seed_week_47(driver)
        yield driver
    finally:
        await driver.stop()


async def seed_week_47(bot: Bot) -> None:
    """Three observations of hki-etsiva in ISO week 2026-W47 (16-22 Nov), none for Vasa."""
    async with bot.rt.db.transaction() as session:
        invite = await repo.create_invite(
            session, "hki-etsiva", "worker", datetime(2026, 11, 1, tzinfo=UTC), timedelta(days=9)
        )
        member = await repo.redeem_invite(
            session, invite.code, "telegram", "501", "501", "fi", datetime(2026, 11, 2, tzinfo=UTC)
        )
        for day, theme in ((16, "theme.housing"), (18, "theme.housing"), (20, "theme.income")):
            when = datetime(2026, 11, day, 10, 0, tzinfo=UTC)
            await repo.add_observation(
                session,
                **observation(
                    member,
                    when,
                    "helsinki",
                    team_id="hki-etsiva",
                    description="Yöpaikkaa ei löytynyt",
                    theme=theme,
                    language="fi",
                ),
            )


def digest_calls(fake: FakeTelegram, chat_id: int, after: int = 0) -> list[SentCall]:
    return [
        c
        for c in fake.sent[after:]
        if str(c.chat_id) == str(chat_id) and c.method in ("sendMessage", "sendPhoto")
    ]


async def deliveries(bot: Bot) -> list[Delivery]:
    async with bot.rt.db.transaction() as session:
        return list((await session.execute(select(Delivery).order_by(Delivery.id))).scalars())


# --- the trigger and the job on the fake clock ------------------------------------------


@pytest.mark.parametrize(
    ("now", "fires_utc"),
    [
        # Sunday before: the next Monday 08:00 Helsinki (EET, UTC+2).
        (datetime(2026, 11, 22, 12, 0, tzinfo=UTC), datetime(2026, 11, 23, 6, 0, tzinfo=UTC)),
        # Clocks go forward on Sunday 29 March: Monday 08:00 EEST is 05:00 UTC.
        (datetime(2026, 3, 28, 12, 0, tzinfo=UTC), datetime(2026, 3, 30, 5, 0, tzinfo=UTC)),
        # Clocks go back on Sunday 25 October: Monday 08:00 EET is 06:00 UTC again.
        (datetime(2026, 10, 24, 12, 0, tzinfo=UTC), datetime(2026, 10, 26, 6, 0, tzinfo=UTC)),
    ],
)
def test_weekly_trigger_fires_monday_0800_helsinki_across_dst(
    now: datetime, fires_utc: datetime
) -> None:
    runtime = SimpleNamespace(config=load_config(None, terminal={"enabled": "no"}))
    jobs = job_table(runtime)  # type: ignore[arg-type]
    trigger = next(j.trigger for j in jobs if j.id == "weekly_digests")
    assert trigger.get_next_fire_time(None, now) == fires_utc


async def test_weekly_job_fires_on_the_fake_clock(bot: Bot, clock: FakeClock) -> None:
    trigger = next(j.trigger for j in job_table(bot.rt) if j.id == "weekly_digests")
    clock.now = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)  # Sunday evening
    fire = trigger.get_next_fire_time(None, clock.now)
    assert fire == datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    clock.now = fire
    await weekly_digest_job(bot.rt)
    [text, photo] = digest_calls(bot.fake, TEAM_CHAT)
    assert text.method == "sendMessage" and "47" in (text.text or "")
    assert photo.method == "sendPhoto" and photo.files  # the chart, a real PNG upload
    assert next(iter(photo.files.values())).startswith(b"\x89PNG")
    # The Swedish team had an empty week: two lines, no chart, in Swedish.
    [empty] = digest_calls(bot.fake, SWEDISH_TEAM_CHAT)
    assert len((empty.text or "").strip().splitlines()) == 2
    rows = await deliveries(bot)
    assert sorted((r.key, r.status, r.parts_sent) for r in rows) == [
        ("weekly:hki-etsiva:2026-W47:telegram:-1001", "sent", 2),
        ("weekly:vaasa-uppsok:2026-W47:telegram:-1002", "sent", 1),
    ]


# --- a missed run, the real scheduler and its stored runs --------------------------------


async def _fresh_bot(fake: FakeTelegram, config: Config, clock: FakeClock) -> Bot:
    driver = Bot(fake, config, clock)
    await driver.start(poll=False)
    return driver


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def weekly_at(config: Config, ago: timedelta) -> datetime:
    """Make the weekly cron fire at a whole minute ``ago`` (in place, for the rest of the
    test) and return that moment. APScheduler runs on real time: the run it fell due at
    is a real fire time of the trigger, and the next one is a week later."""
    zone = ZoneInfo(config.timezone)
    at = (datetime.now(UTC) - ago).replace(second=0, microsecond=0)
    local = at.astimezone(zone)
    config.schedule.weekly_day = WEEKDAYS[local.weekday()]
    config.schedule.weekly_time = local.strftime("%H:%M")
    return at


def a_week_on(config: Config, at: datetime) -> datetime:
    """The weekly trigger's next fire after ``at``: 7 days on, in local time (the hour in
    UTC moves with daylight saving)."""
    runtime = SimpleNamespace(config=config)
    trigger = next(j.trigger for j in job_table(runtime) if j.id == "weekly_digests")  # type: ignore[arg-type]
    following: datetime = trigger.get_next_fire_time(at, at + timedelta(seconds=1))
    return following.astimezone(UTC)


async def _went_down(
    fake: FakeTelegram, config: Config, clock: FakeClock, due: dict[str, datetime]
) -> None:
    """A bot that scheduled its jobs and went down with the ``due`` runs pending."""
    driver = await _fresh_bot(fake, config, clock)
    try:
        await went_down(driver.rt, due)
    finally:
        await driver.stop()


async def _with_scheduler(driver: Bot) -> JobScheduler:
    """The bot's real scheduler, started; ``driver.stop()`` stops it as ``havainto run`` does."""
    scheduler = build_scheduler(driver.rt)
    driver.rt.scheduler = scheduler
    await scheduler.start()
    return scheduler


async def _stored_weekly(driver: Bot) -> StoredRun:
    return (await stored_runs(driver.rt.db))["weekly_digests"]


async def test_missed_run_within_grace_posts_once_after_restart(
    bot: Bot, fake: FakeTelegram, config: Config, clock: FakeClock
) -> None:
    """Down at the weekly time, back 1.5 h later (of the 6 h grace): the digest is posted
    once; the run is used up, so a second restart posts nothing."""
    await bot.stop()
    at = weekly_at(config, timedelta(minutes=90))
    await _went_down(fake, config, clock, {"weekly_digests": at})
    for restart in range(2):
        driver = await _fresh_bot(fake, config, clock)
        try:
            scheduler = await _with_scheduler(driver)
            if restart == 0:

                async def done(driver: Bot = driver) -> bool:
                    stored = await _stored_weekly(driver)
                    return stored.next_run_time == a_week_on(config, at)

                await wait_until(done)
            else:
                await asyncio.sleep(1.0)  # a second restart must not post again
            # The missed run is used up: the next one is a week after it, in memory and
            # in the database.
            assert scheduler.next_runs()["weekly_digests"] == a_week_on(config, at)
            assert (await _stored_weekly(driver)).next_run_time == a_week_on(config, at)
        finally:
            await driver.stop()
    assert [c.method for c in digest_calls(fake, TEAM_CHAT)] == ["sendMessage", "sendPhoto"]
    assert len(digest_calls(fake, SWEDISH_TEAM_CHAT)) == 1
    rows = await _rows(config)
    assert sorted((r.key, r.status) for r in rows) == [
        ("weekly:hki-etsiva:2026-W47:telegram:-1001", "sent"),
        ("weekly:vaasa-uppsok:2026-W47:telegram:-1002", "sent"),
    ]


async def test_run_missed_beyond_grace_is_skipped_and_logged(
    bot: Bot,
    fake: FakeTelegram,
    config: Config,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await bot.stop()
    at = weekly_at(config, timedelta(hours=7))  # the grace is 6 h
    await _went_down(fake, config, clock, {"weekly_digests": at})
    driver = await _fresh_bot(fake, config, clock)
    try:
        scheduler = await _with_scheduler(driver)

        async def moved_on() -> bool:
            return (await _stored_weekly(driver)).next_run_time == a_week_on(config, at)

        await wait_until(moved_on)
        await asyncio.sleep(0.5)
        assert await deliveries(driver) == []
        assert scheduler.next_runs()["weekly_digests"] == a_week_on(config, at)
    finally:
        await driver.stop()
    assert digest_calls(fake, TEAM_CHAT) == []
    [missed] = [r for r in caplog.records if r.getMessage().startswith("job_missed")]
    assert missed.levelname == "WARNING"
    assert missed.getMessage() == (
        f"job_missed id=weekly_digests scheduled={at.isoformat()} late_minutes=420 "
        "grace_minutes=360"
    )


async def test_a_restart_with_the_same_trigger_keeps_the_stored_run(
    bot: Bot, fake: FakeTelegram, config: Config, clock: FakeClock
) -> None:
    """A later run than the trigger's next one is stored (the next was made by another
    instance, say): a restart keeps it rather than computing a fresh one."""
    await bot.stop()
    at = weekly_at(config, timedelta(hours=1))
    later = at + timedelta(days=14)  # a fresh start would give the one a week after `at`
    await _went_down(fake, config, clock, {"weekly_digests": later})
    before = await _stored_runs_of(config)
    driver = await _fresh_bot(fake, config, clock)
    try:
        scheduler = await _with_scheduler(driver)
        assert scheduler.next_runs()["weekly_digests"] == later
        await asyncio.sleep(0.5)
        assert await _stored_weekly(driver) == before["weekly_digests"]
        assert before["weekly_digests"].next_run_time == later
        assert await deliveries(driver) == []
    finally:
        await driver.stop()


async def test_a_changed_trigger_replaces_the_stored_run(
    bot: Bot, fake: FakeTelegram, config: Config, clock: FakeClock
) -> None:
    """The run due 1.5 h ago belongs to the old weekly time; the config moved the digest
    to another day, so the restart schedules the new trigger and posts nothing now."""
    await bot.stop()
    at = weekly_at(config, timedelta(minutes=90))
    await _went_down(fake, config, clock, {"weekly_digests": at})
    old = (await _stored_runs_of(config))["weekly_digests"]
    local = at.astimezone(ZoneInfo(config.timezone))
    config.schedule.weekly_day = WEEKDAYS[(local.weekday() + 2) % 7]
    driver = await _fresh_bot(fake, config, clock)
    try:
        scheduler = await _with_scheduler(driver)
        trigger = next(j.trigger for j in job_table(driver.rt) if j.id == "weekly_digests")
        fresh = scheduler.next_runs()["weekly_digests"]
        assert fresh is not None and fresh > datetime.now(UTC)
        assert fresh == trigger.get_next_fire_time(None, datetime.now(UTC))
        assert fresh.astimezone(ZoneInfo(config.timezone)).weekday() == (local.weekday() + 2) % 7
        stored = await _stored_weekly(driver)
        assert stored == StoredRun(trigger_text(trigger), fresh) and stored != old
        assert (
            old.trigger is not None and "day_of_week='" + WEEKDAYS[local.weekday()] in old.trigger
        )
        await asyncio.sleep(1.0)
        assert await deliveries(driver) == []
    finally:
        await driver.stop()
    assert digest_calls(fake, TEAM_CHAT) == []


async def test_two_runtimes_on_one_database_post_the_weekly_digest_once(
    bot: Bot, fake: FakeTelegram, config: Config, clock: FakeClock
) -> None:
    """Two runtimes in one process, each with its own scheduler (nothing process-wide
    ties a job to a runtime), share one database with the weekly run due: both run the
    job, the ledger lets the digest out once."""
    await bot.stop()
    at = weekly_at(config, timedelta(minutes=30))
    await _went_down(fake, config, clock, {"weekly_digests": at})
    drivers = [await _fresh_bot(fake, config, clock) for _ in range(2)]
    try:
        schedulers = await asyncio.gather(*(_with_scheduler(d) for d in drivers))
        for driver, scheduler in zip(drivers, schedulers, strict=True):

            async def ran(scheduler: JobScheduler = scheduler) -> bool:
                return scheduler.next_runs()["weekly_digests"] == a_week_on(config, at)

            await wait_until(ran)
            assert await driver.rt.jobs.wait_idle(15)
        rows = await deliveries(drivers[0])
        assert sorted((r.key, r.status, r.attempts) for r in rows) == [
            ("weekly:hki-etsiva:2026-W47:telegram:-1001", "sent", 1),
            ("weekly:vaasa-uppsok:2026-W47:telegram:-1002", "sent", 1),
        ]
        assert (await _stored_weekly(drivers[1])).next_run_time == a_week_on(config, at)
    finally:
        for driver in drivers:
            await driver.stop()
    assert [c.method for c in digest_calls(fake, TEAM_CHAT)] == ["sendMessage", "sendPhoto"]
    assert len(digest_calls(fake, SWEDISH_TEAM_CHAT)) == 1


@pytest.mark.unmigrated
async def test_a_run_carried_over_from_apschedulers_job_store_is_still_made(
    fake: FakeTelegram, config: Config, clock: FakeClock
) -> None:
    """Upgrading from the version whose jobs lived in APScheduler's ``apscheduler_jobs``:
    migration 0008 carries the next run times over and drops the table. The weekly run
    the bot missed during the upgrade (a fire time of the configured trigger) is made
    once; a carried-over time the trigger does not fire at (an interval job's, from the
    old process's start) is replaced."""
    at = weekly_at(config, timedelta(minutes=45))
    await asyncio.to_thread(upgrade_schema, config.database.url, "0007")
    old_store = sqlalchemy.MetaData()
    jobs = sqlalchemy.Table(  # as APScheduler 3.11's SQLAlchemyJobStore makes it
        "apscheduler_jobs",
        old_store,
        sqlalchemy.Column("id", sqlalchemy.Unicode(191), primary_key=True),
        sqlalchemy.Column("next_run_time", sqlalchemy.Float(25), index=True),
        sqlalchemy.Column("job_state", sqlalchemy.LargeBinary, nullable=False),
    )
    interval_run = datetime.now(UTC) - timedelta(minutes=3, seconds=17)
    engine = create_engine(normalise_url(config.database.url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(old_store.create_all)
            await connection.execute(
                jobs.insert(),
                [
                    {"id": "weekly_digests", "next_run_time": at.timestamp(), "job_state": b"x"},
                    {
                        "id": "escalation_check",
                        "next_run_time": interval_run.timestamp(),
                        "job_state": b"x",
                    },
                ],
            )
    finally:
        await engine.dispose()
    driver = await _fresh_bot(fake, config, clock)  # migrates to the newest revision
    try:
        await seed_week_47(driver)
        carried = await stored_runs(driver.rt.db)
        assert carried == {
            "weekly_digests": StoredRun(None, at),
            "escalation_check": StoredRun(None, interval_run),
        }
        async with driver.rt.db.engine.connect() as connection:
            tables = await connection.run_sync(
                lambda c: set(sqlalchemy.inspect(c).get_table_names())
            )
        assert "apscheduler_jobs" not in tables and "scheduled_runs" in tables
        scheduler = await _with_scheduler(driver)
        # Replaced: the interval's next run is counted from this start.
        assert scheduler.next_runs()["escalation_check"] != interval_run
        assert (await stored_runs(driver.rt.db))["escalation_check"].trigger is not None

        async def sent() -> bool:
            rows = await deliveries(driver)
            return len(rows) == 2 and all(r.status == "sent" for r in rows)

        await wait_until(sent)
        assert await driver.rt.jobs.wait_idle(15)
        assert scheduler.next_runs()["weekly_digests"] == a_week_on(config, at)
    finally:
        await driver.stop()
    assert [c.method for c in digest_calls(fake, TEAM_CHAT)] == ["sendMessage", "sendPhoto"]


async def test_a_graceful_stop_waits_for_the_running_digest(
    bot: Bot, fake: FakeTelegram, config: Config, clock: FakeClock
) -> None:
    """SIGTERM while the weekly job waits on Telegram: the stop lets it finish (it counts
    in ``Runtime.jobs``), and its next run is stored before the database closes."""
    await bot.stop()
    at = weekly_at(config, timedelta(minutes=20))
    await _went_down(fake, config, clock, {"weekly_digests": at})
    fake.delay("sendPhoto", 1.5)
    driver = await _fresh_bot(fake, config, clock)
    try:
        await _with_scheduler(driver)

        async def posting() -> bool:
            return fake.counts["sendPhoto"] >= 1

        await wait_until(posting)
        assert driver.rt.jobs.count == 1
        await driver.rt.stop(grace=10)
    finally:
        await driver.stop()
    rows = await _rows(config)
    assert [(r.status, r.parts_sent) for r in rows] == [("sent", 2), ("sent", 1)]
    stored = (await _stored_runs_of(config))["weekly_digests"]
    assert stored.next_run_time == a_week_on(config, at)


async def test_a_job_cut_short_stays_due(config: Config, caplog: pytest.LogCaptureFixture) -> None:
    """A job still running when the scheduler stops (its grace ran out, or the process
    died) is not recorded as done: its stored run stays, so the next start makes it."""
    at = weekly_at(config, timedelta(minutes=10))
    trigger = CronTrigger(
        day_of_week=config.schedule.weekly_day,
        hour=at.astimezone(ZoneInfo(config.timezone)).hour,
        minute=at.minute,
        timezone=config.timezone,
    )
    entered = asyncio.Event()
    runs = 0

    async def slow() -> None:
        nonlocal runs
        runs += 1
        entered.set()
        await asyncio.sleep(60)

    db = Database(config.database.url)
    await db.upgrade(statistics=False)
    try:
        async with db.transaction() as session:
            await schedule.store_runs(session, {"slow": StoredRun(trigger_text(trigger), at)})
        in_flight = InFlight()
        scheduler = JobScheduler(
            db,
            [ScheduledJob("slow", trigger, slow)],
            timezone=config.timezone,
            misfire_grace_minutes=60,
            running=in_flight,
        )
        await scheduler.start()
        await asyncio.wait_for(entered.wait(), 10)
        assert in_flight.count == 1
        await scheduler.stop()  # cancels the running job
        assert await in_flight.wait_idle(5)
        assert (await stored_runs(db))["slow"] == StoredRun(trigger_text(trigger), at)
        assert "job_cut_short id=slow stays_due=yes" in caplog.text
        # The next start finds it due and runs it again.
        entered.clear()
        again = JobScheduler(
            db,
            [ScheduledJob("slow", trigger, slow)],
            timezone=config.timezone,
            misfire_grace_minutes=60,
        )
        await again.start()
        await asyncio.wait_for(entered.wait(), 10)
        await again.stop()
        assert runs == 2
    finally:
        await db.close()


async def _stored_runs_of(config: Config) -> dict[str, StoredRun]:
    """The stored runs, read while no bot runs."""
    db = Database(config.database.url)
    try:
        return await stored_runs(db)
    finally:
        await db.close()


async def _rows(config: Config) -> list[Delivery]:
    """The delivery ledger, read while no bot runs."""
    db = Database(config.database.url)
    try:
        async with db.transaction() as session:
            return list((await session.execute(select(Delivery).order_by(Delivery.id))).scalars())
    finally:
        await db.close()


# --- the ledger ------------------------------------------------------------------------


async def test_the_ledger_refuses_a_second_post(bot: Bot, clock: FakeClock) -> None:
    assert bot.rt.digests is not None
    first = await bot.rt.digests.send_weekly("2026-W47", ["hki-etsiva"])
    second = await bot.rt.digests.send_weekly("2026-W47", ["hki-etsiva"])
    assert [o.result for o in first] == ["sent"]
    assert [o.result for o in second] == ["skipped"]
    assert len(digest_calls(bot.fake, TEAM_CHAT)) == 2  # one text, one chart: once
    lease = timedelta(minutes=30)
    async with bot.rt.db.transaction() as session:
        kw: dict[str, Any] = {
            "kind": "weekly",
            "scope": "hki-etsiva",
            "period": "2026-W47",
            "transport": "telegram",
            "chat_id": "-1001",
            "lease": lease,
        }
        assert await ledger.claim(session, now=clock.now, **kw) is None
        assert await ledger.claim(session, now=clock.now + timedelta(days=30), **kw) is None
        # Another period: claimable once; a second claimer (another process) is refused.
        other = {**kw, "period": "2026-W46"}
        held = await ledger.claim(session, now=clock.now, **other)
        assert held is not None and held.attempts == 1
        assert await ledger.claim(session, now=clock.now, **other) is None
        # Its process died mid-post: after the lease the claim is taken over, once.
        later = clock.now + lease + timedelta(seconds=1)
        taken = await ledger.claim(session, now=later, **other)
        assert taken is not None and taken.attempts == 2
        assert await ledger.claim(session, now=later, **other) is None
        # The old claimer can no longer record progress or close the row.
        assert not await ledger.record_parts(session, held, 1)
        assert not await ledger.mark_sent(session, held, later)
        # A failed delivery is claimable again only when its retry is due.
        assert await ledger.mark_failed(
            session, taken, "NetworkError", later + timedelta(minutes=5)
        )
        assert await ledger.claim(session, now=later, **other) is None
        again = await ledger.claim(session, now=later + timedelta(minutes=5), **other)
        assert again is not None and again.attempts == 3


# --- Telegram 429 and 5xx ---------------------------------------------------------------


async def test_429_then_500_the_digest_arrives_exactly_once(bot: Bot) -> None:
    assert bot.rt.digests is not None
    bot.fake.fail_next("sendMessage", 429, retry_after=1)
    bot.fake.fail_next("sendPhoto", 500)
    [outcome] = await bot.rt.digests.send_weekly("2026-W47", ["hki-etsiva"])
    assert outcome.result == "sent"
    assert [c.method for c in digest_calls(bot.fake, TEAM_CHAT)] == ["sendMessage", "sendPhoto"]
    assert [c.status for c in bot.fake.failed] == [429, 500]


async def test_a_failed_delivery_is_retried_later_and_continues(
    bot: Bot, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    assert bot.rt.digests is not None
    bot.fake.fail_next("sendPhoto", 502, times=3)  # more than the quick retries
    [outcome] = await bot.rt.digests.send_weekly("2026-W47", ["hki-etsiva"])
    assert (outcome.result, outcome.parts) == ("failed", 1)
    [row] = await deliveries(bot)
    assert (row.status, row.parts_sent, row.last_error) == ("failed", 1, "NetworkError")
    assert row.next_attempt_at == clock.now + timedelta(minutes=5)
    assert "digest_failed" in caplog.text
    assert await bot.rt.digests.retry_due() == []  # not due yet
    clock.advance(minutes=5)
    [retried] = await bot.rt.digests.retry_due()
    assert retried.result == "sent"
    # The text went once, the chart once: the retry continued where it stopped.
    assert [c.method for c in digest_calls(bot.fake, TEAM_CHAT)] == ["sendMessage", "sendPhoto"]
    [row] = await deliveries(bot)
    assert (row.status, row.attempts) == ("sent", 2)
    clock.advance(hours=1)
    assert await bot.rt.digests.retry_due() == []


# --- two processes on one PostgreSQL database --------------------------------------------


async def test_two_bot_processes_post_once(
    bot: Bot, fake: FakeTelegram, config: Config, clock: FakeClock, db_url: str, tmp_path: Path
) -> None:
    """Two real processes on one PostgreSQL database (``tests/support/delivery_process.py``):
    they deliver the same week at the same moment (one posts, one skips), then both run
    their scheduler on the stored runs with the weekly run due (posted once)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("two processes on one database: the PostgreSQL backend")
    await bot.stop()
    at = weekly_at(config, timedelta(minutes=30))
    await _went_down(fake, config, clock, {"weekly_digests": at})
    barrier = tmp_path / "go"
    overrides = {
        "database": {"url": db_url},
        "teams": TEST_TEAMS,
        "leadership": TEST_LEADERSHIP,
        "terminal": {"enabled": "no"},
        "telegram": telegram_section(fake),
        "schedule": {
            **FAST_RETRIES,
            "weekly_day": config.schedule.weekly_day,
            "weekly_time": config.schedule.weekly_time,
        },
    }
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.delivery_process",
            json.dumps(overrides),
            clock.now.isoformat(),
            str(barrier),
            "4",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]

    async def both_ready() -> bool:
        ready = await asyncio.to_thread(lambda: list(barrier.parent.glob("*.ready")))
        return len(ready) == 2

    await wait_until(both_ready, within=60)
    await asyncio.to_thread(barrier.touch)
    results = await asyncio.gather(*(p.communicate() for p in processes))
    for process, (_, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err.decode()[-2000:]
    by_key: dict[str, list[str]] = {}
    for out, _ in results:
        for line in out.decode().splitlines():
            outcome = json.loads(line)
            by_key.setdefault(outcome["key"], []).append(outcome["result"])
    w46 = {key: sorted(v) for key, v in by_key.items() if "W46" in key}
    assert w46 == {
        "weekly:hki-etsiva:2026-W46:telegram:-1001": ["sent", "skipped"],
        "weekly:vaasa-uppsok:2026-W46:telegram:-1002": ["sent", "skipped"],
    }
    w47 = {key: [r for r in v if r == "sent"] for key, v in by_key.items() if "W47" in key}
    assert w47 == {
        "weekly:hki-etsiva:2026-W47:telegram:-1001": ["sent"],
        "weekly:vaasa-uppsok:2026-W47:telegram:-1002": ["sent"],
    }
    # W46 was empty (two lines, no chart); W47 has a text and a chart: each posted once.
    # The two weeks may be posted by different processes at once: their order is free,
    # the parts of one digest come in order (the chart after its text).
    methods = [c.method for c in digest_calls(fake, TEAM_CHAT)]
    assert sorted(methods) == ["sendMessage", "sendMessage", "sendPhoto"]
    assert methods[0] == "sendMessage"
    assert len(digest_calls(fake, SWEDISH_TEAM_CHAT)) == 2
