"""Scheduled delivery: the weekly job on a fake clock, a missed run after a restart, the
ledger, Telegram 429/5xx, and two bot processes on one PostgreSQL database.

The digests go to the fake Telegram Bot API over real HTTP; the bot's clock is a
``FakeClock``; APScheduler itself runs on real time with its persistent job store
in the test database.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy
from sqlalchemy import select

from bot.config import Config, load_config
from bot.runtime.jobs import register, unregister, weekly_digest_job
from bot.runtime.scheduler import build_scheduler, job_specs, sync_url
from storage import ledger, repo
from storage.models import Delivery
from tests.conftest import TEST_LEADERSHIP, TEST_TEAMS, FakeClock
from tests.support.datacare_helpers import observation
from tests.support.escalation_helpers import TEAM_CHAT, Bot
from tests.support.fake_telegram import FakeTelegram, SentCall
from tests.support.telegram import telegram_config, telegram_section

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


async def wait_until(predicate: Callable[[], Any], limit: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


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
    specs = job_specs(runtime)  # type: ignore[arg-type]
    trigger = next(s["trigger"] for s in specs if s["id"] == "weekly_digests")
    assert trigger.get_next_fire_time(None, now) == fires_utc


async def test_weekly_job_fires_on_the_fake_clock(bot: Bot, clock: FakeClock) -> None:
    trigger = next(s["trigger"] for s in job_specs(bot.rt) if s["id"] == "weekly_digests")
    clock.now = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)  # Sunday evening
    fire = trigger.get_next_fire_time(None, clock.now)
    assert fire == datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    clock.now = fire
    register(bot.rt)
    try:
        await weekly_digest_job()
    finally:
        unregister(bot.rt)
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


# --- a missed run, the real scheduler and its job store -----------------------------------


async def _fresh_bot(fake: FakeTelegram, config: Config, clock: FakeClock) -> Bot:
    driver = Bot(fake, config, clock)
    await driver.start(poll=False)
    return driver


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


async def _set_weekly_run(
    fake: FakeTelegram, config: Config, clock: FakeClock, at: datetime
) -> None:
    """A bot that scheduled its jobs and then went down with the weekly run due at ``at``.

    The weekly cron is moved to a day three days from today (in place, for the rest
    of the test): APScheduler runs real time, and on a Monday morning the real
    Monday 08:00 run would otherwise be a missed run of its own within the grace
    time, whatever ``at`` says.
    """
    today = datetime.now(ZoneInfo(config.timezone)).weekday()
    config.schedule.weekly_day = WEEKDAYS[(today + 3) % 7]
    driver = await _fresh_bot(fake, config, clock)
    scheduler = build_scheduler(driver.rt)
    scheduler.start(paused=True)
    scheduler.modify_job("weekly_digests", next_run_time=at)
    scheduler.shutdown(wait=False)
    await driver.stop()


async def test_missed_run_within_grace_posts_once_after_restart(
    bot: Bot, fake: FakeTelegram, config: Config, clock: FakeClock
) -> None:
    await bot.stop()
    # Down at 08:00; back at 09:30 (real time for APScheduler, 1.5 h of its 6 h grace).
    await _set_weekly_run(fake, config, clock, datetime.now(UTC) - timedelta(minutes=90))
    for restart in range(2):
        driver = await _fresh_bot(fake, config, clock)
        scheduler = build_scheduler(driver.rt)
        scheduler.start()
        try:
            if restart == 0:

                async def sent(driver: Bot = driver) -> bool:
                    rows = await deliveries(driver)
                    return len(rows) == 2 and all(r.status == "sent" for r in rows)

                await wait_until(sent)
            else:
                await asyncio.sleep(1.0)  # a second restart must not post again
            job = scheduler.get_job("weekly_digests")
            # The missed run is used up: the next one is the cron's next Monday 08:00
            # Helsinki time, in the future (it may be less than an hour away).
            assert job.next_run_time > datetime.now(UTC)
            assert job.next_run_time == job.trigger.get_next_fire_time(None, datetime.now(UTC))
        finally:
            scheduler.shutdown(wait=False)
            await driver.stop()
    assert [c.method for c in digest_calls(fake, TEAM_CHAT)] == ["sendMessage", "sendPhoto"]
    assert len(digest_calls(fake, SWEDISH_TEAM_CHAT)) == 1


async def test_a_job_stored_by_an_older_version_keeps_its_missed_run(
    bot: Bot, fake: FakeTelegram, config: Config, clock: FakeClock
) -> None:
    """Job functions moved (bot.scheduler -> bot.runtime.jobs): the stored reference of an
    earlier version no longer imports. The bot starts, replaces the job and keeps its
    next run, here a missed one within the grace time."""
    await bot.stop()
    await _set_weekly_run(fake, config, clock, datetime.now(UTC) - timedelta(minutes=90))
    engine = sqlalchemy.create_engine(sync_url(config.database.url))
    jobs = sqlalchemy.table(
        "apscheduler_jobs", sqlalchemy.column("id"), sqlalchemy.column("job_state")
    )
    with engine.begin() as connection:
        stored = connection.execute(
            sqlalchemy.select(jobs.c.job_state).where(jobs.c.id == "weekly_digests")
        ).scalar_one()
        state = pickle.loads(stored)
        state["func"] = "bot.scheduler:weekly_digest_job"  # where an earlier version kept it
        connection.execute(
            sqlalchemy.update(jobs)
            .where(jobs.c.id == "weekly_digests")
            .values(job_state=pickle.dumps(state, pickle.HIGHEST_PROTOCOL))
        )
    engine.dispose()
    driver = await _fresh_bot(fake, config, clock)
    scheduler = build_scheduler(driver.rt)
    scheduler.start()
    try:

        async def sent() -> bool:
            rows = await deliveries(driver)
            return len(rows) == 2 and all(r.status == "sent" for r in rows)

        await wait_until(sent)
        assert scheduler.get_job("weekly_digests").func is weekly_digest_job
    finally:
        scheduler.shutdown(wait=False)
        await driver.stop()


async def test_run_missed_beyond_grace_is_skipped(
    bot: Bot, fake: FakeTelegram, config: Config, clock: FakeClock
) -> None:
    await bot.stop()
    await _set_weekly_run(fake, config, clock, datetime.now(UTC) - timedelta(hours=7))
    driver = await _fresh_bot(fake, config, clock)
    scheduler = build_scheduler(driver.rt)
    scheduler.start()
    try:
        await asyncio.sleep(1.0)
        assert await deliveries(driver) == []
        assert scheduler.get_job("weekly_digests").next_run_time > datetime.now(UTC)
    finally:
        scheduler.shutdown(wait=False)
        await driver.stop()
    assert digest_calls(fake, TEAM_CHAT) == []


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
    """Two real processes on one PostgreSQL database (``tests/delivery_process.py``): they
    deliver the same week at the same moment (one posts, one skips), then both run the
    scheduler on one job store with the weekly run due (posted once)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("two processes on one database: the PostgreSQL backend")
    await bot.stop()
    await _set_weekly_run(fake, config, clock, datetime.now(UTC) - timedelta(minutes=30))
    barrier = tmp_path / "go"
    overrides = {
        "database": {"url": db_url},
        "teams": TEST_TEAMS,
        "leadership": TEST_LEADERSHIP,
        "terminal": {"enabled": "no"},
        "telegram": telegram_section(fake),
        "schedule": {**FAST_RETRIES, "weekly_day": config.schedule.weekly_day},
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

    await wait_until(both_ready, limit=60)
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
    methods = [c.method for c in digest_calls(fake, TEAM_CHAT)]
    assert methods == ["sendMessage", "sendMessage", "sendPhoto"]
    assert len(digest_calls(fake, SWEDISH_TEAM_CHAT)) == 2
