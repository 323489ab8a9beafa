"""Digest figures from a real database (SQLite and PostgreSQL), against answers stated by hand.

Each test seeds a small world whose right answers are written next to the rows:
which observations fall in which week or month (Helsinki wall-clock time,
daylight saving changes and ISO week 53 included), the counts per theme, the
change against the previous weeks' average, the spread over teams and the
rising phenomena. Withdrawn observations and other teams' or regions' rows are
seeded on purpose and must never count.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, select, text

import digests.render as digests_render
from bot.config import load_config
from bot.delivery import DigestDesk
from bot.router import Router
from bot.runtime.jobs import job_table, planner_statistics_job
from bot.transports.base import split_text
from digests.model import (
    Activity,
    CountRow,
    LeaderAnswer,
    NewOrGrowing,
    RisingRow,
    SpreadRow,
    StatusInfo,
    ThemeRow,
)
from digests.numbers import Privacy
from digests.periods import iso_week_bounds, previous_iso_week
from digests.render import render_monthly, render_weekly
from flows.taxonomy import THEME
from storage import repo
from storage.db import Database
from storage.digest_queries import active_workers, monthly_summary_data, weekly_digest_data
from storage.models import Confirmation, EscalationEvent, Observation
from storage.planner import refresh_statistics
from tests.conftest import FakeClock
from tests.support import render_probe
from tests.support.render_probe import probe_file, where_rendered

HEL = ZoneInfo("Europe/Helsinki")
T = TypeVar("T")
TEAMS = [
    ("hki-etsiva", "Helsingin etsivät", "helsinki", "fi"),
    ("hki-nuoret", "Helsingin nuorten tiimi", "helsinki", "fi"),
    ("vaasa-uppsok", "Vasa uppsökande", "pohjanmaa", "sv"),
]


def hel(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Helsinki wall-clock time as aware UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=HEL).astimezone(UTC)


@dataclass
class World:
    db: Database
    people: dict[str, tuple[int, str, str]] = field(default_factory=dict)

    async def person(self, name: str, team_id: str) -> None:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        async with self.db.transaction() as session:
            invite = await repo.create_invite(session, team_id, "worker", now, timedelta(days=1))
            member = await repo.redeem_invite(
                session, invite.code, "terminal", f"ext-{name}", f"chat-{name}", "fi", now
            )
        region = next(t[2] for t in TEAMS if t[0] == team_id)
        self.people[name] = (member.person_id, team_id, region)

    async def obs(self, who: str, at: datetime, theme: str, **fields: Any) -> int:
        async with self.db.transaction() as session:
            row = self.row(who, at, theme, **fields)
            session.add(row)
            await session.flush()
            return row.id

    def row(
        self,
        who: str,
        at: datetime,
        theme: str,
        *,
        signal: str = "signal.queues",
        group: str = "group.youth",
        frequency: str = "frequency.single",
        escalation: str = "escalation.none",
        quote: str | None = None,
        action: str | None = None,
        description: str = "Havainto palvelujärjestelmästä.",
        withdrawn: bool = False,
    ) -> Observation:
        person_id, team_id, region = self.people[who]
        recorded = at + timedelta(minutes=10)
        return Observation(
            person_id=person_id,
            team_id=team_id,
            region=region,
            area=None,
            description=description,
            quote=quote,
            action=action,
            theme=theme,
            population_group=group,
            signal=signal,
            frequency=frequency,
            escalation=escalation,
            polarity="polarity.problem",
            task=None,
            source="source.own",
            scale="scale.one",
            observed_at=at,
            recorded_at=recorded,
            updated_at=recorded,
            withdrawn_at=recorded + timedelta(hours=1) if withdrawn else None,
            transport="terminal",
            language="fi",
            flow_version="1",
            taxonomy_version="2026.1",
        )

    async def status(
        self, observation_id: int, status: str, at: datetime, text: str | None = None
    ) -> None:
        async with self.db.transaction() as session:
            session.add(
                EscalationEvent(
                    observation_id=observation_id,
                    status=status,
                    text=text,
                    actor_person_id=None,
                    created_at=at,
                )
            )

    async def weekly(self, team_id: str, week: str, **kwargs: Any) -> Any:
        async with self.db.transaction() as session:
            return await weekly_digest_data(session, team_id, week, "Europe/Helsinki", **kwargs)

    async def monthly(self, region: str | None, month: str, **kwargs: Any) -> Any:
        async with self.db.transaction() as session:
            return await monthly_summary_data(session, region, month, HEL, **kwargs)


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    db = Database(db_url)
    await db.upgrade()
    async with db.transaction() as session:
        await repo.sync_teams(session, TEAMS)
    w = World(db)
    for name, team in (
        ("anna", "hki-etsiva"),
        ("ben", "hki-etsiva"),
        ("cai", "hki-etsiva"),
        ("dana", "hki-nuoret"),
        ("eva", "vaasa-uppsok"),
    ):
        await w.person(name, team)
    yield w
    await db.close()


# --- the weekly team digest ------------------------------------------------------------


async def seed_week_47(w: World) -> dict[str, int]:
    """hki-etsiva, 2026-W47 (Mon 16 – Sun 22 Nov) and the four weeks before it."""
    ids: dict[str, int] = {}
    # This week: housing 4, income 2, substance 1 = 7 observations by anna, ben, cai.
    await w.obs(
        "anna",
        hel(2026, 11, 16, 9),
        "theme.housing",
        frequency="frequency.new",
        quote="Jonossa kuukausia.",
    )
    await w.obs(
        "anna",
        hel(2026, 11, 16, 12),
        "theme.income",
        signal="signal.no_service",
        group="group.immigrants",
        frequency="frequency.new",
        quote="Rahat loppu.",
    )
    ids["shl48"] = await w.obs(
        "ben",
        hel(2026, 11, 17, 10),
        "theme.housing",
        frequency="frequency.growing",
        escalation="escalation.shl48",
    )
    ids["lead"] = await w.obs(
        "cai",
        hel(2026, 11, 18, 8),
        "theme.substance_mental",
        signal="signal.mismatch",
        frequency="frequency.recurring",
        escalation="escalation.leadership",
        quote="Kukaan ei kuuntele.",
        action="Lisää päihdetyötä kaduille.",
    )
    await w.obs(
        "ben",
        hel(2026, 11, 19, 15),
        "theme.income",
        signal="signal.no_service",
        group="group.immigrants",
    )
    await w.obs("anna", hel(2026, 11, 21, 18), "theme.housing")
    # Sunday 23:30 is still this week.
    await w.obs(
        "cai",
        hel(2026, 11, 22, 23, 30),
        "theme.housing",
        signal="signal.criteria",
        group="group.working_age",
        quote="Ei mitään paikkaa <tänä yönä> & huomenna.",
    )
    # Never counted: withdrawn, next week (Mon 00:30), another team the same week.
    await w.obs(
        "anna",
        hel(2026, 11, 20, 11),
        "theme.housing",
        quote="Peruttu.",
        escalation="escalation.leadership",
        withdrawn=True,
    )
    await w.obs("anna", hel(2026, 11, 23, 0, 30), "theme.housing")
    await w.obs("dana", hel(2026, 11, 18, 12), "theme.housing")

    # The four weeks before (W43–W46): housing 4, substance 4, early support 2.
    await w.obs("anna", hel(2026, 10, 19, 0, 30), "theme.housing")  # W43, Monday 00:30
    await w.obs("ben", hel(2026, 10, 25, 23, 30), "theme.housing")  # W43, Sunday after DST
    await w.obs("anna", hel(2026, 10, 27, 10), "theme.housing")  # W44
    await w.obs("anna", hel(2026, 10, 28, 10), "theme.early_support")  # W44
    await w.obs("ben", hel(2026, 10, 28, 11), "theme.early_support")  # W44
    for day in (2, 3, 4):
        await w.obs("cai", hel(2026, 11, day, 10), "theme.substance_mental")  # W45
    ids["old"] = await w.obs(
        "cai", hel(2026, 11, 5, 10), "theme.substance_mental", escalation="escalation.leadership"
    )  # W45
    await w.obs("anna", hel(2026, 11, 13, 10), "theme.housing")  # W46
    # Outside the four weeks: Sunday 18 Oct 23:30 is W42.
    await w.obs("anna", hel(2026, 10, 18, 23, 30), "theme.violence")

    # Leaders' words: two answers arrive in W47, one the Monday after.
    await w.status(ids["lead"], "acknowledged", hel(2026, 11, 18, 9))
    await w.status(ids["old"], "decided", hel(2026, 11, 19, 14), "Asia on päätetty.")
    await w.status(ids["lead"], "in_progress", hel(2026, 11, 20, 10), "Selvitämme asian.")
    await w.status(ids["lead"], "handled", hel(2026, 11, 23, 10), "Valmis.")
    return ids


async def test_weekly_figures(world: World) -> None:
    ids = await seed_week_47(world)
    d = await world.weekly("hki-etsiva", "2026-W47")
    assert (d.team_name, d.language, d.week) == ("Helsingin etsivät", "fi", "2026-W47")
    assert (d.start, d.end) == iso_week_bounds("2026-W47")
    assert d.total == 7
    assert d.workers == 3
    assert d.themes == [
        ThemeRow("theme.housing", 4, 1.0),  # +3 against 4 in four weeks
        ThemeRow("theme.income", 2, 0.0),  # +2, nothing before
        ThemeRow("theme.substance_mental", 1, 1.0),  # ±0
        ThemeRow("theme.early_support", 0, 0.5),  # -0.5: quiet this week
    ]
    assert [row.change for row in d.themes] == [3.0, 2.0, 0.0, -0.5]
    assert d.signals == [
        CountRow("signal.queues", 3),
        CountRow("signal.no_service", 2),
        CountRow("signal.criteria", 1),
        CountRow("signal.mismatch", 1),
    ]
    assert d.groups == [
        CountRow("group.youth", 4),
        CountRow("group.immigrants", 2),
        CountRow("group.working_age", 1),
    ]
    assert d.new_or_growing == [
        NewOrGrowing("theme.housing", new=1, growing=1, rising=True),  # 4 >= 1.5 x 1.0
        NewOrGrowing("theme.income", new=1, growing=0, rising=True),  # 2 against nothing
    ]
    # Newest first, one per theme: Sunday's housing, Wednesday's substance, Monday's income.
    # Each names its entry (the team digest's "Make #N a phenomenon" buttons).
    assert [(q.text, q.theme) for q in d.quotes] == [
        ("Ei mitään paikkaa <tänä yönä> & huomenna.", "theme.housing"),
        ("Kukaan ei kuuntele.", "theme.substance_mental"),
        ("Rahat loppu.", "theme.income"),
    ]
    async with world.db.snapshot() as session:
        quoted = {
            row.id: row.quote
            for row in (await session.execute(select(Observation))).scalars()
            if row.quote
        }
    assert all(quoted[q.observation_id or 0] == q.text for q in d.quotes)
    # Raised this week, oldest first; statuses as of the end of the week.
    assert [
        (e.observation_id, e.escalation, e.status.status, e.days_open) for e in d.escalations
    ] == [
        (ids["shl48"], "escalation.shl48", "open", 5),  # Tue 10:10 -> Mon 00:00
        (ids["lead"], "escalation.leadership", "in_progress", 4),  # Wed 08:10 -> Mon 00:00
    ]
    assert d.escalations[1].status == StatusInfo(
        "in_progress", hel(2026, 11, 20, 10), "Selvitämme asian."
    )
    assert d.escalations[1].action == "Lisää päihdetyötä kaduille."
    assert d.answers == [
        LeaderAnswer(
            ids["old"],
            "theme.substance_mental",
            "decided",
            "Asia on päätetty.",
            hel(2026, 11, 19, 14),
        ),
        LeaderAnswer(
            ids["lead"],
            "theme.substance_mental",
            "in_progress",
            "Selvitämme asian.",
            hel(2026, 11, 20, 10),
        ),
    ]
    # Read on Tuesday instead, the escalation is handled.
    later = await world.weekly("hki-etsiva", "2026-W47", as_of=hel(2026, 11, 24, 9))
    assert later.escalations[1].status.status == "handled"
    assert later.escalations[1].days_open == 5  # Wed 08:10 -> Mon 23 Nov 10:00
    assert later.answers == d.answers  # answers belong to the week they arrived in

    rendered = render_weekly(d, "fi")
    assert "Viikon aikana 3 työntekijää kirjasi 7 havaintoa." in rendered.text
    assert "• Asuminen ja asunnottomuus: 4 (keskiarvo 1, +3)" in rendered.text
    assert "&lt;tänä yönä&gt; &amp; huomenna" in rendered.html
    assert len(rendered.charts) == 1


async def confirm(w: World, who: str, observation_id: int, at: datetime) -> None:
    person_id, team_id, _ = w.people[who]
    async with w.db.transaction() as session:
        session.add(
            Confirmation(
                person_id=person_id,
                team_id=team_id,
                kind="me_too",
                observation_id=observation_id,
                created_at=at,
            )
        )


async def test_active_workers_count_who_recorded_or_confirmed(world: World) -> None:
    """A worker is active in a week when they recorded or confirmed something in it: one
    who only said "me too" counts; a withdrawn entry, another team's worker and another
    week's confirmation do not count for this week."""
    first = await world.obs("anna", hel(2026, 11, 16, 9), "theme.housing")
    await world.obs("anna", hel(2026, 11, 18, 9), "theme.housing")
    await world.obs("ben", hel(2026, 11, 19, 9), "theme.income")
    await world.obs("ben", hel(2026, 11, 20, 9), "theme.income", withdrawn=True)
    await confirm(world, "cai", first, hel(2026, 11, 22, 23, 30))  # only a confirmation
    await confirm(world, "ben", first, hel(2026, 11, 17, 9))  # ben is active anyway
    await confirm(world, "dana", first, hel(2026, 11, 18, 9))  # another team
    # The weeks before: anna in W44 and W46, cai's confirmation in W45 (Monday 00:10).
    early = await world.obs("anna", hel(2026, 10, 27, 9), "theme.housing")
    await world.obs("anna", hel(2026, 11, 10, 9), "theme.housing")
    await confirm(world, "cai", early, hel(2026, 11, 2, 0, 10))
    d = await world.weekly("hki-etsiva", "2026-W47")
    assert (d.total, d.workers) == (3, 2)  # who wrote: anna and ben
    # Active: anna, ben and cai; before: W43 none, W44 anna, W45 cai, W46 anna.
    assert d.activity == Activity(3, 3, (0, 1, 1, 1), 3)
    assert d.before_total == 2
    # 3 active against 0.75 a week: the comparison is in rates.
    assert d.rate_basis
    text = render_weekly(d, "fi").text
    assert "Viikon aikana muutama työntekijä kirjasi 3 havaintoa." in text
    # Who wrote were two: the team's digest shows no rate that would tell how many.
    assert "työntekijäviikkoa kohden" not in text
    # The region: dana (hki-nuoret) is active in Helsinki in W47 by her confirmation.
    async with world.db.transaction() as session:
        week = iso_week_bounds("2026-W47")
        region = await active_workers(session, [week], region="helsinki")
        pohjanmaa = await active_workers(session, [week], region="pohjanmaa")
        everyone = await active_workers(session, [week], by_region=True)
    assert region == {(0, ""): 4}
    assert pohjanmaa == {}
    assert everyone == {(0, "helsinki"): 4}


