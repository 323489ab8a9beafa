"""The workers' path news: a daily run tells a busy worker every day there is news.

With ``knowledge.news_every_hours = 24`` the news job runs at 15:00 local time. Yesterday's
send finished a moment after yesterday's run started, so a plain "sent within 24 hours"
skipped the worker every other day; across a daylight-saving change the same local time is
23 or 25 hours apart. ``flows.knowledge.news_told_since`` counts local calendar days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from flows import knowledge as rules
from storage import knowledge
from storage.models import PathNotice
from tests.support.datacare_helpers import seed

HELSINKI = ZoneInfo("Europe/Helsinki")
DAY = timedelta(hours=24)


def at_three(day: date) -> datetime:
    return datetime.combine(day, time(15, 0), tzinfo=HELSINKI)


def test_told_since_is_the_local_midnight_of_the_day() -> None:
    now = at_three(date(2026, 10, 25))  # the day summer time ends in Finland
    assert rules.news_told_since(now, DAY, HELSINKI) == datetime(2026, 10, 25, tzinfo=HELSINKI)
    # every 48 hours: told yesterday counts, told the day before does not
    assert rules.news_told_since(now, 2 * DAY, HELSINKI) == datetime(2026, 10, 24, tzinfo=HELSINKI)
    # 36 hours is rounded down to one calendar day
    assert rules.news_told_since(now, timedelta(hours=36), HELSINKI) == datetime(
        2026, 10, 25, tzinfo=HELSINKI
    )
    # below a day: timestamps, with a quarter of slack (at most an hour)
    assert rules.news_told_since(now, timedelta(hours=8), HELSINKI) == now - timedelta(hours=7)


@pytest.mark.parametrize(
    "first_day",
    [date(2026, 11, 16), date(2026, 10, 22), date(2027, 3, 25)],
    ids=["november", "summer-time-ends", "summer-time-starts"],
)
async def test_a_daily_run_tells_a_busy_worker_every_day(make_config, first_day: date) -> None:  # type: ignore[no-untyped-def]
    start = at_three(first_day).astimezone(UTC)
    world = await seed(make_config(), start)
    anna = world.people["anna"]
    try:
        told: list[date] = []
        for offset in range(7):
            day = first_day + timedelta(days=offset)
            run = at_three(day)  # the cron's 15:00 local, 23 or 25 hours apart at a change
            async with world.db.transaction() as session:
                session.add(
                    PathNotice(
                        person_id=anna.person_id,
                        subject=f"proposal:{offset + 1}",
                        step="proposed",
                        created_at=run - timedelta(hours=3),
                    )
                )
            async with world.db.snapshot() as session:
                due = await knowledge.due_path_notices(session, now=run, every=DAY, zone=HELSINKI)
            if anna.person_id in due:
                # the day's news, and the previous evening's that waited for this batch
                evening = [f"phenomenon:{offset}"] if offset else []
                subjects = sorted(n.subject for n in due[anna.person_id])
                assert subjects == sorted([*evening, f"proposal:{offset + 1}"])
                told.append(day)
                async with world.db.transaction() as session:
                    # sent a moment after the run began (the clock after sending)
                    marked = await knowledge.mark_path_notices_sent(
                        session, anna.person_id, run, run + timedelta(seconds=0.5)
                    )
                    assert marked == len(subjects)
            # A second run the same day (a restart, a late misfire) tells nothing new,
            # even with news that came in after the first run.
            async with world.db.transaction() as session:
                session.add(
                    PathNotice(
                        person_id=anna.person_id,
                        subject=f"phenomenon:{offset + 1}",
                        step="linked",
                        created_at=run + timedelta(hours=1),
                    )
                )
            async with world.db.snapshot() as session:
                again = await knowledge.due_path_notices(
                    session, now=run + timedelta(hours=6), every=DAY, zone=HELSINKI
                )
            assert anna.person_id not in again
        assert told == [first_day + timedelta(days=n) for n in range(7)]
    finally:
        await world.db.close()