async def test_the_weekly_rate_and_rising_by_rate(world: World) -> None:
    """Seven workers this week against three a week before: "more than usual" compares
    observations per active worker-week, and the team sees its rate."""
    for name in ("fay", "gus", "hal", "ida"):
        await world.person(name, "hki-etsiva")
    # W43–W46: anna, ben and cai each week, one housing entry each (12 in 12 worker-weeks).
    for week in range(43, 47):
        start, _ = iso_week_bounds(f"2026-W{week}")
        for i, name in enumerate(("anna", "ben", "cai")):
            await world.obs(name, start + timedelta(days=1, hours=i), "theme.housing")
    # W47: seven workers; housing 5 (0.71 a worker-week: less than 1.0 before), income 3.
    start, _ = iso_week_bounds("2026-W47")
    for i, name in enumerate(("anna", "ben", "cai", "fay", "gus")):
        await world.obs(name, start + timedelta(days=1, hours=i), "theme.housing")
    for i, name in enumerate(("hal", "ida", "ida")):
        await world.obs(name, start + timedelta(days=2, hours=i), "theme.income")
    d = await world.weekly("hki-etsiva", "2026-W47")
    assert d.activity == Activity(7, 7, (3, 3, 3, 3), 12)
    assert d.rate_basis and d.before_total == 12
    # By counts housing would rise (5 against 3 a week, at least 1.5 times); by rates it
    # fell (5 in 7 worker-weeks against 12 in 12). Income: 3 against none.
    assert d.new_or_growing == [NewOrGrowing("theme.income", 0, 0, True)]
    text = render_weekly(d, "fi").text.replace("\u00a0", " ")
    assert (
        "Havaintoja aktiivista työntekijäviikkoa kohden: 1,14 (edelliset neljä viikkoa: 1)" in text
    )
    assert "Aktiivisten työntekijöiden määrä muuttui yli 20 %" in text


async def test_dst_weeks_put_sunday_night_and_monday_morning_in_the_right_week(
    world: World,
) -> None:
    # Spring forward: Sun 29 Mar 2026 (W13). Fall back: Sun 25 Oct 2026 (W43).
    await world.obs("anna", hel(2026, 3, 29, 23, 30), "theme.housing")
    await world.obs("anna", hel(2026, 3, 30, 0, 30), "theme.income")
    await world.obs("anna", hel(2026, 3, 23, 0, 0), "theme.violence")  # first instant of W13
    await world.obs("ben", hel(2026, 10, 25, 23, 30), "theme.housing")
    await world.obs("ben", hel(2026, 10, 25, 3, 30), "theme.housing")  # the repeated hour
    await world.obs("ben", hel(2026, 10, 26, 0, 30), "theme.income")
    expected = {
        "2026-W12": {},
        "2026-W13": {"theme.housing": 1, "theme.violence": 1},
        "2026-W14": {"theme.income": 1},
        "2026-W43": {"theme.housing": 2},
        "2026-W44": {"theme.income": 1},
    }
    for week, counts in expected.items():
        d = await world.weekly("hki-etsiva", week)
        assert {r.code: r.count for r in d.themes if r.count} == counts, week
        assert d.total == sum(counts.values()), week


async def test_week_53_and_the_year_change(world: World) -> None:
    await world.obs("eva", hel(2026, 12, 27, 23, 59), "theme.income")  # W52
    await world.obs("eva", hel(2026, 12, 28, 0, 0), "theme.housing")  # W53 starts
    await world.obs("eva", hel(2027, 1, 1, 12), "theme.housing")  # W53, New Year's Day
    await world.obs("eva", hel(2027, 1, 3, 23, 30), "theme.housing")  # W53, last Sunday
    await world.obs("eva", hel(2027, 1, 4, 0, 30), "theme.housing")  # 2027-W01
    await world.obs("eva", hel(2027, 1, 5, 9), "theme.housing")  # 2027-W01
    assert previous_iso_week(hel(2027, 1, 4, 9)) == "2026-W53"
    w52 = await world.weekly("vaasa-uppsok", "2026-W52")
    w53 = await world.weekly("vaasa-uppsok", "2026-W53")
    w01 = await world.weekly("vaasa-uppsok", "2027-W01")
    assert (w52.total, w53.total, w01.total) == (1, 3, 2)
    # 2027-W01 compares with W49–W53 of 2026: housing 3 in four weeks (W50–W53) -> 0.75.
    assert w01.themes == [ThemeRow("theme.housing", 2, 0.75), ThemeRow("theme.income", 0, 0.25)]
    assert w53.themes == [ThemeRow("theme.housing", 3, 0.0), ThemeRow("theme.income", 0, 0.25)]
    rendered = render_weekly(w53, "sv")
    assert rendered.text.splitlines()[0] == (
        "Veckosammandrag · Vasa uppsökande · vecka 53/2026 (28 dec. 2026–3 jan. 2027)"
    )


async def test_empty_week(world: World) -> None:
    await world.obs("anna", hel(2026, 11, 10, 12), "theme.housing")  # the week before
    await world.obs("anna", hel(2026, 11, 18, 12), "theme.housing", withdrawn=True)
    d = await world.weekly("hki-etsiva", "2026-W47")
    assert (d.total, d.workers) == (0, 0)
    assert d.themes == [ThemeRow("theme.housing", 0, 0.25)]
    assert d.signals == d.groups == d.new_or_growing == []
    assert d.quotes == d.escalations == d.answers == []
    for lang in ("fi", "sv", "en"):
        rendered = render_weekly(d, lang)
        assert len(rendered.text.splitlines()) == 2
        assert rendered.charts == []
    assert render_weekly(d, "fi").text.splitlines()[1] == (
        "Tällä viikolla ei kirjattu havaintoja. Kiitos työstänne!"
    )
    with pytest.raises(LookupError):
        await world.weekly("no-such-team", "2026-W47")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop() == tag


async def test_a_long_digest_is_split_under_the_telegram_limit(world: World) -> None:
    for i in range(45):
        await world.obs(
            ("anna", "ben", "cai")[i % 3],
            hel(2026, 11, 16, 8) + timedelta(minutes=30 * i),
            ("theme.housing", "theme.income", "theme.violence")[i % 3],
            escalation="escalation.leadership",
            description=f"Havainto {i} <tärkeä>: " + "asunnoton nuori jäi ilman tukea, " * 5,
            quote="Minne mä menen?" if i % 10 == 0 else None,
        )
    d = await world.weekly("hki-etsiva", "2026-W47")
    assert d.total == 45 and len(d.escalations) == 45
    rendered = render_weekly(d, "fi")
    assert len(rendered.html) > 4096
    pieces = split_text(rendered.html, 4096)
    assert len(pieces) >= 2
    assert all(len(piece) <= 4096 for piece in pieces)
    for piece in pieces:
        for line in piece.splitlines():
            tags = _Tags()
            tags.feed(line)
            assert tags.open == [], line
    # Cut at line ends only: the pieces hold the digest's lines, whole and in order.
    assert [line.strip() for p in pieces for line in p.splitlines() if line.strip()] == [
        line.strip() for line in rendered.html.splitlines() if line.strip()
    ]
    # The section before the escalations fits whole into the first piece.
    assert "<b>Asiakkaan ääni</b>" in pieces[0]


# --- the monthly escalation summary ------------------------------------------------------------


async def seed_november(w: World) -> dict[str, int]:
    """Helsinki (hki-etsiva: anna, ben; hki-nuoret: dana) and Pohjanmaa (vaasa: eva)."""
    ids: dict[str, int] = {}
    # November 2026 in Helsinki: housing 7 (2 teams), substance 4 (2), income 3 (1),
    # violence 2 (1), service access 2 (2): 18 observations by anna, ben and dana.
    await w.obs("anna", hel(2026, 11, 1, 0, 15), "theme.housing")  # first minutes of Nov
    ids["housing1"] = await w.obs(
        "anna",
        hel(2026, 11, 3, 10),
        "theme.housing",
        escalation="escalation.leadership",
        action="Tukiasuntoja lisää.",
    )
    await w.obs("ben", hel(2026, 11, 4, 10), "theme.housing")
    await w.obs("ben", hel(2026, 11, 10, 10), "theme.housing")
    await w.obs("anna", hel(2026, 11, 30, 23, 45), "theme.housing")  # last minutes of Nov
    await w.obs("dana", hel(2026, 11, 6, 10), "theme.housing")
    ids["housing2"] = await w.obs(
        "dana", hel(2026, 11, 20, 16), "theme.housing", escalation="escalation.leadership"
    )
    for day in (2, 9, 16):
        await w.obs("dana", hel(2026, 11, day, 12), "theme.substance_mental")
    await w.obs("ben", hel(2026, 11, 5, 12), "theme.substance_mental")
    await w.obs("anna", hel(2026, 11, 11, 9), "theme.income")
    ids["income"] = await w.obs(
        "anna", hel(2026, 11, 12, 9, 30), "theme.income", escalation="escalation.leadership"
    )
    await w.obs("ben", hel(2026, 11, 13, 9), "theme.income")
    await w.obs("dana", hel(2026, 11, 14, 20), "theme.violence")
    ids["shl48"] = await w.obs(
        "dana", hel(2026, 11, 15, 22, 10), "theme.violence", escalation="escalation.shl48"
    )
    await w.obs("anna", hel(2026, 11, 18, 10), "theme.service_access")
    await w.obs("dana", hel(2026, 11, 19, 10), "theme.service_access")
    # Never counted for Helsinki in November: withdrawn, December, Pohjanmaa.
    await w.obs(
        "anna",
        hel(2026, 11, 21, 10),
        "theme.housing",
        withdrawn=True,
        escalation="escalation.leadership",
    )
    await w.obs("anna", hel(2026, 12, 1, 0, 15), "theme.housing")
    for day in (3, 4, 5):
        await w.obs("eva", hel(2026, 11, day, 10), "theme.housing")

    # August–October in Helsinki: housing 3, substance 9, service access 1, early support 6.
    await w.obs("anna", hel(2026, 8, 10, 10), "theme.housing")
    ids["sep_housing"] = await w.obs(
        "anna", hel(2026, 9, 15, 10), "theme.housing", escalation="escalation.leadership"
    )
    await w.obs("dana", hel(2026, 10, 31, 23, 30), "theme.housing")  # last minutes of Oct
    for month in (8, 9, 10):
        for day in (6, 7, 8):
            if (month, day) == (10, 8):
                continue
            await w.obs("dana", hel(2026, month, day, 10), "theme.substance_mental")
    ids["oct_shl48"] = await w.obs(
        "ben", hel(2026, 10, 9, 11), "theme.substance_mental", escalation="escalation.shl48"
    )
    await w.obs("ben", hel(2026, 9, 5, 10), "theme.service_access")
    ids["aug_early"] = await w.obs(
        "anna", hel(2026, 8, 28, 13), "theme.early_support", escalation="escalation.leadership"
    )
    for month, day in ((8, 20), (9, 20), (9, 21), (10, 20), (10, 21)):
        await w.obs("dana", hel(2026, month, day, 10), "theme.early_support")
    # July is outside the three months: income 9, one of them raised and still open.
    ids["july"] = await w.obs(
        "anna", hel(2026, 7, 10, 10), "theme.income", escalation="escalation.leadership"
    )
    for day in range(11, 19):
        await w.obs("anna", hel(2026, 7, day, 10), "theme.income")
    # Earlier escalations that are not open or not Helsinki's.
    await w.obs(
        "anna",
        hel(2026, 9, 1, 10),
        "theme.other",
        escalation="escalation.leadership",
        withdrawn=True,
    )
    await w.obs("eva", hel(2026, 9, 1, 10), "theme.housing", escalation="escalation.leadership")

    # Statuses.
    await w.status(ids["sep_housing"], "handled", hel(2026, 10, 1, 9))
    await w.status(ids["aug_early"], "acknowledged", hel(2026, 9, 2, 9))
    await w.status(ids["housing1"], "in_progress", hel(2026, 11, 10, 8))
    await w.status(ids["shl48"], "acknowledged", hel(2026, 11, 15, 23))
    await w.status(ids["shl48"], "handled", hel(2026, 11, 17, 10), "Asukas siirretty.")
    await w.status(ids["housing1"], "decided", hel(2026, 12, 1, 8), "Otetaan budjettiin.")
    return ids


async def test_monthly_figures_for_a_region(world: World) -> None:
    ids = await seed_november(world)
    s = await world.monthly("helsinki", "2026-11", scope_name="Helsinki")
    assert (s.region, s.scope_name, s.month) == ("helsinki", "Helsinki", "2026-11")
    assert (s.total, s.teams, s.workers) == (18, 2, 3)
    assert (s.escalated, s.shl48_count) == (3, 1)
    # Every theme but housing is below 5 and shows as "< 5": the hidden ones come after
    # the shown ones in taxonomy order (ranked by count, they would say which is larger).
    assert s.hidden_themes == {
        "theme.substance_mental",
        "theme.income",
        "theme.violence",
        "theme.service_access",
    }
    assert s.leading == [  # (theme, teams, observations)
        SpreadRow("theme.housing", 2, 7),
        SpreadRow("theme.income", 1, 3),
        SpreadRow("theme.substance_mental", 2, 4),
        SpreadRow("theme.violence", 1, 2),
        SpreadRow("theme.service_access", 2, 2),
    ]
    # The widespread themes: only those whose count is shown (a number of teams beside
    # "< 5 observations" bounds the count from below).
    assert s.spread == [SpreadRow("theme.housing", 2, 7)]
    # Active workers: anna, ben and dana in November against 2 (anna, dana), 3 and 2
    # (ben, dana) in August–October: 3 against 2.33 on average is +29 %, more than 20 %,
    # so "rising" compares observations per active worker-week. Worker-weeks: November
    # anna W44 W45 W46 W47 W49, ben W45 W46, dana W45 W46 W47 = 10; August 2 + 2,
    # September 1 + 4 + 1, October 3 + 1 = 14.
    assert s.activity == Activity(3, 10, (2, 3, 2), 14)
    assert s.rate_basis and s.before_total == 19
    # Housing 7 in 10 (0.7) against 3 in 14 (0.21); income 3 against nothing (July is
    # too old). Not rising: substance 4 in 10 (0.4) against 9 in 14 (0.64); violence 2
    # and service access 2 are under 3.
    assert s.rising == [RisingRow("theme.housing", 7, 1.0), RisingRow("theme.income", 3, 0.0)]
    assert (s.rising[0].rate, s.rising[0].before_rate) == (0.7, 3 / 14)
    assert [(g.theme, [i.observation_id for i in g.items]) for g in s.escalated_by_theme] == [
        ("theme.housing", [ids["housing1"], ids["housing2"]]),
        ("theme.income", [ids["income"]]),
    ]
    housing1 = s.escalated_by_theme[0].items[0]
    assert housing1.status == StatusInfo("in_progress", hel(2026, 11, 10, 8))  # Dec news unseen
    assert housing1.action == "Tukiasuntoja lisää."
    assert housing1.team_name == "Helsingin etsivät"
    assert housing1.days_open == 27  # 3 Nov 10:10 -> 1 Dec 00:00
    assert s.escalated_by_theme[0].items[1].team_name == "Helsingin nuorten tiimi"
    [shl48] = s.shl48
    assert shl48.observation_id == ids["shl48"]
    assert shl48.status == StatusInfo("handled", hel(2026, 11, 17, 10), "Asukas siirretty.")
    assert shl48.days_open == 1  # 15 Nov 22:20 -> 17 Nov 10:00
    assert [(i.observation_id, i.status.status, i.days_open) for i in s.earlier_open] == [
        (ids["july"], "open", 143),  # 10 Jul 10:10 -> 1 Dec 00:00
        (ids["aug_early"], "acknowledged", 94),  # 28 Aug 13:10 -> 1 Dec 00:00
        (ids["oct_shl48"], "open", 52),  # 9 Oct 11:10 -> 1 Dec 00:00
    ]

    # Read on the first working day of December, the December decision shows.
    later = await world.monthly("helsinki", "2026-11", as_of=hel(2026, 12, 1, 9))
    assert later.escalated_by_theme[0].items[0].status.status == "decided"
    assert later.escalated_by_theme[0].items[0].days_open == 27  # closed 1 Dec 08:00

    # A stricter rule keeps only housing. A looser one (1.3) would let substance in by
    # counts (4 against 3 a month), but not by rates: its rate fell from 0.64 to 0.4.
    strict = await world.monthly("helsinki", "2026-11", min_count=4)
    assert [r.code for r in strict.rising] == ["theme.housing"]
    loose = await world.monthly("helsinki", "2026-11", ratio=1.3)
    assert [r.code for r in loose.rising] == ["theme.housing", "theme.income"]

    rendered = render_monthly(s, "fi")
    assert rendered.text.splitlines()[0] == "Kuukausikooste · Helsinki · marraskuu 2026"
    # Three active workers are fewer than five: leadership sees no rate (it would tell).
    assert "• Havaintoja aktiivista työntekijäviikkoa kohden: – (kolme edellistä" in (rendered.text)
    # With min_cell 3 the rates show, and the rising themes are listed by their rates.
    three = await world.monthly("helsinki", "2026-11", audience=Privacy(min_cell=3))
    text = render_monthly(three, "fi").text.replace("\u00a0", " ")
    assert "• Havaintoja aktiivista työntekijäviikkoa kohden: 1,8 (kolme edellistä " in text
    assert "kuukautta: 1,36)" in text
    assert "Aktiivisten työntekijöiden määrä muuttui yli 20 %" in text
    assert "• Asuminen ja asunnottomuus: 7 (0,7 / työntekijäviikko, aiemmin 0,21, +227 %)" in text
    # Income 3 is hidden with the two 2s (min_cell 3: "< 3" twice over a known sum of 4
    # would give both back), so its rate is not shown either; it is 3, not fewer: "–".
    assert "• Toimeentulo: – (– / työntekijäviikko" in text
    assert rendered.csv is not None
    # Header, the 4 raised in November and the 3 earlier ones still open.
    assert rendered.csv.decode("utf-8-sig").count("\r\n") == 1 + 4 + 3
    assert len(rendered.charts) == 1


async def test_monthly_for_the_whole_organisation_and_another_region(world: World) -> None:
    await seed_november(world)
    whole = await world.monthly(None, "2026-11")
    assert (whole.total, whole.teams, whole.workers) == (21, 3, 4)
    assert whole.leading[0] == SpreadRow("theme.housing", 3, 10)
    assert whole.spread[0] == SpreadRow("theme.housing", 3, 10)
    assert render_monthly(whole, "en").text.splitlines()[0] == (
        "Monthly summary · whole organisation · November 2026"
    )
    # The open September escalation of Pohjanmaa joins the organisation's list.
    assert len(whole.earlier_open) == 4
    # The regions side by side. Pohjanmaa: eva, three in W45 (one worker-week), her
    # September escalation still open. Helsinki: 10 worker-weeks (test above); open:
    # housing1 (in progress), housing2 and income of November, and July, August and
    # October from before; acknowledged: housing1 (first acted on 10 Nov 08:00, saved
    # 3 Nov 10:10) and the § 48 notice (15 Nov 23:00, saved 22:20).
    helsinki, north_row = whole.regions
    assert (helsinki.region, helsinki.total, helsinki.workers, helsinki.worker_weeks) == (
        "helsinki",
        18,
        3,
        10,
    )
    assert helsinki.top_themes == ("theme.housing",)  # the only theme with 5 or more
    assert (helsinki.open, helsinki.acknowledged) == (6, 2)
    assert helsinki.median_days == pytest.approx(((6 * 24 + 21 + 50 / 60) + 40 / 60) / 2 / 24)
    assert (north_row.region, north_row.total, north_row.workers, north_row.worker_weeks) == (
        "pohjanmaa",
        3,
        1,
        1,
    )
    assert (north_row.top_themes, north_row.open, north_row.median_days) == ((), 1, None)
    assert whole.organisation is not None
    assert (whole.organisation.total, whole.organisation.open) == (21, 7)
    assert (whole.activity.workers, whole.activity.worker_weeks) == (4, 11)
    # Pohjanmaa's 3 is small and Helsinki's 18 is hidden with it (the total 21 is shown);
    # the same for the open ones (6 and 1 of 7).
    assert whole.hidden_region_totals == whole.hidden_region_open == {"helsinki", "pohjanmaa"}
    lines = render_monthly(whole, "en").text.replace("\u00a0", " ").split("\n\n")
    [regions] = [block for block in lines if block.startswith("Regions side by side")]
    assert regions.splitlines()[2:] == [
        "• helsinki: – · – · Housing and homelessness · – · –",
        "• pohjanmaa: < 5 · – · – · < 5 · –",
        "• Whole organisation: 21 · – · Housing and homelessness · 7 · –",
    ]
    # Shown to an audience that may see everything, with the regions' names.
    named = await world.monthly(
        None,
        "2026-11",
        audience=Privacy(min_cell=1),
        region_names={"helsinki": "Helsinki", "pohjanmaa": "Österbotten"},
    )
    lines = render_monthly(named, "fi").text.replace("\u00a0", " ").split("\n\n")
    [regions] = [block for block in lines if block.startswith("Alueet rinnakkain")]
    assert regions.splitlines()[2:] == [
        "• Helsinki: 18 · 1,8 · Asuminen ja asunnottomuus · 6 · 3,5 pv",
        "• Österbotten: 3 · 3 · Asuminen ja asunnottomuus · 1 · –",
        "• Koko organisaatio: 21 · 1,91 · Asuminen ja asunnottomuus · 7 · 3,5 pv",
    ]
    north = await world.monthly("pohjanmaa", "2026-11", scope_name="Österbotten")
    assert (north.total, north.teams, north.workers) == (3, 1, 1)
    assert north.rising == [RisingRow("theme.housing", 3, 1 / 3)]  # one in September
    assert [i.region for i in north.earlier_open] == ["pohjanmaa"]
    assert north.escalated_by_theme == [] and north.shl48 == []
    empty = await world.monthly("pohjanmaa", "2026-12", now=hel(2027, 1, 4, 9))
    assert (empty.total, empty.leading, empty.rising) == (0, [], [])
    assert [i.days_open for i in empty.earlier_open] == [121]  # 1 Sep 10:10 -> 1 Jan 00:00
    attached = render_monthly(empty, "sv").csv
    assert attached is not None and attached.decode("utf-8-sig").count("\r\nearlier_open;") == 1


async def test_days_open_count_to_now_in_a_running_month_never_past_today(world: World) -> None:
    """An entry saved today is open 0 days in the current month's preview and CSV (it said
    "avoinna 28 päivää": the days were counted to the end of the month)."""
    saved = await world.obs(
        "eva", hel(2026, 12, 3, 9), "theme.housing", escalation="escalation.leadership"
    )
    today = hel(2026, 12, 3, 14)
    preview = await world.monthly("pohjanmaa", "2026-12", now=today)
    [item] = [i for g in preview.escalated_by_theme for i in g.items]
    assert (item.observation_id, item.days_open) == (saved, 0)
    rendered = render_monthly(preview, "fi")
    assert "avoinna 0 päivää" in rendered.text
    assert rendered.csv is not None
    [row] = list(csv.DictReader(io.StringIO(rendered.csv.decode("utf-8-sig")), delimiter=";"))
    assert row["days_open"] == "0"
    # Ten days later it is open 10 days; after the month, the summary counts to its end.
    later = await world.monthly("pohjanmaa", "2026-12", now=hel(2026, 12, 13, 14))
    assert [i.days_open for g in later.escalated_by_theme for i in g.items] == [10]
    after = await world.monthly("pohjanmaa", "2026-12", now=hel(2027, 2, 1))
    assert [i.days_open for g in after.escalated_by_theme for i in g.items] == [28]


async def test_the_team_sees_its_counts_leadership_sees_small_ones_hidden(world: World) -> None:
    """The same week through the digest desk: for the team's chat and for an administrator's
    preview (leadership). Neither says how many workers wrote when fewer than three did."""
    for at in (hel(2026, 11, 17, 9), hel(2026, 11, 18, 9)):
        await world.obs("anna", at, "theme.housing")
    await world.obs("ben", hel(2026, 11, 19, 9), "theme.income")
    clock = FakeClock(hel(2026, 11, 23, 9))
    teams = [{"id": i, "name": n, "region": r, "language": lang} for i, n, r, lang in TEAMS]
    config = load_config(None, terminal={"enabled": "no"}, teams=teams)
    desk = DigestDesk(config, world.db, Router(), clock)
    team = (await desk.weekly("hki-etsiva", "2026-W47")).text.splitlines()[1]
    assert team == "Viikon aikana muutama työntekijä kirjasi 3 havaintoa."
    leadership = await desk.weekly("hki-etsiva", "2026-W47", leadership=True)
    assert leadership.text.splitlines()[1] == (
        "Viikon aikana muutama työntekijä kirjasi < 5 havaintoa.".replace(" 5", "\u00a05")
    )
    assert "Asuminen ja asunnottomuus: <\u00a05" in leadership.text
    assert leadership.charts == []  # its bars would show the hidden counts


async def test_proposals_that_moved_in_the_month_are_in_its_summary(world: World) -> None:
    from storage import knowledge

    raised = await world.obs(
        "anna", hel(2026, 11, 3, 10), "theme.housing", escalation="escalation.leadership"
    )
    north = await world.obs(
        "eva", hel(2026, 11, 3, 10), "theme.housing", escalation="escalation.leadership"
    )
    async with world.db.transaction() as session:
        for observation_id, text, at in (
            (raised, "Lisää tukiasuntoja nuorille.", hel(2026, 11, 10, 9)),
            (north, "Fler stödbostäder.", hel(2026, 11, 11, 9)),
            (raised, "Vanha ehdotus.", hel(2026, 10, 5, 9)),
        ):
            made = await knowledge.create_proposal(
                session,
                text=text,
                observation_id=observation_id,
                proposer_person_id=None,
                owner_person_id=None,
                actor="test",
                now=at,
            )
            assert made is not None
    s = await world.monthly("helsinki", "2026-11", now=hel(2026, 12, 1, 9))
    assert [p.text for p in s.proposals] == ["Lisää tukiasuntoja nuorille."]
    assert "Lisää tukiasuntoja nuorille." in render_monthly(s, "fi").text
    whole = await world.monthly(None, "2026-11", now=hel(2026, 12, 1, 9))
    assert sorted(p.text for p in whole.proposals) == [
        "Fler stödbostäder.",
        "Lisää tukiasuntoja nuorille.",
    ]


async def current_status(world: World, observation_id: int) -> str:
    async with world.db.transaction() as session:
        row = await session.get(Observation, observation_id)
        assert row is not None
        await session.refresh(row, ["escalation_status"])
        return row.escalation_status


async def test_escalation_status_follows_the_newest_event(world: World) -> None:
    """Migration 0005's triggers: the observation's current status is its newest event's,
    whatever order events are written, changed or deleted in."""
    raised = await world.obs(
        "anna", hel(2026, 9, 1, 10), "theme.housing", escalation="escalation.leadership"
    )
    assert await current_status(world, raised) == "open"
    await world.status(raised, "acknowledged", hel(2026, 9, 2, 9))
    await world.status(raised, "handled", hel(2026, 9, 20, 9))
    assert await current_status(world, raised) == "handled"
    await world.status(raised, "in_progress", hel(2026, 9, 10, 9))  # late entry, older
    assert await current_status(world, raised) == "handled"
    async with world.db.transaction() as session:
        newest = (
            await session.execute(
                select(EscalationEvent).where(EscalationEvent.status == "handled")
            )
        ).scalar_one()
        newest.status = "decided"
    assert await current_status(world, raised) == "decided"
    async with world.db.transaction() as session:
        await session.execute(delete(EscalationEvent).where(EscalationEvent.status == "decided"))
    assert await current_status(world, raised) == "in_progress"
    async with world.db.transaction() as session:
        await session.execute(delete(EscalationEvent))
    assert await current_status(world, raised) == "open"


async def test_earlier_open_is_read_at_as_of_not_now(world: World) -> None:
    """Open at the end of the month counts even when closed since, and closed then counts
    not even when reopened since: the current status only finds the candidates."""
    ids = {}
    for name, day in (("closed_later", 1), ("reopened_later", 2), ("open", 3), ("closed", 4)):
        ids[name] = await world.obs(
            "anna", hel(2026, 9, day, 10), "theme.housing", escalation="escalation.leadership"
        )
    await world.status(ids["closed_later"], "acknowledged", hel(2026, 10, 5, 9))
    await world.status(ids["closed_later"], "handled", hel(2026, 11, 3, 9))
    await world.status(ids["reopened_later"], "handled", hel(2026, 10, 6, 9))
    await world.status(ids["reopened_later"], "in_progress", hel(2026, 11, 4, 9))
    await world.status(ids["closed"], "no_action", hel(2026, 10, 7, 9))
    october = await world.monthly("helsinki", "2026-10")
    assert [(i.observation_id, i.status.status) for i in october.earlier_open] == [
        (ids["closed_later"], "acknowledged"),
        (ids["open"], "open"),
    ]
    now = await world.monthly("helsinki", "2026-10", as_of=hel(2026, 11, 30))
    assert [(i.observation_id, i.status.status) for i in now.earlier_open] == [
        (ids["reopened_later"], "in_progress"),
        (ids["open"], "open"),
    ]
    whole = await world.monthly(None, "2026-10")
    assert [i.observation_id for i in whole.earlier_open] == [ids["closed_later"], ids["open"]]


async def loop_lag_during(work: Awaitable[T]) -> tuple[T, float]:
    """``work``'s result, and how late at most a 10 ms ``asyncio.sleep`` on the loop woke up
    meanwhile (a worker waiting for a reply waits as long)."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    worst = 0.0

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            asked = loop.time()
            await asyncio.sleep(0.01)
            worst = max(worst, loop.time() - asked - 0.01)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        result = await work
    finally:
        done.set()
        await ticking
    return result, worst


async def test_building_a_digest_leaves_the_event_loop_free(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``DigestDesk`` renders in a process of its own: a busy monthly summary (its chart, a long
    text and the CSV file) never keeps the loop from answering for as long as it takes.

    What is asserted is where the rendering runs (a process other than the loop's): the
    loop's lateness is printed, not asserted, because on a shared 2-core machine it
    moves with whatever else runs (it was 6-19 ms against 133-225 ms of rendering when
    measured quietly, and the whole rendering time when rendered on the loop)."""
    await seed_november(world)
    async with world.db.transaction() as session:  # a busy month: 400 escalations
        for i in range(400):
            session.add(
                world.row(
                    ("anna", "ben", "dana")[i % 3],
                    hel(2026, 11, 1 + i % 28, 8) + timedelta(minutes=i),
                    THEME.codes[i % len(THEME.codes)],
                    escalation=("escalation.leadership", "escalation.shl48")[i % 2],
                    description=f"Havainto {i}: jono venyi, eikä apua löytynyt ajoissa.",
                    action="Lisää resursseja.",
                )
            )
    clock = FakeClock()
    desk = DigestDesk(load_config(None, terminal={"enabled": "no"}), world.db, Router(), clock)
    async with world.db.snapshot() as session:
        summary = await monthly_summary_data(session, "helsinki", "2026-11", HEL, now=clock())
    render_monthly(summary, "fi")  # warm: matplotlib imported, fonts loaded
    started = time.perf_counter()
    render_monthly(summary, "fi")
    rendering = time.perf_counter() - started  # what the loop would be blocked for

    original = digests_render.render_monthly
    probe_file(os.getpid()).unlink(missing_ok=True)
    monkeypatch.setattr(digests_render, "render_monthly", render_probe.render_monthly)
    rendered, lag = await loop_lag_during(desk.monthly("helsinki", "2026-11", "fi"))
    ran_in = where_rendered(os.getpid())
    probe_file(os.getpid()).unlink(missing_ok=True)

    assert len(rendered.charts) == 1 and rendered.csv is not None
    assert rendered.pdf is not None and rendered.pdf.startswith(b"%PDF")
    assert rendered.text == original(summary, "fi", pdf=True).text
    print(f"rendering {rendering * 1000:.0f} ms, the loop at most {lag * 1000:.1f} ms late")
    assert ran_in and all(pid != os.getpid() for pid, _ in ran_in)  # the rendering process


async def test_planner_statistics_job_gives_sqlite_its_statistics(world: World) -> None:
    """The daily ``planner_statistics`` job (and the benchmarks after an upgrade): SQLite gets
    ``sqlite_stat1`` rows for the digest tables; PostgreSQL is left to autovacuum."""
    await seed_november(world)
    runtime = SimpleNamespace(db=world.db, config=load_config(None, terminal={"enabled": "no"}))
    jobs = {job.id: job.run for job in job_table(runtime)}  # type: ignore[arg-type]
    assert getattr(jobs["planner_statistics"], "func", None) is planner_statistics_job
    await jobs["planner_statistics"]()
    ran = await refresh_statistics(world.db)
    if world.db.dialect != "sqlite":
        assert ran is None
        return
    assert ran == "ANALYZE"
    async with world.db.transaction() as session:
        analysed = {
            table for (table,) in await session.execute(text("SELECT tbl FROM sqlite_stat1"))
        }
    assert {"observations", "escalation_events"} <= analysed
